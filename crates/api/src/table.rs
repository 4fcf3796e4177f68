//! Server-side Table output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): column
//! definitions and row cells per kind, as kube-apiserver's printers produce them.

use serde::Serialize;
use serde_json::{json, Value};

/// One column of a Table (`meta.k8s.io/v1` `TableColumnDefinition`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub format: String,
    pub description: String,
    /// 0 = always shown; 1 = shown with `-o wide`.
    pub priority: i32,
}

impl Column {
    pub fn new(name: &str, type_: &str, format: &str, priority: i32, description: &str) -> Self {
        Column {
            name: name.into(),
            type_: type_.into(),
            format: format.into(),
            description: description.into(),
            priority,
        }
    }

    /// The `Name` column every kind starts with.
    pub fn name() -> Self {
        Column::new(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace.",
        )
    }

    /// The wide-output `Containers` column of workloads (names of the template's containers).
    pub fn containers(description: &str) -> Self {
        Column::new("Containers", "string", "", 1, description)
    }

    /// The wide-output `Images` column of workloads.
    pub fn images(description: &str) -> Self {
        Column::new("Images", "string", "", 1, description)
    }

    /// The wide-output `Selector` column.
    pub fn selector(description: &str) -> Self {
        Column::new("Selector", "string", "", 1, description)
    }

    /// The `Age` column (a human duration since creation).
    pub fn age() -> Self {
        Column::new(
            "Age",
            "string",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        )
    }
}

/// The fallback columns for kinds without their own printer: Name and Created At.
pub fn default_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Created At",
            "date",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
    ]
}

/// The fallback row: name and creation timestamp.
pub fn default_row(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    vec![
        json!(crate::meta::name(obj)),
        obj["metadata"]["creationTimestamp"].clone(),
    ]
}

/// The creation age of an object as kubectl shows it (`35s`, `5m12s`, `3h`, `2d`).
pub fn age(obj: &Value, now: jiff::Timestamp) -> String {
    match obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// kubectl's short human duration (apimachinery `duration.HumanDuration`).
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "<invalid>".into();
    }
    if secs == 0 {
        return "0s".into();
    }
    let mins = secs / 60;
    let hours = secs / 3600;
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    if mins < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{mins}m")
        } else {
            format!("{mins}m{s}s")
        };
    }
    if mins < 60 * 3 {
        return format!("{mins}m");
    }
    if hours < 8 {
        let m = mins % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, h)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{}d", hours / 24 / 365, d)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(35), "35s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }
}

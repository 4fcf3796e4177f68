//! Label selectors as the scheduler's plugins use them: an API `LabelSelector` converted once
//! into requirements, with upstream's two distinct "empty" meanings kept apart — a missing
//! selector selects nothing, an empty one (`{}`) selects everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use navarch_api::selector::{LabelReq, LabelSelector};

/// A converted selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Matches no labels (upstream's `labels.Nothing()`: a nil or invalid selector).
    Nothing,
    /// Matches labels meeting every requirement; no requirements match everything.
    Reqs(LabelSelector),
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

impl Selector {
    /// Converts an API selector; `None` and invalid operators give [`Selector::Nothing`].
    pub fn from_api(sel: Option<&ApiSelector>) -> Self {
        let Some(sel) = sel else {
            return Selector::Nothing;
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(LabelReq::Eq(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            reqs.push(match e.operator.as_str() {
                "In" => LabelReq::In(e.key.clone(), values),
                "NotIn" => LabelReq::NotIn(e.key.clone(), values),
                "Exists" => LabelReq::Exists(e.key.clone()),
                "DoesNotExist" => LabelReq::NotExists(e.key.clone()),
                _ => return Selector::Nothing,
            });
        }
        Selector::Reqs(LabelSelector(reqs))
    }

    /// A selector from a plain `key: value` map (Services, ReplicationControllers).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        Selector::Reqs(LabelSelector(
            map.iter()
                .map(|(k, v)| LabelReq::Eq(k.clone(), v.clone()))
                .collect(),
        ))
    }

    pub fn everything() -> Self {
        Selector::Reqs(LabelSelector::default())
    }

    /// Whether there are no requirements (upstream's `Selector.Empty()`; `Nothing` is not empty).
    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Reqs(r) if r.is_empty())
    }

    /// Adds a requirement (a no-op on `Nothing`).
    pub fn add(&mut self, req: LabelReq) {
        if let Selector::Reqs(r) = self {
            r.0.push(req);
        }
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Reqs(r) => r.matches(labels.unwrap_or(&EMPTY)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(v: serde_json::Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn missing_selects_nothing_and_empty_selects_everything() {
        let l = labels(json!({"app": "web"}));
        let cases = [
            (None, false),
            (Some(json!({})), true),
            (Some(json!({"matchLabels": {"app": "web"}})), true),
            (Some(json!({"matchLabels": {"app": "db"}})), false),
            (
                Some(
                    json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "web"]}]}),
                ),
                true,
            ),
            (
                Some(json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})),
                true,
            ),
            (
                Some(json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})),
                false,
            ),
        ];
        for (sel, want) in cases {
            let api: Option<ApiSelector> = sel.clone().map(|s| serde_json::from_value(s).unwrap());
            assert_eq!(
                Selector::from_api(api.as_ref()).matches(Some(&l)),
                want,
                "{sel:?}"
            );
        }
        assert!(Selector::from_api(Some(&ApiSelector::default())).is_empty());
        assert!(!Selector::Nothing.is_empty());
    }
}

//! CronJobs: defaults (concurrency Allow, not suspended, 3 successful and 1 failed job kept),
//! validation of the schedule (the standard five-field cron syntax and `@` descriptors), time
//! zone and job template, and the `kubectl get cronjobs` columns.

use k8s_openapi::api::batch::v1 as batch;
use serde_json::{json, Value};

use super::job::validate_job_spec;
use super::podspec;
use super::util::{self, default, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `batch/v1` CronJob.
pub struct CronJobOps;

impl KindOps for CronJobOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<batch::CronJob>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default_str(spec, "concurrencyPolicy", "Allow");
        default(spec, "suspend", json!(false));
        default(spec, "successfulJobsHistoryLimit", json!(3));
        default(spec, "failedJobsHistoryLimit", json!(1));
        let job_spec = util::obj(util::obj(spec, "jobTemplate"), "spec");
        podspec::default_template(util::obj(job_spec, "template"));
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let name = crate::meta::name(obj);
        if old.is_none() && name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(name),
                "must be no more than 52 characters",
            ));
        }
        let spec = &obj["spec"];
        let schedule = s(spec, "schedule");
        if schedule.is_empty() {
            errs.push(FieldError::required("spec.schedule", ""));
        } else {
            if let Err(msg) = parse_schedule(schedule) {
                errs.push(FieldError::invalid("spec.schedule", &json!(schedule), &msg));
            }
            if schedule.contains("TZ") {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
        if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
            if !valid_time_zone(tz) {
                errs.push(FieldError::invalid(
                    "spec.timeZone",
                    &json!(tz),
                    &format!("unknown time zone {tz}"),
                ));
            }
        }
        let cp = s(spec, "concurrencyPolicy");
        if !["Allow", "Forbid", "Replace"].contains(&cp) {
            errs.push(FieldError::not_supported(
                "spec.concurrencyPolicy",
                &json!(cp),
                &["Allow", "Forbid", "Replace"],
            ));
        }
        for key in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            util::non_negative(spec, key, "spec", &mut errs);
        }
        let jt = &spec["jobTemplate"];
        util::validate_labels(
            jt["metadata"].get("labels"),
            "spec.jobTemplate.metadata.labels",
            &mut errs,
        );
        validate_job_spec(&jt["spec"], "spec.jobTemplate.spec", false, &mut errs);
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Schedule", "string", "", 0, "The cron schedule."),
            Column::new(
                "Timezone",
                "string",
                "",
                0,
                "The time zone the schedule is read in.",
            ),
            Column::new(
                "Suspend",
                "boolean",
                "",
                0,
                "Whether new runs are suspended.",
            ),
            Column::new("Active", "integer", "", 0, "Number of jobs running."),
            Column::new(
                "Last Schedule",
                "string",
                "",
                0,
                "When a job was last scheduled.",
            ),
            Column::age(),
            Column::containers("Names of the template's containers."),
            Column::images("Images of the template's containers."),
            Column::selector("The label selector of the job template."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let last = if status.get("lastScheduleTime").is_some() {
            util::since(status.get("lastScheduleTime"), now)
        } else {
            "<none>".into()
        };
        let suspend = match spec.get("suspend").and_then(Value::as_bool) {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let job_spec = &spec["jobTemplate"]["spec"];
        let (names, images) = util::container_cells(&job_spec["template"]["spec"]);
        vec![
            json!(crate::meta::name(obj)),
            json!(s(spec, "schedule")),
            json!(spec
                .get("timeZone")
                .and_then(Value::as_str)
                .unwrap_or("<none>")),
            json!(suspend),
            json!(util::len(status, "active")),
            json!(last),
            json!(crate::table::age(obj, now)),
            json!(names),
            json!(images),
            json!(util::format_label_selector(job_spec.get("selector"))),
        ]
    }
}

fn valid_time_zone(tz: &str) -> bool {
    if tz.is_empty() || tz == "Local" || tz.contains(' ') {
        return false;
    }
    // Without a time zone database every zone would look unknown; accept rather than reject.
    jiff::tz::db().is_definitively_empty() || jiff::tz::TimeZone::get(tz).is_ok()
}

/// Check a schedule the way the cron library kube-controller-manager uses parses it: five
/// fields (minute hour day-of-month month day-of-week) or an `@` descriptor, optionally
/// prefixed with `TZ=`/`CRON_TZ=`. The error is that library's message.
pub fn parse_schedule(spec: &str) -> Result<(), String> {
    let mut spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let (tz, rest) = spec.split_once(' ').unwrap_or((spec, ""));
        let name = tz.split_once('=').map(|(_, n)| n).unwrap_or("");
        if !valid_time_zone(name) {
            return Err(format!(
                "provided bad location {name}: unknown time zone {name}"
            ));
        }
        spec = rest.trim();
    }
    if let Some(desc) = spec.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => {
                let dur = d["every ".len()..].trim();
                if go_duration_ok(dur) {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to parse duration {spec}: time: invalid duration {dur:?}"
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(i64, i64, &[&str], i64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, base)) in fields.iter().zip(bounds) {
        for expr in field.split(',') {
            parse_range(expr, min, max, names, base)?;
        }
    }
    Ok(())
}

fn parse_range(expr: &str, min: i64, max: i64, names: &[&str], base: i64) -> Result<(), String> {
    let (range, step) = match expr.split('/').collect::<Vec<_>>()[..] {
        [r] => (r, None),
        [r, st] => (r, Some(st)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let value = |s: &str| -> Result<i64, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as i64 + base);
        }
        s.parse::<i64>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
        })
    };
    let (start, end) = if range == "*" || range == "?" {
        (min, max)
    } else {
        match range.split('-').collect::<Vec<_>>()[..] {
            [a] => {
                let a = value(a)?;
                (a, a)
            }
            [a, b] => (value(a)?, value(b)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    if let Some(st) = step {
        let n = st.parse::<i64>().map_err(|_| {
            format!("failed to parse int from {st}: strconv.Atoi: parsing {st:?}: invalid syntax")
        })?;
        if n <= 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

/// A Go duration string such as `1h30m` or `90s`.
fn go_duration_ok(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        let mut cj = json!({"metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                         "containers": [{"name": "hello", "image": "busybox:1.36"}]}}}}}});
        CronJobOps.apply_defaults(&mut cj);
        cj
    }

    #[test]
    fn cronjob_defaults() {
        let cj = minimal();
        let spec = &cj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job_spec = &spec["jobTemplate"]["spec"];
        assert!(
            job_spec.get("backoffLimit").is_none(),
            "job defaults are not applied to templates"
        );
        assert_eq!(job_spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert!(CronJobOps.validate(&cj, None).is_empty());
    }

    #[test]
    fn schedules_parse_like_the_cron_library() {
        for ok in [
            "* * * * *",
            "0 0 1 1 *",
            "*/15 9-17 * * mon-fri",
            "0 0 * JAN,jul SUN",
            "@hourly",
            "@every 1h30m",
            "TZ=UTC 0 * * * *",
        ] {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, msg) in [
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("@often", "unrecognized descriptor: @often"),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
        ] {
            assert_eq!(parse_schedule(bad), Err(msg.to_string()), "{bad}");
        }
    }

    #[test]
    fn validation_errors() {
        let mut cj = minimal();
        cj["spec"]["schedule"] = json!("every minute");
        cj["spec"]["concurrencyPolicy"] = json!("Sometimes");
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        cj["metadata"]["name"] = json!("a".repeat(53));
        let fields: Vec<String> = CronJobOps
            .validate(&cj, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "metadata.name",
                "spec.schedule",
                "spec.concurrencyPolicy",
                "spec.jobTemplate.spec.template.spec.restartPolicy"
            ]
        );
        let mut cj = minimal();
        cj["spec"]["timeZone"] = json!("Mars/Olympus");
        let errs = CronJobOps.validate(&cj, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.timeZone");
    }

    #[test]
    fn row_shows_schedule_and_last_run() {
        let mut cj = minimal();
        cj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        cj["status"] =
            json!({"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-01-01T00:10:00Z"});
        let now: jiff::Timestamp = "2026-01-01T00:10:30Z".parse().unwrap();
        let row = CronJobOps.table_row(&cj, now);
        assert_eq!(
            &row[..7],
            &[
                json!("hello"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("30s"),
                json!("10m")
            ]
        );
        assert_eq!(row.len(), CronJobOps.table_columns().len());
    }
}

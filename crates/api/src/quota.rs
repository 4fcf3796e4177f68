//! ResourceQuota accounting shared by the admission plugin (which refuses what would exceed a
//! quota) and the quota controller (which keeps `status.used` current): which objects count,
//! what each uses of a quota resource name, and quantities printed as upstream prints them.

use serde_json::Value;

use crate::kinds::parse_quantity;
use crate::meta;

/// The compute resources a bare name (`cpu`) refers to as requests.
pub const COMPUTE: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// A quantity from JSON (string or number).
pub fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Whether a pod still counts against quota (not finished, not being deleted).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    ) && meta::deletion_timestamp(pod).is_none()
}

/// A pod's effective total of `requests.<res>` or `limits.<res>`: the sum over its containers,
/// or the largest init container if that is larger (the scheduler's rule).
pub fn pod_total(pod: &Value, kind: &str, res: &str) -> f64 {
    let sum = |list: &Value| -> Vec<f64> {
        list.as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| quantity(&c["resources"][kind][res]).unwrap_or(0.0))
                    .collect()
            })
            .unwrap_or_default()
    };
    let main: f64 = sum(&pod["spec"]["containers"]).iter().sum();
    let init = sum(&pod["spec"]["initContainers"])
        .into_iter()
        .fold(0.0, f64::max);
    main.max(init)
}

/// The quota name counting objects of a resource: `count/pods`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The older names for counts of core objects (`pods`, `services`, …).
pub fn legacy_count_name(group: &str, plural: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    Some(match plural {
        "pods" => "pods",
        "services" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "persistentvolumeclaims" => "persistentvolumeclaims",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        _ => return None,
    })
}

/// For a pod quota resource (`requests.cpu`, `limits.memory`, `cpu`): which part of the
/// containers' resources it sums, and of what.
pub fn compute_resource(name: &str) -> Option<(&'static str, &str)> {
    match name.split_once('.') {
        Some(("requests", r)) => Some(("requests", r)),
        Some(("limits", r)) => Some(("limits", r)),
        None if COMPUTE.contains(&name) => Some(("requests", name)),
        _ => None,
    }
}

/// What the objects of one resource (already filtered to those that count) use of the quota
/// resource `name`; `None` when `name` does not concern this resource.
pub fn usage(name: &str, group: &str, plural: &str, objects: &[&Value]) -> Option<f64> {
    if name == count_name(group, plural) || Some(name) == legacy_count_name(group, plural) {
        return Some(objects.len() as f64);
    }
    match (group, plural) {
        ("", "pods") => {
            let (kind, res) = compute_resource(name)?;
            Some(objects.iter().map(|p| pod_total(p, kind, res)).sum())
        }
        ("", "persistentvolumeclaims") if name == "requests.storage" => Some(
            objects
                .iter()
                .map(|c| quantity(&c["spec"]["resources"]["requests"]["storage"]).unwrap_or(0.0))
                .sum(),
        ),
        ("", "services") => {
            let of_type = |t: &str| {
                objects
                    .iter()
                    .filter(|s| s["spec"]["type"].as_str() == Some(t))
                    .count()
            };
            match name {
                "services.loadbalancers" => Some(of_type("LoadBalancer") as f64),
                "services.nodeports" => Some(
                    objects
                        .iter()
                        .filter(|s| {
                            matches!(
                                s["spec"]["type"].as_str(),
                                Some("NodePort") | Some("LoadBalancer")
                            )
                        })
                        .map(|s| {
                            s["spec"]["ports"].as_array().map_or(0, |ps| {
                                ps.iter().filter(|p| p["nodePort"].is_i64()).count()
                            })
                        })
                        .sum::<usize>() as f64,
                ),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A quantity printed as upstream's canonical form, in the style of `like` (the quota's hard
/// value): binary suffixes when `like` has one, milli-units for fractions.
pub fn format_quantity(v: f64, like: &str) -> String {
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if binary.iter().any(|s| like.ends_with(s)) && v >= 1024.0 && v.fract() == 0.0 {
        let mut value = v as u64;
        let mut suffix = "";
        for s in binary {
            if value % 1024 != 0 {
                break;
            }
            value /= 1024;
            suffix = s;
        }
        return format!("{value}{suffix}");
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if (v * 1000.0 - (v * 1000.0).round()).abs() < 1e-6 {
        format!("{}m", (v * 1000.0).round() as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usage_of_pods_services_and_claims() {
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "250m"}}},
        ]}});
        let pods = [&pod, &pod];
        assert_eq!(usage("pods", "", "pods", &pods), Some(2.0));
        assert_eq!(usage("count/pods", "", "pods", &pods), Some(2.0));
        assert_eq!(usage("requests.cpu", "", "pods", &pods), Some(1.0));
        assert_eq!(usage("cpu", "", "pods", &pods), Some(1.0));
        assert_eq!(usage("limits.cpu", "", "pods", &pods), Some(2.0));
        assert_eq!(
            usage("requests.memory", "", "pods", &pods),
            Some(2.0 * 64.0 * 1048576.0)
        );
        assert_eq!(usage("services", "", "pods", &pods), None);
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"nodePort": 30001}, {"nodePort": 30002}]}});
        let ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let services = [&lb, &ip];
        assert_eq!(usage("services", "", "services", &services), Some(2.0));
        assert_eq!(
            usage("services.loadbalancers", "", "services", &services),
            Some(1.0)
        );
        assert_eq!(
            usage("services.nodeports", "", "services", &services),
            Some(2.0)
        );
        let deployments: [&Value; 0] = [];
        assert_eq!(
            usage(
                "count/deployments.apps",
                "apps",
                "deployments",
                &deployments
            ),
            Some(0.0)
        );
    }

    #[test]
    fn quantities_print_like_the_hard_limit() {
        assert_eq!(format_quantity(0.5, "2"), "500m");
        assert_eq!(format_quantity(3.0, "10"), "3");
        assert_eq!(format_quantity(128.0 * 1048576.0, "1Gi"), "128Mi");
        assert_eq!(format_quantity(0.0, "1Gi"), "0");
        assert_eq!(format_quantity(1536.0, "1Gi"), "1536");
    }
}

//! The LimitRanger and ResourceQuota admission plugins.
//!
//! LimitRanger fills in a container's default requests and limits from the namespace's
//! LimitRanges and rejects pods (and claims) outside their min/max. ResourceQuota rejects a
//! create that would take a namespace over a quota's `hard` limits, counting usage from the
//! watch cache (object counts and the pods' compute requests and limits); keeping
//! `status.used` current is the quota controller's job.

use navarch_api::quota::{
    compute_resource, count_name, legacy_count_name, pod_counts, pod_total, quantity as q, COMPUTE,
};
use navarch_api::{meta, ResourceDef};
use serde_json::{json, Value};

use super::ResourceApi;
use crate::StatusError;

fn forbidden(def: &ResourceDef, name: &str, why: String) -> StatusError {
    StatusError::forbidden(&def.gv.group, &def.plural, name, why)
}

impl ResourceApi {
    fn in_namespace(&self, group: &str, plural: &str, ns: &str) -> Vec<Value> {
        let Some(def) = self.registry.get(group, "v1", plural) else {
            return Vec::new();
        };
        self.cache
            .kind(&def)
            .snapshot(&def.namespace_prefix(Some(ns)), 0)
            .items
            .into_iter()
            .map(|(_, o)| (*o).clone())
            .collect()
    }

    /// LimitRanger for pods: defaults, then min/max and limit/request ratio checks.
    pub(crate) fn admit_limit_ranges(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
    ) -> Result<(), StatusError> {
        let ns = meta::namespace(obj).unwrap_or("").to_string();
        let ranges = self.in_namespace("", "limitranges", &ns);
        if ranges.is_empty() {
            return Ok(());
        }
        let name = meta::name(obj).to_string();
        let is_pod = def.kind == "Pod";
        for lr in &ranges {
            for item in lr["spec"]["limits"].as_array().into_iter().flatten() {
                match (item["type"].as_str(), is_pod) {
                    (Some("Container"), true) => {
                        for list in ["initContainers", "containers"] {
                            if let Some(cs) = obj["spec"][list].as_array_mut() {
                                for c in cs {
                                    apply_container_defaults(c, item);
                                    check_container(def, &name, c, item)?;
                                }
                            }
                        }
                    }
                    (Some("Pod"), true) => {
                        for res in COMPUTE {
                            for (kind, bound, op) in
                                [("requests", "min", "minimum"), ("limits", "max", "maximum")]
                            {
                                if let Some(b) = q(&item[bound][*res]) {
                                    let total = pod_total(obj, kind, res);
                                    let bad = if bound == "min" { total < b } else { total > b };
                                    if bad {
                                        return Err(forbidden(
                                            def,
                                            &name,
                                            format!(
                                                "{op} {res} usage per Pod is {}, but {} is {}",
                                                item[bound][*res].as_str().unwrap_or(""),
                                                if bound == "min" { "request" } else { "limit" },
                                                fmt(total)
                                            ),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                    (Some("PersistentVolumeClaim"), false)
                        if def.kind == "PersistentVolumeClaim" =>
                    {
                        let req =
                            q(&obj["spec"]["resources"]["requests"]["storage"]).unwrap_or(0.0);
                        if let Some(min) = q(&item["min"]["storage"]) {
                            if req < min {
                                return Err(forbidden(def, &name, format!("minimum storage usage per PersistentVolumeClaim is {}, but request is {}", item["min"]["storage"].as_str().unwrap_or(""), fmt(req))));
                            }
                        }
                        if let Some(max) = q(&item["max"]["storage"]) {
                            if req > max {
                                return Err(forbidden(def, &name, format!("maximum storage usage per PersistentVolumeClaim is {}, but request is {}", item["max"]["storage"].as_str().unwrap_or(""), fmt(req))));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// ResourceQuota: refuse a create that would exceed any quota of the namespace.
    pub(crate) fn admit_quota(&self, def: &ResourceDef, obj: &Value) -> Result<(), StatusError> {
        let ns = meta::namespace(obj).unwrap_or("").to_string();
        let quotas = self.in_namespace("", "resourcequotas", &ns);
        if quotas.is_empty() {
            return Ok(());
        }
        let name = meta::name(obj).to_string();
        let count_key = count_name(&def.gv.group, &def.plural);
        let legacy = legacy_count_name(&def.gv.group, &def.plural);
        let existing: Vec<Value> = self
            .cache
            .kind(def)
            .snapshot(&def.namespace_prefix(Some(&ns)), 0)
            .items
            .into_iter()
            .map(|(_, o)| (*o).clone())
            .filter(|o| def.kind != "Pod" || pod_counts(o))
            .collect();
        for quota in &quotas {
            let Some(hard) = quota["spec"]["hard"].as_object() else {
                continue;
            };
            let qname = meta::name(quota);
            for (res, limit) in hard {
                let Some(limit_v) = q(limit) else { continue };
                let (used, requested) = if *res == count_key || Some(res.as_str()) == legacy {
                    (existing.len() as f64, 1.0)
                } else if def.kind == "Pod" {
                    let Some((kind, r)) = compute_resource(res) else {
                        continue;
                    };
                    let requested = pod_total(obj, kind, r);
                    let all_set = obj["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|c| c["resources"][kind].get(r).is_some());
                    if !all_set {
                        return Err(forbidden(
                            def,
                            &name,
                            format!("failed quota: {qname}: must specify {res}"),
                        ));
                    }
                    (
                        existing.iter().map(|p| pod_total(p, kind, r)).sum(),
                        requested,
                    )
                } else if def.kind == "PersistentVolumeClaim" && res == "requests.storage" {
                    let req = q(&obj["spec"]["resources"]["requests"]["storage"]).unwrap_or(0.0);
                    (
                        existing
                            .iter()
                            .map(|p| {
                                q(&p["spec"]["resources"]["requests"]["storage"]).unwrap_or(0.0)
                            })
                            .sum(),
                        req,
                    )
                } else {
                    continue;
                };
                if used + requested > limit_v + 1e-9 {
                    return Err(forbidden(def, &name, format!(
                        "exceeded quota: {qname}, requested: {res}={}, used: {res}={}, limited: {res}={}",
                        fmt(requested),
                        fmt(used),
                        limit.as_str().map(str::to_string).unwrap_or_else(|| limit.to_string())
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Print a quantity value compactly (whole numbers without a fraction).
fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if (v * 1000.0 - (v * 1000.0).round()).abs() < 1e-6 {
        format!("{}m", (v * 1000.0).round() as i64)
    } else {
        format!("{v}")
    }
}

fn apply_container_defaults(c: &mut Value, item: &Value) {
    for res in COMPUTE {
        let has_limit = c["resources"]["limits"].get(*res).is_some();
        let has_request = c["resources"]["requests"].get(*res).is_some();
        if !has_limit {
            if let Some(d) = item["default"].get(*res) {
                c["resources"]["limits"][*res] = d.clone();
            }
        }
        if !has_request {
            // An explicit limit is also the request; otherwise the range's default request.
            let v = c["resources"]["limits"]
                .get(*res)
                .filter(|_| has_limit)
                .cloned()
                .or_else(|| item["defaultRequest"].get(*res).cloned())
                .or_else(|| item["default"].get(*res).cloned());
            if let Some(v) = v {
                c["resources"]["requests"][*res] = v;
            }
        }
    }
    if c["resources"]["limits"]
        .as_object()
        .is_some_and(|m| m.is_empty())
    {
        c["resources"].as_object_mut().map(|m| m.remove("limits"));
    }
    if c["resources"]["requests"]
        .as_object()
        .is_some_and(|m| m.is_empty())
    {
        c["resources"].as_object_mut().map(|m| m.remove("requests"));
    }
    if c.get("resources").is_none() {
        c["resources"] = json!({});
    }
}

fn check_container(
    def: &ResourceDef,
    pod: &str,
    c: &Value,
    item: &Value,
) -> Result<(), StatusError> {
    for res in COMPUTE {
        let req = q(&c["resources"]["requests"][*res]);
        let lim = q(&c["resources"]["limits"][*res]);
        if let Some(min) = q(&item["min"][*res]) {
            if req.is_none_or(|r| r < min) {
                return Err(forbidden(
                    def,
                    pod,
                    format!(
                        "minimum {res} usage per Container is {}, but request is {}",
                        item["min"][*res].as_str().unwrap_or(""),
                        req.map(fmt).unwrap_or_else(|| "0".into())
                    ),
                ));
            }
        }
        if let Some(max) = q(&item["max"][*res]) {
            if lim.is_none_or(|l| l > max) {
                return Err(forbidden(
                    def,
                    pod,
                    format!(
                        "maximum {res} usage per Container is {}, but limit is {}",
                        item["max"][*res].as_str().unwrap_or(""),
                        lim.map(fmt).unwrap_or_else(|| "unlimited".into())
                    ),
                ));
            }
        }
        if let (Some(ratio), Some(r), Some(l)) = (q(&item["maxLimitRequestRatio"][*res]), req, lim)
        {
            if r > 0.0 && l / r > ratio + 1e-9 {
                return Err(forbidden(def, pod, format!(
                    "{res} max limit to request ratio per Container is {}, but provided ratio is {:.6}",
                    item["maxLimitRequestRatio"][*res].as_str().unwrap_or(""),
                    l / r
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_defaults_come_from_the_limit_range() {
        let item = json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m", "memory": "64Mi"}});
        let mut c = json!({"name": "c", "image": "x", "resources": {}});
        apply_container_defaults(&mut c, &item);
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(c["resources"]["requests"]["cpu"], "100m");
        assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
        // An explicit limit becomes the request.
        let mut c = json!({"name": "c", "image": "x", "resources": {"limits": {"cpu": "2"}}});
        apply_container_defaults(&mut c, &item);
        assert_eq!(c["resources"]["requests"]["cpu"], "2");
    }

    #[test]
    fn pod_totals_take_the_larger_of_containers_and_init() {
        let pod = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1"}}}],
        }});
        assert!((pod_total(&pod, "requests", "cpu") - 1.0).abs() < 1e-9);
        assert_eq!(fmt(0.3), "300m");
        assert_eq!(fmt(2.0), "2");
    }
}

//! Admission: what the server adds to or checks on an object before it is stored, beyond the
//! kind's own defaulting and validation — NamespaceLifecycle, the default ServiceAccount and
//! default tolerations of pods, PriorityClass, DefaultStorageClass, LimitRanger and
//! ResourceQuota (`limits.rs`), and Service IP and NodePort allocation.
//!
//! Allocations are store keys (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`) created with the store's create-if-absent, so
//! two concurrent creates — even on two API servers over one etcd — never get the same value.

use std::net::Ipv4Addr;

use navarch_api::{meta, ResourceDef};
use serde_json::{json, Value};

use super::request::Target;
use super::{Ctx, ResourceApi};
use crate::{FieldCause, StatusError};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

fn is_service(def: &ResourceDef) -> bool {
    def.gv.group.is_empty() && def.kind == "Service"
}

fn is_pod(def: &ResourceDef) -> bool {
    def.gv.group.is_empty() && def.kind == "Pod"
}

fn invalid(kind: &str, name: &str, field: &str, msg: String) -> StatusError {
    StatusError::invalid(
        "",
        kind,
        name,
        vec![FieldCause::new(field, "FieldValueInvalid", msg)],
    )
}

impl ResourceApi {
    /// Admission for a create.
    pub(crate) async fn admit_create(
        &self,
        t: &Target,
        obj: &mut Value,
        _ctx: &Ctx,
    ) -> Result<(), StatusError> {
        let def = &t.def;
        if def.namespaced() {
            let ns = meta::namespace(obj).unwrap_or("").to_string();
            self.check_namespace_accepts(&ns, def).await?;
        }
        if is_pod(def) {
            admit_pod(obj);
            self.admit_priority(obj).await?;
        }
        if def.gv.group.is_empty() && (def.kind == "Pod" || def.kind == "PersistentVolumeClaim") {
            self.admit_limit_ranges(def, obj)?;
        }
        if def.namespaced() {
            self.admit_quota(def, obj)?;
        }
        if def.gv.group.is_empty() && def.kind == "PersistentVolumeClaim" {
            self.default_storage_class(obj);
        }
        if is_service(def) {
            self.allocate_service(obj, None).await?;
        }
        Ok(())
    }

    /// Admission for an update.
    pub(crate) async fn admit_update(
        &self,
        t: &Target,
        obj: &mut Value,
        current: &Value,
    ) -> Result<(), StatusError> {
        if is_service(&t.def) && t.subresource.is_none() {
            self.allocate_service(obj, Some(current)).await?;
        }
        Ok(())
    }

    /// NamespaceLifecycle: the namespace exists and is not being deleted.
    async fn check_namespace_accepts(
        &self,
        ns: &str,
        def: &ResourceDef,
    ) -> Result<(), StatusError> {
        let Some(nsdef) = self.registry.get("", "v1", "namespaces") else {
            return Ok(());
        };
        let (_, kv) = self.store.get(&nsdef.key(None, ns), None).await?;
        let Some(kv) = kv else {
            return Err(StatusError::not_found("", "namespaces", ns));
        };
        let obj = super::cache::decode_stored(&kv).unwrap_or(Value::Null);
        if meta::deletion_timestamp(&obj).is_some() || obj["status"]["phase"] == "Terminating" {
            return Err(StatusError::forbidden(
                &def.gv.group,
                &def.plural,
                "",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    async fn admit_priority(&self, pod: &mut Value) -> Result<(), StatusError> {
        let Some(class) = pod["spec"]["priorityClassName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
        else {
            return Ok(());
        };
        let builtin = match class.as_str() {
            "system-node-critical" => Some(2_000_001_000i64),
            "system-cluster-critical" => Some(2_000_000_000),
            _ => None,
        };
        let value = match builtin {
            Some(v) => v,
            None => {
                let Some(pcdef) = self
                    .registry
                    .get("scheduling.k8s.io", "v1", "priorityclasses")
                else {
                    return Ok(());
                };
                let (_, kv) = self.store.get(&pcdef.key(None, &class), None).await?;
                let pc = kv
                    .as_ref()
                    .and_then(super::cache::decode_stored)
                    .ok_or_else(|| {
                        StatusError::forbidden(
                            "",
                            "pods",
                            meta::name(pod),
                            format!("no PriorityClass with name {class} was found"),
                        )
                    })?;
                if let Some(p) = pc["preemptionPolicy"].as_str() {
                    pod["spec"]["preemptionPolicy"] = json!(p);
                }
                pc["value"].as_i64().unwrap_or(0)
            }
        };
        pod["spec"]["priority"] = json!(value);
        Ok(())
    }

    fn default_storage_class(&self, pvc: &mut Value) {
        if pvc["spec"].get("storageClassName").is_some() {
            return;
        }
        let Some(scdef) = self.registry.get("storage.k8s.io", "v1", "storageclasses") else {
            return;
        };
        let snap = self.cache.kind(&scdef).snapshot(&scdef.key_prefix(), 0);
        let default = snap.items.iter().find(|(_, sc)| {
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        });
        if let Some((_, sc)) = default {
            pvc["spec"]["storageClassName"] = json!(meta::name(sc));
        }
    }

    /// Allocate (or keep) cluster IPs and node ports of a Service.
    async fn allocate_service(
        &self,
        svc: &mut Value,
        current: Option<&Value>,
    ) -> Result<(), StatusError> {
        let name = meta::name(svc).to_string();
        let ty = svc["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        // Cluster IP: immutable once set; kept when an update omits it.
        if let Some(cur) = current {
            let cur_ip = cur["spec"]["clusterIP"].as_str().unwrap_or("");
            let new_ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
            if new_ip.is_empty() && !cur_ip.is_empty() && ty != "ExternalName" {
                svc["spec"]["clusterIP"] = json!(cur_ip);
                svc["spec"]["clusterIPs"] = cur["spec"]["clusterIPs"].clone();
            } else if !new_ip.is_empty() && new_ip != cur_ip && !cur_ip.is_empty() {
                return Err(StatusError::invalid(
                    "",
                    "Service",
                    &name,
                    vec![FieldCause::new(
                        "spec.clusterIPs[0]",
                        "FieldValueInvalid",
                        "field is immutable",
                    )],
                ));
            }
        }
        if ty == "ExternalName" {
            if let Some(m) = svc["spec"].as_object_mut() {
                m.remove("clusterIP");
                m.remove("clusterIPs");
                m.remove("ipFamilies");
                m.remove("ipFamilyPolicy");
            }
        } else {
            let want = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
            let had = current
                .and_then(|c| c["spec"]["clusterIP"].as_str())
                .unwrap_or("")
                .to_string();
            if want != "None" && (want.is_empty() || want != had) {
                let ip = self
                    .allocate_ip(&name, if want.is_empty() { None } else { Some(&want) })
                    .await?;
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            } else if want == "None" {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
        }
        // Node ports for NodePort and LoadBalancer services.
        let needs_ports = ty == "NodePort" || ty == "LoadBalancer";
        let cur_ports: Vec<(i64, i64)> = current
            .and_then(|c| c["spec"]["ports"].as_array())
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if !needs_ports {
                    if let Some(m) = p.as_object_mut() {
                        m.remove("nodePort");
                    }
                    continue;
                }
                let requested = p["nodePort"].as_i64().filter(|n| *n != 0);
                let port = p["port"].as_i64().unwrap_or(0);
                let kept = cur_ports
                    .iter()
                    .find(|(pp, _)| *pp == port)
                    .map(|(_, np)| *np);
                let np = match (requested, kept) {
                    (Some(r), Some(k)) if r == k => r,
                    (None, Some(k)) => k,
                    (r, _) => self.allocate_node_port(&name, r, i).await?,
                };
                p["nodePort"] = json!(np);
            }
        }
        Ok(())
    }

    async fn allocate_ip(&self, svc: &str, want: Option<&str>) -> Result<Ipv4Addr, StatusError> {
        let net = self.config.service_cidr;
        if let Some(w) = want {
            let ip: Ipv4Addr = w.parse().map_err(|_| {
                invalid(
                    "Service",
                    svc,
                    "spec.clusterIPs[0]",
                    format!("Invalid value: {w:?}: must be a valid IP address"),
                )
            })?;
            if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
                return Err(invalid("Service", svc, "spec.clusterIPs[0]", format!("Invalid value: {w:?}: provided IP is not in the valid range. The range of valid IPs is {net}")));
            }
            return match self
                .store
                .create(&format!("{IP_PREFIX}{ip}"), svc.as_bytes().to_vec())
                .await
            {
                Ok(_) => Ok(ip),
                Err(navarch_store::Error::AlreadyExists { .. }) => Err(invalid(
                    "Service",
                    svc,
                    "spec.clusterIPs[0]",
                    format!("Invalid value: {w:?}: provided IP is already allocated"),
                )),
                Err(e) => Err(e.into()),
            };
        }
        let base = u32::from(net.network());
        let size = 1u32 << (32 - net.prefix_len());
        // The low addresses are kept for static assignment (the API service, DNS).
        let low = 16.min(size / 2);
        let span = size.saturating_sub(low + 1).max(1);
        for attempt in 0..(span.min(4096) + 64) {
            let offset = if attempt < 64 {
                low + rand::random_range(0..span)
            } else {
                low + (attempt - 64) % span
            };
            let ip = Ipv4Addr::from(base + offset);
            if ip == net.broadcast() || ip == net.network() {
                continue;
            }
            match self
                .store
                .create(&format!("{IP_PREFIX}{ip}"), svc.as_bytes().to_vec())
                .await
            {
                Ok(_) => return Ok(ip),
                Err(navarch_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StatusError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    async fn allocate_node_port(
        &self,
        svc: &str,
        want: Option<i64>,
        index: usize,
    ) -> Result<i64, StatusError> {
        let range = self.config.node_ports.clone();
        let field = format!("spec.ports[{index}].nodePort");
        if let Some(w) = want {
            if w < *range.start() as i64 || w > *range.end() as i64 {
                return Err(invalid("Service", svc, &field, format!("Invalid value: {w}: provided port is not in the valid range. The range of valid ports is {}-{}", range.start(), range.end())));
            }
            return match self
                .store
                .create(&format!("{PORT_PREFIX}{w}"), svc.as_bytes().to_vec())
                .await
            {
                Ok(_) => Ok(w),
                Err(navarch_store::Error::AlreadyExists { .. }) => Err(invalid(
                    "Service",
                    svc,
                    &field,
                    format!("Invalid value: {w}: provided port is already allocated"),
                )),
                Err(e) => Err(e.into()),
            };
        }
        let lo = *range.start() as i64;
        let n = (*range.end() as i64 - lo + 1).max(1);
        for attempt in 0..(n + 64) {
            let p = if attempt < 64 {
                lo + rand::random_range(0..n)
            } else {
                lo + (attempt - 64) % n
            };
            match self
                .store
                .create(&format!("{PORT_PREFIX}{p}"), svc.as_bytes().to_vec())
                .await
            {
                Ok(_) => return Ok(p),
                Err(navarch_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StatusError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    /// Release what a Service held (after a failed create or a delete).
    pub(crate) async fn release_allocations(&self, def: &ResourceDef, obj: &Value) {
        if !is_service(def) {
            return;
        }
        if let Some(ip) = obj["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| *ip != "None" && !ip.is_empty())
        {
            let _ = self.store.delete(&format!("{IP_PREFIX}{ip}"), None).await;
        }
        if let Some(ports) = obj["spec"]["ports"].as_array() {
            for p in ports {
                if let Some(np) = p["nodePort"].as_i64() {
                    let _ = self.store.delete(&format!("{PORT_PREFIX}{np}"), None).await;
                }
            }
        }
    }

    /// Housekeeping after an object was removed from the store.
    pub(crate) async fn after_delete(&self, def: &ResourceDef, obj: &Value) {
        self.release_allocations(def, obj).await;
    }
}

/// Pod admission: the default service account and the not-ready/unreachable tolerations.
fn admit_pod(pod: &mut Value) {
    let spec = &mut pod["spec"];
    let sa = spec["serviceAccountName"]
        .as_str()
        .or_else(|| spec["serviceAccount"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = tolerations.iter().any(|t| {
            (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        });
        if !present {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = json!(tolerations);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_default_service_account_and_tolerations() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
        admit_pod(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        // Idempotent on update paths.
        admit_pod(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }
}

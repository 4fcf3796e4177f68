//! Objects every cluster has from its first start: the namespaces `default`, `kube-system`,
//! `kube-public` and `kube-node-lease`, and the `kubernetes` Service in `default` at the first
//! address of the service range. Created through the normal create path (defaulting,
//! admission, allocation) and left alone when they already exist.

use axum::body::Body;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::request::{Query, Target};
use super::{Ctx, ResourceApi};
use crate::{AuthenticatedUser, StatusError};

impl ResourceApi {
    /// Create an object as the API server itself (`system:apiserver`); an existing object is
    /// not an error.
    pub async fn ensure(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        obj: Value,
    ) -> Result<(), StatusError> {
        let def = self
            .registry
            .get(group, version, plural)
            .ok_or_else(StatusError::path_not_found)?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        if self
            .store
            .get(&def.key(namespace, name), None)
            .await?
            .1
            .is_some()
        {
            return Ok(());
        }
        let t = Target {
            def,
            namespace: namespace.map(str::to_string),
            name: None,
            subresource: None,
            legacy_watch: false,
        };
        let ctx = Ctx {
            headers: HeaderMap::new(),
            query: Query::parse(Some("fieldManager=navarch-apiserver")),
            user: Some(AuthenticatedUser::new(
                "system:apiserver",
                ["system:masters".to_string()],
            )),
        };
        let body = Body::from(serde_json::to_vec(&obj).unwrap_or_default());
        match self.create(&t, &ctx, body).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create the namespaces and the `kubernetes` Service every cluster has, with the
    /// Endpoints and EndpointSlice that point it at this server (`advertise`:`secure_port`).
    pub async fn bootstrap(
        self: &std::sync::Arc<Self>,
        advertise: std::net::IpAddr,
        secure_port: u16,
    ) -> Result<(), StatusError> {
        self.resume_namespace_deletions();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.ensure(
                "",
                "v1",
                "namespaces",
                None,
                json!({"metadata": {"name": ns}}),
            )
            .await?;
        }
        let first = std::net::Ipv4Addr::from(u32::from(self.config.service_cidr.network()) + 1);
        self.ensure(
            "",
            "v1",
            "services",
            Some("default"),
            json!({
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": first.to_string(),
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}],
                    "sessionAffinity": "None",
                    "type": "ClusterIP",
                },
            }),
        )
        .await?;
        self.maintain_api_endpoints(advertise, secure_port).await
    }

    /// Point the `kubernetes` Service at this server: its Endpoints and EndpointSlice are
    /// created, or rewritten when the address or port changed since the last start.
    async fn maintain_api_endpoints(
        &self,
        ip: std::net::IpAddr,
        port: u16,
    ) -> Result<(), StatusError> {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let wanted = [
            (
                ("", "v1", "endpoints"),
                json!({
                    "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                    "subsets": [{
                        "addresses": [{"ip": ip.to_string()}],
                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                    }],
                }),
            ),
            (
                ("discovery.k8s.io", "v1", "endpointslices"),
                json!({
                    "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                    "addressType": family,
                    "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }),
            ),
        ];
        for ((g, v, plural), obj) in wanted {
            let def = self
                .registry
                .get(g, v, plural)
                .ok_or_else(StatusError::path_not_found)?;
            let key = def.key(Some("default"), "kubernetes");
            if let (_, Some(kv)) = self.store.get(&key, None).await? {
                let current = super::cache::decode_stored(&kv).unwrap_or_default();
                let same = ["subsets", "endpoints", "ports", "addressType"]
                    .iter()
                    .all(|f| obj.get(*f).is_none() || current.get(*f) == obj.get(*f));
                if same {
                    continue;
                }
                // Stale address from an earlier start: replace the object.
                let _ = self.store.delete(&key, Some(kv.mod_revision)).await;
            }
            self.ensure(g, v, plural, Some("default"), obj).await?;
        }
        Ok(())
    }
}

//! Namespace deletion. Deleting a namespace marks it `Terminating` (it carries the
//! `kubernetes` finalizer in `spec.finalizers`); a background task of the API server then
//! deletes everything in it and, once it is empty, removes the finalizer and the namespace.
//! This is the namespace controller's job in kube-controller-manager; it lives here because
//! it needs nothing but the API's own delete path.

use std::sync::Arc;
use std::time::Duration;

use navarch_api::meta;
use serde_json::{json, Value};

use super::delete::DeleteOptions;
use super::object::{encode_for_store, set_rv};
use super::request::Target;
use super::ResourceApi;
use crate::StatusError;

/// The finalizer in `spec.finalizers` that keeps a namespace until its content is gone.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

fn is_namespace(def: &navarch_api::ResourceDef) -> bool {
    def.gv.group.is_empty() && def.kind == "Namespace"
}

impl ResourceApi {
    /// Start deleting a namespace: mark it Terminating. Returns `None` for other kinds.
    pub(crate) async fn delete_namespace(
        self: &Arc<Self>,
        t: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> Option<Result<(http::StatusCode, Value), StatusError>> {
        if !is_namespace(&t.def) {
            return None;
        }
        Some(self.mark_terminating(t, name, opts).await)
    }

    async fn mark_terminating(
        self: &Arc<Self>,
        t: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(http::StatusCode, Value), StatusError> {
        let key = self.key_of(t, name);
        loop {
            let (current, kv) = self.current(t, name).await?;
            let mut obj = current.clone();
            if meta::deletion_timestamp(&obj).is_none() {
                meta::set(&mut obj, "deletionTimestamp", json!(meta::now_rfc3339()));
                meta::set(&mut obj, "deletionGracePeriodSeconds", json!(0));
            }
            obj["status"]["phase"] = json!("Terminating");
            if opts.dry_run {
                return Ok((http::StatusCode::OK, obj));
            }
            if obj != current {
                match self
                    .store
                    .update(&key, encode_for_store(&t.def, &obj), kv.mod_revision)
                    .await
                {
                    Ok(s) => set_rv(&mut obj, s.mod_revision),
                    Err(navarch_store::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let this = self.clone();
            let t = t.clone();
            let name = name.to_string();
            tokio::spawn(async move { this.finish_namespace(t, name).await });
            return Ok((http::StatusCode::OK, obj));
        }
    }

    /// Resume the cleanup of namespaces that were Terminating when the server stopped.
    pub(crate) fn resume_namespace_deletions(self: &Arc<Self>) {
        let Some(def) = self.registry.get("", "v1", "namespaces") else {
            return;
        };
        let snap = self.cache.kind(&def).snapshot(&def.key_prefix(), 0);
        for (_, ns) in snap.items {
            if meta::deletion_timestamp(&ns).is_some() {
                let t = Target {
                    def: def.clone(),
                    namespace: None,
                    name: Some(meta::name(&ns).to_string()),
                    subresource: None,
                    legacy_watch: false,
                };
                let this = self.clone();
                let name = meta::name(&ns).to_string();
                tokio::spawn(async move { this.finish_namespace(t, name).await });
            }
        }
    }

    /// Delete the namespace's content until none is left, then the namespace itself.
    async fn finish_namespace(self: Arc<Self>, t: Target, name: String) {
        let mut delay = Duration::from_millis(50);
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            match self.empty_namespace(&name).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %e.message(), "namespace cleanup")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        // Remove the finalizer; with no metadata finalizers left the namespace goes.
        let key = self.key_of(&t, &name);
        for _ in 0..16 {
            let Ok((current, kv)) = self.current(&t, &name).await else {
                return;
            };
            let mut obj = current.clone();
            if let Some(f) = obj["spec"]["finalizers"].as_array_mut() {
                f.retain(|x| x != KUBERNETES_FINALIZER);
            }
            let res = if meta::finalizers(&obj).is_empty() {
                self.store
                    .delete(&key, Some(kv.mod_revision))
                    .await
                    .map(|_| ())
            } else {
                self.store
                    .update(&key, encode_for_store(&t.def, &obj), kv.mod_revision)
                    .await
                    .map(|_| ())
            };
            match res {
                Ok(()) => return,
                Err(navarch_store::Error::Conflict { .. }) => continue,
                Err(_) => return,
            }
        }
    }

    /// One pass deleting everything in a namespace; true once nothing is left.
    async fn empty_namespace(&self, ns: &str) -> Result<bool, StatusError> {
        let mut left = 0usize;
        for def in self.registry.all() {
            // A resource serving another's storage is emptied through its owner.
            if !def.namespaced() || def.is_alias() {
                continue;
            }
            let prefix = def.namespace_prefix(Some(ns));
            let snap = self.cache.kind(def).snapshot(&prefix, 0);
            for (_, obj) in snap.items {
                left += 1;
                if meta::deletion_timestamp(&obj).is_some() {
                    continue;
                }
                let t = Target {
                    def: def.clone(),
                    namespace: Some(ns.to_string()),
                    name: None,
                    subresource: None,
                    legacy_watch: false,
                };
                let opts = DeleteOptions {
                    propagation: Some("Background".into()),
                    ..DeleteOptions::default()
                };
                match self.delete_one(&t, meta::name(&obj), &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code() == http::StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(left == 0)
    }
}

//! delete and deletecollection: preconditions, graceful deletion of pods, finalizers and the
//! propagation policies (Foreground and Orphan add their finalizer for the garbage collector;
//! an object with no dependents goes at once).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use navarch_api::meta;
use serde_json::{json, Value};

use super::codec::{content_type, decode_object, negotiate, read_body, respond};
use super::object::{encode_for_store, set_rv};
use super::read::list_object;
use super::request::{ListOptions, Target};
use super::{Ctx, ResourceApi};
use crate::StatusError;

/// The parts of `DeleteOptions` the server honours.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    fn from_request(ctx: &Ctx, body: &[u8]) -> Result<Self, StatusError> {
        let mut o = DeleteOptions {
            grace_period: ctx.query.int("gracePeriodSeconds")?,
            propagation: ctx.query.get("propagationPolicy").map(str::to_string),
            dry_run: ctx.query.dry_run()?,
            ..DeleteOptions::default()
        };
        if ctx.query.flag("orphanDependents") && o.propagation.is_none() {
            o.propagation = Some("Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = decode_object(&content_type(&ctx.headers), body)?;
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period = Some(g);
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            } else if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                o.propagation = Some("Orphan".into());
            }
            o.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
            o.precondition_rv = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
                o.dry_run |= d.iter().any(|x| x == "All");
            }
        }
        match o.propagation.as_deref() {
            None | Some("Background") | Some("Foreground") | Some("Orphan") => Ok(o),
            Some(p) => Err(StatusError::bad_request(format!(
                "propagationPolicy {p:?} is not supported: must be Background, Foreground or Orphan"
            ))),
        }
    }
}

impl ResourceApi {
    pub(crate) async fn delete(
        self: &Arc<Self>,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let bytes = read_body(body).await?;
        let opts = DeleteOptions::from_request(ctx, &bytes)?;
        let name = t.name.clone().unwrap_or_default();
        let (code, obj) = match self.delete_namespace(t, &name, &opts).await {
            Some(r) => r?,
            None => self.delete_one(t, &name, &opts).await?,
        };
        Ok(respond(code, output, &t.def, &obj))
    }

    /// Delete (or start deleting) one object; returns 200 with the object when it is gone or
    /// gracefully terminating, 202 when finalizers keep it.
    pub async fn delete_one(
        &self,
        t: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(StatusCode, Value), StatusError> {
        let def = &t.def;
        let key = self.key_of(t, name);
        for _ in 0..16 {
            let (current, kv) = self.current(t, name).await?;
            if let Some(uid) = &opts.precondition_uid {
                if meta::uid(&current) != Some(uid.as_str()) {
                    return Err(StatusError::conflict(
                        &def.gv.group,
                        &def.plural,
                        name,
                        format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta::uid(&current).unwrap_or("")
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if *rv != kv.mod_revision.to_string() {
                    return Err(StatusError::conflict(
                        &def.gv.group,
                        &def.plural,
                        name,
                        format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            kv.mod_revision
                        ),
                    ));
                }
            }
            let mut obj = current.clone();
            let mut finalizers = meta::finalizers(&obj);
            let deleting = meta::deletion_timestamp(&obj).is_some();
            let has_dependents = self.has_dependents(def, &obj);
            match opts.propagation.as_deref() {
                Some("Foreground")
                    if has_dependents && !finalizers.iter().any(|f| f == "foregroundDeletion") =>
                {
                    finalizers.push("foregroundDeletion".into());
                }
                Some("Orphan") if has_dependents && !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into());
                }
                _ => {}
            }
            let grace = self.grace_period(def, &obj, opts);
            let now = meta::now_rfc3339();
            // Either finalizers keep the object (202), or a pod terminates gracefully (200):
            // both only mark it.
            let marked = if !finalizers.is_empty() {
                if !deleting {
                    meta::set(&mut obj, "deletionTimestamp", Value::String(now.clone()));
                    meta::set(
                        &mut obj,
                        "deletionGracePeriodSeconds",
                        json!(grace.unwrap_or(0)),
                    );
                }
                meta::set(&mut obj, "finalizers", json!(finalizers));
                Some(StatusCode::ACCEPTED)
            } else if let Some(g) = grace.filter(|g| *g > 0) {
                // The node agent stops the pod and deletes it with grace 0. A second delete may
                // only shorten the period.
                let deadline = jiff::Timestamp::now().as_second() + g;
                let stamp = jiff::Timestamp::from_second(deadline)
                    .map(|t| t.to_string())
                    .unwrap_or(now);
                let shorter = match meta::deletion_timestamp(&obj) {
                    Some(existing) => stamp.as_str() < existing,
                    None => true,
                };
                if shorter {
                    meta::set(&mut obj, "deletionTimestamp", Value::String(stamp));
                    meta::set(&mut obj, "deletionGracePeriodSeconds", json!(g));
                }
                Some(StatusCode::OK)
            } else {
                None
            };
            if let Some(code) = marked {
                if obj == current || opts.dry_run {
                    return Ok((code, obj));
                }
                match self
                    .store
                    .update(&key, encode_for_store(def, &obj), kv.mod_revision)
                    .await
                {
                    Ok(s) => {
                        set_rv(&mut obj, s.mod_revision);
                        return Ok((code, obj));
                    }
                    Err(navarch_store::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if opts.dry_run {
                return Ok((StatusCode::OK, obj));
            }
            if opts.propagation.as_deref() == Some("Orphan") {
                self.orphan_dependents(def, &obj).await?;
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((_, rev)) => {
                    self.after_delete(def, &obj).await;
                    set_rv(&mut obj, rev);
                    return Ok((StatusCode::OK, obj));
                }
                Err(navarch_store::Error::Conflict { .. }) => continue,
                Err(navarch_store::Error::NotFound { .. }) => {
                    return Err(StatusError::not_found(&def.gv.group, &def.plural, name))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StatusError::conflict(
            &def.gv.group,
            &def.plural,
            name,
            StatusError::STALE_OBJECT,
        ))
    }

    /// The grace period of a delete: pods bound to a node get theirs (default 30 s); unbound or
    /// finished pods, and every other kind, go at once.
    fn grace_period(
        &self,
        def: &navarch_api::ResourceDef,
        obj: &Value,
        opts: &DeleteOptions,
    ) -> Option<i64> {
        if def.kind != "Pod" || !def.gv.group.is_empty() {
            return None;
        }
        let scheduled = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded") | Some("Failed")
        );
        if !scheduled || finished {
            return Some(0);
        }
        let g = opts
            .grace_period
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        Some(if g < 0 { 1 } else { g })
    }

    /// Whether any object in the cache names this one as an owner.
    fn has_dependents(&self, _def: &navarch_api::ResourceDef, obj: &Value) -> bool {
        let Some(uid) = meta::uid(obj) else {
            return false;
        };
        !self.dependents_of(uid, meta::namespace(obj)).is_empty()
    }

    /// Keys and objects owned by `uid` (same namespace, or cluster-scoped).
    pub fn dependents_of(
        &self,
        uid: &str,
        namespace: Option<&str>,
    ) -> Vec<(std::sync::Arc<navarch_api::ResourceDef>, Value)> {
        let mut out = Vec::new();
        // Each stored object once, through the resource that owns its storage.
        for def in self.registry.all().iter().filter(|d| !d.is_alias()) {
            let prefix = match (def.namespaced(), namespace) {
                (true, Some(ns)) => def.namespace_prefix(Some(ns)),
                (true, None) => def.key_prefix(),
                (false, _) => def.key_prefix(),
            };
            let snap = self.cache.kind(def).snapshot(&prefix, 0);
            for (_, o) in snap.items {
                let owned = o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
                if owned {
                    out.push((def.clone(), (*o).clone()));
                }
            }
        }
        out
    }

    /// Remove the owner reference to `owner` from its dependents.
    async fn orphan_dependents(
        &self,
        _def: &navarch_api::ResourceDef,
        owner: &Value,
    ) -> Result<(), StatusError> {
        let Some(uid) = meta::uid(owner).map(str::to_string) else {
            return Ok(());
        };
        for (ddef, dep) in self.dependents_of(&uid, meta::namespace(owner)) {
            let key = ddef.key(meta::namespace(&dep), meta::name(&dep));
            for _ in 0..16 {
                let (_, kv) = self.store.get(&key, None).await?;
                let Some(kv) = kv else { break };
                let Some(mut cur) = super::cache::decode_stored(&kv) else {
                    break;
                };
                if let Some(refs) = cur["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                    if refs.is_empty() {
                        meta::remove(&mut cur, "ownerReferences");
                    }
                }
                match self
                    .store
                    .update(&key, encode_for_store(&ddef, &cur), kv.mod_revision)
                    .await
                {
                    Ok(_) => break,
                    Err(navarch_store::Error::Conflict { .. }) => continue,
                    Err(navarch_store::Error::NotFound { .. }) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn delete_collection(
        &self,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let bytes = read_body(body).await?;
        let opts = DeleteOptions::from_request(ctx, &bytes)?;
        let mut list_opts = ListOptions::from_query(&ctx.query)?;
        list_opts.limit = 0;
        list_opts.continue_token = None;
        let page = self.list_page(t, &list_opts).await?;
        let mut deleted = Vec::new();
        for obj in &page.items {
            let mut target = t.clone();
            if target.namespace.is_none() {
                target.namespace = meta::namespace(obj).map(str::to_string);
            }
            match self.delete_one(&target, meta::name(obj), &opts).await {
                Ok((_, o)) => deleted.push(std::sync::Arc::new(o)),
                Err(e) if e.code() == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        let out = super::read::Page {
            items: deleted,
            revision: self.store.current_revision().await?,
            continue_token: None,
            remaining: None,
        };
        Ok(respond(
            StatusCode::OK,
            output,
            &t.def,
            &list_object(&t.def, &out),
        ))
    }
}

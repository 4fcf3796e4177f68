//! create, update (PUT) and patch, for objects and their `status`.
//!
//! Every write goes: decode → normalise (typed round trip, unknown fields per
//! `fieldValidation`) → server-owned metadata → defaulting → admission → validation → store,
//! with the store's compare-and-swap on the object's revision. An update without a
//! resourceVersion retries on a concurrent change (kube-apiserver's GuaranteedUpdate); with
//! one, a mismatch is a 409 Conflict — also when the resourceVersion sits inside a patch.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use navarch_api::{meta, FieldError};
use serde_json::Value;

use super::codec::{content_type, decode_object, negotiate, read_body, respond};
use super::object::{
    add_warnings, encode_for_store, random_suffix, record_manager, set_rv, spec_part,
    tracks_generation,
};
use super::request::{FieldValidation, Target};
use super::{Ctx, ResourceApi};
use crate::{FieldCause, StatusError};

/// How many times an unconditional update retries after losing a race.
const RETRIES: usize = 16;

pub fn invalid(t: &Target, name: &str, errs: Vec<FieldError>) -> StatusError {
    let causes = errs
        .into_iter()
        .map(|e| {
            let reason = serde_json::to_value(e.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            // kube-apiserver's cause message omits the field path prefix.
            let msg = e
                .message
                .strip_prefix(&format!("{}: ", e.field))
                .unwrap_or(&e.message)
                .to_string();
            FieldCause::new(e.field, reason, msg)
        })
        .collect();
    StatusError::invalid(&t.def.gv.group, &t.def.kind, name, causes)
}

/// What a patch request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    fn from_content_type(ct: &str) -> Result<Self, StatusError> {
        match ct {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(StatusError::unsupported_media_type(
                other,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            )),
        }
    }
}

impl ResourceApi {
    pub(crate) async fn create(
        &self,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let def = &t.def;
        if def.namespaced() && t.namespace.is_none() {
            return Err(StatusError::method_not_supported(
                &def.gv.group,
                &def.plural,
                "create",
            ));
        }
        let bytes = read_body(body).await?;
        let raw = decode_object(&content_type(&ctx.headers), &bytes)?;
        let fv = FieldValidation::from_query(&ctx.query)?;
        let dry_run = ctx.query.dry_run()?;
        let (mut obj, warnings) = self.normalize_input(def, raw, fv)?;

        // Namespace from the URL; a different one in the body is an error.
        if let Some(ns) = &t.namespace {
            match meta::namespace(&obj) {
                Some(b) if !b.is_empty() && b != ns => {
                    return Err(StatusError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => meta::set(&mut obj, "namespace", Value::String(ns.clone())),
            }
        } else {
            meta::remove(&mut obj, "namespace");
        }
        if meta::name(&obj).is_empty() {
            if let Some(prefix) = obj["metadata"]["generateName"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                let name = format!("{prefix}{}", random_suffix(5));
                meta::set(&mut obj, "name", Value::String(name));
            }
        }
        let name = meta::name(&obj).to_string();

        // Server-owned metadata.
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta::remove(&mut obj, f);
        }
        meta::set(
            &mut obj,
            "uid",
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta::set(
            &mut obj,
            "creationTimestamp",
            Value::String(meta::now_rfc3339()),
        );
        if tracks_generation(def) {
            meta::set(&mut obj, "generation", Value::from(1));
        } else {
            meta::remove(&mut obj, "generation");
        }
        if def.ops.has_status() && def.kind != "Node" {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        def.ops.apply_defaults(&mut obj);
        self.admit_create(t, &mut obj, ctx).await?;
        let errs = def.ops.validate(&obj, None);
        if !errs.is_empty() {
            self.release_allocations(def, &obj).await;
            return Err(invalid(t, &name, errs));
        }
        record_manager(
            &mut obj,
            &ctx.manager(),
            "Update",
            &def.gv.api_version(),
            None,
        );
        if dry_run {
            // Nothing is kept from a dry run, not even the IPs and ports it was shown.
            self.release_allocations(def, &obj).await;
            let mut r = respond(StatusCode::CREATED, output, def, &obj);
            add_warnings(&mut r, &warnings);
            return Ok(r);
        }
        let key = self.key_of(t, &name);
        let stored = match self.store.create(&key, encode_for_store(def, &obj)).await {
            Ok(kv) => kv,
            Err(navarch_store::Error::AlreadyExists { .. }) => {
                self.release_allocations(def, &obj).await;
                return Err(StatusError::already_exists(
                    &def.gv.group,
                    &def.plural,
                    &name,
                ));
            }
            Err(e) => {
                self.release_allocations(def, &obj).await;
                return Err(e.into());
            }
        };
        set_rv(&mut obj, stored.mod_revision);
        let mut r = respond(StatusCode::CREATED, output, def, &obj);
        add_warnings(&mut r, &warnings);
        Ok(r)
    }

    pub(crate) async fn update(
        &self,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let bytes = read_body(body).await?;
        let raw = decode_object(&content_type(&ctx.headers), &bytes)?;
        let (obj, warnings) = self
            .write_existing(t, ctx, None, move |_| Ok(raw.clone()))
            .await?;
        let mut r = respond(StatusCode::OK, output, &t.def, &obj);
        add_warnings(&mut r, &warnings);
        Ok(r)
    }

    pub(crate) async fn patch(
        &self,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let ptype = PatchType::from_content_type(&content_type(&ctx.headers))?;
        let bytes = read_body(body).await?;
        if ptype == PatchType::Apply {
            return Err(StatusError::unsupported_media_type(
                "application/apply-patch+yaml",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            ));
        }
        let output = negotiate(&ctx.headers)?;
        let patch = super::codec::parse_json(&bytes)?;
        let def = t.def.clone();
        let (obj, warnings) = self
            .write_existing(t, ctx, Some(ptype), move |current| {
                super::subresource::apply_patch(&def, ptype, current, &patch)
            })
            .await?;
        let mut r = respond(StatusCode::OK, output, &t.def, &obj);
        add_warnings(&mut r, &warnings);
        Ok(r)
    }

    /// The shared update path: `make_new` turns the current object into the requested one
    /// (the PUT body, or the current object with a patch applied); it is called again after a
    /// lost race.
    pub(crate) async fn write_existing(
        &self,
        t: &Target,
        ctx: &Ctx,
        patch: Option<PatchType>,
        make_new: impl Fn(&Value) -> Result<Value, StatusError>,
    ) -> Result<(Value, Vec<String>), StatusError> {
        let def = &t.def;
        let name = t.name.clone().unwrap_or_default();
        let fv = FieldValidation::from_query(&ctx.query)?;
        let dry_run = ctx.query.dry_run()?;
        let subresource = t.subresource.as_deref();
        for _ in 0..RETRIES {
            let (current, kv) = self.current(t, &name).await?;
            let requested = make_new(&current)?;
            let client_rv = requested["metadata"]["resourceVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            if let Some(rv) = &client_rv {
                if *rv != kv.mod_revision.to_string() {
                    return Err(StatusError::conflict(
                        &def.gv.group,
                        &def.plural,
                        &name,
                        StatusError::STALE_OBJECT,
                    ));
                }
            }
            let (mut new, warnings) = self.normalize_input(def, requested, fv)?;
            if meta::name(&new) != name {
                if meta::name(&new).is_empty() && patch.is_some() {
                    meta::set(&mut new, "name", Value::String(name.clone()));
                } else {
                    return Err(StatusError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta::name(&new)
                    )));
                }
            }
            if let Some(ns) = &t.namespace {
                match meta::namespace(&new) {
                    Some(b) if !b.is_empty() && b != ns => {
                        return Err(StatusError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ))
                    }
                    _ => meta::set(&mut new, "namespace", Value::String(ns.clone())),
                }
            }
            let mut merged = match subresource {
                Some("status") => {
                    let mut m = current.clone();
                    m["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                    if m["status"].is_null() {
                        m.as_object_mut().map(|o| o.remove("status"));
                    }
                    m
                }
                _ => {
                    let mut m = new;
                    if def.ops.has_status() {
                        match current.get("status") {
                            Some(s) => m["status"] = s.clone(),
                            None => {
                                m.as_object_mut().map(|o| o.remove("status"));
                            }
                        }
                    }
                    m
                }
            };
            if merged["metadata"].get("managedFields").is_none() {
                if let Some(mf) = current["metadata"].get("managedFields") {
                    meta::set(&mut merged, "managedFields", mf.clone());
                }
            }
            // Metadata the client cannot change.
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match current["metadata"].get(f) {
                    Some(v) => meta::set(&mut merged, f, v.clone()),
                    None => {
                        meta::remove(&mut merged, f);
                    }
                }
            }
            if subresource.is_none() {
                def.ops.apply_defaults(&mut merged);
            }
            if tracks_generation(def) && spec_part(&merged) != spec_part(&current) {
                let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                meta::set(&mut merged, "generation", Value::from(g));
            }
            self.admit_update(t, &mut merged, &current).await?;
            let errs = def.ops.validate(&merged, Some(&current));
            if !errs.is_empty() {
                return Err(invalid(t, &name, errs));
            }
            set_rv(&mut merged, kv.mod_revision);
            if merged == current {
                // Nothing changed: no write, no new resourceVersion.
                return Ok((current, warnings));
            }
            record_manager(
                &mut merged,
                &ctx.manager(),
                "Update",
                &def.gv.api_version(),
                subresource,
            );
            if dry_run {
                return Ok((merged, warnings));
            }
            let key = self.key_of(t, &name);
            // The last finalizer removed from a deleting object: it goes away now.
            let remove =
                meta::deletion_timestamp(&merged).is_some() && meta::finalizers(&merged).is_empty();
            let written = if remove {
                self.store
                    .delete(&key, Some(kv.mod_revision))
                    .await
                    .map(|(_, rev)| rev)
            } else {
                self.store
                    .update(&key, encode_for_store(def, &merged), kv.mod_revision)
                    .await
                    .map(|stored| stored.mod_revision)
            };
            match written {
                Ok(rev) => {
                    if remove {
                        self.after_delete(def, &merged).await;
                    }
                    set_rv(&mut merged, rev);
                    return Ok((merged, warnings));
                }
                Err(navarch_store::Error::Conflict { .. })
                    if client_rv.is_none() || patch.is_some() =>
                {
                    continue
                }
                Err(navarch_store::Error::Conflict { .. }) => {
                    return Err(StatusError::conflict(
                        &def.gv.group,
                        &def.plural,
                        &name,
                        StatusError::STALE_OBJECT,
                    ))
                }
                Err(navarch_store::Error::NotFound { .. }) => {
                    return Err(StatusError::not_found(&def.gv.group, &def.plural, &name))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StatusError::conflict(
            &def.gv.group,
            &def.plural,
            &name,
            StatusError::STALE_OBJECT,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_content_types_map_to_patch_kinds() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json").unwrap(),
            PatchType::Json
        );
        assert!(PatchType::from_content_type("text/plain").is_err());
    }
}

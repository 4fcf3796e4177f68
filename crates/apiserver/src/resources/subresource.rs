//! Subresources: `status` (get/update/patch), `scale` (an `autoscaling/v1` Scale over
//! `spec.replicas`), `binding` and `eviction` of pods, `finalize` of namespaces, `token` of
//! service accounts ([`super::token_request`]); and the patch application shared with the main
//! resource.

use axum::body::Body;
use axum::response::Response;
use http::{Method, StatusCode};
use navarch_api::{meta, ResourceDef};
use serde_json::{json, Value};

use super::codec::{
    content_type, decode_object, json_response, negotiate, parse_json, read_body, respond,
};
use super::object::add_warnings;
use super::request::Target;
use super::write::PatchType;
use super::{Ctx, ResourceApi};
use crate::StatusError;

/// Apply a patch of the given type to the current object.
pub fn apply_patch(
    def: &ResourceDef,
    ptype: PatchType,
    current: &Value,
    patch: &Value,
) -> Result<Value, StatusError> {
    use navarch_api::patch::{apply_json_patch, apply_merge_patch, apply_strategic, PatchError};
    let result = match ptype {
        PatchType::Json => apply_json_patch(current, patch),
        PatchType::Merge => apply_merge_patch(current, patch),
        PatchType::Strategic => {
            let index = navarch_api::openapi::builtin_index();
            let kind = current["kind"].as_str().unwrap_or(&def.kind);
            let (group, version) = match current["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
            {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    current["apiVersion"]
                        .as_str()
                        .unwrap_or(&def.gv.version)
                        .to_string(),
                ),
            };
            let schema = index
                .kind(&group, &version, kind)
                .unwrap_or_else(navarch_api::openapi::SchemaRef::unknown);
            apply_strategic(current, patch, schema)
        }
        PatchType::Apply => {
            return Err(StatusError::unsupported_media_type(
                "application/apply-patch+yaml",
                &[],
            ))
        }
    };
    result.map_err(|e: PatchError| {
        let code = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::BAD_REQUEST);
        let reason = match code.as_u16() {
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "BadRequest",
        };
        StatusError::new(code, reason, e.to_string())
    })
}

/// The label selector of a workload's `spec.selector` as a string (`app=web,tier in (a,b)`).
pub fn selector_string(sel: &Value) -> String {
    let mut parts = Vec::new();
    // ReplicationController: a plain map.
    let labels = sel.get("matchLabels").unwrap_or(sel);
    if let Some(m) = labels.as_object() {
        for (k, v) in m {
            if let Some(v) = v.as_str() {
                parts.push(format!("{k}={v}"));
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

/// The Scale view of a workload.
pub fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&obj["spec"]["selector"]),
        },
    })
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

impl ResourceApi {
    pub(crate) async fn subresource(
        &self,
        method: Method,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let sub = t.subresource.clone().unwrap_or_default();
        if t.def.subresource(&sub).is_none() {
            return Err(StatusError::path_not_found());
        }
        let name = t.name.clone().unwrap_or_default();
        match (sub.as_str(), method) {
            ("status", Method::GET) => {
                let output = negotiate(&ctx.headers)?;
                let (obj, _) = self.current(t, &name).await?;
                Ok(respond(StatusCode::OK, output, &t.def, &obj))
            }
            ("status", Method::PUT) => self.update(t, ctx, body).await,
            ("status", Method::PATCH) => self.patch(t, ctx, body).await,
            ("scale", Method::GET) => {
                let (obj, _) = self.current(t, &name).await?;
                Ok(json_response(StatusCode::OK, &scale_of(&obj)))
            }
            ("scale", Method::PUT) | ("scale", Method::PATCH) => {
                let bytes = read_body(body).await?;
                let ct = content_type(&ctx.headers);
                let (is_patch, input) = if ctx_is_patch(&ctx.headers, &bytes, &ct) {
                    (Some(PatchType::from_ct(&ct)?), parse_json(&bytes)?)
                } else {
                    (None, decode_object(&ct, &bytes)?)
                };
                let def = t.def.clone();
                let mut main = t.clone();
                main.subresource = Some("scale".into());
                let (obj, warnings) = self
                    .write_existing(&main, ctx, None, move |current| {
                        let scale = match is_patch {
                            Some(p) => apply_patch(&def, p, &scale_of(current), &input)?,
                            None => input.clone(),
                        };
                        let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
                        if replicas < 0 {
                            return Err(StatusError::invalid("autoscaling", "Scale", meta::name(current), vec![crate::FieldCause::new("spec.replicas", "FieldValueInvalid", format!("Invalid value: {replicas}: must be greater than or equal to 0"))]));
                        }
                        let mut next = current.clone();
                        meta::remove(&mut next, "resourceVersion");
                        next["spec"]["replicas"] = json!(replicas);
                        // A resourceVersion in the Scale is a precondition on the object.
                        match scale["metadata"]["resourceVersion"].as_str() {
                            Some(rv) if !rv.is_empty() && is_patch.is_none() => meta::set(&mut next, "resourceVersion", json!(rv)),
                            _ => {}
                        }
                        Ok(next)
                    })
                    .await?;
                let mut r = json_response(StatusCode::OK, &scale_of(&obj));
                add_warnings(&mut r, &warnings);
                Ok(r)
            }
            ("binding", Method::POST) => {
                let bytes = read_body(body).await?;
                let binding = decode_object(&content_type(&ctx.headers), &bytes)?;
                let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
                if node.is_empty() {
                    return Err(StatusError::invalid(
                        "",
                        "Binding",
                        &name,
                        vec![crate::FieldCause::new(
                            "target.name",
                            "FieldValueRequired",
                            "Required value",
                        )],
                    ));
                }
                let mut main = t.clone();
                main.subresource = None;
                let node2 = node.clone();
                let pod = name.clone();
                self.write_existing(&main, ctx, None, move |current| {
                    if let Some(existing) = current["spec"]["nodeName"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                    {
                        return Err(StatusError::conflict(
                            "",
                            "pods/binding",
                            &pod,
                            format!("pod {pod} is already assigned to node {existing:?}"),
                        ));
                    }
                    if meta::deletion_timestamp(current).is_some() {
                        return Err(StatusError::conflict(
                            "",
                            "pods/binding",
                            &pod,
                            "pod is being deleted, cannot be assigned to a host",
                        ));
                    }
                    let mut next = current.clone();
                    meta::remove(&mut next, "resourceVersion");
                    next["spec"]["nodeName"] = json!(node2);
                    Ok(next)
                })
                .await?;
                Ok(json_response(StatusCode::CREATED, &success_status()))
            }
            ("eviction", Method::POST) => {
                let bytes = read_body(body).await?;
                let ev = if bytes.is_empty() {
                    json!({})
                } else {
                    decode_object(&content_type(&ctx.headers), &bytes)?
                };
                let mut opts = super::delete::DeleteOptions::default();
                if let Some(g) = ev["deleteOptions"]["gracePeriodSeconds"].as_i64() {
                    opts.grace_period = Some(g);
                }
                let mut main = t.clone();
                main.subresource = None;
                self.delete_one(&main, &name, &opts).await?;
                Ok(json_response(StatusCode::CREATED, &success_status()))
            }
            ("token", Method::POST) => self.token_request(t, ctx, body).await,
            ("finalize", Method::PUT) => {
                let output = negotiate(&ctx.headers)?;
                let bytes = read_body(body).await?;
                let input = decode_object(&content_type(&ctx.headers), &bytes)?;
                let mut main = t.clone();
                main.subresource = Some("finalize".into());
                let (obj, _) = self
                    .write_existing(&main, ctx, None, move |current| {
                        let mut next = current.clone();
                        meta::remove(&mut next, "resourceVersion");
                        next["spec"]["finalizers"] = input["spec"]["finalizers"].clone();
                        if let Some(rv) = input["metadata"]["resourceVersion"].as_str() {
                            meta::set(&mut next, "resourceVersion", json!(rv));
                        }
                        Ok(next)
                    })
                    .await?;
                Ok(respond(StatusCode::OK, output, &t.def, &obj))
            }
            _ => Err(StatusError::method_not_supported(
                &t.def.gv.group,
                &format!("{}/{sub}", t.def.plural),
                "this verb",
            )),
        }
    }
}

fn ctx_is_patch(headers: &http::HeaderMap, _body: &[u8], ct: &str) -> bool {
    let _ = headers;
    ct.ends_with("patch+json")
}

impl PatchType {
    fn from_ct(ct: &str) -> Result<Self, StatusError> {
        match ct {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            other => Err(StatusError::unsupported_media_type(other, &[])),
        }
    }
}

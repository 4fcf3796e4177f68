//! `get` and `list`, with resourceVersion semantics, selectors and `limit`/`continue` paging.
//!
//! Lists are served from the watch cache: with no resourceVersion after the cache caught up
//! with the store (a consistent read), with `0` at once, with `N` once the cache reached N.
//! An exact revision (`resourceVersionMatch=Exact`, a paged list at N, every continue page) is
//! read from the store at that revision, so all pages of one list see one snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use navarch_api::selector::{FieldSelector, LabelSelector};
use navarch_api::{meta, ResourceDef};
use navarch_store::RangeOptions;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cache::decode_stored;
use super::codec::{negotiate, respond};
use super::request::{parse_rv, ListOptions, Target};
use super::{Ctx, ResourceApi};
use crate::StatusError;

/// Selectors of a list or watch, checked against objects.
pub struct Filter {
    pub def: Arc<ResourceDef>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn new(def: &Arc<ResourceDef>, opts: &ListOptions) -> Result<Self, StatusError> {
        for req in &opts.fields.0 {
            let generic = matches!(req.field.as_str(), "metadata.name" | "metadata.namespace");
            if !generic && def.ops.field(&json!({}), &req.field).is_none() {
                return Err(StatusError::bad_request(format!(
                    "field label not supported: {}",
                    req.field
                )));
            }
        }
        Ok(Filter {
            def: def.clone(),
            labels: opts.labels.clone(),
            fields: opts.fields.clone(),
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if !self.labels.is_empty() && !self.labels.matches(&meta::labels(obj)) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        self.fields.matches(|f| match f {
            "metadata.name" => Some(meta::name(obj).to_string()),
            "metadata.namespace" => Some(meta::namespace(obj).unwrap_or("").to_string()),
            other => self.def.ops.field(obj, other),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let raw = serde_json::to_vec(&ContinueToken {
        rv,
        start: start.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> Result<ContinueToken, StatusError> {
    let bad = || StatusError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let tok: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if !tok.start.starts_with(prefix) || tok.rv <= 0 {
        return Err(bad());
    }
    Ok(tok)
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

impl ResourceApi {
    pub(crate) async fn get(&self, t: &Target, ctx: &Ctx) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let name = t.name.as_deref().unwrap_or("");
        let obj = if ctx.query.get("resourceVersion") == Some("0") {
            self.cache
                .kind(&t.def)
                .get(&self.key_of(t, name))
                .map(|o| t.def.to_served((*o).clone()))
                .ok_or_else(|| StatusError::not_found(&t.def.gv.group, &t.def.plural, name))?
        } else {
            self.current(t, name).await?.0
        };
        Ok(respond(StatusCode::OK, output, &t.def, &obj))
    }

    pub(crate) async fn list(
        &self,
        t: &Target,
        opts: ListOptions,
        ctx: &Ctx,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let page = self.list_page(t, &opts).await?;
        if output == super::codec::Output::Json {
            return Ok(super::codec::json_response(
                StatusCode::OK,
                &ListRef::new(&t.def, &page),
            ));
        }
        let list = list_object(&t.def, &page);
        let mut value = list;
        if let super::codec::Output::Table { v1beta1 } = output {
            value = super::codec::to_table(
                &t.def,
                &value,
                v1beta1,
                true,
                ctx.query.get("includeObject"),
            );
            return Ok(super::codec::json_response(StatusCode::OK, &value));
        }
        Ok(respond(StatusCode::OK, output, &t.def, &value))
    }

    /// Compute one page of a list per the options.
    pub async fn list_page(&self, t: &Target, opts: &ListOptions) -> Result<Page, StatusError> {
        let prefix = t.def.namespace_prefix(t.namespace.as_deref());
        let filter = Filter::new(&t.def, opts)?;
        if let Some(token) = &opts.continue_token {
            if opts
                .resource_version
                .as_deref()
                .is_some_and(|v| !v.is_empty())
            {
                return Err(StatusError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let tok = decode_continue(token, &prefix)?;
            return self
                .list_from_store(&prefix, Some(tok.start), tok.rv, opts.limit, &filter)
                .await
                .map_err(|e| match e.reason() {
                    "Expired" => StatusError::expired(CONTINUE_EXPIRED),
                    _ => e,
                });
        }
        let rv = opts.resource_version.as_deref().map(parse_rv).transpose()?;
        let exact = match opts.resource_version_match.as_deref() {
            None => false,
            Some("Exact") => {
                if rv.unwrap_or(0) == 0 {
                    return Err(StatusError::bad_request(
                        "resourceVersionMatch=Exact requires a non-zero resourceVersion",
                    ));
                }
                true
            }
            Some("NotOlderThan") => {
                if rv.is_none() {
                    return Err(StatusError::bad_request(
                        "resourceVersionMatch=NotOlderThan requires a resourceVersion",
                    ));
                }
                false
            }
            Some(other) => {
                return Err(StatusError::bad_request(format!(
                    "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
                )))
            }
        };
        let revision = match rv {
            Some(n)
                if n > 0
                    && (exact || (opts.limit > 0 && opts.resource_version_match.is_none())) =>
            {
                return self
                    .list_from_store(&prefix, None, n, opts.limit, &filter)
                    .await;
            }
            None => Some(self.cache.sync().await?),
            Some(0) => None,
            Some(n) => {
                if !self.cache.wait_for(n, Duration::from_secs(3)).await {
                    let current = self.store.current_revision().await?;
                    return Err(navarch_store::Error::FutureRevision {
                        requested: n,
                        current,
                    }
                    .into());
                }
                Some(n)
            }
        };
        let snap = self
            .cache
            .kind(&t.def)
            .snapshot(&prefix, revision.unwrap_or(0).max(self.cache.revision()));
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        let mut iter = snap
            .items
            .into_iter()
            .map(|(k, o)| (k, t.def.view(&o)))
            .filter(|(_, o)| filter.matches(o));
        for (key, obj) in iter.by_ref() {
            items.push(obj);
            if opts.limit > 0 && items.len() == opts.limit {
                let rest = iter.by_ref().count() as i64;
                if rest > 0 {
                    continue_token = Some(encode_continue(snap.revision, &key));
                    if filter.labels.is_empty() && filter.fields.is_empty() {
                        remaining = Some(rest);
                    }
                }
                break;
            }
        }
        Ok(Page {
            items,
            revision: snap.revision,
            continue_token,
            remaining,
        })
    }

    async fn list_from_store(
        &self,
        prefix: &str,
        mut start_after: Option<String>,
        revision: i64,
        limit: usize,
        filter: &Filter,
    ) -> Result<Page, StatusError> {
        let mut items = Vec::new();
        loop {
            let page = self
                .store
                .range(
                    prefix,
                    RangeOptions {
                        start_after: start_after.clone(),
                        limit: if limit > 0 {
                            (limit - items.len()).max(64)
                        } else {
                            0
                        },
                        revision: Some(revision),
                    },
                )
                .await?;
            let mut last = None;
            for kv in &page.kvs {
                last = Some(kv.key.clone());
                if let Some(obj) = decode_stored(kv).map(|o| filter.def.to_served(o)) {
                    if filter.matches(&obj) {
                        items.push(Arc::new(obj));
                        if limit > 0 && items.len() == limit {
                            // Is there anything after this key?
                            let more_here =
                                page.kvs.last().map(|l| l.key != kv.key).unwrap_or(false);
                            let token = if more_here || page.more {
                                Some(encode_continue(revision, &kv.key))
                            } else {
                                None
                            };
                            return Ok(Page {
                                items,
                                revision,
                                continue_token: token,
                                remaining: None,
                            });
                        }
                    }
                }
            }
            if !page.more {
                return Ok(Page {
                    items,
                    revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            start_after = last;
        }
    }
}

/// The `<Kind>List` object of a page.
pub fn list_object(def: &ResourceDef, page: &Page) -> Value {
    json!({
        "kind": def.list_kind,
        "apiVersion": def.gv.api_version(),
        "metadata": list_metadata(page),
        "items": page.items.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
    })
}

fn list_metadata(page: &Page) -> Value {
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        metadata["continue"] = Value::String(c.clone());
    }
    if let Some(r) = page.remaining {
        metadata["remainingItemCount"] = json!(r);
    }
    metadata
}

/// The same list as [`list_object`], encoded straight from the cached objects. Copying every
/// object into a new list value first dominated the cost of large lists (10,000 pods).
#[derive(Serialize)]
struct ListRef<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

impl<'a> ListRef<'a> {
    fn new(def: &'a ResourceDef, page: &'a Page) -> ListRef<'a> {
        ListRef {
            kind: &def.list_kind,
            api_version: def.gv.api_version(),
            metadata: list_metadata(page),
            items: page.items.iter().map(|o| &**o).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_list_encodes_as_the_list_object() {
        let registry = navarch_api::Registry::builtin();
        let def = registry.get("", "v1", "configmaps").unwrap();
        let page = Page {
            items: vec![Arc::new(
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            )],
            revision: 7,
            continue_token: Some("next".into()),
            remaining: Some(3),
        };
        let borrowed = serde_json::to_value(ListRef::new(&def, &page)).unwrap();
        assert_eq!(borrowed, list_object(&def, &page));
        assert_eq!(borrowed["kind"], "ConfigMapList");
        assert_eq!(borrowed["metadata"]["continue"], "next");
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_foreign_prefixes() {
        let t = encode_continue(42, "/registry/core/pods/default/a");
        let back = decode_continue(&t, "/registry/core/pods/").unwrap();
        assert_eq!(back.rv, 42);
        assert!(decode_continue(&t, "/registry/core/secrets/").is_err());
        assert!(decode_continue("garbage!", "/registry/").is_err());
    }
}

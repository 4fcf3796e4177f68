//! Watch streams: newline-delimited JSON events (or one-row Tables for `kubectl get -w`),
//! flushed per event, with the resourceVersion rules kubectl and informers rely on:
//! unset or `0` → synthetic ADDED events for the current state first; `N` → only changes
//! after N; `sendInitialEvents=true` → ADDED events then a bookmark annotated
//! `k8s.io/initial-events-end`; a compacted N → an ERROR event with a 410 Status.
//! Objects that stop (start) matching the selectors are reported as DELETED (ADDED).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::cache::{decode_stored, CacheEvent, Change};
use super::codec::{negotiate, to_table, Output};
use super::read::Filter;
use super::request::{parse_rv, ListOptions, Target};
use super::{Ctx, ResourceApi};
use crate::StatusError;

/// How often bookmarks are sent to watchers that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// How one event is written.
struct Encoder {
    output: Output,
    def: Arc<navarch_api::ResourceDef>,
    include_object: Option<String>,
    first: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.output {
            Output::Table { v1beta1 } if kind != "ERROR" && kind != "BOOKMARK" => {
                let t = to_table(
                    &self.def,
                    obj,
                    v1beta1,
                    self.first,
                    self.include_object.as_deref(),
                );
                self.first = false;
                t
            }
            Output::Metadata if kind != "ERROR" => super::codec::to_metadata(obj),
            _ => return envelope(kind, &serde_json::to_vec(obj).unwrap_or_default()),
        };
        envelope(kind, &serde_json::to_vec(&object).unwrap_or_default())
    }

    /// Whether this watcher sends objects exactly as stored (so their JSON can be shared).
    fn sends_objects_as_stored(&self) -> bool {
        matches!(self.output, Output::Json | Output::Yaml) && self.def.stored_as.is_none()
    }
}

/// One watch event line: `{"type":KIND,"object":OBJECT}` and a newline.
fn envelope(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + kind.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn bookmark(def: &navarch_api::ResourceDef, rev: i64, initial_end: bool) -> Value {
    let mut obj = json!({
        "kind": def.kind,
        "apiVersion": def.gv.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
    });
    if initial_end {
        obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    obj
}

/// Where live events come from: the cache, or (for starts older than its history) the store.
enum Source {
    Cache(broadcast::Receiver<Arc<CacheEvent>>),
    Store(navarch_store::WatchStream),
}

impl ResourceApi {
    pub(crate) async fn watch(
        &self,
        t: &Target,
        opts: ListOptions,
        ctx: &Ctx,
    ) -> Result<Response, StatusError> {
        let output = negotiate(&ctx.headers)?;
        let filter = Filter::new(&t.def, &opts)?;
        let prefix = t.def.namespace_prefix(t.namespace.as_deref());
        let rv = opts.resource_version.as_deref().map(parse_rv).transpose()?;
        let kind = self.cache.kind(&t.def);

        let send_initial = opts.send_initial_events == Some(true);
        if opts.send_initial_events.is_some() {
            if opts.resource_version_match.as_deref() != Some("NotOlderThan") {
                return Err(StatusError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![crate::FieldCause::new(
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )],
                ));
            }
            if send_initial && !opts.allow_bookmarks {
                return Err(StatusError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![crate::FieldCause::new(
                        "allowWatchBookmarks",
                        "FieldValueForbidden",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    )],
                ));
            }
        }

        // Decide the start: synthetic initial state, or changes after a revision.
        let want_initial =
            send_initial || (opts.send_initial_events.is_none() && matches!(rv, None | Some(0)));
        if want_initial {
            match rv {
                None => {
                    self.cache.sync().await?;
                }
                Some(n) if n > 0 && !self.cache.wait_for(n, Duration::from_secs(3)).await => {
                    return Err(StatusError::timeout(
                        format!("Too large resource version: {n}"),
                        1,
                    ));
                }
                _ => {}
            }
        } else if let Some(n) = rv {
            if n > self.cache.revision() && !self.cache.wait_for(n, Duration::from_secs(3)).await {
                return Err(StatusError::timeout(
                    format!("Too large resource version: {n}"),
                    1,
                ));
            }
        }
        let start_rv = if want_initial {
            None
        } else {
            Some(rv.unwrap_or(0))
        };
        let sub = kind.subscribe(&prefix, start_rv, self.cache.revision());

        let mut enc = Encoder {
            output,
            def: t.def.clone(),
            include_object: ctx.query.get("includeObject").map(str::to_string),
            first: true,
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
        let mut last_rv;
        let mut pending: Vec<Bytes> = Vec::new();
        let source = match sub {
            Some(sub) => {
                last_rv = sub.revision;
                for (_, stored) in &sub.initial {
                    let obj = t.def.view(stored);
                    if filter.matches(&obj) {
                        pending.push(enc.event("ADDED", &obj));
                    }
                }
                if send_initial {
                    pending.push(enc.event("BOOKMARK", &bookmark(&t.def, last_rv, true)));
                }
                for ev in &sub.backlog {
                    if let Some(b) = encode_change(&mut enc, &filter, ev) {
                        pending.push(b);
                    }
                    last_rv = ev.revision;
                }
                Source::Cache(sub.live)
            }
            None => {
                let from = start_rv.unwrap_or(0);
                match self.store.watch(&prefix, from).await {
                    Ok(s) => {
                        last_rv = from;
                        Source::Store(s)
                    }
                    Err(navarch_store::Error::Compacted {
                        requested,
                        compacted,
                    }) => {
                        // An ERROR event in a 200 stream, as kube-apiserver's watch cache does.
                        let status = StatusError::expired(format!(
                            "too old resource version: {requested} ({compacted})"
                        ));
                        let status = serde_json::to_value(status.to_status()).unwrap_or_default();
                        return Ok(stream_response(vec![enc.event("ERROR", &status)], None));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };

        let timeout = match opts.timeout_seconds {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => Duration::from_secs(rand::random_range(1800..3600)),
        };
        let allow_bookmarks = opts.allow_bookmarks;
        let shutdown = self.shutdown.clone();
        let cache = self.cache.clone();
        let generation = cache.generation();
        tokio::spawn(async move {
            for b in pending {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
            ticker.tick().await;
            let mut source = source;
            loop {
                let out: Option<Bytes> = tokio::select! {
                    _ = &mut deadline => return,
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = ticker.tick(), if allow_bookmarks => {
                        // Progress first, then whether this watcher has taken every event
                        // sent so far: only then may the bookmark pass the last event.
                        let progress = cache.revision();
                        let caught_up = match &source {
                            Source::Cache(rx) => rx.is_empty(),
                            Source::Store(_) => false,
                        };
                        last_rv = bookmark_revision(last_rv, progress, caught_up);
                        Some(enc.event("BOOKMARK", &bookmark(&enc.def, last_rv, false)))
                    }
                    ev = next_event(&mut source) => match ev {
                        Next::Event(ev) => {
                            if ev.revision <= last_rv {
                                None
                            } else {
                                last_rv = ev.revision;
                                encode_change(&mut enc, &filter, &ev)
                            }
                        }
                        Next::Error(status) => {
                            let _ = tx.send(Ok(enc.event("ERROR", &status))).await;
                            return;
                        }
                        Next::End => return,
                    },
                };
                if cache.generation() != generation {
                    // The cache relisted (fell behind compaction): end, the client resumes.
                    return;
                }
                if let Some(b) = out {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(stream_response(Vec::new(), Some(rx)))
    }
}

/// The revision a periodic bookmark may carry. A bookmark promises that every event up to its
/// revision has been sent, and the client resumes from it: with events still queued for this
/// watcher, only the last one sent qualifies (a later revision would make the client skip the
/// queued events, and this loop drop them as already covered).
fn bookmark_revision(last_sent: i64, progress: i64, caught_up: bool) -> i64 {
    if caught_up {
        progress.max(last_sent)
    } else {
        last_sent
    }
}

enum Next {
    Event(Arc<CacheEvent>),
    Error(Value),
    End,
}

async fn next_event(source: &mut Source) -> Next {
    match source {
        Source::Cache(rx) => match rx.recv().await {
            Ok(ev) => Next::Event(ev),
            // Too slow: end the stream; the client resumes from its last resourceVersion.
            Err(_) => Next::End,
        },
        Source::Store(stream) => match stream.next().await {
            Some(Ok(ev)) => {
                let Some(obj) = decode_stored(&ev.kv) else {
                    return Next::End;
                };
                let change = match ev.kind {
                    navarch_store::EventKind::Delete => Change::Deleted,
                    navarch_store::EventKind::Put if ev.prev_kv.is_some() => Change::Modified,
                    navarch_store::EventKind::Put => Change::Added,
                };
                Next::Event(Arc::new(CacheEvent {
                    change,
                    key: ev.kv.key.clone(),
                    revision: ev.kv.mod_revision,
                    prev: ev.prev_kv.as_ref().and_then(decode_stored).map(Arc::new),
                    object: Arc::new(obj),
                    json: Default::default(),
                }))
            }
            Some(Err(navarch_store::Error::Compacted {
                requested,
                compacted,
            })) => {
                let status = StatusError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ));
                Next::Error(serde_json::to_value(status.to_status()).unwrap_or_default())
            }
            _ => Next::End,
        },
    }
}

/// The event a change produces for a filtered watcher, with selector transitions. Events
/// carry stored objects; the watcher sees them (and selects on them) as its resource serves
/// them, so a watch on either Event API sees writes made through the other.
fn encode_change(enc: &mut Encoder, filter: &Filter, ev: &CacheEvent) -> Option<Bytes> {
    let object = filter.def.view(&ev.object);
    let now = filter.matches(&object);
    let before = ev
        .prev
        .as_ref()
        .map(|p| filter.matches(&filter.def.view(p)))
        .unwrap_or(false);
    let kind = match (ev.change, before, now) {
        (Change::Deleted, true, _) => "DELETED",
        (Change::Deleted, false, _) => return None,
        (Change::Added, _, true) => "ADDED",
        (Change::Modified, true, true) => "MODIFIED",
        (Change::Modified, false, true) => "ADDED",
        (Change::Modified, true, false) => "DELETED",
        _ => return None,
    };
    if enc.sends_objects_as_stored() {
        let json = ev
            .json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*ev.object).unwrap_or_default()));
        return Some(envelope(kind, json));
    }
    Some(enc.event(kind, &object))
}

fn stream_response(
    first: Vec<Bytes>,
    rx: Option<mpsc::Receiver<Result<Bytes, Infallible>>>,
) -> Response {
    let head = futures::stream::iter(first.into_iter().map(Ok::<Bytes, Infallible>));
    let body = match rx {
        Some(rx) => Body::from_stream(head.chain(tokio_stream::wrappers::ReceiverStream::new(rx))),
        None => Body::from_stream(head),
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::bookmark_revision;

    #[test]
    fn bookmarks_never_pass_queued_events() {
        // Caught up: the cache's progress (other kinds moved on) is safe to promise.
        assert_eq!(bookmark_revision(10, 25, true), 25);
        assert_eq!(bookmark_revision(30, 25, true), 30);
        // Events still queued: only what was sent.
        assert_eq!(bookmark_revision(10, 25, false), 10);
    }
}

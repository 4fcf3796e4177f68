//! The two Event APIs over one storage, against a real in-process server over SQLite: an
//! event written through `events.k8s.io/v1` is listed, fetched and watched through `core/v1`
//! (with `involvedObject.*` field selectors, as `kubectl describe` does), and the reverse.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use navarch_apiserver::{ApiServer, AuthenticatedUser, Config};
use navarch_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const CORE: &str = "/api/v1/namespaces/default/events";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

struct Running {
    server: ApiServer,
    shutdown: CancellationToken,
}

async fn start(dir: &std::path::Path) -> Running {
    let store = SqliteStore::open(dir.join("state.db")).await.unwrap();
    let shutdown = CancellationToken::new();
    let config = Config {
        data_dir: dir.to_path_buf(),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        service_cidr: "10.43.0.0/16".parse().unwrap(),
    };
    let server = ApiServer::start(config, Arc::new(store), shutdown.clone())
        .await
        .unwrap();
    Running { server, shutdown }
}

/// The lines of a watch stream, read as they arrive.
struct Watch {
    body: Body,
    buffered: Vec<u8>,
}

impl Watch {
    /// The next watch event; fails the test after a few seconds without one.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffered.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffered.drain(..=end).collect();
                return serde_json::from_slice(&line).unwrap();
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("a watch event in time")
                .expect("the watch stream open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffered.extend_from_slice(&data);
            }
        }
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.server.stopped().await;
    }

    fn request(
        method: Method,
        uri: &str,
        body: Option<(&str, Value)>,
        accept: &str,
    ) -> Request<Body> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::ACCEPT, accept);
        if let Some((content_type, _)) = &body {
            builder = builder.header(http::header::CONTENT_TYPE, *content_type);
        }
        let mut request = builder
            .body(body.map_or_else(Body::empty, |(_, b)| Body::from(b.to_string())))
            .unwrap();
        request.extensions_mut().insert(AuthenticatedUser::new(
            "admin",
            ["system:masters".to_string()],
        ));
        request
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.server.router().oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, value)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", b));
        self.send(Self::request(method, uri, body, "application/json"))
            .await
    }

    async fn ok(&self, method: Method, uri: &str, body: Option<Value>) -> Value {
        let (code, value) = self.call(method, uri, body).await;
        assert!(code.is_success(), "{uri}: {code} {value}");
        value
    }

    /// A watch from the current state on, narrowed by `selector`.
    async fn watch(&self, collection: &str, selector: &str) -> Watch {
        let rv = self.ok(Method::GET, collection, None).await["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let uri = format!("{collection}?watch=true&resourceVersion={rv}&fieldSelector={selector}");
        let response = self
            .server
            .router()
            .oneshot(Self::request(Method::GET, &uri, None, "application/json"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Watch {
            body: response.into_body(),
            buffered: Vec::new(),
        }
    }

    async fn items(&self, uri: &str) -> Vec<Value> {
        self.ok(Method::GET, uri, None).await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn new_style_event() -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.scheduled"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1"},
        "related": {"kind": "Node", "name": "node-1"},
        "reason": "Scheduled", "action": "Binding", "type": "Normal",
        "note": "Successfully assigned default/web to node-1",
        "reportingController": "default-scheduler", "reportingInstance": "sched-1",
        "series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
    })
}

fn old_style_event() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.pulled"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                           "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal", "message": "Pulled image nginx",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:05:00Z",
        "count": 3,
    })
}

#[tokio::test]
async fn events_written_through_events_v1_are_core_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut watch = server
        .watch(CORE, "involvedObject.name%3Dweb,type%3DNormal")
        .await;

    let created = server
        .ok(Method::POST, EVENTS, Some(new_style_event()))
        .await;
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(
        created["note"],
        "Successfully assigned default/web to node-1"
    );
    assert!(created.get("message").is_none(), "{created}");

    // The watch on core/v1 sees it, in core/v1 shape.
    let ev = watch.next().await;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    let obj = &ev["object"];
    assert_eq!(obj["apiVersion"], "v1");
    assert_eq!(obj["involvedObject"]["name"], "web");
    assert_eq!(
        obj["message"],
        "Successfully assigned default/web to node-1"
    );
    assert_eq!(obj["reportingComponent"], "default-scheduler");
    assert_eq!(obj["reportingInstance"], "sched-1");
    assert_eq!(obj["series"]["count"], 2);
    assert!(obj.get("regarding").is_none(), "{obj}");

    // Listed by `kubectl describe`'s selector, and fetched by name.
    let items = server
        .items(&format!(
            "{CORE}?fieldSelector=involvedObject.name%3Dweb,involvedObject.kind%3DPod"
        ))
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(items[0]["related"]["name"], "node-1");
    assert!(server
        .items(&format!("{CORE}?fieldSelector=involvedObject.name%3Dother"))
        .await
        .is_empty());
    let got = server
        .ok(Method::GET, &format!("{CORE}/web.scheduled"), None)
        .await;
    assert_eq!(got["kind"], "Event");
    assert_eq!(got["action"], "Binding");
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let everything = server.items("/api/v1/events").await;
    assert_eq!(everything.len(), 1);

    // Each API selects on its own names only.
    let (code, _) = server
        .call(
            Method::GET,
            &format!("{CORE}?fieldSelector=regarding.name%3Dweb"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = server
        .call(
            Method::GET,
            &format!("{EVENTS}?fieldSelector=involvedObject.name%3Dweb"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // An update through core/v1 reaches the core watch and reads back through events.k8s.io.
    let patched = server
        .send(Running::request(
            Method::PATCH,
            &format!("{CORE}/web.scheduled"),
            Some((
                "application/merge-patch+json",
                json!({"message": "assigned again"}),
            )),
            "application/json",
        ))
        .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    let ev = watch.next().await;
    assert_eq!(ev["type"], "MODIFIED", "{ev}");
    assert_eq!(ev["object"]["message"], "assigned again");
    let again = server
        .ok(Method::GET, &format!("{EVENTS}/web.scheduled"), None)
        .await;
    assert_eq!(again["note"], "assigned again");
    assert_eq!(again["reportingController"], "default-scheduler");

    // Deleted through events.k8s.io: gone from core/v1 too.
    server
        .ok(Method::DELETE, &format!("{EVENTS}/web.scheduled"), None)
        .await;
    let ev = watch.next().await;
    assert_eq!(ev["type"], "DELETED", "{ev}");
    assert_eq!(ev["object"]["involvedObject"]["name"], "web");
    let (code, _) = server
        .call(Method::GET, &format!("{CORE}/web.scheduled"), None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    drop(watch);
    server.stop().await;
}

#[tokio::test]
async fn core_events_are_served_through_events_v1() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut watch = server.watch(EVENTS, "regarding.name%3Dweb").await;

    let created = server.ok(Method::POST, CORE, Some(old_style_event())).await;
    assert_eq!(created["message"], "Pulled image nginx");

    let ev = watch.next().await;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    let obj = &ev["object"];
    assert_eq!(obj["apiVersion"], "events.k8s.io/v1");
    assert_eq!(obj["regarding"]["fieldPath"], "spec.containers{web}");
    assert_eq!(obj["note"], "Pulled image nginx");
    assert_eq!(obj["deprecatedSource"]["component"], "kubelet");
    assert_eq!(obj["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
    assert_eq!(obj["deprecatedLastTimestamp"], "2026-01-01T00:05:00Z");
    assert_eq!(obj["deprecatedCount"], 3);
    assert!(obj.get("involvedObject").is_none(), "{obj}");

    for selector in [
        "regarding.name%3Dweb",
        "regarding.kind%3DPod,reason%3DPulled",
        "source%3Dkubelet",
    ] {
        let items = server
            .items(&format!("{EVENTS}?fieldSelector={selector}"))
            .await;
        assert_eq!(items.len(), 1, "{selector}");
        assert_eq!(items[0]["note"], "Pulled image nginx");
    }
    assert!(server
        .items(&format!("{EVENTS}?fieldSelector=regarding.name%3Ddb"))
        .await
        .is_empty());
    let got = server
        .ok(Method::GET, &format!("{EVENTS}/web.pulled"), None)
        .await;
    assert_eq!(got["regarding"]["name"], "web");
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);

    // The events.k8s.io table keeps its columns, filled from the core event.
    let (code, table) = server
        .send(Running::request(
            Method::GET,
            EVENTS,
            None,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{table}");
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[2], "Pulled");
    assert_eq!(cells[3], "pod/web");
    assert_eq!(cells[6], "Pulled image nginx");

    // Through events.k8s.io only the series may change, and both APIs see it.
    let patch = |body: Value| {
        Running::request(
            Method::PATCH,
            &format!("{EVENTS}/web.pulled"),
            Some(("application/merge-patch+json", body)),
            "application/json",
        )
    };
    let (code, status) = server.send(patch(json!({"note": "changed"}))).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "note");
    let series = json!({"count": 4, "lastObservedTime": "2026-01-01T00:06:00.000000Z"});
    let (code, patched) = server.send(patch(json!({"series": series}))).await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["apiVersion"], "events.k8s.io/v1");
    assert_eq!(patched["note"], "Pulled image nginx");
    let ev = watch.next().await;
    assert_eq!(ev["type"], "MODIFIED", "{ev}");
    assert_eq!(ev["object"]["series"], series);
    let core = server
        .ok(Method::GET, &format!("{CORE}/web.pulled"), None)
        .await;
    assert_eq!(core["series"], series);
    assert_eq!(core["message"], "Pulled image nginx");
    assert_eq!(core["count"], 3);
    assert_eq!(core["source"]["host"], "node-1");

    server
        .ok(Method::DELETE, &format!("{CORE}/web.pulled"), None)
        .await;
    let ev = watch.next().await;
    assert_eq!(ev["type"], "DELETED", "{ev}");
    assert_eq!(ev["object"]["apiVersion"], "events.k8s.io/v1");

    drop(watch);
    server.stop().await;
}

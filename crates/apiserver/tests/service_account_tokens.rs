//! `serviceaccounts/token` and service-account bearer tokens against a real in-process server
//! over SQLite: issuing, validation of the request, authentication, revocation by deleting the
//! service account or the bound pod, and tokens surviving a restart.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use navarch_apiserver::{ApiServer, AuthenticatedUser, Config};
use navarch_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

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

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.server.stopped().await;
    }

    /// One request through the router, as the admin or with `Authorization: Bearer TOKEN`.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut request = builder
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        if bearer.is_none() {
            request.extensions_mut().insert(AuthenticatedUser::new(
                "admin",
                ["system:masters".to_string()],
            ));
        }
        let response = self.server.router().oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, value)
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, uri, body, None).await
    }

    async fn create_sa(&self, ns: &str, name: &str) -> Value {
        let (code, sa) = self
            .admin(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{sa}");
        sa
    }

    async fn token(&self, ns: &str, name: &str, spec: Value) -> (StatusCode, Value) {
        self.admin(
            Method::POST,
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token"),
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})),
        )
        .await
    }

    async fn issued(&self, ns: &str, name: &str, spec: Value) -> String {
        let (code, tr) = self.token(ns, name, spec).await;
        assert_eq!(code, StatusCode::CREATED, "{tr}");
        tr["status"]["token"].as_str().unwrap().to_string()
    }

    async fn get_api_as(&self, token: &str) -> StatusCode {
        self.call(Method::GET, "/api", None, Some(token)).await.0
    }
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_token_request_returns_a_token_that_authenticates_as_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let sa = api.create_sa("default", "robot").await;

    let (code, tr) = api.token("default", "robot", json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(tr["metadata"]["name"], "robot");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        tr["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = tr["status"]["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:default:robot");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    assert_eq!(
        c["kubernetes.io"]["serviceaccount"],
        json!({"name": "robot", "uid": sa["metadata"]["uid"]})
    );
    assert!(!c["jti"].as_str().unwrap().is_empty());
    let exp = jiff::Timestamp::from_second(c["exp"].as_i64().unwrap()).unwrap();
    assert_eq!(tr["status"]["expirationTimestamp"], exp.to_string());

    assert_eq!(api.get_api_as(token).await, StatusCode::OK);
    // A garbled token is bad credentials, even on a public path.
    let garbled = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(api.get_api_as(&garbled).await, StatusCode::UNAUTHORIZED);
    let (code, _) = api
        .call(Method::GET, "/version", None, Some(&garbled))
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // The node join token keeps working next to service-account tokens.
    let node = api.server.join_token().node_token("n1");
    assert_eq!(api.get_api_as(&node).await, StatusCode::OK);
    api.stop().await;
}

#[tokio::test]
async fn token_requests_are_validated_as_upstream_validates_them() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    api.create_sa("default", "robot").await;

    let (code, status) = api.token("default", "nobody", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{status}");
    assert_eq!(status["message"], "serviceaccounts \"nobody\" not found");

    let (code, status) = api
        .token("default", "robot", json!({"expirationSeconds": 599}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
    );
    let token = api
        .issued("default", "robot", json!({"expirationSeconds": 600}))
        .await;
    let c = claims(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);

    let (code, status) = api
        .token(
            "default",
            "robot",
            json!({"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    assert_eq!(
        status["message"],
        "cannot bind token to object of type /v1, Kind=ConfigMap"
    );
    let (code, status) = api
        .token(
            "default",
            "robot",
            json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "missing"}}),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{status}");

    // Audiences other than this server's are issued but do not authenticate here.
    let token = api
        .issued("default", "robot", json!({"audiences": ["vault"]}))
        .await;
    assert_eq!(claims(&token)["aud"], json!(["vault"]));
    assert_eq!(api.get_api_as(&token).await, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn deleting_the_service_account_or_the_bound_pod_revokes_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    api.create_sa("default", "robot").await;
    let (code, pod) = api
        .admin(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]},
            })),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{pod}");
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();

    let (code, status) = api
        .token(
            "default",
            "robot",
            json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": "other"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{status}");
    let bound = api
        .issued(
            "default",
            "robot",
            json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": pod_uid}}),
        )
        .await;
    assert_eq!(
        claims(&bound)["kubernetes.io"]["pod"],
        json!({"name": "p1", "uid": pod_uid})
    );
    let unbound = api.issued("default", "robot", json!({})).await;
    assert_eq!(api.get_api_as(&bound).await, StatusCode::OK);

    let (code, _) = api
        .admin(
            Method::DELETE,
            "/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0",
            None,
        )
        .await;
    assert!(code.is_success(), "{code}");
    assert_eq!(api.get_api_as(&bound).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get_api_as(&unbound).await, StatusCode::OK);

    let (code, _) = api
        .admin(
            Method::DELETE,
            "/api/v1/namespaces/default/serviceaccounts/robot",
            None,
        )
        .await;
    assert!(code.is_success(), "{code}");
    assert_eq!(api.get_api_as(&unbound).await, StatusCode::UNAUTHORIZED);
    // A new service account of the same name is another account.
    api.create_sa("default", "robot").await;
    assert_eq!(api.get_api_as(&unbound).await, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn tokens_stay_valid_across_a_restart_and_the_key_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    api.create_sa("default", "robot").await;
    let token = api.issued("default", "robot", json!({})).await;
    api.stop().await;

    let api = start(dir.path()).await;
    assert_eq!(api.get_api_as(&token).await, StatusCode::OK);

    let (code, config) = api
        .call(
            Method::GET,
            "/.well-known/openid-configuration",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        config["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    let (code, jwks) = api
        .call(Method::GET, "/openid/v1/jwks", None, Some(&token))
        .await;
    assert_eq!(code, StatusCode::OK);
    let header: Value = {
        use base64::Engine as _;
        let part = token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    api.stop().await;
}

//! Hostile and malformed requests against a real `navarch server` over HTTPS with the admin
//! client certificate: each gets the right 4xx code with a `Status` body, the server still
//! answers `/readyz`, and nothing was written (the store revision did not move).
//!
//! The cases follow kube-apiserver's own limits (3 MiB bodies, 10,000 JSON-patch operations,
//! bounded nesting and YAML alias expansion): see research/api-guarantees.md §1.7–1.8.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use http::{Method, Request, StatusCode};
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use navarch_e2e::Server;
use serde_json::{json, Value};

/// kube-apiserver's request body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;
const NS: &str = "hostile";
const CONFIGMAPS: &str = "/api/v1/namespaces/hostile/configmaps";
const TARGET: &str = "/api/v1/namespaces/hostile/configmaps/target";
/// Generous: every case is answered in milliseconds; this only catches a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

struct Harness {
    _root: tempfile::TempDir,
    server: Server,
    client: Client,
}

/// One hostile request and what it must get back.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
    /// A fragment the Status message must contain.
    message: &'static str,
}

impl Case {
    fn new(name: &'static str, method: Method, path: &str, body: impl Into<Vec<u8>>) -> Case {
        Case {
            name,
            method,
            path: path.to_string(),
            content_type: Some("application/json"),
            accept: Some("application/json"),
            body: body.into(),
            code: 400,
            reason: "BadRequest",
            message: "",
        }
    }

    fn content_type(mut self, content_type: &'static str) -> Case {
        self.content_type = Some(content_type);
        self
    }

    fn accept(mut self, accept: &'static str) -> Case {
        self.accept = Some(accept);
        self
    }

    fn expect(mut self, code: u16, reason: &'static str, message: &'static str) -> Case {
        self.code = code;
        self.reason = reason;
        self.message = message;
        self
    }
}

struct Answer {
    code: StatusCode,
    content_type: String,
    body: Vec<u8>,
    took: Duration,
}

impl Harness {
    async fn start() -> Result<Harness> {
        let root = tempfile::tempdir()?;
        // Without controllers nothing else writes, so the store revision must stand still.
        let server = Server::start(
            &root.path().join("data"),
            &["--disable-controllers", "--disable-scheduler"],
        )?;
        let kubeconfig = Kubeconfig::read_from(server.kubeconfig())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = Client::try_from(config)?;
        let harness = Harness {
            _root: root,
            server,
            client,
        };
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
        harness
            .must_succeed(Method::POST, "/api/v1/namespaces", &ns)
            .await?;
        let target = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "target", "namespace": NS}, "data": {"k": "v"}
        });
        harness
            .must_succeed(Method::POST, CONFIGMAPS, &target)
            .await?;
        Ok(harness)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Some(accept) = accept {
            request = request.header(http::header::ACCEPT, accept);
        }
        let request = request.body(Body::from(body))?;
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self.client.send(request).await?;
            let code = response.status();
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = response.into_body().collect_bytes().await?.to_vec();
            Ok::<_, kube::Error>((code, content_type, body))
        })
        .await
        .map_err(|_| anyhow!("{path}: no answer within {REQUEST_TIMEOUT:?}"))??;
        Ok(Answer {
            code: answer.0,
            content_type: answer.1,
            body: answer.2,
            took: started.elapsed(),
        })
    }

    async fn must_succeed(&self, method: Method, path: &str, body: &Value) -> Result<Value> {
        let answer = self
            .send(
                method.clone(),
                path,
                Some("application/json"),
                Some("application/json"),
                serde_json::to_vec(body)?,
            )
            .await?;
        if !answer.code.is_success() {
            bail!(
                "{method} {path}: {} {}",
                answer.code,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }

    /// The ConfigMaps in the namespace and the list's resourceVersion (the store revision).
    async fn snapshot(&self) -> Result<(Value, String)> {
        let list = self
            .send(
                Method::GET,
                CONFIGMAPS,
                None,
                Some("application/json"),
                vec![],
            )
            .await?;
        let list: Value = serde_json::from_slice(&list.body)?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .context("list without resourceVersion")?
            .to_string();
        Ok((list["items"].clone(), rv))
    }

    async fn readyz(&self) -> Result<String> {
        let answer = self
            .send(Method::GET, "/readyz", None, None, vec![])
            .await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// Send the case and check the answer, the server's health and that nothing was written.
    async fn check(&self, case: Case) -> Result<Duration> {
        let (items_before, rv_before) = self.snapshot().await?;
        let answer = self
            .send(
                case.method.clone(),
                &case.path,
                case.content_type,
                case.accept,
                case.body,
            )
            .await
            .with_context(|| case.name)?;
        let text = String::from_utf8_lossy(&answer.body);
        let status: Value = serde_json::from_slice(&answer.body)
            .with_context(|| format!("{}: the body is not JSON: {text}", case.name))?;
        let got = (
            answer.code.as_u16(),
            status["kind"].as_str(),
            status["status"].as_str(),
            status["reason"].as_str(),
            status["code"].as_u64(),
        );
        let want = (
            case.code,
            Some("Status"),
            Some("Failure"),
            Some(case.reason),
            Some(u64::from(case.code)),
        );
        if got != want {
            bail!("{}: expected {want:?}, got {got:?}: {text}", case.name);
        }
        if !answer.content_type.starts_with("application/json") {
            bail!("{}: Status served as {:?}", case.name, answer.content_type);
        }
        let message = status["message"].as_str().unwrap_or("");
        if !message.contains(case.message) {
            bail!(
                "{}: the message {message:?} lacks {:?}",
                case.name,
                case.message
            );
        }
        let ready = self.readyz().await?;
        if ready != "ok" {
            bail!("{}: /readyz answered {ready:?} afterwards", case.name);
        }
        let (items_after, rv_after) = self.snapshot().await?;
        if (&items_after, &rv_after) != (&items_before, &rv_before) {
            bail!(
                "{}: something was written (revision {rv_before} -> {rv_after}): {items_after}",
                case.name
            );
        }
        Ok(answer.took)
    }

    /// Check every case, reporting all failures at once.
    async fn check_all(&self, cases: Vec<Case>) -> Result<()> {
        let mut failures = Vec::new();
        for case in cases {
            let name = case.name;
            match self.check(case).await {
                Ok(took) => println!("ok   {name} ({} ms)", took.as_millis()),
                Err(e) => {
                    println!("FAIL {name}: {e:#}");
                    failures.push(format!("{e:#}"));
                }
            }
        }
        if !failures.is_empty() {
            bail!(
                "{} case(s) failed:\n{}\nserver stderr:\n{}",
                failures.len(),
                failures.join("\n"),
                self.server.stderr()
            );
        }
        Ok(())
    }
}

/// A ConfigMap named `name` as JSON text.
fn configmap(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string()
}

/// A syntactically valid ConfigMap JSON body of exactly `size` bytes.
fn configmap_of_size(name: &str, size: usize) -> Vec<u8> {
    let skeleton = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"big": ""}
    })
    .to_string();
    let padding = size - skeleton.len();
    let body = skeleton.replace(
        r#""big":"""#,
        &format!(r#""big":"{}""#, "x".repeat(padding)),
    );
    assert_eq!(body.len(), size);
    body.into_bytes()
}

/// A "billion laughs" document: nine levels of nine aliases, 9^9 strings once expanded.
fn yaml_alias_bomb() -> String {
    let mut doc = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n");
    doc.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        doc.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    doc.push_str("data: {k: *i}\n");
    doc
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc status")
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() -> Result<()> {
    let h = Harness::start().await?;
    let deep_array = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep_object = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"data":{}{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let unbalanced = format!(
        "{}{}",
        configmap("x").trim_end_matches('}'),
        "[".repeat(10_000)
    );
    let cases =
        vec![
        Case::new(
            "truncated JSON",
            Method::POST,
            CONFIGMAPS,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#,
        ),
        Case::new("JSON that is not an object", Method::POST, CONFIGMAPS, "[1,2,3]"),
        Case::new("empty body", Method::POST, CONFIGMAPS, ""),
        Case::new("not UTF-8", Method::POST, CONFIGMAPS, vec![0xff, 0xfe, 0x7b]),
        Case::new("JSON with a wrong type", Method::POST, CONFIGMAPS,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":1}}"#),
        Case::new(
            "malformed YAML",
            Method::POST,
            CONFIGMAPS,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n  data: [\n",
        )
        .content_type("application/yaml"),
        Case::new(
            "YAML with a tab indent",
            Method::POST,
            CONFIGMAPS,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n",
        )
        .content_type("application/yaml"),
        Case::new("JSON array nested 10,000 deep", Method::POST, CONFIGMAPS, deep_array.clone()),
        Case::new("ConfigMap nested 10,000 deep", Method::POST, CONFIGMAPS, deep_object),
        Case::new("unbalanced nesting 10,000 deep", Method::POST, CONFIGMAPS, unbalanced),
        Case::new("YAML nested 10,000 deep", Method::POST, CONFIGMAPS, deep_array.clone())
            .content_type("application/yaml"),
        Case::new("JSON update nested 10,000 deep", Method::PUT, TARGET, deep_array.clone()),
        Case::new("merge patch nested 10,000 deep", Method::PATCH, TARGET, deep_array)
            .content_type("application/merge-patch+json"),
        Case::new(
            "unknown field under Strict",
            Method::POST,
            &format!("{CONFIGMAPS}?fieldValidation=Strict"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}"#,
        )
        .expect(400, "BadRequest", "strict decoding error: unknown field \"bogus\""),
        Case::new(
            "nested unknown field under Strict",
            Method::POST,
            &format!("{CONFIGMAPS}?fieldValidation=Strict"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","bogus":1}}"#,
        )
        .expect(400, "BadRequest", "strict decoding error: unknown field \"metadata.bogus\""),
        Case::new(
            "unknown field in an update under Strict",
            Method::PUT,
            &format!("{TARGET}?fieldValidation=Strict"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"},"bogus":1}"#,
        )
        .expect(400, "BadRequest", "strict decoding error: unknown field \"bogus\""),
        Case::new(
            "unknown field in a patch under Strict",
            Method::PATCH,
            &format!("{TARGET}?fieldValidation=Strict"),
            r#"{"bogus":1}"#,
        )
        .content_type("application/merge-patch+json")
        .expect(400, "BadRequest", "strict decoding error: unknown field \"bogus\""),
        Case::new(
            "kind of another resource",
            Method::POST,
            CONFIGMAPS,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
        ),
        Case::new(
            "apiVersion of another group",
            Method::POST,
            CONFIGMAPS,
            r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
        ),
        Case::new(
            "namespace differs from the path",
            Method::POST,
            CONFIGMAPS,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#,
        )
        .expect(400, "BadRequest", "does not match the namespace"),
        Case::new(
            "name differs from the path on update",
            Method::PUT,
            TARGET,
            configmap("other"),
        )
        .expect(400, "BadRequest", "does not match the name"),
        Case::new(
            "JSON patch that is not a list",
            Method::PATCH,
            TARGET,
            r#"{"op":"add"}"#,
        )
        .content_type("application/json-patch+json"),
        Case::new(
            "invalid query parameter",
            Method::GET,
            &format!("{CONFIGMAPS}?limit=ten"),
            "",
        ),
        Case::new(
            "invalid label selector",
            Method::GET,
            &format!("{CONFIGMAPS}?labelSelector=a%20in%20(b"),
            "",
        ),
    ];
    h.check_all(cases).await
}

#[tokio::test]
async fn yaml_alias_bomb_is_rejected_fast_without_memory_growth() -> Result<()> {
    let h = Harness::start().await?;
    let before = peak_rss_kib(h.server.pid())?;
    let case = Case::new(
        "YAML alias bomb",
        Method::POST,
        CONFIGMAPS,
        yaml_alias_bomb(),
    )
    .content_type("application/yaml");
    let took = h.check(case).await?;
    // The same bomb as an update body.
    let patch = yaml_alias_bomb().replace("name: bomb", "name: target");
    let took_patch = h
        .check(
            Case::new("YAML alias bomb as an update", Method::PUT, TARGET, patch)
                .content_type("application/yaml"),
        )
        .await?;
    let after = peak_rss_kib(h.server.pid())?;
    println!(
        "alias bomb answered in {} ms and {} ms; peak RSS {} MiB -> {} MiB",
        took.as_millis(),
        took_patch.as_millis(),
        before / 1024,
        after / 1024
    );
    // Expanded, the bomb is 387 million strings: gigabytes. Rejecting it before expansion
    // costs next to nothing; the bounds are far from both.
    assert!(
        after.saturating_sub(before) < 256 * 1024,
        "peak RSS grew {before} -> {after} KiB"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    Ok(())
}

#[tokio::test]
async fn oversized_requests_are_entity_too_large() -> Result<()> {
    let h = Harness::start().await?;
    let too_big = MAX_BODY + 1;
    let patch_ops: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "target"}))
        .collect();
    let cases = vec![
        Case::new(
            "create of 3 MiB + 1",
            Method::POST,
            CONFIGMAPS,
            configmap_of_size("big", too_big),
        )
        .expect(413, "RequestEntityTooLarge", "limit is 3145728"),
        Case::new(
            "update of 3 MiB + 1",
            Method::PUT,
            TARGET,
            configmap_of_size("target", too_big),
        )
        .expect(413, "RequestEntityTooLarge", "limit is 3145728"),
        Case::new(
            "merge patch of 3 MiB + 1",
            Method::PATCH,
            TARGET,
            configmap_of_size("target", too_big),
        )
        .content_type("application/merge-patch+json")
        .expect(413, "RequestEntityTooLarge", "limit is 3145728"),
        Case::new(
            "strategic patch of 3 MiB + 1",
            Method::PATCH,
            TARGET,
            configmap_of_size("target", too_big),
        )
        .content_type("application/strategic-merge-patch+json")
        .expect(413, "RequestEntityTooLarge", "limit is 3145728"),
        Case::new(
            "YAML create of 3 MiB + 1",
            Method::POST,
            CONFIGMAPS,
            configmap_of_size("big", too_big),
        )
        .content_type("application/yaml")
        .expect(413, "RequestEntityTooLarge", "limit is 3145728"),
        Case::new(
            "JSON patch of 10,001 operations",
            Method::PATCH,
            TARGET,
            serde_json::to_vec(&patch_ops)?,
        )
        .content_type("application/json-patch+json")
        .expect(413, "RequestEntityTooLarge", "10000"),
        // Under the body limit but over ConfigMap's 1 MiB data limit: a validation error,
        // never a 500 from the store.
        Case::new(
            "ConfigMap data over 1 MiB",
            Method::POST,
            CONFIGMAPS,
            configmap_of_size("big", MAX_BODY - 1024),
        )
        .expect(422, "Invalid", ""),
    ];
    h.check_all(cases).await?;

    // Exactly at the limit the body is read (and then judged on its content).
    let at_limit = h
        .send(
            Method::POST,
            CONFIGMAPS,
            Some("application/json"),
            Some("application/json"),
            configmap_of_size("big", MAX_BODY),
        )
        .await?;
    assert_ne!(at_limit.code, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(at_limit.code.is_client_error(), "{}", at_limit.code);
    // 10,000 operations are allowed.
    let ok_ops = serde_json::to_vec(&patch_ops[..10_000])?;
    let answer = h
        .send(
            Method::PATCH,
            TARGET,
            Some("application/json-patch+json"),
            Some("application/json"),
            ok_ops,
        )
        .await?;
    assert_eq!(
        answer.code,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    Ok(())
}

/// The `details.causes` of a 422, as (reason, field) pairs.
fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .map(|causes| {
            causes
                .iter()
                .map(|c| {
                    (
                        c["reason"].as_str().unwrap_or("").to_string(),
                        c["field"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn invalid_names_are_invalid_with_causes() -> Result<()> {
    let h = Harness::start().await?;
    let long = "a".repeat(254);
    let cases = [
        ("Bad_Name!", "FieldValueInvalid"),
        ("UPPER", "FieldValueInvalid"),
        ("-leading-dash", "FieldValueInvalid"),
        (long.as_str(), "FieldValueInvalid"),
        ("", "FieldValueRequired"),
    ];
    for (name, reason) in cases {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        h.check(
            Case::new("invalid name", Method::POST, CONFIGMAPS, body.to_string())
                .expect(422, "Invalid", ""),
        )
        .await
        .with_context(|| format!("name {name:?}"))?;
        // Again for the causes, which check() does not look at.
        let answer = h
            .send(
                Method::POST,
                CONFIGMAPS,
                Some("application/json"),
                None,
                body.to_string().into_bytes(),
            )
            .await?;
        let status: Value = serde_json::from_slice(&answer.body)?;
        assert_eq!(
            causes(&status),
            vec![(reason.to_string(), "metadata.name".to_string())],
            "name {name:?}: {status}"
        );
        assert_eq!(status["details"]["kind"], "ConfigMap", "{status}");
    }
    // A namespace that is not a DNS label, in the path.
    let answer = h
        .send(
            Method::POST,
            "/api/v1/namespaces/Not_A_Namespace/configmaps",
            Some("application/json"),
            None,
            configmap("x").into_bytes(),
        )
        .await?;
    assert!(answer.code.is_client_error(), "{}", answer.code);
    assert_eq!(h.readyz().await?, "ok");
    Ok(())
}

#[tokio::test]
async fn unsupported_media_types_are_refused() -> Result<()> {
    let h = Harness::start().await?;
    let cases = vec![
        Case::new("text/plain body", Method::POST, CONFIGMAPS, configmap("x"))
            .content_type("text/plain")
            .expect(415, "UnsupportedMediaType", "text/plain"),
        Case::new("XML body", Method::PUT, TARGET, "<ConfigMap/>")
            .content_type("application/xml")
            .expect(415, "UnsupportedMediaType", ""),
        Case::new("patch as plain JSON", Method::PATCH, TARGET, "{}")
            .content_type("text/plain")
            .expect(415, "UnsupportedMediaType", ""),
        Case::new("Accept CBOR only", Method::GET, CONFIGMAPS, "")
            .accept("application/cbor")
            .expect(406, "NotAcceptable", ""),
        Case::new("Accept HTML only", Method::GET, TARGET, "")
            .accept("text/html")
            .expect(406, "NotAcceptable", ""),
        Case::new(
            "create accepting HTML only",
            Method::POST,
            CONFIGMAPS,
            configmap("x"),
        )
        .accept("text/html")
        .expect(406, "NotAcceptable", ""),
    ];
    h.check_all(cases).await?;

    // Protobuf is the one non-JSON encoding clients ask for: either it is served as such, or
    // refused with 406 — never JSON under a protobuf label.
    let answer = h
        .send(
            Method::GET,
            TARGET,
            None,
            Some("application/vnd.kubernetes.protobuf"),
            vec![],
        )
        .await?;
    match answer.code {
        StatusCode::NOT_ACCEPTABLE => {
            let status: Value = serde_json::from_slice(&answer.body)?;
            assert_eq!(status["reason"], "NotAcceptable", "{status}");
        }
        StatusCode::OK => assert!(
            answer
                .content_type
                .starts_with("application/vnd.kubernetes.protobuf"),
            "{}",
            answer.content_type
        ),
        other => bail!("protobuf-only Accept got {other}"),
    }
    assert_eq!(h.readyz().await?, "ok");
    Ok(())
}

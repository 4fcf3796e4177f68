//! The real kubectl 1.27, 1.30 and 1.33 against `navarch server`, with default flags (strict
//! validation included): one server per kubectl version, the same scenarios for each, every
//! scenario in its own namespace. A scenario asserts what upstream kube-apiserver would make
//! kubectl print — exact `-o name`/jsonpath values, messages, exit codes and error reasons —
//! and never ages.
//!
//! A failing scenario does not stop the others: the test reports every failure at the end,
//! with the tail of the server's log.
//!
//! The server runs without controllers and scheduler: only kubectl writes, so the status
//! columns and counts kubectl prints are those of objects nobody has reconciled.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use navarch_e2e::{kubeconfig_ca, output_within, wait_for, Background, Kubectl, Server};
use serde_json::{json, Value};

/// No single kubectl invocation may take longer (they take well under a second).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a watch or a waiting kubectl may take to notice a change.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn kubectl_1_27_drives_the_api() -> Result<()> {
    run_scenarios("1.27")
}

#[test]
fn kubectl_1_30_drives_the_api() -> Result<()> {
    run_scenarios("1.30")
}

#[test]
fn kubectl_1_33_drives_the_api() -> Result<()> {
    run_scenarios("1.33")
}

type Scenario = fn(&Cluster) -> Result<()>;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("version", version),
    ("api-resources", api_resources),
    ("api-versions", api_versions),
    ("explain", explain),
    ("create from generators", create_from_generators),
    ("create -f", create_from_manifests),
    ("apply -f twice (three-way merge)", apply_twice),
    ("get: output formats and selectors", get_outputs),
    ("get -w", get_watch),
    ("describe", describe),
    ("label", label),
    ("annotate", annotate),
    ("patch: json, merge, strategic", patch),
    ("edit with a scripted editor", edit),
    ("replace -f", replace),
    ("scale", scale),
    ("wait --for=jsonpath", wait_jsonpath),
    ("delete", delete),
    ("create token and use it", create_token),
];

fn run_scenarios(version: &'static str) -> Result<()> {
    let started = Instant::now();
    let cluster = Cluster::start(version)?;
    let mut failures = Vec::new();
    for (name, scenario) in SCENARIOS {
        let t = Instant::now();
        match scenario(&cluster) {
            Ok(()) => println!(
                "kubectl {version}: {name}: ok ({} ms)",
                t.elapsed().as_millis()
            ),
            Err(e) => {
                println!("kubectl {version}: {name}: FAILED: {e:#}");
                failures.push(format!("{name}: {e:#}"));
            }
        }
    }
    println!(
        "kubectl {version}: {} scenarios, {} failed, {} ms",
        SCENARIOS.len(),
        failures.len(),
        started.elapsed().as_millis()
    );
    if !failures.is_empty() {
        bail!(
            "kubectl {version}: {} of {} scenarios failed:\n{}\n--- server stderr (tail) ---\n{}",
            failures.len(),
            SCENARIOS.len(),
            failures.join("\n"),
            tail(&cluster.server.stderr(), 40)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The cluster under test and kubectl helpers

/// One `navarch server` and one kubectl version with its own HOME and cache directory.
struct Cluster {
    version: &'static str,
    kubectl: Kubectl,
    server: Server,
    /// Manifests and editor scripts; the server's data directory is inside (dropped last).
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(version: &'static str) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("navarch-e2e-").tempdir()?;
        // The scenarios pin what the API itself answers (a Deployment stays at 0 updated
        // replicas), so nothing else may write to the objects.
        let server = Server::start(
            &dir.path().join("data"),
            &[
                "--bind-address",
                "127.0.0.1",
                "--disable-controllers",
                "--disable-scheduler",
            ],
        )?;
        let kubectl = Kubectl::new(&format!("kubectl.{version}"))?;
        Ok(Cluster {
            version,
            kubectl,
            server,
            dir,
        })
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        self.kubectl.command(&self.server.kubeconfig(), args)
    }

    /// Run kubectl to completion.
    fn run(&self, args: &[&str]) -> Result<Output> {
        output_within(self.command(args), COMMAND_TIMEOUT)
            .with_context(|| format!("kubectl {}", args.join(" ")))
    }

    /// Run kubectl with extra environment variables (an editor).
    fn run_with_env(&self, env: &[(&str, &Path)], args: &[&str]) -> Result<Output> {
        let mut command = self.command(args);
        for (k, v) in env {
            command.env(k, v);
        }
        output_within(command, COMMAND_TIMEOUT)
            .with_context(|| format!("kubectl {}", args.join(" ")))
    }

    /// The error for an unexpected outcome of `kubectl ARGS`.
    fn unexpected(&self, args: &[&str], output: &Output, wanted: &str) -> anyhow::Error {
        anyhow!(
            "kubectl {} {}: {wanted}, got {}\nstdout: {}\nstderr: {}",
            self.version,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Run kubectl, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let output = self.run(args)?;
        self.expect_success(args, output)
    }

    fn expect_success(&self, args: &[&str], output: Output) -> Result<String> {
        if !output.status.success() {
            return Err(self.unexpected(args, &output, "expected success"));
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Run kubectl, which must succeed and print exactly `expected` (plus a final newline).
    fn ok_prints(&self, args: &[&str], expected: &str) -> Result<()> {
        let out = self.ok(args)?;
        ensure!(
            out.trim_end() == expected,
            "kubectl {} {}: expected {expected:?}, printed {out:?}",
            self.version,
            args.join(" ")
        );
        Ok(())
    }

    /// Run kubectl, which must fail with exit code 1 and a stderr containing `expected`; its
    /// stderr.
    fn fails_with(&self, args: &[&str], expected: &str) -> Result<String> {
        let output = self.run(args)?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(1) || !stderr.contains(expected) {
            return Err(self.unexpected(
                args,
                &output,
                &format!("expected exit code 1 and {expected:?} in stderr"),
            ));
        }
        Ok(stderr)
    }

    /// `kubectl -n NS get TARGET -o jsonpath=PATH`.
    fn jsonpath(&self, ns: &str, target: &str, path: &str) -> Result<String> {
        self.ok(&["-n", ns, "get", target, "-o", &format!("jsonpath={path}")])
    }

    /// Assert that `kubectl -n NS get TARGET -o jsonpath=PATH` prints `expected`.
    fn expect_jsonpath(&self, ns: &str, target: &str, path: &str, expected: &str) -> Result<()> {
        let got = self.jsonpath(ns, target, path)?;
        ensure!(
            got == expected,
            "{target} {path}: expected {expected:?}, got {got:?}"
        );
        Ok(())
    }

    /// `kubectl -n NS get TARGET -o json`, parsed.
    fn json(&self, ns: &str, target: &str) -> Result<Value> {
        let out = self.ok(&["-n", ns, "get", target, "-o", "json"])?;
        serde_json::from_str(&out).with_context(|| format!("get {target} -o json: {out}"))
    }

    /// Assert that `kubectl -n NS get TARGET` answers NotFound.
    fn gone(&self, ns: &str, target: &str, message: &str) -> Result<()> {
        self.fails_with(
            &["-n", ns, "get", target],
            &format!("Error from server (NotFound): {message}"),
        )
        .map(|_| ())
    }

    /// Create a namespace with the generator.
    fn namespace(&self, name: &str) -> Result<()> {
        self.ok_prints(
            &["create", "namespace", name],
            &format!("namespace/{name} created"),
        )
    }

    /// Write a file into the test's directory.
    fn file(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    /// An executable editor script that runs `sed -i EXPR` on the file kubectl hands it.
    fn editor(&self, name: &str, sed: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.file(name, &format!("#!/bin/sh\nset -e\nsed -i '{sed}' \"$1\"\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    /// What `kubectl annotate` prints for `object` (kubectl 1.27 says `annotate`).
    fn annotated(&self, object: &str) -> String {
        let verb = if self.version == "1.27" {
            "annotate"
        } else {
            "annotated"
        };
        format!("{object} {verb}")
    }

    /// Start kubectl in the background.
    fn spawn(&self, args: &[&str]) -> Result<Background> {
        Background::spawn(self.command(args))
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The cells of a kubectl table line: columns are separated by at least two spaces, a cell
/// (`CREATED AT`) by at most one.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The table line whose first cell is `first`.
fn row<'a>(table: &'a str, first: &str) -> Result<Vec<&'a str>> {
    table
        .lines()
        .map(cells)
        .find(|c| c.first() == Some(&first))
        .ok_or_else(|| anyhow!("no row {first:?} in:\n{table}"))
}

/// Text with every run of whitespace inside a line collapsed to one space (describe aligns
/// its values with tabs and spaces).
fn squeeze(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn assert_lines(text: &str, expected: &[&str], what: &str) -> Result<()> {
    let lines = squeeze(text);
    for want in expected {
        ensure!(
            lines.iter().any(|l| l == want),
            "{what}: no line {want:?} in:\n{text}"
        );
    }
    Ok(())
}

/// Whether a table row starts with `prefix` (the cells after it are ages and the like).
fn starts_with(row: &[&str], prefix: &[&str]) -> bool {
    row.get(..prefix.len()) == Some(prefix)
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn version(c: &Cluster) -> Result<()> {
    let out = c.ok(&["version", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out)?;
    let minor = c.version.trim_start_matches("1.");
    ensure!(v["clientVersion"]["major"] == "1", "{out}");
    ensure!(v["clientVersion"]["minor"] == minor, "{out}");
    ensure!(v["serverVersion"]["major"] == "1", "{out}");
    ensure!(v["serverVersion"]["minor"] == "33", "{out}");
    let git = v["serverVersion"]["gitVersion"].as_str().unwrap_or("");
    ensure!(git.starts_with("v1.33."), "{out}");
    Ok(())
}

fn api_resources(c: &Cluster) -> Result<()> {
    let all = c.ok(&["api-resources", "-o", "name"])?;
    let names = lines(&all);
    for want in [
        "configmaps",
        "namespaces",
        "secrets",
        "services",
        "pods",
        "deployments.apps",
        "replicasets.apps",
        "jobs.batch",
        "cronjobs.batch",
        "leases.coordination.k8s.io",
        "roles.rbac.authorization.k8s.io",
    ] {
        ensure!(names.contains(&want), "no {want} in api-resources:\n{all}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    ensure!(unique.len() == names.len(), "duplicates in:\n{all}");

    c.ok_prints(
        &["api-resources", "--api-group=apps", "-o", "name"],
        "controllerrevisions.apps\ndaemonsets.apps\ndeployments.apps\nreplicasets.apps\nstatefulsets.apps",
    )?;
    c.ok_prints(
        &[
            "api-resources",
            "--api-group=batch",
            "--verbs=list",
            "-o",
            "name",
        ],
        "cronjobs.batch\njobs.batch",
    )?;
    let cluster_scoped = c.ok(&["api-resources", "--namespaced=false", "-o", "name"])?;
    let cluster_scoped = lines(&cluster_scoped);
    ensure!(cluster_scoped.contains(&"namespaces") && cluster_scoped.contains(&"nodes"));
    ensure!(!cluster_scoped.contains(&"configmaps"));

    let table = c.ok(&["api-resources", "--api-group=apps", "-o", "wide"])?;
    ensure!(
        row(&table, "NAME")?
            == [
                "NAME",
                "SHORTNAMES",
                "APIVERSION",
                "NAMESPACED",
                "KIND",
                "VERBS",
                "CATEGORIES"
            ],
        "{table}"
    );
    ensure!(
        row(&table, "deployments")?
            == [
                "deployments",
                "deploy",
                "apps/v1",
                "true",
                "Deployment",
                "create,delete,deletecollection,get,list,patch,update,watch",
                "all"
            ],
        "{table}"
    );
    Ok(())
}

fn api_versions(c: &Cluster) -> Result<()> {
    let out = c.ok(&["api-versions"])?;
    let versions = lines(&out);
    for want in [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "events.k8s.io/v1",
        "networking.k8s.io/v1",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
        "scheduling.k8s.io/v1",
        "storage.k8s.io/v1",
    ] {
        ensure!(
            versions.contains(&want),
            "no {want} in api-versions:\n{out}"
        );
    }
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    ensure!(sorted == versions, "not sorted and unique:\n{out}");
    Ok(())
}

fn explain(c: &Cluster) -> Result<()> {
    // 1.27 prints the OpenAPI v2 layout, later versions the v3 one; the lines below are in both
    // once whitespace is squeezed.
    let out = c.ok(&["explain", "deployment.spec.replicas"])?;
    assert_lines(
        &out,
        &[
            "KIND: Deployment",
            "FIELD: replicas <integer>",
            "DESCRIPTION:",
        ],
        "explain deployment.spec.replicas",
    )?;
    ensure!(out.contains("desired pods"), "{out}");

    let out = c.ok(&["explain", "configmap.data"])?;
    assert_lines(
        &out,
        &["KIND: ConfigMap", "FIELD: data <map[string]string>"],
        "explain configmap.data",
    )?;

    let out = c.ok(&["explain", "svc.spec"])?;
    for field in ["clusterIP", "ports", "selector", "type"] {
        ensure!(
            squeeze(&out)
                .iter()
                .any(|l| l.starts_with(&format!("{field} <"))),
            "explain svc.spec lists no {field}:\n{out}"
        );
    }

    c.fails_with(
        &["explain", "deployment.spec.nope"],
        "field \"nope\" does not exist",
    )?;
    Ok(())
}

fn create_from_generators(c: &Cluster) -> Result<()> {
    let ns = "gen";
    c.namespace(ns)?;
    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "--from-literal=level=3",
        ],
        "configmap/settings created",
    )?;
    c.expect_jsonpath(ns, "cm/settings", "{.data.mode},{.data.level}", "fast,3")?;

    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=s3cret",
        ],
        "secret/creds created",
    )?;
    // base64("s3cret")
    c.expect_jsonpath(
        ns,
        "secret/creds",
        "{.type} {.data.password}",
        "Opaque czNjcmV0",
    )?;

    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--replicas=2",
            "--port=80",
        ],
        "deployment.apps/web created",
    )?;
    let d = c.jsonpath(
        ns,
        "deploy/web",
        "{.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.metadata.labels.app} \
         {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].image} \
         {.spec.template.spec.containers[0].ports[0].containerPort} {.metadata.generation}",
    )?;
    ensure!(d == "2 web web nginx nginx:1.25 80 1", "{d}");
    // Upstream defaulting.
    let d = c.jsonpath(
        ns,
        "deploy/web",
        "{.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} \
         {.spec.strategy.rollingUpdate.maxUnavailable} {.spec.revisionHistoryLimit} \
         {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} \
         {.spec.template.spec.containers[0].imagePullPolicy}",
    )?;
    ensure!(
        d == "RollingUpdate 25% 25% 10 600 Always IfNotPresent",
        "{d}"
    );

    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:8080",
        ],
        "service/web created",
    )?;
    let s = c.jsonpath(
        ns,
        "svc/web",
        "{.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} \
         {.spec.ports[0].protocol} {.spec.selector.app} {.spec.sessionAffinity}",
    )?;
    ensure!(s == "ClusterIP 80 8080 TCP web None", "{s}");
    let ips = c.jsonpath(ns, "svc/web", "{.spec.clusterIP} {.spec.clusterIPs[0]}")?;
    let (ip, first) = ips.split_once(' ').unwrap_or_default();
    ensure!(ip == first && in_service_cidr(ip), "cluster IPs {ips:?}");

    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "service",
            "nodeport",
            "edge",
            "--tcp=80:8080",
        ],
        "service/edge created",
    )?;
    let s = c.jsonpath(ns, "svc/edge", "{.spec.type} {.spec.ports[0].nodePort}")?;
    let (kind, port) = s.split_once(' ').unwrap_or_default();
    ensure!(kind == "NodePort", "{s}");
    let port: u16 = port.parse().with_context(|| format!("nodePort in {s:?}"))?;
    ensure!((30000..=32767).contains(&port), "nodePort {port}");

    c.ok_prints(
        &[
            "-n",
            ns,
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
        "job.batch/once created",
    )?;
    let j = c.jsonpath(
        ns,
        "job/once",
        "{.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].command} \
         {.spec.backoffLimit} {.spec.completions} {.spec.parallelism}",
    )?;
    ensure!(j == r#"Never ["echo","hi"] 6 1 1"#, "{j}");

    // The server's Table columns for these kinds.
    let table = c.ok(&["-n", ns, "get", "secret", "creds"])?;
    ensure!(
        row(&table, "NAME")? == ["NAME", "TYPE", "DATA", "AGE"]
            && starts_with(&row(&table, "creds")?, &["creds", "Opaque", "1"]),
        "{table}"
    );
    let table = c.ok(&["-n", ns, "get", "job", "once"])?;
    ensure!(
        row(&table, "NAME")? == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
            && starts_with(&row(&table, "once")?, &["once", "Running", "0/1"]),
        "{table}"
    );
    let table = c.ok(&["-n", ns, "get", "svc", "edge"])?;
    ensure!(
        starts_with(
            &row(&table, "edge")?,
            &[
                "edge",
                "NodePort",
                &c.jsonpath(ns, "svc/edge", "{.spec.clusterIP}")?,
                "<none>",
                &format!("80:{port}/TCP")
            ]
        ),
        "{table}"
    );

    c.fails_with(
        &["-n", ns, "create", "configmap", "settings"],
        "configmaps \"settings\" already exists",
    )?;
    c.fails_with(
        &["-n", ns, "create", "deployment", "Bad_Name", "--image=x"],
        "Deployment.apps \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\"",
    )?;
    c.fails_with(
        &["-n", "no-such-ns", "create", "configmap", "lost"],
        "namespaces \"no-such-ns\" not found",
    )?;
    Ok(())
}

/// 10.43.0.0/16, the default service CIDR.
fn in_service_cidr(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets()[..2] == [10, 43])
        .unwrap_or(false)
}

const MANIFESTS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: files
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: files
  labels: {app: api}
data:
  LOG_LEVEL: debug
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
  namespace: files
stringData:
  token: hunter2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: files
  labels: {app: api}
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: registry.local/api:2.0
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef: {name: app-config}
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: files
spec:
  selector: {app: api}
  ports:
  - name: http
    port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: api-nodeport
  namespace: files
spec:
  type: NodePort
  selector: {app: api}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: 30080
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: files
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: migrate
        image: registry.local/api:2.0
        command: ["/migrate", "--up"]
"#;

fn create_from_manifests(c: &Cluster) -> Result<()> {
    let ns = "files";
    let file = c.file("manifests.yaml", MANIFESTS)?;
    c.ok_prints(
        &["create", "-f", path_str(&file)],
        "namespace/files created\nconfigmap/app-config created\nsecret/app-secret created\n\
         deployment.apps/api created\nservice/api created\nservice/api-nodeport created\n\
         job.batch/migrate created",
    )?;
    c.expect_jsonpath(ns, "cm/app-config", "{.data.LOG_LEVEL}", "debug")?;
    // stringData is write-only: it lands base64-encoded in data.
    let secret = c.json(ns, "secret/app-secret")?;
    ensure!(
        secret["data"] == json!({"token": "aHVudGVyMg=="}),
        "{secret}"
    );
    ensure!(secret.get("stringData").is_none(), "{secret}");
    ensure!(secret["type"] == "Opaque", "{secret}");

    let d = c.jsonpath(
        ns,
        "deploy/api",
        "{.spec.replicas} {.spec.template.spec.containers[0].envFrom[0].configMapRef.name} \
         {.spec.template.spec.containers[0].ports[0].protocol} {.spec.revisionHistoryLimit} \
         {.spec.template.spec.containers[0].imagePullPolicy}",
    )?;
    ensure!(d == "3 app-config TCP 10 IfNotPresent", "{d}");
    // targetPort defaults to port.
    let s = c.jsonpath(
        ns,
        "svc/api",
        "{.spec.type} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].targetPort}",
    )?;
    ensure!(s == "ClusterIP http 80 80", "{s}");
    let s = c.jsonpath(
        ns,
        "svc/api-nodeport",
        "{.spec.type} {.spec.ports[0].nodePort} {.spec.ports[0].targetPort}",
    )?;
    ensure!(s == "NodePort 30080 8080", "{s}");
    let j = c.jsonpath(
        ns,
        "job/migrate",
        "{.spec.backoffLimit} {.spec.template.spec.restartPolicy} \
         {.spec.template.spec.containers[0].command}",
    )?;
    ensure!(j == r#"2 OnFailure ["/migrate","--up"]"#, "{j}");

    // A second create of the same file: every object already exists.
    let stderr = c.fails_with(
        &["create", "-f", path_str(&file)],
        "Error from server (AlreadyExists)",
    )?;
    ensure!(
        stderr.contains("deployments.apps \"api\" already exists"),
        "{stderr}"
    );

    // Strict field validation is on by default: an unknown field is refused, nothing written.
    let bad = c.file(
        "unknown-field.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: typo\n  namespace: files\n\
         spec:\n  replicaz: 2\n  selector:\n    matchLabels: {app: typo}\n  template:\n    \
         metadata:\n      labels: {app: typo}\n    spec:\n      containers:\n      - name: c\n        \
         image: x\n",
    )?;
    c.fails_with(
        &["create", "-f", path_str(&bad)],
        "unknown field \"spec.replicaz\"",
    )?;
    c.gone(ns, "deploy/typo", "deployments.apps \"typo\" not found")?;

    // A node port that is taken.
    let clash = c.file(
        "nodeport-clash.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: clash\n  namespace: files\nspec:\n  \
         type: NodePort\n  ports:\n  - port: 81\n    nodePort: 30080\n",
    )?;
    c.fails_with(
        &["create", "-f", path_str(&clash)],
        "provided port is already allocated",
    )?;
    Ok(())
}

const APP_V1: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: apply
  labels:
    app: app
    tier: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 80
        env:
        - name: A
          value: "1"
        - name: B
          value: "2"
"#;

fn apply_twice(c: &Cluster) -> Result<()> {
    let ns = "apply";
    c.namespace(ns)?;
    let v1 = c.file("app-v1.yaml", APP_V1)?;
    // replicas 2→3, an image bump, env B and the label tier removed.
    let v2 = c.file(
        "app-v2.yaml",
        &APP_V1
            .replace("replicas: 2", "replicas: 3")
            .replace("nginx:1.25", "nginx:1.26")
            .replace("        - name: B\n          value: \"2\"\n", "")
            .replace("    tier: web\n", ""),
    )?;
    c.ok_prints(
        &["apply", "-f", path_str(&v1)],
        "deployment.apps/app created",
    )?;
    let last: Value = serde_json::from_str(&c.jsonpath(
        ns,
        "deploy/app",
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    )?)?;
    ensure!(last["spec"]["replicas"] == 2, "{last}");

    // Changes made by someone else, outside the manifest, must survive the three-way merge.
    c.ok_prints(
        &["-n", ns, "annotate", "deploy", "app", "owner=ops"],
        &c.annotated("deployment.apps/app"),
    )?;
    c.ok_prints(
        &["-n", ns, "label", "deploy", "app", "extra=1"],
        "deployment.apps/app labeled",
    )?;
    c.ok_prints(
        &["apply", "-f", path_str(&v1)],
        "deployment.apps/app unchanged",
    )?;

    c.ok_prints(
        &["apply", "-f", path_str(&v2)],
        "deployment.apps/app configured",
    )?;
    let live = c.json(ns, "deploy/app")?;
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    ensure!(live["spec"]["replicas"] == 3, "{live}");
    ensure!(container["image"] == "nginx:1.26", "{live}");
    ensure!(
        container["env"] == json!([{"name": "A", "value": "1"}]),
        "env after apply: {}",
        container["env"]
    );
    ensure!(
        container["ports"] == json!([{"containerPort": 80, "protocol": "TCP"}]),
        "{live}"
    );
    let labels = &live["metadata"]["labels"];
    ensure!(
        *labels == json!({"app": "app", "extra": "1"}),
        "labels after apply: {labels}"
    );
    ensure!(live["metadata"]["annotations"]["owner"] == "ops", "{live}");
    ensure!(live["metadata"]["generation"] == 2, "{live}");
    let last: Value = serde_json::from_str(
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap_or("null"),
    )?;
    ensure!(last["spec"]["replicas"] == 3, "{last}");

    c.ok_prints(
        &["apply", "-f", path_str(&v2)],
        "deployment.apps/app unchanged",
    )?;
    Ok(())
}

fn get_outputs(c: &Cluster) -> Result<()> {
    let ns = "get";
    c.namespace(ns)?;
    c.namespace("get-other")?;
    for (name, labels) in [
        ("a", ["app=shop", "tier=front"]),
        ("b", ["app=shop", "tier=back"]),
    ] {
        c.ok(&[
            "-n",
            ns,
            "create",
            "cm",
            name,
            &format!("--from-literal=name={name}"),
        ])?;
        c.ok(&["-n", ns, "label", "cm", name, labels[0], labels[1]])?;
    }
    c.ok(&["-n", ns, "create", "cm", "c"])?;
    c.ok(&["-n", "get-other", "create", "cm", "z"])?;
    c.ok(&["-n", "get-other", "label", "cm", "z", "app=shop"])?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
    ])?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80",
    ])?;

    // -o name with label selectors (every operator) and field selectors.
    let name = |args: &[&str], expected: &str| -> Result<()> {
        let mut all = vec!["-n", ns, "get", "cm", "-o", "name"];
        all.extend_from_slice(args);
        c.ok_prints(&all, expected)
    };
    name(&["-l", "app=shop"], "configmap/a\nconfigmap/b")?;
    name(&["-l", "tier==front"], "configmap/a")?;
    name(&["-l", "app=shop,tier!=front"], "configmap/b")?;
    name(&["-l", "tier in (front,back)"], "configmap/a\nconfigmap/b")?;
    name(&["-l", "tier notin (front),app"], "configmap/b")?;
    name(
        &["-l", "!tier", "--field-selector", "metadata.name=c"],
        "configmap/c",
    )?;
    name(&["--field-selector", "metadata.name=b"], "configmap/b")?;
    name(
        &["-l", "app", "--field-selector", "metadata.name!=b"],
        "configmap/a",
    )?;
    let out = c.run(&["-n", ns, "get", "cm", "-l", "app=nobody"])?;
    ensure!(
        out.status.success()
            && out.stdout.is_empty()
            && String::from_utf8_lossy(&out.stderr).trim()
                == "No resources found in get namespace.",
        "{out:?}"
    );

    // jsonpath, json and yaml.
    c.expect_jsonpath(ns, "cm/a", "{.data.name}", "a")?;
    let names = c.jsonpath(ns, "cm", "{range .items[*]}{.metadata.name},{end}")?;
    ensure!(names.starts_with("a,b,c,"), "{names}");
    let a = c.json(ns, "cm/a")?;
    ensure!(a["kind"] == "ConfigMap" && a["apiVersion"] == "v1", "{a}");
    ensure!(
        a["metadata"]["labels"] == json!({"app": "shop", "tier": "front"}),
        "{a}"
    );
    ensure!(
        a["metadata"]["namespace"] == ns && a["data"]["name"] == "a",
        "{a}"
    );
    ensure!(
        a["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36),
        "{a}"
    );
    let list = c.ok(&["-n", ns, "get", "cm", "-l", "app=shop", "-o", "json"])?;
    let list: Value = serde_json::from_str(&list)?;
    ensure!(list["kind"] == "List", "{list}");
    ensure!(list["items"].as_array().map(Vec::len) == Some(2), "{list}");
    let yaml = c.ok(&["-n", ns, "get", "cm", "a", "-o", "yaml"])?;
    ensure!(yaml.starts_with("apiVersion: v1\n"), "{yaml}");
    for line in [
        "kind: ConfigMap",
        "data:",
        "  name: a",
        "  namespace: get",
        "    app: shop",
    ] {
        ensure!(yaml.lines().any(|l| l == line), "no {line:?} in:\n{yaml}");
    }

    // Tables from the server, -o wide adding the priority-1 columns.
    let table = c.ok(&["-n", ns, "get", "cm", "-l", "app=shop"])?;
    ensure!(
        row(&table, "NAME")? == ["NAME", "DATA", "AGE"]
            && starts_with(&row(&table, "a")?, &["a", "1"])
            && starts_with(&row(&table, "b")?, &["b", "1"]),
        "{table}"
    );
    let table = c.ok(&["get", "namespace", ns])?;
    ensure!(
        row(&table, "NAME")? == ["NAME", "STATUS", "AGE"]
            && starts_with(&row(&table, ns)?, &[ns, "Active"]),
        "{table}"
    );
    let table = c.ok(&["-n", ns, "get", "deploy"])?;
    ensure!(
        row(&table, "NAME")? == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    let table = c.ok(&["-n", ns, "get", "deploy", "web", "-o", "wide"])?;
    ensure!(
        row(&table, "NAME")?
            == [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
        "{table}"
    );
    let web = row(&table, "web")?;
    ensure!(
        web.len() == 8
            && web[..4] == ["web", "0/2", "0", "0"]
            && web[5..] == ["nginx", "nginx:1.25", "app=web"],
        "{table}"
    );
    let table = c.ok(&["-n", ns, "get", "svc", "-o", "wide"])?;
    ensure!(
        row(&table, "NAME")?
            == [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ],
        "{table}"
    );
    let web = row(&table, "web")?;
    let ip = c.jsonpath(ns, "svc/web", "{.spec.clusterIP}")?;
    ensure!(
        web.len() == 7
            && web[..5] == ["web", "ClusterIP", ip.as_str(), "<none>", "80/TCP"]
            && web[6] == "app=web",
        "{table}"
    );

    // -A: every namespace, with a NAMESPACE column taken from the rows' objects.
    let table = c.ok(&["get", "cm", "-A", "-l", "app=shop"])?;
    let rows: Vec<Vec<&str>> = table.lines().map(cells).collect();
    ensure!(rows.len() == 4, "{table}");
    ensure!(rows[0][..2] == ["NAMESPACE", "NAME"], "{table}");
    // In store key order, as from etcd: `/registry/configmaps/get-other/…` sorts before
    // `/registry/configmaps/get/…`.
    let found: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[1])).collect();
    ensure!(
        found == [("get-other", "z"), ("get", "a"), ("get", "b")],
        "{table}"
    );
    c.ok_prints(
        &[
            "get",
            "cm",
            "--all-namespaces",
            "-l",
            "app=shop",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
        ],
        "get-other/z get/a get/b",
    )?;

    c.fails_with(
        &["-n", ns, "get", "cm", "nope"],
        "Error from server (NotFound): configmaps \"nope\" not found",
    )?;
    c.fails_with(
        &["-n", ns, "get", "cm", "--field-selector", "data.name=a"],
        "field label not supported: data.name",
    )?;
    Ok(())
}

fn get_watch(c: &Cluster) -> Result<()> {
    let ns = "watch";
    c.namespace(ns)?;
    c.ok(&["-n", ns, "create", "cm", "first", "--from-literal=x=1"])?;

    // A list watch (Table rows) starts at the list's resourceVersion and shows later objects.
    let mut watch = c.spawn(&["-n", ns, "get", "cm", "-w"])?;
    watch.wait_for_line(NOTICE_TIMEOUT, "the listed row", |l| {
        cells(l).first() == Some(&"first")
    })?;
    c.ok(&["-n", ns, "create", "cm", "late", "--from-literal=x=1"])?;
    watch.wait_for_line(
        NOTICE_TIMEOUT,
        "the row of a configmap created later",
        |l| cells(l).first() == Some(&"late"),
    )?;
    drop(watch);

    // A watch of one object starts at resourceVersion 0; kubectl swallows its first event (the
    // server's synthetic ADDED), so the change must arrive as a separate event.
    let mut watch = c.spawn(&[
        "-n",
        ns,
        "get",
        "cm",
        "first",
        "-w",
        "-o",
        "jsonpath={.data.x}{\"\\n\"}",
    ])?;
    watch.wait_for_line(NOTICE_TIMEOUT, "the current value", |l| l == "1")?;
    // kubectl starts its watch right after printing the object; a change made before the
    // watch is established would be folded into the swallowed first event.
    thread::sleep(Duration::from_millis(800));
    c.ok(&[
        "-n",
        ns,
        "patch",
        "cm",
        "first",
        "--type=merge",
        "-p",
        r#"{"data":{"x":"2"}}"#,
    ])?;
    watch.wait_for_line(NOTICE_TIMEOUT, "the changed value", |l| l == "2")?;
    ensure!(
        watch.lines() == ["1", "2"],
        "get cm first -w printed {:?}",
        watch.lines()
    );
    Ok(())
}

fn describe(c: &Cluster) -> Result<()> {
    let ns = "describe";
    c.namespace(ns)?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=2",
        "--port=80",
    ])?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
    ])?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ])?;

    let out = c.ok(&["-n", ns, "describe", "deployment", "web"])?;
    assert_lines(
        &out,
        &[
            "Name: web",
            "Namespace: describe",
            "Labels: app=web",
            "Selector: app=web",
            "Replicas: 2 desired | 0 updated | 0 total | 0 available | 0 unavailable",
            "StrategyType: RollingUpdate",
            "MinReadySeconds: 0",
            "RollingUpdateStrategy: 25% max unavailable, 25% max surge",
            "Image: nginx:1.25",
            "Port: 80/TCP",
        ],
        "describe deployment",
    )?;

    let ip = c.jsonpath(ns, "svc/web", "{.spec.clusterIP}")?;
    let out = c.ok(&["-n", ns, "describe", "service", "web"])?;
    assert_lines(
        &out,
        &[
            "Name: web",
            "Namespace: describe",
            "Selector: app=web",
            "Type: ClusterIP",
            &format!("IP: {ip}"),
            "Port: 80-8080 80/TCP",
            "TargetPort: 8080/TCP",
            "Session Affinity: None",
        ],
        "describe service",
    )?;

    let out = c.ok(&["-n", ns, "describe", "configmap", "settings"])?;
    assert_lines(
        &out,
        &["Name: settings", "Namespace: describe"],
        "describe configmap",
    )?;
    let squeezed = squeeze(&out);
    ensure!(
        squeezed.windows(3).any(|w| w == ["mode:", "----", "fast"]),
        "describe configmap shows no data:\n{out}"
    );

    let out = c.ok(&["describe", "namespace", ns])?;
    assert_lines(
        &out,
        &[
            "Name: describe",
            "Status: Active",
            "No resource quota.",
            "No LimitRange resource.",
        ],
        "describe namespace",
    )?;
    Ok(())
}

fn label(c: &Cluster) -> Result<()> {
    let ns = "label";
    c.namespace(ns)?;
    c.ok(&["-n", ns, "create", "cm", "tags"])?;
    c.ok(&["-n", ns, "create", "cm", "other"])?;
    c.ok_prints(
        &["-n", ns, "label", "cm", "tags", "team=a"],
        "configmap/tags labeled",
    )?;
    c.expect_jsonpath(ns, "cm/tags", "{.metadata.labels.team}", "a")?;
    c.fails_with(
        &["-n", ns, "label", "cm", "tags", "team=b"],
        "'team' already has a value (a), and --overwrite is false",
    )?;
    c.ok_prints(
        &["-n", ns, "label", "cm", "tags", "team=b", "--overwrite"],
        "configmap/tags labeled",
    )?;
    c.expect_jsonpath(ns, "cm/tags", "{.metadata.labels.team}", "b")?;
    c.ok_prints(
        &["-n", ns, "label", "cm", "tags", "other", "stage=dev"],
        "configmap/tags labeled\nconfigmap/other labeled",
    )?;
    c.ok_prints(
        &[
            "-n",
            ns,
            "get",
            "cm",
            "-l",
            "stage=dev,team=b",
            "-o",
            "name",
        ],
        "configmap/tags",
    )?;
    c.ok_prints(
        &["-n", ns, "label", "cm", "-l", "stage=dev", "stage-"],
        "configmap/other unlabeled\nconfigmap/tags unlabeled",
    )?;
    c.expect_jsonpath(ns, "cm/tags", "{.metadata.labels}", r#"{"team":"b"}"#)?;
    c.ok_prints(
        &["-n", ns, "label", "cm", "tags", "team-"],
        "configmap/tags unlabeled",
    )?;
    // The last label is gone, and so is the emptied map.
    c.expect_jsonpath(ns, "cm/tags", "{.metadata.labels}", "")?;
    Ok(())
}

fn annotate(c: &Cluster) -> Result<()> {
    let ns = "annotate";
    c.namespace(ns)?;
    c.ok(&["-n", ns, "create", "cm", "notes"])?;
    c.ok_prints(
        &["-n", ns, "annotate", "cm", "notes", "note=first"],
        &c.annotated("configmap/notes"),
    )?;
    let rv = c.jsonpath(ns, "cm/notes", "{.metadata.resourceVersion}")?;
    // The resourceVersion travels inside the merge patch as a precondition.
    c.ok_prints(
        &[
            "-n",
            ns,
            "annotate",
            "cm",
            "notes",
            "note=second",
            "--overwrite",
            &format!("--resource-version={rv}"),
        ],
        &c.annotated("configmap/notes"),
    )?;
    let stderr = c.fails_with(
        &[
            "-n",
            ns,
            "annotate",
            "cm",
            "notes",
            "note=third",
            "--overwrite",
            &format!("--resource-version={rv}"),
        ],
        "Error from server (Conflict)",
    )?;
    ensure!(
        stderr.contains("Operation cannot be fulfilled on configmaps \"notes\""),
        "{stderr}"
    );
    c.expect_jsonpath(ns, "cm/notes", "{.metadata.annotations.note}", "second")?;
    c.ok_prints(
        &["-n", ns, "annotate", "cm", "notes", "note-"],
        &c.annotated("configmap/notes"),
    )?;
    c.expect_jsonpath(ns, "cm/notes", "{.metadata.annotations}", "")?;
    Ok(())
}

fn patch(c: &Cluster) -> Result<()> {
    let ns = "patch";
    c.namespace(ns)?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "cm",
        "p",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ])?;
    let patch = |kind: &str, target: &str, body: &str, prints: &str| -> Result<()> {
        c.ok_prints(
            &[
                "-n",
                ns,
                "patch",
                target,
                &format!("--type={kind}"),
                "-p",
                body,
            ],
            prints,
        )
    };

    patch(
        "json",
        "cm/p",
        r#"[{"op":"replace","path":"/data/a","value":"10"},{"op":"remove","path":"/data/b"},
            {"op":"add","path":"/data/c","value":"3"}]"#,
        "configmap/p patched",
    )?;
    c.expect_jsonpath(ns, "cm/p", "{.data}", r#"{"a":"10","c":"3"}"#)?;
    c.fails_with(
        &[
            "-n",
            ns,
            "patch",
            "cm",
            "p",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/a","value":"nope"}]"#,
        ],
        "The request is invalid",
    )?;

    patch(
        "merge",
        "cm/p",
        r#"{"data":{"a":null,"d":"4"}}"#,
        "configmap/p patched",
    )?;
    c.expect_jsonpath(ns, "cm/p", "{.data}", r#"{"c":"3","d":"4"}"#)?;
    patch(
        "merge",
        "cm/p",
        r#"{"data":{"d":"4"}}"#,
        "configmap/p patched (no change)",
    )?;
    patch(
        "strategic",
        "cm/p",
        r#"{"data":{"e":"5"}}"#,
        "configmap/p patched",
    )?;
    c.expect_jsonpath(ns, "cm/p", "{.data}", r#"{"c":"3","d":"4","e":"5"}"#)?;

    // Strategic merge on a list with a merge key: containers merge by name.
    c.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--port=80",
    ])?;
    patch(
        "strategic",
        "deploy/web",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
        "deployment.apps/web patched",
    )?;
    // A JSON merge patch would have replaced the list and lost the port.
    c.expect_jsonpath(
        ns,
        "deploy/web",
        "{.spec.template.spec.containers[*].name} {.spec.template.spec.containers[0].image} \
         {.spec.template.spec.containers[0].ports[0].containerPort}",
        "nginx nginx:1.27 80",
    )?;
    patch(
        "strategic",
        "deploy/web",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
        "deployment.apps/web patched",
    )?;
    // Upstream puts patch items that the live list lacks before the server-only ones.
    c.expect_jsonpath(
        ns,
        "deploy/web",
        "{.spec.template.spec.containers[*].name}",
        "sidecar nginx",
    )?;
    patch(
        "strategic",
        "deploy/web",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
        "deployment.apps/web patched",
    )?;
    c.expect_jsonpath(
        ns,
        "deploy/web",
        "{.spec.template.spec.containers[*].name}",
        "nginx",
    )?;
    // kubectl patch's default type is strategic.
    c.ok_prints(
        &[
            "-n",
            ns,
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
        "deployment.apps/web patched",
    )?;
    // Every spec change since the create bumped the generation.
    c.expect_jsonpath(
        ns,
        "deploy/web",
        "{.spec.replicas} {.metadata.generation}",
        "3 5",
    )?;
    Ok(())
}

fn edit(c: &Cluster) -> Result<()> {
    let ns = "edit";
    c.namespace(ns)?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "cm",
        "settings",
        "--from-literal=mode=fast",
    ])?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--port=80",
    ])?;

    // Returns kubectl's stdout and stderr.
    let run = |editor: &Path, args: &[&str]| -> Result<(String, String)> {
        let mut all = vec!["-n", ns, "edit"];
        all.extend_from_slice(args);
        let output = c.run_with_env(&[("KUBE_EDITOR", editor), ("EDITOR", editor)], &all)?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        Ok((c.expect_success(&all, output)?, stderr))
    };

    // An editor that saves the file unchanged.
    let noop = c.editor("editor-noop.sh", "s/^//")?;
    let (out, err) = run(&noop, &["cm", "settings"])?;
    ensure!(
        out.is_empty() && err.trim_end() == "Edit cancelled, no changes made.",
        "edit without a change: {out:?} {err:?}"
    );

    let editor = c.editor("editor-cm.sh", "s/^  mode: fast$/  mode: slow/")?;
    ensure!(run(&editor, &["cm", "settings"])?.0 == "configmap/settings edited\n");
    c.expect_jsonpath(ns, "cm/settings", "{.data.mode}", "slow")?;

    // The edit of a list item: kubectl sends a strategic merge patch with
    // $setElementOrder/containers.
    let editor = c.editor(
        "editor-deploy.sh",
        "s/^  replicas: 1$/  replicas: 4/; s/image: nginx:1.25$/image: nginx:1.26/",
    )?;
    ensure!(run(&editor, &["deployment/web"])?.0 == "deployment.apps/web edited\n");
    let d = c.jsonpath(
        ns,
        "deploy/web",
        "{.spec.replicas} {.spec.template.spec.containers[0].image} \
         {.spec.template.spec.containers[0].ports[0].containerPort}",
    )?;
    ensure!(d == "4 nginx:1.26 80", "{d}");
    Ok(())
}

fn replace(c: &Cluster) -> Result<()> {
    let ns = "replace";
    c.namespace(ns)?;
    c.ok(&["-n", ns, "create", "cm", "conf", "--from-literal=k=v1"])?;
    let yaml = c.ok(&["-n", ns, "get", "cm", "conf", "-o", "yaml"])?;
    ensure!(yaml.contains("\n  k: v1\n"), "{yaml}");
    let file = c.file("conf.yaml", &yaml.replace("\n  k: v1\n", "\n  k: v2\n"))?;
    c.ok_prints(
        &["replace", "-f", path_str(&file)],
        "configmap/conf replaced",
    )?;
    c.expect_jsonpath(ns, "cm/conf", "{.data.k}", "v2")?;

    // The file still carries the old resourceVersion: a precondition that now fails.
    let stderr = c.fails_with(
        &["replace", "-f", path_str(&file)],
        "Error from server (Conflict)",
    )?;
    ensure!(stderr.contains("configmaps \"conf\""), "{stderr}");

    // Without a resourceVersion the whole object is replaced unconditionally.
    let fresh = c.file(
        "conf-fresh.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  namespace: replace\n\
         data:\n  other: x\n",
    )?;
    c.ok_prints(
        &["replace", "-f", path_str(&fresh)],
        "configmap/conf replaced",
    )?;
    c.expect_jsonpath(ns, "cm/conf", "{.data}", r#"{"other":"x"}"#)?;

    let missing = c.file(
        "missing.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: missing\n  namespace: replace\n",
    )?;
    c.fails_with(
        &["replace", "-f", path_str(&missing)],
        "configmaps \"missing\" not found",
    )?;
    Ok(())
}

fn scale(c: &Cluster) -> Result<()> {
    let ns = "scale";
    c.namespace(ns)?;
    c.ok(&[
        "-n",
        ns,
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
    ])?;
    c.ok_prints(
        &["-n", ns, "scale", "deploy", "web", "--replicas=3"],
        "deployment.apps/web scaled",
    )?;
    c.expect_jsonpath(ns, "deploy/web", "{.spec.replicas}", "3")?;
    // --current-replicas reads the Scale and PUTs it back (without a Content-Type).
    c.ok_prints(
        &[
            "-n",
            ns,
            "scale",
            "deploy/web",
            "--current-replicas=3",
            "--replicas=4",
        ],
        "deployment.apps/web scaled",
    )?;
    c.expect_jsonpath(ns, "deploy/web", "{.spec.replicas}", "4")?;
    c.fails_with(
        &[
            "-n",
            ns,
            "scale",
            "deploy/web",
            "--current-replicas=3",
            "--replicas=5",
        ],
        "Expected replicas to be 3, was 4",
    )?;
    c.expect_jsonpath(ns, "deploy/web", "{.spec.replicas}", "4")?;
    let raw = c.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/scale/deployments/web/scale",
    ])?;
    let s: Value = serde_json::from_str(&raw)?;
    ensure!(
        s["kind"] == "Scale"
            && s["apiVersion"] == "autoscaling/v1"
            && s["spec"]["replicas"] == 4
            && s["status"]["selector"] == "app=web",
        "{raw}"
    );
    c.fails_with(
        &["-n", ns, "scale", "deploy", "nope", "--replicas=1"],
        "error: no objects passed to scale",
    )?;
    Ok(())
}

fn wait_jsonpath(c: &Cluster) -> Result<()> {
    let ns = "wait";
    c.namespace(ns)?;
    c.ok(&["-n", ns, "create", "deployment", "x", "--image=nginx:1.25"])?;
    let mut waiting = c.spawn(&[
        "-n",
        ns,
        "wait",
        "--for=jsonpath={.spec.replicas}=3",
        "deploy/x",
        "--timeout=60s",
    ])?;
    c.ok(&["-n", ns, "scale", "deploy", "x", "--replicas=3"])?;
    let status = waiting.wait(NOTICE_TIMEOUT)?;
    ensure!(
        status.success() && waiting.lines() == ["deployment.apps/x condition met"],
        "wait exited {status}: {:?} {}",
        waiting.lines(),
        waiting.stderr()
    );
    // Already true.
    c.ok_prints(
        &[
            "-n",
            ns,
            "wait",
            "--for=jsonpath={.spec.replicas}=3",
            "deploy/x",
            "--timeout=10s",
        ],
        "deployment.apps/x condition met",
    )?;
    c.fails_with(
        &[
            "-n",
            ns,
            "wait",
            "--for=jsonpath={.spec.replicas}=9",
            "deploy/x",
            "--timeout=1s",
        ],
        "timed out waiting for the condition on deployments/x",
    )?;
    Ok(())
}

fn delete(c: &Cluster) -> Result<()> {
    let ns = "delete";
    c.namespace(ns)?;

    c.ok(&["-n", ns, "create", "cm", "plain"])?;
    c.ok_prints(
        &["-n", ns, "delete", "cm", "plain"],
        "configmap \"plain\" deleted",
    )?;
    c.gone(ns, "cm/plain", "configmaps \"plain\" not found")?;
    c.fails_with(
        &["-n", ns, "delete", "cm", "plain"],
        "Error from server (NotFound): configmaps \"plain\" not found",
    )?;
    c.ok_prints(
        &["-n", ns, "delete", "cm", "plain", "--ignore-not-found"],
        "",
    )?;

    for (name, cascade) in [("fg", "foreground"), ("orphan", "orphan")] {
        c.ok(&["-n", ns, "create", "deployment", name, "--image=x"])?;
        c.ok_prints(
            &[
                "-n",
                ns,
                "delete",
                "deployment",
                name,
                &format!("--cascade={cascade}"),
            ],
            &format!("deployment.apps \"{name}\" deleted"),
        )?;
        c.gone(
            ns,
            &format!("deploy/{name}"),
            &format!("deployments.apps \"{name}\" not found"),
        )?;
    }

    // An owner with a dependent, orphaned: the dependent survives whoever finishes the deletion
    // (the garbage collector removes the `orphan` finalizer, with none running it stays).
    c.ok(&["-n", ns, "create", "deployment", "owner", "--image=x"])?;
    let uid = c.jsonpath(ns, "deploy/owner", "{.metadata.uid}")?;
    c.ok(&["-n", ns, "create", "cm", "dependent"])?;
    let owner_ref = json!({"metadata": {"ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": uid,
    }]}});
    c.ok(&[
        "-n",
        ns,
        "patch",
        "cm",
        "dependent",
        "--type=merge",
        "-p",
        &owner_ref.to_string(),
    ])?;
    c.ok_prints(
        &[
            "-n",
            ns,
            "delete",
            "deployment",
            "owner",
            "--cascade=orphan",
            "--wait=false",
        ],
        "deployment.apps \"owner\" deleted",
    )?;
    let owner = c.run(&[
        "-n",
        ns,
        "get",
        "deploy",
        "owner",
        "-o",
        "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
    ])?;
    if owner.status.success() {
        let out = String::from_utf8_lossy(&owner.stdout);
        ensure!(
            out.starts_with(r#"["orphan"] "#) && out.len() > 12,
            "a deleted owner waiting for the garbage collector: {out:?}"
        );
    }
    c.expect_jsonpath(ns, "cm/dependent", "{.metadata.name}", "dependent")?;

    // --wait blocks until a finalizer is gone.
    c.ok(&["-n", ns, "create", "cm", "held"])?;
    c.ok(&[
        "-n",
        ns,
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["e2e.navarch.dev/hold"]}}"#,
    ])?;
    let mut deleting = c.spawn(&["-n", ns, "delete", "cm", "held", "--wait", "--timeout=60s"])?;
    deleting.wait_for_line(NOTICE_TIMEOUT, "the deletion", |l| {
        l == "configmap \"held\" deleted"
    })?;
    wait_for(NOTICE_TIMEOUT, "a deletionTimestamp", || {
        c.jsonpath(ns, "cm/held", "{.metadata.deletionTimestamp}")
            .ok()
            .filter(|t| !t.is_empty())
    })?;
    thread::sleep(Duration::from_millis(500));
    ensure!(
        deleting.exited().is_none(),
        "delete --wait returned while a finalizer was pending: {}",
        deleting.stderr()
    );
    c.ok(&[
        "-n",
        ns,
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])?;
    let status = deleting.wait(NOTICE_TIMEOUT)?;
    ensure!(
        status.success(),
        "delete --wait: {status} {}",
        deleting.stderr()
    );
    c.gone(ns, "cm/held", "configmaps \"held\" not found")?;

    // By label selector.
    for name in ["x1", "x2", "keep"] {
        c.ok(&["-n", ns, "create", "cm", name])?;
    }
    c.ok(&["-n", ns, "label", "cm", "x1", "x2", "purge=yes"])?;
    c.ok_prints(
        &["-n", ns, "delete", "cm", "-l", "purge=yes"],
        "configmap \"x1\" deleted\nconfigmap \"x2\" deleted",
    )?;
    c.expect_jsonpath(ns, "cm/keep", "{.metadata.name}", "keep")?;

    // A namespace and its contents; --wait (the default) returns once it is gone.
    c.namespace("doomed")?;
    c.ok(&["-n", "doomed", "create", "cm", "inside"])?;
    c.ok_prints(
        &["delete", "namespace", "doomed", "--wait"],
        "namespace \"doomed\" deleted",
    )?;
    c.gone("default", "ns/doomed", "namespaces \"doomed\" not found")?;
    Ok(())
}

/// `kubectl create token` (the `serviceaccounts/token` subresource), then the token as the only
/// credential of a kubeconfig without a client certificate.
fn create_token(c: &Cluster) -> Result<()> {
    let ns = "sa-token";
    c.namespace(ns)?;
    c.ok_prints(
        &["-n", ns, "create", "serviceaccount", "robot"],
        "serviceaccount/robot created",
    )?;
    let token = c.ok(&["-n", ns, "create", "token", "robot"])?;
    let token = token.trim();
    ensure!(token.split('.').count() == 3, "not a JWT: {token:?}");
    c.ok(&["-n", ns, "create", "token", "robot", "--duration=2h"])?;
    c.fails_with(
        &["-n", ns, "create", "token", "robot", "--duration=5m"],
        "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes",
    )?;
    c.fails_with(
        &["-n", ns, "create", "token", "nobody"],
        r#"serviceaccounts "nobody" not found"#,
    )?;

    // A kubeconfig that trusts the cluster CA and has no credentials of its own.
    let kubeconfig = c.file(
        "token-kubeconfig.yaml",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: navarch\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {}\ncontexts:\n- name: navarch\n  context:\n    cluster: navarch\n    user: nobody\ncurrent-context: navarch\nusers:\n- name: nobody\n  user: {{}}\n",
            c.server.port(),
            kubeconfig_ca(&c.server.kubeconfig())?
        ),
    )?;
    let with_token = |token: &str| -> Result<Output> {
        let flag = format!("--token={token}");
        output_within(
            c.kubectl
                .command(&kubeconfig, &[flag.as_str(), "get", "--raw", "/api"]),
            COMMAND_TIMEOUT,
        )
    };
    let args = ["--token=…", "get", "--raw", "/api"];
    let output = with_token(token)?;
    let api = c.expect_success(&args, output)?;
    ensure!(api.contains(r#""kind":"APIVersions""#), "{api}");
    // Without credentials the same kubeconfig is anonymous, which /api refuses.
    let anonymous = output_within(
        c.kubectl.command(&kubeconfig, &["get", "--raw", "/api"]),
        COMMAND_TIMEOUT,
    )?;
    ensure!(
        !anonymous.status.success(),
        "an anonymous kubectl read /api: {}",
        String::from_utf8_lossy(&anonymous.stdout)
    );
    // A forged signature and plain garbage are both bad credentials.
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    for bad in [forged.as_str(), "garbage"] {
        let output = with_token(bad)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success() && stderr.contains("Unauthorized"),
            "a bad token was not refused with 401: {}{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    // Deleting the service account revokes its tokens.
    c.ok_prints(
        &["-n", ns, "delete", "serviceaccount", "robot"],
        r#"serviceaccount "robot" deleted"#,
    )?;
    let output = with_token(token)?;
    ensure!(
        !output.status.success()
            && String::from_utf8_lossy(&output.stderr).contains("Unauthorized"),
        "the token of a deleted service account still works"
    );
    Ok(())
}

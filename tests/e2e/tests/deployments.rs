//! Deployments end to end: `navarch server` + `navarch simulate` (three nodes, pods start in
//! 100 ms), driven by the real kubectl 1.33. One server serves every scenario in turn:
//! create and `rollout status`; `set image` with a watch on the ReplicaSets that checks the
//! maxSurge/maxUnavailable bounds after every event; `rollout history` and `rollout undo`
//! (the old ReplicaSet comes back, no new one); pause, change, resume; `rollout restart`;
//! scaling 10 → 50 → 5; a Recreate rollout that never overlaps old and new pods; a missed
//! progress deadline; and deletion: background, foreground, and `--cascade=orphan` followed
//! by a re-created Deployment that adopts the orphans.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use navarch_e2e::{navarch_bin, wait_for, Background, Kubectl, KubectlCluster, Server};
use serde_json::Value;

const NODES: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

navarch_e2e::kubectl_cluster!(Cluster);

impl Cluster {
    fn rollout_status(&self, deployment: &str) -> Result<String> {
        self.kubectl(&[
            "rollout",
            "status",
            &format!("deployment/{deployment}"),
            &format!("--timeout={}s", TIMEOUT.as_secs()),
        ])
    }

    /// The ReplicaSets selected by `app=<app>`, by name.
    fn replicasets(&self, app: &str) -> Result<BTreeMap<String, Value>> {
        let list = self.json(&["get", "rs", "-l", &format!("app={app}")])?;
        Ok(list["items"]
            .as_array()
            .context("items")?
            .iter()
            .map(|rs| {
                (
                    rs["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    rs.clone(),
                )
            })
            .collect())
    }

    /// Spawn a watch of the ReplicaSets of `app`: NAME DESIRED CURRENT AVAILABLE per line.
    fn watch_replicasets(&self, app: &str) -> Result<Background> {
        let command = self.kubectl.command(
            &self.server.kubeconfig(),
            &[
                "get",
                "rs",
                "-l",
                &format!("app={app}"),
                "--watch",
                "--no-headers",
                "-o",
                "custom-columns=NAME:.metadata.name,DESIRED:.spec.replicas,CURRENT:.status.replicas,AVAILABLE:.status.availableReplicas",
            ],
        );
        Background::spawn(command)
    }
}

fn simulate(server: &Server) -> Result<Background> {
    let data = server.data_dir();
    let token = std::fs::read_to_string(data.join("node-token"))?;
    let mut command = Command::new(navarch_bin());
    command
        .arg("simulate")
        .args(["--server", &format!("https://127.0.0.1:{}", server.port())])
        .args(["--ca-file", path(&data.join("tls/ca.crt"))])
        .args(["--nodes", &NODES.to_string()])
        .args(["--pod-startup", "100ms"])
        .env("NAVARCH_TOKEN", token.trim())
        .stdin(std::process::Stdio::null());
    Background::spawn(command)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// One watched ReplicaSet state: (desired, current, available).
type Sizes = (i64, i64, i64);

/// Replay watch lines into the latest state per ReplicaSet, one state per line. (Deleted
/// ReplicaSets would linger; none is deleted while these watches run.)
fn replay(lines: &[String]) -> Vec<BTreeMap<String, Sizes>> {
    let number = |s: &str| s.parse::<i64>().unwrap_or(0);
    let mut state = BTreeMap::new();
    let mut history = Vec::new();
    for line in lines {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 {
            continue;
        }
        state.insert(
            cols[0].to_string(),
            (number(cols[1]), number(cols[2]), number(cols[3])),
        );
        history.push(state.clone());
    }
    history
}

/// Read the watch until the replayed state satisfies `done`.
fn wait_for_state(
    watch: &mut Background,
    what: &str,
    done: impl Fn(&BTreeMap<String, Sizes>) -> bool,
) -> Result<()> {
    let state = std::cell::RefCell::new(BTreeMap::new());
    watch.wait_for_line(TIMEOUT, what, |line| {
        // Lines already read are offered again first, in order: replaying them is idempotent.
        if let Some(latest) = replay(&[line.to_string()]).pop() {
            state.borrow_mut().extend(latest);
        }
        done(&state.borrow())
    })?;
    Ok(())
}

#[test]
fn deployments_roll_out_roll_back_scale_and_go_away() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-deployments-")
        .tempdir()?;
    let server = Server::start(&dir.path().join("data"), &["--bind-address", "127.0.0.1"])?;
    let cluster = Cluster {
        kubectl: Kubectl::new("kubectl.1.33")?,
        server,
        _dir: dir,
    };
    let mut sim = simulate(&cluster.server)?;
    sim.wait_for_line(TIMEOUT, "the nodes to register", |l| {
        l.contains(&format!("{NODES} nodes ready"))
    })?;

    let result = (|| {
        create_and_roll_out(&cluster)?;
        rolling_update_stays_within_bounds(&cluster)?;
        history_and_undo(&cluster)?;
        pause_and_resume(&cluster)?;
        restart(&cluster)?;
        scale_up_and_down(&cluster)?;
        recreate_never_overlaps(&cluster)?;
        progress_deadline_exceeded(&cluster)?;
        deletion_cascades_or_orphans(&cluster)
    })();
    if result.is_err() {
        eprintln!("server stderr:\n{}", cluster.server.stderr());
    }
    result
}

fn create_and_roll_out(c: &Cluster) -> Result<()> {
    let out = c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=10",
    ])?;
    ensure!(out.contains("deployment.apps/web created"), "{out}");
    let out = c.rollout_status("web")?;
    ensure!(out.contains("successfully rolled out"), "{out}");

    let sets = c.replicasets("web")?;
    ensure!(sets.len() == 1, "{sets:?}");
    let (name, rs) = sets.iter().next().unwrap();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .context("pod-template-hash label")?;
    ensure!(*name == format!("web-{hash}"), "{name} vs {hash}");
    ensure!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash);
    ensure!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == hash);
    let owner = &rs["metadata"]["ownerReferences"][0];
    ensure!(
        owner["kind"] == "Deployment"
            && owner["name"] == "web"
            && owner["controller"] == true
            && owner["blockOwnerDeletion"] == true,
        "{owner}"
    );
    let annotations = &rs["metadata"]["annotations"];
    ensure!(
        annotations["deployment.kubernetes.io/revision"] == "1",
        "{annotations}"
    );
    ensure!(annotations["deployment.kubernetes.io/desired-replicas"] == "10");
    ensure!(annotations["deployment.kubernetes.io/max-replicas"] == "13");

    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1",
        "{}",
        d["metadata"]
    );
    let status = &d["status"];
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        ensure!(status[field] == 10, "{field}: {status}");
    }
    ensure!(
        status["observedGeneration"] == d["metadata"]["generation"],
        "{status}"
    );
    ensure!(condition(&d, "Available") == ("True".into(), "MinimumReplicasAvailable".into()));
    ensure!(condition(&d, "Progressing") == ("True".into(), "NewReplicaSetAvailable".into()));

    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Deployment,involvedObject.name=web",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])?;
    let expected = format!("ScalingReplicaSet: Scaled up replica set {name} from 0 to 10");
    ensure!(events.lines().any(|l| l == expected), "events: {events}");
    Ok(())
}

fn condition(d: &Value, type_: &str) -> (String, String) {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

fn rolling_update_stays_within_bounds(c: &Cluster) -> Result<()> {
    let mut watch = c.watch_replicasets("web")?;
    // The initial listing comes first.
    watch.wait_for_line(TIMEOUT, "the current ReplicaSet", |l| l.contains(" 10 "))?;
    c.kubectl(&["set", "image", "deployment/web", "busybox=nginx"])?;
    c.rollout_status("web")?;
    let sets = c.replicasets("web")?;
    ensure!(sets.len() == 2, "{:?}", sets.keys());
    let new = sets
        .iter()
        .find(|(_, rs)| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx")
        .map(|(n, _)| n.clone())
        .context("no nginx ReplicaSet")?;
    // Wait until the watch has seen the end state, then check every state on the way.
    wait_for_state(
        &mut watch,
        "the new ReplicaSet complete, the old one empty",
        |s| {
            s.get(&new) == Some(&(10, 10, 10))
                && s.iter().all(|(n, v)| *n == new || (v.0 == 0 && v.1 == 0))
        },
    )?;
    let history = replay(watch.lines());
    println!(
        "ReplicaSets during the rolling update:\n{}",
        watch.lines().join("\n")
    );
    ensure!(history.len() > 3, "too few events: {:?}", watch.lines());
    for state in &history {
        let desired: i64 = state.values().map(|s| s.0).sum();
        let available: i64 = state.values().map(|s| s.2).sum();
        // maxSurge 25% of 10 rounds up to 3, maxUnavailable 25% rounds down to 2.
        ensure!(desired <= 13, "more than 10 + 3 replicas: {state:?}");
        ensure!(available >= 8, "fewer than 10 - 2 available: {state:?}");
    }
    // The old ReplicaSet only ever shrinks, the new one only grows.
    for pair in history.windows(2) {
        for (name, now) in &pair[1] {
            let Some(before) = pair[0].get(name) else {
                continue;
            };
            ensure!(
                (*name == new && now.0 >= before.0) || (*name != new && now.0 <= before.0),
                "{name} went from {} to {} replicas",
                before.0,
                now.0
            );
        }
    }
    let last = history.last().unwrap();
    ensure!(last.get(&new) == Some(&(10, 10, 10)), "{last:?}");
    ensure!(last.values().filter(|s| s.0 == 0).count() == 1, "{last:?}");
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2");
    // Every pod left runs the new template; terminating old ones go.
    let hash = new.trim_start_matches("web-").to_string();
    wait_for(TIMEOUT, "only new pods", || {
        let pods = c.json(&["get", "pods", "-l", "app=web"]).ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 10
            && items
                .iter()
                .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str()))
        .then_some(())
    })?;
    let describe = c.kubectl(&["describe", "deployment", "web"])?;
    ensure!(
        describe.contains(&format!("NewReplicaSet:   {new} (10/10 replicas created)")),
        "{describe}"
    );
    ensure!(
        describe.contains(&format!("Scaled up replica set {new} from 0 to 3")),
        "{describe}"
    );
    Ok(())
}

fn history_and_undo(c: &Cluster) -> Result<()> {
    let history = c.kubectl(&["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    ensure!(revisions == ["1", "2"], "{history}");
    let first = c.kubectl(&["rollout", "history", "deployment/web", "--revision=1"])?;
    ensure!(first.contains("busybox"), "{first}");

    let before = c.replicasets("web")?;
    let out = c.kubectl(&["rollout", "undo", "deployment/web"])?;
    ensure!(out.contains("rolled back"), "{out}");
    c.rollout_status("web")?;
    let after = c.replicasets("web")?;
    ensure!(
        before.keys().collect::<Vec<_>>() == after.keys().collect::<Vec<_>>(),
        "undo created a ReplicaSet: {:?} -> {:?}",
        before.keys(),
        after.keys()
    );
    let (_, back) = after
        .iter()
        .find(|(_, rs)| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox")
        .context("busybox ReplicaSet")?;
    ensure!(back["spec"]["replicas"] == 10, "{}", back["spec"]);
    let annotations = &back["metadata"]["annotations"];
    ensure!(
        annotations["deployment.kubernetes.io/revision"] == "3",
        "{annotations}"
    );
    ensure!(
        annotations["deployment.kubernetes.io/revision-history"] == "1",
        "{annotations}"
    );
    let history = c.kubectl(&["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    ensure!(revisions == ["2", "3"], "{history}");
    Ok(())
}

fn pause_and_resume(c: &Cluster) -> Result<()> {
    c.kubectl(&["rollout", "pause", "deployment/web"])?;
    c.kubectl(&["set", "image", "deployment/web", "busybox=httpd"])?;
    // The controller has seen the change when it reports the new generation as paused.
    wait_for(TIMEOUT, "the paused condition", || {
        let d = c.json(&["get", "deployment", "web"]).ok()?;
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && condition(&d, "Progressing") == ("Unknown".into(), "DeploymentPaused".into()))
            .then_some(())
    })?;
    let sets = c.replicasets("web")?;
    ensure!(
        sets.len() == 2,
        "a paused Deployment rolled out: {:?}",
        sets.keys()
    );

    c.kubectl(&["rollout", "resume", "deployment/web"])?;
    c.rollout_status("web")?;
    let sets = c.replicasets("web")?;
    ensure!(sets.len() == 3, "{:?}", sets.keys());
    ensure!(
        sets.values().any(
            |rs| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "httpd"
                && rs["spec"]["replicas"] == 10
        ),
        "httpd did not roll out"
    );
    Ok(())
}

fn restart(c: &Cluster) -> Result<()> {
    let out = c.kubectl(&["rollout", "restart", "deployment/web"])?;
    ensure!(out.contains("restarted"), "{out}");
    c.rollout_status("web")?;
    let sets = c.replicasets("web")?;
    ensure!(sets.len() == 4, "{:?}", sets.keys());
    let restarted = sets
        .values()
        .find(|rs| rs["spec"]["replicas"] == 10)
        .context("no full ReplicaSet")?;
    ensure!(
        restarted["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{}",
        restarted["spec"]["template"]
    );
    Ok(())
}

fn scale_up_and_down(c: &Cluster) -> Result<()> {
    for n in [50, 5] {
        c.kubectl(&["scale", "deployment/web", &format!("--replicas={n}")])?;
        c.rollout_status("web")?;
        wait_for(TIMEOUT, &format!("{n} pods"), || {
            let d = c.json(&["get", "deployment", "web"]).ok()?;
            let s = &d["status"];
            (int(&s["replicas"]) == n
                && int(&s["readyReplicas"]) == n
                && int(&s["availableReplicas"]) == n)
                .then_some(())
        })?;
        let sets = c.replicasets("web")?;
        let sized: Vec<i64> = sets
            .values()
            .map(|rs| int(&rs["spec"]["replicas"]))
            .collect();
        ensure!(sized.iter().sum::<i64>() == n, "{sized:?}");
    }
    Ok(())
}

const BATCH: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: batch
spec:
  replicas: 3
  strategy:
    type: Recreate
  selector:
    matchLabels: {app: batch}
  template:
    metadata:
      labels: {app: batch}
    spec:
      containers:
      - name: app
        image: busybox
";

fn recreate_never_overlaps(c: &Cluster) -> Result<()> {
    c.apply(BATCH)?;
    c.rollout_status("batch")?;
    let old = c
        .replicasets("batch")?
        .keys()
        .next()
        .cloned()
        .context("no ReplicaSet")?;
    let mut watch = c.watch_replicasets("batch")?;
    watch.wait_for_line(TIMEOUT, "the current ReplicaSet", |l| l.contains(&old))?;
    c.kubectl(&["set", "image", "deployment/batch", "app=nginx"])?;
    c.rollout_status("batch")?;
    let sets = c.replicasets("batch")?;
    let new = sets
        .keys()
        .find(|n| **n != old)
        .cloned()
        .context("no new ReplicaSet")?;
    wait_for_state(&mut watch, "the new ReplicaSet complete", |s| {
        s.get(&new) == Some(&(3, 3, 3))
    })?;
    for state in replay(watch.lines()) {
        let Some(new_sizes) = state.get(&new) else {
            continue;
        };
        let old_sizes = state.get(&old).copied().unwrap_or_default();
        ensure!(
            new_sizes.0 == 0 || (old_sizes.0 == 0 && old_sizes.1 == 0),
            "new pods while old ones run: {state:?}"
        );
    }
    Ok(())
}

fn progress_deadline_exceeded(c: &Cluster) -> Result<()> {
    c.apply(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 2
  progressDeadlineSeconds: 2
  selector:
    matchLabels: {app: stuck}
  template:
    metadata:
      labels: {app: stuck}
      annotations:
        navarch.io/sim-probe-fail: app
    spec:
      containers:
      - name: app
        image: busybox
        readinessProbe:
          exec:
            command: [\"true\"]
          periodSeconds: 1
",
    )?;
    let out = c.kubectl.run(
        &c.server.kubeconfig(),
        &[
            "rollout",
            "status",
            "deployment/stuck",
            &format!("--timeout={}s", TIMEOUT.as_secs()),
        ],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "rollout status succeeded");
    ensure!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    let d = c.json(&["get", "deployment", "stuck"])?;
    ensure!(
        condition(&d, "Progressing") == ("False".into(), "ProgressDeadlineExceeded".into()),
        "{}",
        d["status"]
    );
    ensure!(
        condition(&d, "Available").1 == "MinimumReplicasUnavailable",
        "{}",
        d["status"]
    );
    // Foreground: kubectl waits until the ReplicaSet and its pods are gone first.
    c.kubectl(&[
        "delete",
        "deployment",
        "stuck",
        "--cascade=foreground",
        "--timeout=30s",
    ])?;
    let left = c.kubectl(&["get", "rs,pods", "-l", "app=stuck", "-o", "name"])?;
    ensure!(left.trim().is_empty(), "left behind: {left}");
    Ok(())
}

fn deletion_cascades_or_orphans(c: &Cluster) -> Result<()> {
    let out = c.kubectl(&["delete", "deployment", "web", "--timeout=30s"])?;
    ensure!(out.contains("deleted"), "{out}");
    wait_for(TIMEOUT, "web's ReplicaSets and pods to go", || {
        let sets = c
            .kubectl(&["get", "rs", "-l", "app=web", "-o", "name"])
            .ok()?;
        let pods = c
            .kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
            .ok()?;
        (sets.trim().is_empty() && pods.trim().is_empty()).then_some(())
    })?;

    let pods_before = c.kubectl(&["get", "pods", "-l", "app=batch", "-o", "name"])?;
    ensure!(pods_before.lines().count() == 3, "{pods_before}");
    c.kubectl(&[
        "delete",
        "deployment",
        "batch",
        "--cascade=orphan",
        "--timeout=30s",
    ])?;
    let gone = c
        .kubectl
        .run(&c.server.kubeconfig(), &["get", "deployment", "batch"])?;
    ensure!(!gone.status.success(), "the Deployment is still there");
    let sets = c.replicasets("batch")?;
    ensure!(!sets.is_empty(), "the ReplicaSets went with the Deployment");
    for (name, rs) in &sets {
        if rs["metadata"]["ownerReferences"].is_array() {
            bail!("{name} still has an owner: {}", rs["metadata"]);
        }
    }
    let pods_after = c.kubectl(&["get", "pods", "-l", "app=batch", "-o", "name"])?;
    ensure!(pods_after == pods_before, "{pods_before} -> {pods_after}");

    // The same Deployment again adopts the orphans: no new ReplicaSet, the same pods.
    c.apply(&BATCH.replace("image: busybox", "image: nginx"))?;
    c.rollout_status("batch")?;
    let uid = c.json(&["get", "deployment", "batch"])?["metadata"]["uid"].clone();
    wait_for(TIMEOUT, "the orphans to be adopted", || {
        let now = c.replicasets("batch").ok()?;
        (now.keys().eq(sets.keys())
            && now.values().all(|rs| {
                let owner = &rs["metadata"]["ownerReferences"][0];
                owner["uid"] == uid && owner["controller"] == true
            }))
        .then_some(())
    })?;
    let pods_adopted = c.kubectl(&["get", "pods", "-l", "app=batch", "-o", "name"])?;
    ensure!(
        pods_adopted == pods_before,
        "{pods_before} -> {pods_adopted}"
    );
    Ok(())
}

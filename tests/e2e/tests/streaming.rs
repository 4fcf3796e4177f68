//! `kubectl logs`, `exec`, `attach`, `port-forward` and `cp` against `navarch up` on real
//! containers, with kubectl 1.27 (SPDY everywhere), 1.30 (WebSocket exec, SPDY port-forward)
//! and 1.33 (WebSocket exec, SPDY tunnelled in a WebSocket for port-forward): kubectl → API
//! server → the agent's streaming server → containerd.
//!
//! Needs root, containerd, runc, the CNI plugins, busybox-static and `script` (bsdutils).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use navarch_e2e::up::{UpCluster, BUSYBOX};
use navarch_e2e::{free_port, output_within, wait_for, Background, Kubectl};

const BOUND: Duration = Duration::from_secs(60);
const VERSIONS: &[&str] = &["kubectl.1.27", "kubectl.1.30", "kubectl.1.33"];

fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: logger}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo to-stderr >&2; i=0; while true; do echo "line-$i"; i=$((i+1)); sleep 0.2; done']
  - name: side
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo side-hello; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo crash-run; sleep 1; exit 1']
---
apiVersion: v1
kind: Pod
metadata: {{name: echoer}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [cat]
    stdin: true
---
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'httpd -p 8081 -h /var/www && exec httpd -f -p 8080 -h /var/www']
"#
    )
}

fn http_get(port: u16) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

/// Run kubectl with `stdin` written to it and closed; killed (by its pid) if it does not
/// finish within the bound.
fn with_stdin(
    kubectl: &Kubectl,
    kubeconfig: &Path,
    args: &[&str],
    stdin: &[u8],
) -> Result<std::process::Output> {
    let stdout = tempfile::tempfile()?;
    let stderr = tempfile::tempfile()?;
    let mut child = kubectl
        .command(kubeconfig, args)
        .stdin(Stdio::piped())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .spawn()?;
    let mut input = child.stdin.take().context("stdin is piped")?;
    input.write_all(stdin)?;
    drop(input);
    let status = match wait_for(BOUND, "kubectl to exit", || child.try_wait().ok().flatten()) {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let read = |mut file: std::fs::File| -> Result<Vec<u8>> {
        use std::io::Seek;
        let mut bytes = Vec::new();
        file.seek(std::io::SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    Ok(std::process::Output {
        status,
        stdout: read(stdout)?,
        stderr: read(stderr)?,
    })
}

fn logs_checks(kubectl: &Kubectl, kubeconfig: &Path) -> Result<()> {
    let get = |args: &[&str]| kubectl.stdout(kubeconfig, args);
    let plain = get(&["logs", "logger", "-c", "main"])?;
    ensure!(plain.lines().any(|l| l == "line-0"), "logs: {plain:?}");
    ensure!(
        plain.contains("to-stderr"),
        "stderr is in the log: {plain:?}"
    );
    let tail = get(&["logs", "logger", "-c", "main", "--tail", "2"])?;
    ensure!(
        tail.lines().count() == 2 && tail.lines().all(|l| l.starts_with("line-")),
        "--tail 2: {tail:?}"
    );
    let stamped = get(&[
        "logs",
        "logger",
        "-c",
        "main",
        "--tail",
        "1",
        "--timestamps",
    ])?;
    ensure!(
        stamped.starts_with("20") && stamped.contains("Z line-"),
        "--timestamps: {stamped:?}"
    );
    // -f sees lines written after it started.
    let last: u64 = plain
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .max()
        .context("no line-N")?;
    let mut follow =
        Background::spawn(kubectl.command(kubeconfig, &["logs", "-f", "logger", "-c", "main"]))?;
    follow.wait_for_line(BOUND, "a new line through logs -f", |l| {
        l.strip_prefix("line-")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > last + 2)
    })?;
    drop(follow);
    let all = get(&["logs", "logger", "--all-containers"])?;
    ensure!(
        all.contains("side-hello") && all.contains("line-0"),
        "--all-containers: {all:?}"
    );
    let side = get(&["logs", "logger", "-c", "side"])?;
    ensure!(side == "side-hello\n", "-c side: {side:?}");
    let previous = get(&["logs", "crasher", "--previous"])?;
    ensure!(previous == "crash-run\n", "--previous: {previous:?}");
    let limited = get(&["logs", "logger", "-c", "main", "--limit-bytes", "5"])?;
    ensure!(
        limited.len() == 5 && plain.starts_with(&limited),
        "--limit-bytes 5: {limited:?}"
    );
    let recent = get(&["logs", "logger", "-c", "main", "--since", "1h"])?;
    ensure!(recent.contains("line-0"), "--since 1h: {recent:?}");
    let missing = kubectl.run(kubeconfig, &["exec", "nosuchpod", "--", "true"])?;
    ensure!(
        !missing.status.success()
            && String::from_utf8_lossy(&missing.stderr).contains("pods \"nosuchpod\" not found"),
        "exec into a missing pod: {missing:?}"
    );
    let bad = kubectl.run(kubeconfig, &["logs", "logger", "-c", "nope"])?;
    ensure!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr).contains("container nope is not valid"),
        "bad container: {bad:?}"
    );
    Ok(())
}

fn exec_checks(name: &str, kubectl: &Kubectl, kubeconfig: &Path) -> Result<()> {
    let out = kubectl.run(
        kubeconfig,
        &[
            "exec",
            "logger",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(3)
            && out.stdout == b"out\n"
            && stderr.contains("err")
            && stderr.contains("command terminated with exit code 3"),
        "exec exit 3: {out:?}"
    );
    // kubectl ≥ 1.30 speaks WebSocket v5 (a GET); 1.27 SPDY (a POST).
    let switched = upgraded_requests(
        kubectl,
        kubeconfig,
        "exec",
        &["exec", "logger", "-c", "main", "--", "true"],
    )?;
    // `GET https://…` up to 1.30, `verb="GET"` after.
    let method = if name == "kubectl.1.27" {
        "POST"
    } else {
        "GET"
    };
    ensure!(
        switched.iter().all(|l| l.contains(method)),
        "{name} exec transport: {switched:?}"
    );
    let ok = kubectl.stdout(
        kubeconfig,
        &["exec", "logger", "-c", "main", "--", "echo", "hi"],
    )?;
    ensure!(ok == "hi\n", "exec echo: {ok:?}");

    // -i: stdin to its end.
    let out = with_stdin(
        kubectl,
        kubeconfig,
        &[
            "exec",
            "-i",
            "logger",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"hello stdin\n",
    )?;
    ensure!(
        out.status.success() && out.stdout == b"hello stdin\ndone\n",
        "exec -i: {out:?}"
    );

    // -it under a pseudo-terminal (`script` gives kubectl one).
    let binary = kubectl.command(kubeconfig, &[]).get_program().to_owned();
    let mut inner = format!("{}", binary.to_string_lossy());
    for arg in kubectl.command(kubeconfig, &[]).get_args() {
        inner.push_str(&format!(" '{}'", arg.to_string_lossy()));
    }
    inner.push_str(" exec -it logger -c main -- sh -c 'tty; echo tty-ok; exit 4'");
    let mut script = Command::new("script");
    script.args(["-qec", &inner, "/dev/null"]);
    for (key, value) in kubectl.command(kubeconfig, &[]).get_envs() {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    script.stdin(Stdio::piped());
    let out = output_within(script, BOUND)?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("/dev/pts/") && text.contains("tty-ok") && out.status.code() == Some(4),
        "{name} exec -it: {out:?}"
    );
    Ok(())
}

/// The kubectl log lines (`-v=6`) of requests to `subresource` that were switched to
/// another protocol: the method shows the transport (GET: WebSocket, POST: SPDY).
fn upgraded_requests(
    kubectl: &Kubectl,
    kubeconfig: &Path,
    subresource: &str,
    args: &[&str],
) -> Result<Vec<String>> {
    let mut all = vec!["-v=6"];
    all.extend_from_slice(args);
    let out = kubectl.run(kubeconfig, &all)?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<String> = log
        .lines()
        .filter(|l| l.contains(&format!("/{subresource}")) && l.contains("101 Switching Protocols"))
        .map(str::to_string)
        .collect();
    ensure!(
        !lines.is_empty(),
        "no switched {subresource} request in {log}"
    );
    Ok(lines)
}

fn attach_check(kubectl: &Kubectl, kubeconfig: &Path, tag: &str) -> Result<()> {
    let mut attach =
        Background::spawn(kubectl.command(kubeconfig, &["attach", "logger", "-c", "main"]))?;
    attach.wait_for_line(BOUND, "output through attach", |l| l.starts_with("line-"))?;
    drop(attach);
    // -i: what goes in comes back from `cat`, which keeps running for the next attach. The
    // attach ends when its stdin does, so stdin stays open until the echo is back.
    let (reader, writer) = rustix::pipe::pipe()?;
    let mut command = kubectl.command(kubeconfig, &["attach", "-i", "echoer"]);
    command.stdin(Stdio::from(reader));
    let mut echo = Background::spawn(command)?;
    let mut writer = std::fs::File::from(writer);
    writer.write_all(format!("hello from {tag}\n").as_bytes())?;
    echo.wait_for_line(BOUND, "stdin echoed through attach -i", |l| {
        l == format!("hello from {tag}")
    })?;
    drop(writer);
    Ok(())
}

fn port_forward_check(name: &str, kubectl: &Kubectl, kubeconfig: &Path) -> Result<()> {
    let (a, b) = (free_port(), free_port());
    let mut forward = Background::spawn(kubectl.command(
        kubeconfig,
        &[
            "-v=6",
            "port-forward",
            "pod/web",
            &format!("{a}:8080"),
            &format!("{b}:8081"),
        ],
    ))?;
    for port in [a, b] {
        forward.wait_for_line(BOUND, "port-forward to listen", |l| {
            l.contains(&format!("127.0.0.1:{port} ->"))
        })?;
    }
    // Two ports, two requests at once on each.
    let pages: Vec<Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = [a, a, b, b]
            .into_iter()
            .map(|port| s.spawn(move || http_get(port)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for page in pages {
        let page = page?;
        ensure!(
            page.contains("navarch test image"),
            "through port-forward: {page:?}"
        );
    }
    // Up to 1.30 SPDY (a POST); from 1.31 SPDY tunnelled in a WebSocket (a GET).
    let log = forward.stderr();
    let switched: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/portforward") && l.contains("101 Switching Protocols"))
        .collect();
    let method = if name == "kubectl.1.33" {
        "GET"
    } else {
        "POST"
    };
    ensure!(
        !switched.is_empty() && switched.iter().all(|l| l.contains(method)),
        "{name} port-forward transport: {switched:?}"
    );
    drop(forward);

    // Nothing listens on 9999: the connection closes and the error stream says why.
    let port = free_port();
    let mut refused = Background::spawn(kubectl.command(
        kubeconfig,
        &["port-forward", "pod/web", &format!("{port}:9999")],
    ))?;
    refused.wait_for_line(BOUND, "port-forward to listen", |l| {
        l.contains(&format!("127.0.0.1:{port} ->"))
    })?;
    let answer = http_get(port).unwrap_or_default();
    ensure!(answer.is_empty(), "an answer from nowhere: {answer:?}");
    wait_for(BOUND, "the forwarding error", || {
        let stderr = refused.stderr();
        (stderr.contains("error forwarding port 9999")
            || stderr.contains("9999: connect: connection refused"))
        .then_some(())
    })
    .with_context(|| format!("{name} port-forward stderr: {}", refused.stderr()))?;
    Ok(())
}

fn cp_check(kubectl: &Kubectl, kubeconfig: &Path, dir: &Path, tag: &str) -> Result<()> {
    let local = dir.join(format!("in-{tag}.txt"));
    let content = format!("copied by {tag}\n").repeat(1000);
    std::fs::write(&local, &content)?;
    let remote = format!("default/logger:/tmp/cp-{tag}.txt");
    kubectl.stdout(
        kubeconfig,
        &["cp", &local.to_string_lossy(), &remote, "-c", "main"],
    )?;
    let inside = kubectl.stdout(
        kubeconfig,
        &[
            "exec",
            "logger",
            "-c",
            "main",
            "--",
            "cat",
            &format!("/tmp/cp-{tag}.txt"),
        ],
    )?;
    ensure!(inside == content, "cp in: {} bytes inside", inside.len());
    let back = dir.join(format!("out-{tag}.txt"));
    kubectl.stdout(
        kubeconfig,
        &["cp", &remote, &back.to_string_lossy(), "-c", "main"],
    )?;
    ensure!(std::fs::read_to_string(&back)? == content, "cp out differs");
    Ok(())
}

#[test]
fn logs_exec_attach_port_forward_and_cp_work_with_kubectl_1_27_1_30_and_1_33() -> Result<()> {
    let kubectls = VERSIONS
        .iter()
        .map(|v| Kubectl::new(v))
        .collect::<Result<Vec<_>>>()?;
    let cluster = UpCluster::start_with("nve2estream", &["--crashloop-backoff-initial", "1s"])?;
    let kubeconfig = cluster.kubeconfig();
    cluster.import_busybox()?;
    let manifest_path = cluster.data_dir().with_extension("yaml");
    std::fs::write(&manifest_path, manifest())?;
    let get = |args: &[&str]| kubectls[2].stdout(&kubeconfig, args);
    get(&["apply", "-f", &manifest_path.to_string_lossy()])?;
    wait_for(BOUND, "the pods to run", || {
        let phases = get(&[
            "get",
            "pods",
            "logger",
            "web",
            "echoer",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ])
        .ok()?;
        (phases == "Running Running Running").then_some(())
    })?;
    wait_for(BOUND, "the crasher to restart", || {
        let restarts = get(&[
            "get",
            "pod",
            "crasher",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ])
        .ok()?;
        (restarts.parse::<u32>().ok()? >= 1).then_some(())
    })?;
    // httpd is up once the pod answers through the API server's proxy path too.
    let dir = tempfile::tempdir()?;
    for (name, kubectl) in VERSIONS.iter().zip(&kubectls) {
        let started = std::time::Instant::now();
        logs_checks(kubectl, &kubeconfig).with_context(|| format!("{name} logs"))?;
        exec_checks(name, kubectl, &kubeconfig).with_context(|| format!("{name} exec"))?;
        attach_check(kubectl, &kubeconfig, name).with_context(|| format!("{name} attach"))?;
        port_forward_check(name, kubectl, &kubeconfig)
            .with_context(|| format!("{name} port-forward"))?;
        cp_check(kubectl, &kubeconfig, dir.path(), name).with_context(|| format!("{name} cp"))?;
        eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

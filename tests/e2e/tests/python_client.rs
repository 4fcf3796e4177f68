//! The official Kubernetes Python client against `navarch server`: CRUD on ConfigMaps and a
//! Deployment, paginated lists at one resourceVersion, and a watch resumed after the server
//! closed it. The checks are in `tests/e2e/python/client_test.py`; this test starts the server
//! and runs the script with the client that `make python-deps` installs in `target/pyenv`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_e2e::{wait_for, Server};

/// The script's checks take a few seconds; the bound is for a hung client.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's interpreter (`$NAVARCH_PYTHON` overrides it).
fn python() -> Result<PathBuf> {
    let python = std::env::var_os("NAVARCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pyenv/bin/python"));
    if !python.is_file() {
        bail!(
            "{} does not exist: run `make python-deps` (which `make test` does) to install the \
             Kubernetes Python client in a venv",
            python.display()
        );
    }
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !probe.status.success() {
        bail!(
            "{} cannot import kubernetes: run `make python-deps`: {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr)
        );
    }
    Ok(python)
}

#[test]
fn official_python_client_does_crud_pagination_and_resumed_watches() -> Result<()> {
    let python = python()?;
    let root = tempfile::tempdir()?;
    // The API as clients see it: no controller writes the same objects (a Deployment
    // controller would race the resourceVersion checks these tests make).
    let server = Server::start(
        &root.path().join("data"),
        &["--disable-controllers", "--disable-scheduler"],
    )?;

    let out = root.path().join("python.out");
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/e2e/python/client_test.py"))
        .arg(server.kubeconfig())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(root.path().join("python.err"))?)
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let status = wait_for(SCRIPT_TIMEOUT, "the Python client script", || {
        child.try_wait().ok().flatten()
    });
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(root.path().join("python.err")).unwrap_or_default();
    println!("{stdout}");
    let status = status.with_context(|| format!("{stdout}\n{stderr}"))?;
    assert!(
        status.success(),
        "client_test.py exited with {status}\n{stdout}\n{stderr}\nserver stderr:\n{}",
        server.stderr()
    );
    assert!(
        stdout.contains("checks passed") && !stdout.contains("FAIL"),
        "{stdout}"
    );
    Ok(())
}

//! Test helpers (feature `test-util`): a throwaway single-member etcd on loopback.
//!
//! [`EtcdServer::start`] runs `/usr/bin/etcd` (or `$NAVARCH_ETCD_BIN`, or `etcd` on `PATH`) with
//! its data directory and log file in a fresh temporary directory and its client and peer URLs
//! on free loopback ports, and returns once its `/health` endpoint answers. Dropping the server
//! kills the process by PID, reaps it and removes the directory. Nothing listens beyond
//! 127.0.0.1.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for a freshly started etcd to report healthy.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports when another process grabs a port between probe and bind.
const START_ATTEMPTS: usize = 5;

/// A running etcd that lives as long as this value.
pub struct EtcdServer {
    child: Child,
    client_port: u16,
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Start a single-member etcd on free loopback ports and wait until it is healthy.
    pub fn start() -> io::Result<EtcdServer> {
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start() {
                Ok(server) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("etcd did not start")))
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The process id of the etcd process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the data directory and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn try_start() -> io::Result<EtcdServer> {
        let dir = tempfile::Builder::new().prefix("navarch-etcd-").tempdir()?;
        let (client_port, peer_port) = free_port_pair()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(etcd_binary())
            .arg("--name=navarch-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=navarch-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=navarch-test")
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        // From here on, Drop cleans up on every error path.
        let mut server = EtcdServer {
            child,
            client_port,
            dir,
        };
        server.wait_healthy(&log_path)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, log_path: &Path) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "etcd exited during startup ({status}): {}",
                    log_tail(log_path)
                )));
            }
            if is_healthy(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd not healthy after {STARTUP_TIMEOUT:?}: {}",
                        log_tail(log_path)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this PID only; `wait` reaps it so the data directory
        // is no longer in use when the TempDir is removed after this.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NAVARCH_ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let system = PathBuf::from("/usr/bin/etcd");
    if system.exists() {
        system
    } else {
        PathBuf::from("etcd")
    }
}

/// Two distinct free loopback ports. Both listeners are held until both ports are known, so
/// the pair differs; the ports may still be taken by someone else before etcd binds them, which
/// `start` handles by retrying.
fn free_port_pair() -> io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// `GET /health` answered with `"health":"true"`.
fn is_healthy(addr: SocketAddr) -> bool {
    let probe = || -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    match probe() {
        Ok(response) => response.starts_with("HTTP/1.") && response.contains(r#""health":"true""#),
        Err(_) => false,
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_server_starts_healthy_and_is_cleaned_up_on_drop() {
        let server = EtcdServer::start().expect("start etcd");
        let endpoint = server.endpoint();
        assert!(endpoint.starts_with("http://127.0.0.1:"));
        let dir = server.dir().to_path_buf();
        let addr: SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
        assert!(is_healthy(addr));
        drop(server);
        assert!(!dir.exists(), "temp dir removed");
        assert!(!is_healthy(addr), "process gone");
    }
}

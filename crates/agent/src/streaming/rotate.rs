//! Container log rotation by size, as the kubelet does it: a running container's log file
//! that has grown past [`Rotation::max_size`] is renamed to `N.log.<UTC time>`, the runtime
//! is asked to reopen its log (CRI `ReopenContainerLog`, which creates `N.log` anew), and
//! only the newest `max_files - 1` rotated files are kept beside the live one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backend::CriBackend;

/// When and how far logs are rotated.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub max_size: u64,
    /// Files per container attempt, the live one included (at least 2).
    pub max_files: usize,
    pub interval: Duration,
}

impl Default for Rotation {
    /// The kubelet's defaults: 10 MiB, 5 files, checked every 10 s.
    fn default() -> Self {
        Rotation {
            max_size: 10 << 20,
            max_files: 5,
            interval: Duration::from_secs(10),
        }
    }
}

/// The rotated files of `live` (`N.log.*` beside it), oldest first.
pub fn rotated_files(live: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (live.parent(), live.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect();
    // The suffix is a sortable UTC time.
    files.sort();
    files
}

/// The name a live log is rotated to at `now`.
pub fn rotated_name(live: &Path, now: jiff::Timestamp) -> PathBuf {
    let stamp = now.strftime("%Y%m%d-%H%M%S%.f").to_string();
    let mut name = live.as_os_str().to_os_string();
    name.push(format!(".{stamp}"));
    PathBuf::from(name)
}

/// Rotate `live` if it is too large: rename, reopen (through `reopen`), prune. Returns whether
/// it rotated.
pub async fn rotate_one<F, Fut>(
    live: &Path,
    rotation: &Rotation,
    reopen: F,
) -> std::io::Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let size = match tokio::fs::metadata(live).await {
        Ok(meta) => meta.len(),
        Err(_) => return Ok(false),
    };
    if size <= rotation.max_size {
        return Ok(false);
    }
    let target = rotated_name(live, jiff::Timestamp::now());
    tokio::fs::rename(live, &target).await?;
    if !reopen().await {
        // The runtime keeps writing to the renamed file: put it back and try again later.
        tokio::fs::rename(&target, live).await?;
        return Ok(false);
    }
    let rotated = rotated_files(live);
    let keep = rotation.max_files.max(2) - 1;
    if rotated.len() > keep {
        for old in &rotated[..rotated.len() - keep] {
            let _ = tokio::fs::remove_file(old).await;
        }
    }
    Ok(true)
}

/// Rotate the logs of `backend`'s running containers every `rotation.interval` until
/// `shutdown`.
pub async fn run(backend: CriBackend, rotation: Rotation, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(rotation.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(logs) = backend.container_logs().await else {
            continue;
        };
        for (container_id, path) in logs {
            let backend = backend.clone();
            let id = container_id.clone();
            let reopen = || async move { backend.reopen_log(&id).await.is_ok() };
            match rotate_one(&path, &rotation, reopen).await {
                Ok(true) => tracing::debug!(path = %path.display(), "rotated container log"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot rotate container log")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_logs_rotate_and_only_the_newest_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 10,
            max_files: 3,
            interval: Duration::from_secs(1),
        };
        for (i, old) in ["20260101-000000", "20260101-000001", "20260101-000002"]
            .iter()
            .enumerate()
        {
            std::fs::write(dir.path().join(format!("0.log.{old}")), i.to_string()).unwrap();
        }
        std::fs::write(&live, "small").unwrap();
        assert!(!rotate_one(&live, &rotation, || async { true })
            .await
            .unwrap());

        std::fs::write(&live, "more than ten bytes").unwrap();
        let reopened = std::sync::atomic::AtomicBool::new(false);
        let rotated = rotate_one(&live, &rotation, || async {
            // The runtime creates the live file anew.
            std::fs::write(&live, "").unwrap();
            reopened.store(true, std::sync::atomic::Ordering::SeqCst);
            true
        })
        .await
        .unwrap();
        assert!(rotated && reopened.into_inner());
        let kept = rotated_files(&live);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0].to_string_lossy().ends_with("20260101-000002"));
        assert_eq!(
            std::fs::read_to_string(&kept[1]).unwrap(),
            "more than ten bytes"
        );
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "");
    }

    #[tokio::test]
    async fn a_failed_reopen_puts_the_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("1.log");
        std::fs::write(&live, "more than ten bytes").unwrap();
        let rotation = Rotation {
            max_size: 10,
            ..Rotation::default()
        };
        assert!(!rotate_one(&live, &rotation, || async { false })
            .await
            .unwrap());
        assert_eq!(
            std::fs::read_to_string(&live).unwrap(),
            "more than ten bytes"
        );
        assert!(rotated_files(&live).is_empty());
    }
}

//! The data directory: created if missing, and checked to be a writable directory before
//! anything else starts, so that a bad `--data-dir` fails with one clear line.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Create `dir` if needed, check that it is a writable directory, and return its absolute
/// path.
pub fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            bail!("data dir {} is not a directory", dir.display())
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)
            .map_err(plain)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?,
        Err(e) => {
            return Err(plain(e))
                .with_context(|| format!("cannot access data dir {}", dir.display()))
        }
    }
    let probe = dir.join(format!(".navarch-write-test-{}", std::process::id()));
    fs::write(&probe, b"")
        .map_err(plain)
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    let _ = fs::remove_file(&probe);
    dir.canonicalize()
        .map_err(plain)
        .with_context(|| format!("cannot resolve data dir {}", dir.display()))
}

/// An I/O error without the `(os error N)` suffix, for one-line messages.
fn plain(e: io::Error) -> anyhow::Error {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    anyhow::anyhow!(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directories_are_created() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let got = prepare(&dir).unwrap();
        assert!(got.is_absolute() && got.is_dir());
        assert_eq!(
            fs::read_dir(&got).unwrap().count(),
            0,
            "the probe is removed"
        );
    }

    #[test]
    fn a_regular_file_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = prepare(&file).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("data dir {} is not a directory", file.display())
        );
    }

    #[test]
    fn a_path_below_a_file_cannot_be_created() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = format!("{:#}", prepare(&file.join("sub")).unwrap_err());
        assert!(err.starts_with("cannot "), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
}

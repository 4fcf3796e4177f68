//! Images without a registry: importing OCI or Docker archives into containerd's CRI
//! namespace, and the pause image the agent builds from its embedded pause program.
//!
//! Imports go through containerd's own client, `ctr` (from the containerd package), which
//! stores the content, names the image and unpacks it for the overlayfs snapshotter; the CRI
//! plugin sees images of the `k8s.io` namespace as soon as they are stored. Listing and
//! removing are CRI calls ([`crate::runtime::cri::list_images`], `remove_image`).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::config::{Layout, CRI_NAMESPACE};
use super::oci::{self, LayerFile, OciImage};
use crate::error::{Error, Result};

/// The pod sandbox image (`sandbox_image` in containerd's configuration).
pub const PAUSE_IMAGE: &str = "navarch.local/pause:1";

/// The static pause program, compiled by build.rs from `pause/pause.c`.
const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The pause image as an OCI archive.
pub fn pause_archive() -> Vec<u8> {
    oci::archive(&OciImage {
        reference: PAUSE_IMAGE.to_string(),
        entrypoint: vec!["/pause".to_string()],
        files: vec![LayerFile {
            path: "pause".to_string(),
            mode: 0o755,
            contents: PAUSE_BINARY.to_vec(),
        }],
    })
}

/// Write the pause image's archive under the data dir and import it. Importing an image that
/// is already there only re-checks its content.
pub async fn import_pause_image(layout: &Layout) -> Result<()> {
    let dir = layout.images_dir();
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    let path = dir.join("pause.tar");
    std::fs::write(&path, pause_archive()).map_err(|source| Error::Io {
        what: format!("cannot write {}", path.display()),
        source,
    })?;
    import_image(&layout.socket(), &path).await?;
    Ok(())
}

/// The `ctr` binary: beside `containerd` in its package.
fn ctr() -> PathBuf {
    super::node::find_program("ctr").unwrap_or_else(|| PathBuf::from("ctr"))
}

/// Import an OCI or Docker image archive through containerd at `socket`; returns the names
/// of the images it held.
pub async fn import_image(socket: &Path, archive: &Path) -> Result<Vec<String>> {
    let output = Command::new(ctr())
        .arg("--address")
        .arg(socket)
        .args(["--namespace", CRI_NAMESPACE, "images", "import"])
        .arg(archive)
        .output()
        .await
        .map_err(|e| Error::Command {
            command: "ctr images import".to_string(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command: format!("ctr images import {}", archive.display()),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(imported_names(&String::from_utf8_lossy(&output.stdout)))
}

/// The image names in `ctr images import`'s output (`unpacking NAME (sha256:…)...done`).
fn imported_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("unpacking "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_output_names_the_images() {
        let out = "unpacking navarch.local/busybox:1 (sha256:0123)...done\n\
                   unpacking docker.io/library/a:latest (sha256:4567)...done\n";
        assert_eq!(
            imported_names(out),
            ["navarch.local/busybox:1", "docker.io/library/a:latest"]
        );
    }

    #[test]
    fn the_pause_image_carries_a_static_binary() {
        assert!(PAUSE_BINARY.starts_with(b"\x7fELF"));
        assert!(!pause_archive().is_empty());
    }
}

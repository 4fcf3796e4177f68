//! Writing a one-layer image as an OCI image-layout archive (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), the format `ctr images import` and `docker load` read. Used for the
//! pause image, which the agent builds itself because no registry is reachable.
//!
//! The archive is reproducible: fixed timestamps and owners, so the same files give the same
//! digests and a re-import is a no-op.

use std::io::Write;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::node::go_arch;

/// The annotation containerd's importer names images by.
const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for an image's name in a layout.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A regular file of the image's only layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// Path inside the image, without a leading `/`.
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// What to put in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    /// Full reference (`navarch.local/pause:1`).
    pub reference: String,
    pub entrypoint: Vec<String>,
    pub files: Vec<LayerFile>,
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn header(path: &str, mode: u32, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    // Paths here are short and ASCII; set_path only fails on longer ones.
    header
        .set_path(path)
        .expect("image paths fit a ustar header");
    header.set_cksum();
    header
}

fn append(builder: &mut tar::Builder<impl Write>, path: &str, mode: u32, bytes: &[u8]) {
    let header = header(path, mode, bytes.len() as u64, tar::EntryType::Regular);
    builder
        .append(&header, bytes)
        .expect("writing to memory does not fail");
}

fn layer(files: &[LayerFile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        append(&mut builder, &file.path, file.mode, &file.contents);
    }
    builder
        .into_inner()
        .expect("writing to memory does not fail")
}

/// The archive's bytes.
pub fn archive(image: &OciImage) -> Vec<u8> {
    let layer = layer(&image.files);
    let layer_digest = sha256(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": { "Entrypoint": image.entrypoint },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "navarch" }],
    }))
    .expect("JSON serialises");
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .expect("JSON serialises");
    let manifest_digest = sha256(&manifest);
    let tag = image
        .reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": go_arch(), "os": "linux" },
            "annotations": {
                CONTAINERD_IMAGE_NAME: image.reference,
                OCI_REF_NAME: tag,
            },
        }],
    }))
    .expect("JSON serialises");

    let mut builder = tar::Builder::new(Vec::new());
    append(
        &mut builder,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    append(&mut builder, "index.json", 0o644, &index);
    for dir in ["blobs/", "blobs/sha256/"] {
        let header = header(dir, 0o755, 0, tar::EntryType::Directory);
        builder
            .append(&header, std::io::empty())
            .expect("writing to memory does not fail");
    }
    for blob in [&layer, &config, &manifest] {
        let name = format!("blobs/sha256/{}", &sha256(blob)["sha256:".len()..]);
        append(&mut builder, &name, 0o644, blob);
    }
    builder
        .into_inner()
        .expect("writing to memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn entries(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            out.insert(path, contents);
        }
        out
    }

    fn image() -> OciImage {
        OciImage {
            reference: "navarch.local/pause:1".to_string(),
            entrypoint: vec!["/pause".to_string()],
            files: vec![LayerFile {
                path: "pause".to_string(),
                mode: 0o755,
                contents: b"binary".to_vec(),
            }],
        }
    }

    #[test]
    fn archives_are_reproducible_and_blobs_match_their_digests() {
        let bytes = archive(&image());
        assert_eq!(bytes, archive(&image()));
        let files = entries(&bytes);
        for (path, contents) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(sha256(contents), format!("sha256:{hex}"));
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let manifest = &index["manifests"][0];
        assert_eq!(
            manifest["annotations"][CONTAINERD_IMAGE_NAME],
            "navarch.local/pause:1"
        );
        assert_eq!(manifest["annotations"][OCI_REF_NAME], "1");
        let digest = manifest["digest"].as_str().unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{}", &digest[7..])]).unwrap();
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let layer = entries(&files[&format!("blobs/sha256/{}", &layer_digest[7..])]);
        assert_eq!(layer["pause"], b"binary");
    }
}

//! Compiles the pause program (`pause/pause.c`) into a static binary that the agent embeds
//! and ships as its pod sandbox image; no registry and no libc in the image.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-Wall", "-Werror", "-o"])
        .arg(out.join("pause"))
        .arg("pause/pause.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} to build the pause program: {e}"));
    assert!(
        status.success(),
        "{cc} failed to build the pause program (a C compiler and static libc are needed: build-essential)"
    );
}

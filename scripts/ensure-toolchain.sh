#!/usr/bin/env bash
# Install the Rust toolchain (rustup, stable, minimal profile) when `cargo` is missing, and with
# --nextest also cargo-nextest when `cargo nextest` is missing. Debian 12's own rustc is too old.
set -euo pipefail
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v cargo >/dev/null 2>&1; then
  echo "installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain stable
fi

if [ "${1:-}" = "--nextest" ] && ! cargo nextest --version >/dev/null 2>&1; then
  # From crates.io, which every machine of this project reaches.
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

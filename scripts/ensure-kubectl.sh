#!/usr/bin/env bash
# The end-to-end tests drive the real kubectl 1.33 (`kubectl.1.33` beside `kubectl`, as gcloud's
# kubectl dispatcher lays them out). When it is missing, download the official release binary,
# check its published SHA-256, install it as /usr/local/bin/kubectl.1.33, and link
# /usr/local/bin/kubectl to it if there is no kubectl at all.
set -euo pipefail
VERSION=v1.33.1

if command -v kubectl >/dev/null 2>&1; then
  dir="$(dirname "$(readlink -f "$(command -v kubectl)")")"
  [ -x "$dir/kubectl.1.33" ] && exit 0
fi
command -v kubectl.1.33 >/dev/null 2>&1 && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "kubectl.1.33 is missing (run as root to install it, or install it beside kubectl)" >&2
  exit 1
fi
arch="$(dpkg --print-architecture)"
url="https://dl.k8s.io/release/$VERSION/bin/linux/$arch/kubectl"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "installing kubectl $VERSION as /usr/local/bin/kubectl.1.33"
curl --proto '=https' --tlsv1.2 -fsSL -o "$tmp/kubectl" "$url"
echo "$(curl --proto '=https' --tlsv1.2 -fsSL "$url.sha256")  $tmp/kubectl" | sha256sum --check --quiet
install -m 0755 "$tmp/kubectl" /usr/local/bin/kubectl.1.33
if ! command -v kubectl >/dev/null 2>&1; then
  ln -s kubectl.1.33 /usr/local/bin/kubectl
fi

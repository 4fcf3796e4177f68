#!/usr/bin/env bash
# Build the test image `navarch.local/busybox:1` from Debian's busybox-static as an OCI
# image-layout archive (no registry needed): /bin/busybox with every applet linked beside it
# (sh, httpd, wget, nc, sleep, …), root and nobody in /etc/passwd, /tmp and /var/www.
#
#   scripts/build-test-image.sh [OUT.tar]     (default: target/images/busybox.tar)
#
# Import it with `navarch images import OUT.tar` or
# `ctr -a SOCKET -n k8s.io images import OUT.tar`. The archive is reproducible.
set -euo pipefail

out=${1:-target/images/busybox.tar}
ref=${IMAGE_REF:-navarch.local/busybox:1}
busybox=${BUSYBOX:-/bin/busybox}

if ! file_type=$(LC_ALL=C od -An -c -N4 "$busybox" 2>/dev/null) || [[ $file_type != *E*L*F* ]]; then
  echo "no busybox binary at $busybox (install busybox-static)" >&2
  exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is dynamically linked; the image needs busybox-static" >&2
  exit 1
fi

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
umask 022
mkdir -p -m 0755 "$root"/{bin,etc,proc,sys,dev,root,tmp,var/www} "$work/oci/blobs/sha256"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo 'navarch test image' >"$root/var/www/index.html"

blob() { # FILE -> moves it into blobs/, prints "DIGEST SIZE"
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$work/oci/blobs/sha256/$digest"
  echo "$digest $size"
}

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$root" -cf "$work/layer.tar" .
read -r layer_digest layer_size < <(blob "$work/layer.tar")

cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/build-test-image.sh"}]}
JSON
read -r config_digest config_size < <(blob "$work/config.json")

cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

cat >"$work/oci/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"platform":{"architecture":"$arch","os":"linux"},"annotations":{"io.containerd.image.name":"$ref","org.opencontainers.image.ref.name":"${ref##*:}"}}]}
JSON
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$work/oci" -cf "$out.partial" oci-layout index.json blobs
mv "$out.partial" "$out"
echo "$out ($ref)"

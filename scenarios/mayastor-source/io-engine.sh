#!/bin/bash
# The io-engine image from a Mayastor checkout: SPDK from $LAB_INPUT_SPDK
# (built once per content key by spdk.sh), io-engine built by cargo against
# it, and a FROM-scratch image of the binaries, the libraries they load and
# busybox. Runs in lab's isolated copy of the checkout, so the build's own
# writes never reach the user's tree; cargo's target folder is lab's cache
# ($CARGO_TARGET_DIR), so a one-line change rebuilds only what it touches.
# $1: the image reference to tag.
set -euo pipefail
image=${1:?usage: io-engine.sh IMAGE:TAG}
here=$(cd "$(dirname "$0")" && pwd)
: "${LAB_INPUT_SPDK:?the scenario gives the SPDK tree as the input spdk}"

prefix=$(bash "$here/spdk.sh" "$LAB_INPUT_SPDK")
export SPDK_ROOT_DIR=$prefix PKG_CONFIG_PATH=$prefix/lib/pkgconfig PROTOC=${PROTOC:-/usr/bin/protoc}
# The tree has no .git: version-info takes the version from these (unset, the
# binary panics at start). lab's tag names exactly what was built.
export GIT_VERSION=${GIT_VERSION:-${LAB_TAG:-unknown}} GIT_VERSION_LONG=${GIT_VERSION_LONG:-${LAB_TAG:-unknown}}
# A debug build without debug info: a fraction of the fat-LTO release's time.
export CARGO_PROFILE_DEV_DEBUG=0
# The checkout's own userspace NVMe-oF initiator rides along: it writes and
# reads a volume's blocks where a node's kernel has no nvme_tcp (kind, local).
echo "io-engine: cargo build (SPDK at $prefix, version $GIT_VERSION)"
cargo build --bin io-engine --bin initiator
built=${CARGO_TARGET_DIR:-target}/debug

out=$(mktemp -d "${TMPDIR:-/tmp}/lab-io-engine.XXXXXX")
trap 'rm -rf "$out"' EXIT
bash "$here/rootfs.sh" "$out/rootfs" "$built/io-engine" "$built/initiator"
cat > "$out/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin:/usr/bin
ENTRYPOINT ["/bin/io-engine"]
DOCKERFILE
docker build -q -t "$image" "$out"

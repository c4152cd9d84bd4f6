#!/bin/bash
# The control plane's images from a mayastor-control-plane checkout: the seven
# services built by cargo, each in a FROM-scratch image (PREFIX<service>:TAG)
# with the libraries it loads and busybox; csi-node also gets the mkfs and
# mount tools it runs. Runs in lab's isolated copy of the checkout: the
# openapi crate's build writes generated code into its tree, which must never
# be the user's. paperclip-ng (that generator) is installed once into lab's
# cache from the crate registry.
# Arguments: the image prefix (lab-local/mayastor-), the tag.
set -euo pipefail
prefix=${1:?usage: control-plane.sh IMAGE_PREFIX TAG}
tag=${2:?usage: control-plane.sh IMAGE_PREFIX TAG}
here=$(cd "$(dirname "$0")" && pwd)

tools=${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}/tools
if [ ! -x "$tools/bin/paperclip-ng" ]; then
  echo "control-plane: installing paperclip-ng 0.1.1 into $tools"
  cargo install --quiet --locked --root "$tools" paperclip-ng --version 0.1.1
fi
export PATH="$tools/bin:$PATH"

# A tree without .git (as upstream's tarballs are): the rpc crate's build
# would run `git submodule update` without this marker.
[ -e utils/dependencies/.git ] || touch utils/dependencies/.git
export GIT_VERSION=${GIT_VERSION:-$tag} GIT_VERSION_LONG=${GIT_VERSION_LONG:-$tag}
export WORKSPACE_ROOT=$PWD PROTOC=${PROTOC:-/usr/bin/protoc}
export CARGO_PROFILE_DEV_DEBUG=0
echo "control-plane: cargo build (version $GIT_VERSION)"
cargo build -p agents -p rest -p csi-driver -p k8s-operators \
  --bin core --bin rest --bin csi-controller --bin csi-node --bin operator-diskpool \
  --bin agent-ha-cluster --bin agent-ha-node
bin=${CARGO_TARGET_DIR:-target}/debug

out=$(mktemp -d "${TMPDIR:-/tmp}/lab-control-plane.XXXXXX")
trap 'rm -rf "$out"' EXIT
# service (its image's name after the prefix) -> binary, extra tools
image_of() {
  local name=$1 binary=$2
  shift 2
  local dir=$out/$name
  bash "$here/rootfs.sh" "$dir/rootfs" "$bin/$binary" "$@"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin:/usr/bin:/sbin:/usr/sbin\nENTRYPOINT ["/bin/%s"]\n' "$binary" > "$dir/Dockerfile"
  docker build -q -t "$prefix$name:$tag" "$dir" >/dev/null
  echo "control-plane: $prefix$name:$tag"
}
image_of agent-core core
image_of rest rest
image_of csi-controller csi-controller
image_of operator-diskpool operator-diskpool
image_of agent-ha-cluster agent-ha-cluster
image_of agent-ha-node agent-ha-node
# csi-node formats and mounts volumes with the node's tools.
tools_for_csi_node=()
for t in mkfs.xfs mkfs.ext4 xfs_growfs resize2fs blkid fsck.ext4 xfs_repair mount umount; do
  p=$(command -v "$t") || { echo "control-plane: $t is missing (xfsprogs, e2fsprogs, util-linux, mount)" >&2; exit 1; }
  tools_for_csi_node+=("$p")
done
image_of csi-node csi-node "${tools_for_csi_node[@]}"

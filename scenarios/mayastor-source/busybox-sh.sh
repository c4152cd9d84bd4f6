#!/bin/sh
# The small shell image the init containers wait with (upstream uses
# openebs/alpine-sh): Debian's busybox-static FROM scratch. $1: the image.
set -eu
image=${1:?usage: busybox-sh.sh IMAGE}
busybox=$(command -v busybox) || { echo "busybox-sh: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/lab-busybox-sh.XXXXXX")
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/rootfs/bin" "$out/rootfs/tmp"
cp "$busybox" "$out/rootfs/bin/busybox"
for applet in sh nc sleep date echo cat ls; do ln -s busybox "$out/rootfs/bin/$applet"; done
printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n' > "$out/Dockerfile"
docker build -q -t "$image" "$out" >/dev/null

#!/bin/bash
# A minimal root filesystem for FROM-scratch images: the given binaries in
# /bin, every shared library they load (as ldd resolves them on this host,
# which built them) at its own path, busybox-static as the shell and tools.
# Arguments: the rootfs folder to make, then the binaries.
set -euo pipefail
root=${1:?usage: rootfs.sh ROOTFS BINARY...}
shift
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
for binary in "$@"; do
  install -m 0755 "$binary" "$root/bin/$(basename "$binary")"
  strip --strip-unneeded "$root/bin/$(basename "$binary")" 2>/dev/null || true
  for lib in $(ldd "$binary" | awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(/ { print $1 }'); do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
done
busybox=$(command -v busybox) || { echo "rootfs: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
cp "$busybox" "$root/bin/busybox"
for applet in sh ls cat mount umount mkdir rm sleep grep ps kill env; do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"

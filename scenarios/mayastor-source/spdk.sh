#!/bin/bash
# Builds SPDK (with its bundled DPDK and ISA-L) as spdk-rs links it: static
# libraries, headers and pkg-config files in a prefix. Configured as
# upstream's spdk-rs build script does for x86_64, plus --without-fio
# (Debian's fio has no headers). Cached by the key of its inputs (the SPDK
# tree, this script), so io-engine rebuilds reuse it.
# Arguments: the SPDK tree (read only: it is built in a copy). Prints the prefix.
set -euo pipefail
tree=$(cd "${1:?usage: spdk.sh SPDK_TREE}" && pwd)
cache=${LAB_SPDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lab/spdk}
key=$( (cd "$tree" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; sha256sum <"$0") | sha256sum | cut -c1-16)
prefix=$cache/$key
if [ -f "$prefix/.done" ]; then
  echo "spdk: already built for $key" >&2
  echo "$prefix"
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/lab-spdk.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "spdk: building $key from $tree in $work" >&2
cp -a "$tree/." "$work/"
cd "$work"
./configure --without-shared --with-uring --without-uring-zns --without-nvme-cuse --without-fuse \
  --disable-unit-tests --disable-tests --with-rdma --target-arch=nehalem --without-crypto --without-fio >&2
make -j"$(nproc)" >&2

stage=$cache/.$key.partial
rm -rf "$stage"
mkdir -p "$stage/lib/pkgconfig" "$stage/include/spdk/lib" "$stage/include/spdk/module"
(cd include && find . -type f -name '*.h' -exec install -D -m 0644 {} "$stage/include/{}" \;)
# spdk-rs binds private headers of SPDK's libraries and bdev modules too.
(cd lib && find . -type f -name '*.h' -exec install -D -m 0644 {} "$stage/include/spdk/lib/{}" \;)
(cd module && find . -type f -name '*.h' -exec install -D -m 0644 {} "$stage/include/spdk/module/{}" \;)
install -m 0644 build/lib/*.a dpdk/build/lib/*.a isa-l/.libs/*.a isa-l-crypto/.libs/*.a "$stage/lib/"
install -m 0644 build/lib/pkgconfig/*.pc dpdk/build/lib/pkgconfig/*.pc isa-l/*.pc isa-l-crypto/*.pc "$stage/lib/pkgconfig/"
for pc in "$stage"/lib/pkgconfig/*.pc; do
  sed -i -e "s,$work/build/lib,$prefix/lib,g" -e "s,$work/dpdk/build,$prefix,g" \
    -e "s,$work/isa-l/.libs,$prefix/lib,g" -e "s,$work/isa-l-crypto/.libs,$prefix/lib,g" \
    -e "s,prefix=/usr/local,prefix=$prefix,g" "$pc"
done
touch "$stage/.done"
rm -rf "$prefix"
mv "$stage" "$prefix"
echo "spdk: built $key ($(du -sh "$prefix" | cut -f1))" >&2
echo "$prefix"

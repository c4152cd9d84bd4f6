#!/bin/sh
# The test loop devices a lab's scenarios recorded, one folder each: a device
# still backed by its own folder's file is unmounted (from its folder) and
# detached; a device now backed by anything else is left alone. Then the
# folders go.
# Usage: detach-test-devices.sh RECORD_FOLDER
dir=$1
for d in "$dir"/*/; do
  [ -f "$d/device" ] || continue
  dev=$(cat "$d/device")
  back=$(losetup -nO BACK-FILE "$dev" 2>/dev/null | sed 's/ *$//; s/ (deleted)$//')
  if [ "$back" = "${d}backing.img" ]; then
    grep -qs " ${d}mnt " /proc/self/mounts && umount "${d}mnt"
    losetup -d "$dev" && echo "detached $dev"
  fi
done
rm -rf "$dir"

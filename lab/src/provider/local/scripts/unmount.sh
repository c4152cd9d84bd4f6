#!/bin/sh
# Unmounts, deepest first, every mount at or under the folders given (lab's
# own: the kubelet's root is in its run folder); nothing outside them.
# Usage: unmount.sh FOLDER...
awk '{print $2}' /proc/self/mounts | sort -r | while read -r m; do
  for root in "$@"; do
    case $m in
      "$root" | "$root"/*)
        umount "$m" 2>/dev/null || umount -l "$m"
        break
        ;;
    esac
  done
done
true

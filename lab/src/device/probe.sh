#!/bin/sh
# What is on a path ($1) before lab writes to it, one fact a line; it only reads.
#   kind missing|file|block|sink|other   (sink: the null or zero device, 1:3 or 1:5)
#   id DEVICE INODE CHANGED  a regular file's identity and last change (lab's records of files it made)
#   mount WHERE            the device, or a partition of it, is mounted there
#   swap                   the device is swap in use
#   holder NAME            a device-mapper, md or other device sits on it (or on a partition)
#   blkid-status N         blkid's exit status (0 found, 2 nothing, 8 ambivalent), or `missing`
#   blkid KEY=VALUE        TYPE, PTTYPE and USAGE of what blkid found on it
p=$1
if [ ! -e "$p" ]; then
  echo "kind missing"
  exit 0
fi
if [ -f "$p" ]; then
  echo "kind file"
  echo "id $(stat -L -c '%d %i %z' "$p")"
  exit 0
fi
if [ -c "$p" ]; then
  case "$(stat -L -c '%t:%T' "$p")" in
    1:3 | 1:5) echo "kind sink" ;;
    *) echo "kind other" ;;
  esac
  exit 0
fi
if [ ! -b "$p" ]; then
  echo "kind other"
  exit 0
fi
echo "kind block"
real=$(readlink -f "$p")
# shellcheck disable=SC2046
set -- $(stat -L -c '%t %T' "$p")
dev="$((0x$1)):$((0x$2))"
mounted() { # major:minor, device path
  awk -v d="$1" -v r="$2" '{
      src = ""
      for (i = 7; i <= NF; i++) if ($i == "-") { src = $(i + 2); break }
      if ($3 == d || src == r) print "mount " $5
    }' /proc/self/mountinfo
}
holders() { # a /sys/dev/block folder
  for h in "$1"/holders/*; do
    [ -e "$h" ] && echo "holder ${h##*/}"
  done
}
mounted "$dev" "$real"
holders "/sys/dev/block/$dev"
awk -v r="$real" 'NR > 1 && $1 == r { print "swap" }' /proc/swaps
for part in /sys/dev/block/"$dev"/*/partition; do
  [ -e "$part" ] || continue
  folder=${part%/partition}
  mounted "$(cat "$folder/dev")" "/dev/${folder##*/}"
  holders "$folder"
done
if ! command -v blkid >/dev/null 2>&1; then
  echo "blkid-status missing"
  exit 0
fi
found=$(blkid -p -o export "$real" 2>/dev/null)
echo "blkid-status $?"
printf '%s\n' "$found" | sed -n 's/^\(TYPE\|PTTYPE\|USAGE\)=/blkid \1=/p'

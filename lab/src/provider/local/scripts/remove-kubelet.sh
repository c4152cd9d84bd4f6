#!/bin/sh
# lab's run folder (with the kubelet's root in it, unmounted before) and lab's
# cgroup in every hierarchy, deepest first; nothing else. Fails naming a
# cgroup that cannot be removed (a process is still in it).
# Usage: remove-kubelet.sh RUN_FOLDER LAB_CGROUP
run=$1 cgroup=$2
rm -rf --one-file-system "$run"
# The parent of every lab's run folder goes only when no other lab's is in it.
rmdir /run/lab 2>/dev/null
left=
for h in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -u); do
  [ -d "$h$cgroup" ] || continue
  find "$h$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$h$cgroup" ] && left="$left $h$cgroup"
done
[ -z "$left" ] || { echo "cannot remove lab's cgroup:$left" >&2; exit 1; }

#!/bin/sh
# The kubelet's root folder, and lab's cgroup with the cgroup of lab's
# processes inside it in every mounted hierarchy, made fresh: `mkdir` without
# `-p`, since one already there is not lab's to take. A new cpuset cgroup gets
# its parent's CPUs and memory nodes, as processes in it need them.
# Usage: make-cgroups.sh KUBELET_ROOT LAB_CGROUP PROCESSES_CGROUP
root=$1 cgroup=$2 processes=$3
mkdir -p "$root" || exit 1
for h in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -u); do
  for c in "$cgroup" "$processes"; do
    mkdir "$h$c" || exit 1
    if [ -f "$h$c/cpuset.cpus" ]; then
      parent=$h$(dirname "$c")
      cat "$parent/cpuset.cpus" > "$h$c/cpuset.cpus" || exit 1
      cat "$parent/cpuset.mems" > "$h$c/cpuset.mems" || exit 1
    fi
  done
done

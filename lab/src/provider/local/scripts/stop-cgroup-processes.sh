#!/bin/sh
# Kills every process still in lab's cgroup tree (a pod's, a shim of lab's
# containerd, a component whose pid file is gone) until none is left; fails
# naming each one that outlives 10 s. The tree is lab's own record of what it
# started, so nothing outside it is signalled.
# Usage: stop-cgroup-processes.sh LAB_CGROUP
cgroup=$1
lab_pids() {
  for h in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -u); do
    [ -d "$h$cgroup" ] && find "$h$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}
n=$(lab_pids | wc -l)
i=0
while p=$(lab_pids) && [ -n "$p" ] && [ "$i" -lt 50 ]; do
  # shellcheck disable=SC2086 # one pid a word
  kill -KILL $p 2>/dev/null
  sleep 0.2
  i=$((i + 1))
done
p=$(lab_pids)
if [ -n "$p" ]; then
  for x in $p; do
    echo "process $x ($(cat "/proc/$x/comm" 2>/dev/null)) still runs in lab's cgroup $cgroup" >&2
  done
  exit 1
fi
echo "$n process(es) stopped"

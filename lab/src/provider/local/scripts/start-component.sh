#!/bin/sh
# Starts one process of the local cluster in its own session, inside lab's
# processes cgroup in every mounted hierarchy (so what it starts, containerd's
# shims and the pods, stays in lab's tree whatever becomes of pid files), its
# output appended to its log. The pid file gets the pid and its start time at
# once; lab adds the executable when the process has exec'd its program.
# Usage: start-component.sh PROCESSES_CGROUP PID_FILE LOG_FILE PROGRAM [ARG...]
processes=$1 pid_file=$2 log=$3
shift 3
for h in $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -u); do
  echo $$ > "$h$processes/cgroup.procs" || exit 1
done
rm -f "$pid_file"
# shellcheck disable=SC2016 # the session's own shell expands these
setsid sh -c '
  pid_file=$1 log=$2
  shift 2
  "$@" >> "$log" 2>&1 < /dev/null &
  p=$!
  echo "$p $(sed "s/.*) //" "/proc/$p/stat" 2>/dev/null | cut -d" " -f20)" > "$pid_file"
  wait' start-component "$pid_file" "$log" "$@" > /dev/null 2>&1 < /dev/null &

#!/bin/sh
# Stops the process a pid file records: TERM, up to 10 s to go, then KILL.
# Only that process: pid, start time and executable must all match (an old
# pid file without a start time matches nothing). Nothing when it is not
# running; the pid file goes either way. A start time is /proc/PID/stat's
# field 22, counted after the command name's closing parenthesis (a name may
# hold spaces): the 20th field after it.
# Usage: stop-component.sh PID_FILE PROGRAM_NAME
pid_file=$1 program=$2
read -r p s e < "$pid_file" 2>/dev/null || exit 0
x=$(readlink "/proc/$p/exe" 2>/dev/null)
x=${x% (deleted)}
start=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f20)
if [ -n "$p" ] && [ -n "$s" ] && [ "$start" = "$s" ] \
  && { [ "$x" = "$e" ] || { [ -z "$e" ] && [ "${x##*/}" = "$program" ]; }; }; then
  kill -TERM "$p" 2>/dev/null
  i=0
  while [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && [ "$i" -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL "$p" 2>/dev/null
fi
rm -f "$pid_file"

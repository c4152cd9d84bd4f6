#!/bin/sh
# Kills and removes every task and container in lab's containerd, reached by
# its own socket alone: the system's containerd is never touched.
# Usage: remove-containers.sh CONTAINERD_SOCKET
socket=$1
[ -S "$socket" ] || exit 0
c() { ctr --address "$socket" -n k8s.io "$@"; }
for t in $(c tasks ls -q 2>/dev/null); do c tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1; done
sleep 1
for t in $(c tasks ls -q 2>/dev/null); do c tasks delete -f "$t" >/dev/null 2>&1; done
for k in $(c containers ls -q 2>/dev/null); do c containers delete "$k" >/dev/null 2>&1; done
true

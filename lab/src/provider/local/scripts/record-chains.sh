#!/bin/sh
# Records every iptables chain the host has now, `iptables|ip6tables TABLE
# CHAIN` a line, so `lab down` removes only the chains that appeared after.
# Usage: record-chains.sh RECORD_FILE
record=$1
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for t in filter nat mangle raw; do
    "$ipt" -w -t "$t" -S 2>/dev/null | awk -v i="$ipt" -v t="$t" '/^-N / {print i, t, $2}'
  done
done > "$record"

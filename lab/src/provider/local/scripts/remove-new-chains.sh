#!/bin/sh
# Removes the chains lab's kubelet and kube-proxy made: named `KUBE-…` and
# absent from the record taken before the kubelet started. The rules in other
# chains that jump to them go first, then the chains. A chain the host had
# before is never touched, nor one of another name (Docker's, CNI's, the
# user's). Without the record nothing is removed.
# Usage: remove-new-chains.sh RECORD_FILE
before=$1
[ -f "$before" ] || { echo "no record of the host's chains ($before): none removed"; exit 0; }
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for t in filter nat mangle raw; do
    new=$("$ipt" -w -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}' | while read -r c; do
      grep -qxF "$ipt $t $c" "$before" || echo "$c"
    done)
    [ -n "$new" ] || continue
    "$ipt" -w -t "$t" -S 2>/dev/null | grep '^-A ' | while read -r rule; do
      from=$(echo "$rule" | awk '{print $2}')
      to=$(echo "$rule" | sed -n 's/.* -j \([^ ]*\).*/\1/p')
      echo "$new" | grep -qxF -- "$from" && continue
      echo "$new" | grep -qxF -- "$to" || continue
      # eval: the rule's own quoting (a comment with spaces) must hold.
      eval "$ipt -w -t $t $(echo "$rule" | sed 's/^-A/-D/')"
    done
    for c in $new; do "$ipt" -w -t "$t" -F "$c"; done
    for c in $new; do "$ipt" -w -t "$t" -X "$c"; done
  done
done
true

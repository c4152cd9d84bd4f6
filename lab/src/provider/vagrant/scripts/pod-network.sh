#!/bin/sh
# The pod network on the control plane: the box's own manifest when it has one
# (lab's offline box), pointed at the control plane's endpoint; else flannel
# from the internet, told to use the node network's interface.
# Usage: pod-network.sh BOX_MANIFEST CONTROL_PLANE_ENDPOINT FLANNEL_MANIFEST
box=$1 endpoint=$2 flannel=$3
kubectl() { command kubectl --kubeconfig=/etc/kubernetes/admin.conf "$@"; }
if [ -f "$box" ]; then
  sed "s|@CONTROL_PLANE_ENDPOINT@|$endpoint|" "$box" | kubectl apply -f -
else
  kubectl apply -f "$flannel" && kubectl -n kube-flannel set env daemonset/kube-flannel-ds FLANNELD_IFACE=eth1
fi

#!/bin/sh
# kubeadm init from a configuration: the node's own address, the Kubernetes
# version of the kubeadm in the VM (no release lookup over the network), and
# timeouts that hold under emulation. A node already initialised skips it.
# kubeadm prints the join command with its token and the CA's hash (and
# "Using token: …"): what lab's log, artifacts, bundles and exports keep of
# its output has them withheld, as the join step's own output is.
# Usage: kubeadm-init.sh NODE_NAME NODE_IP POD_CIDR SERVICE_CIDR
node=$1 ip=$2 pod_cidr=$3 service_cidr=$4
withhold='s/(--token|--discovery-token-ca-cert-hash|[Uu]sing token:|--certificate-key)[ =]+[^ ]+/\1 (withheld)/g'
test -f /etc/kubernetes/admin.conf && exit 0
mkdir -p /etc/lab
cat > /etc/lab/kubeadm.yaml <<CONFIG
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $ip
  bindPort: 6443
nodeRegistration:
  name: $node
  kubeletExtraArgs:
  - name: node-ip
    value: $ip
timeouts:
  controlPlaneComponentHealthCheck: 15m0s
  kubeletHealthCheck: 10m0s
  kubernetesAPICall: 5m0s
  tlsBootstrap: 10m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $(kubeadm version -o short)
controlPlaneEndpoint: $ip:6443
networking:
  podSubnet: $pod_cidr
  serviceSubnet: $service_cidr
CONFIG
(umask 077; kubeadm init --config /etc/lab/kubeadm.yaml > /etc/lab/kubeadm-init.log 2>&1)
status=$?
sed -E "$withhold" /etc/lab/kubeadm-init.log
rm -f /etc/lab/kubeadm-init.log
exit $status

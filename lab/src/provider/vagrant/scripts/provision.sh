#!/bin/sh
# Readies a Debian VM for a `lab` cluster. A box with Kubernetes inside (lab's
# offline box) needs nothing downloaded; any other box gets containerd and
# kubeadm from the internet (Debian's and Kubernetes' apt repositories).
# Arguments: Kubernetes minor release (v1.33), the node's private IP, node labels.
set -eu
k8s_minor=$1
node_ip=$2
node_labels=$3
# The cluster's Service network, written in by lab (kubeadm's configuration
# names the same).
service_cidr=@SERVICE_CIDR@

export DEBIAN_FRONTEND=noninteractive

# kubelet refuses to run with swap on.
swapoff -a
sed -i '/\sswap\s/ s/^/#/' /etc/fstab

cat > /etc/modules-load.d/k8s.conf <<MODULES
overlay
br_netfilter
MODULES
modprobe overlay
modprobe br_netfilter
cat > /etc/sysctl.d/99-kubernetes.conf <<SYSCTL
net.bridge.bridge-nf-call-iptables = 1
net.ipv4.ip_forward = 1
SYSCTL
sysctl --system >/dev/null

if ! command -v kubeadm >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y -q containerd apt-transport-https ca-certificates curl gpg
  mkdir -p /etc/containerd
  # config_path: registry hosts files under certs.d, as lab's registry mode writes them.
  containerd config default \
    | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
          -e 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' \
    > /etc/containerd/config.toml
  systemctl restart containerd

  mkdir -p /etc/apt/keyrings
  curl -fsSL "https://pkgs.k8s.io/core:/stable:/${k8s_minor}/deb/Release.key" \
    | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${k8s_minor}/deb/ /" \
    > /etc/apt/sources.list.d/kubernetes.list
  apt-get update -q
  apt-get install -y -q kubelet kubeadm kubectl
  apt-mark hold kubelet kubeadm kubectl
fi

# The nodes have no default route (their networks are isolated), so the
# node itself, and pods on its network (the CSI node plugin, io-engine),
# could not reach Service addresses: the kernel finds no route before
# kube-proxy's rules rewrite them. Route the Service network out through the
# nodes' own interface.
node_if=$(ip -o -4 addr show | awk -v ip="$node_ip" 'index($4, ip "/") == 1 { print $2; exit }')
[ -n "$node_if" ] || { echo "no interface has the node address $node_ip" >&2; exit 1; }
if [ -z "$(ip route show default)" ]; then
  ip route replace "$service_cidr" dev "$node_if"
fi

# Advertise the private network address: eth0 is the management network
# (Vagrant's NAT, or libvirt's isolated DHCP network), not the nodes' own.
extra="--node-ip=${node_ip}"
[ -n "$node_labels" ] && extra="$extra --node-labels=${node_labels}"
echo "KUBELET_EXTRA_ARGS=$extra" > /etc/default/kubelet
systemctl restart kubelet

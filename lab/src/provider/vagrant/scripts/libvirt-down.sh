#!/bin/sh
# Removes what libvirt still holds of one recorded lab instance after
# `vagrant destroy`, by the names its node list recorded: its domains, its two
# networks and its storage pool (with the volumes in it, all lab's: the box's
# base image and the disks). Nothing of another name is touched.
# Usage: libvirt-down.sh STORAGE_POOL MANAGEMENT_NETWORK NODE_NETWORK DOMAIN...
pool=$1 management=$2 nodes=$3
shift 3
virsh() { command virsh -c qemu:///system "$@"; }
for domain in "$@"; do
  if virsh dominfo "$domain" >/dev/null 2>&1; then
    virsh destroy "$domain" >/dev/null 2>&1
    virsh undefine "$domain" && echo "removed domain $domain"
  fi
done
for network in "$management" "$nodes"; do
  if virsh net-info "$network" >/dev/null 2>&1; then
    virsh net-destroy "$network" >/dev/null 2>&1
    virsh net-undefine "$network" && echo "removed network $network"
  fi
done
if virsh pool-info "$pool" >/dev/null 2>&1; then
  virsh pool-start "$pool" >/dev/null 2>&1
  volumes=$(virsh vol-list --pool "$pool") || exit 1
  # A table: two heading lines, then `name path` per volume.
  for volume in $(printf '%s\n' "$volumes" | awk 'NR > 2 && NF { print $1 }'); do
    virsh vol-delete --pool "$pool" "$volume" >/dev/null || exit 1
  done
  virsh pool-destroy "$pool" >/dev/null && virsh pool-delete "$pool" >/dev/null \
    && virsh pool-undefine "$pool" && echo "removed storage pool $pool"
fi

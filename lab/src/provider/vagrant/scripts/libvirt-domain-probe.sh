#!/bin/sh
# Chooses libvirt's domain type and CPU for lab's VMs on this host and writes
# them as JSON. KVM only where a kernel really boots under it: on some hosts
# /dev/kvm opens but a guest hangs. Otherwise qemu's software emulation, with
# a CPU model libvirt accepts there that has SSE4.2 (Mayastor's io-engine
# needs it).
# Arguments: the kernel to boot (the box's; the host's newest when missing),
# the JSON file to write.
set -u
kernel=$1
out=$2
[ -f "$kernel" ] || kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
why=""
if [ ! -w /dev/kvm ]; then
  why="/dev/kvm is missing or not writable"
elif [ -z "$kernel" ]; then
  why="no kernel to probe KVM with (set vagrant.driver: kvm to use it untested)"
elif timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 256 -display none -nodefaults -no-reboot \
  -serial stdio -kernel "$kernel" -append "console=ttyS0 panic=-1" 2>/dev/null | grep -q "Kernel panic"; then
  echo '{"type": "kvm", "cpuMode": "host-passthrough"}' >"$out"
  echo "domain type kvm: $kernel booted under KVM"
  exit 0
else
  why="a kernel did not boot under KVM within 30 s"
fi
models=$(virsh -c qemu:///system domcapabilities --virttype qemu 2>/dev/null)
for model in Nehalem Westmere; do
  if echo "$models" | grep -q "usable='yes'[^>]*>$model<"; then
    echo "{\"type\": \"qemu\", \"cpuMode\": \"custom\", \"cpuModel\": \"$model\"}" >"$out"
    echo "domain type qemu (software emulation, several times slower): $why; CPU model $model"
    exit 0
  fi
done
echo "libvirt offers no emulated CPU with SSE4.2 (Nehalem, Westmere) for domain type qemu ($why): is libvirtd running? virsh domcapabilities --virttype qemu" >&2
exit 1

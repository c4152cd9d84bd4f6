Feature: fio in a pod on a hostpath CSI volume of a VM node

  A VM may run under qemu's software emulation (where KVM does not work),
  several times slower than the host: these floors only catch a volume that
  barely works. Regressions are judged against history, not here.

  Background:
    Given the StorageClass "csi-hostpath" exists

  Scenario: a pod on the VM node mounts the volume and fio runs in it
    When I create a 256 MiB PVC "data" of StorageClass "csi-hostpath"
    Then the PVC "data" is Bound within 120 seconds
    When I start a pod "fio" using the PVC "data"
    Then the pod "fio" is Running within 120 seconds
    When I run the fio profile "pvc-randread-4k" 2 times in the pod "fio"
    Then read IOPS is at least 20
    And p99 read latency is below 5000 ms

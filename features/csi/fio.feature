@csi
Feature: fio in a pod on a hostpath CSI volume, with floors for a node that shares the host's kernel

  kind and local nodes run on this host's CPU and disk directly; a VM node
  (features/vm/fio.feature) has floors of its own.

  Background:
    Given the StorageClass "csi-hostpath" exists

  Scenario: a pod mounts the volume and fio runs in it
    When I create a 256 MiB PVC "data" of StorageClass "csi-hostpath"
    Then the PVC "data" is Bound within 60 seconds
    When I start a pod "fio" using the PVC "data"
    Then the pod "fio" is Running within 60 seconds
    When I run the fio profile "pvc-randread-4k" 2 times in the pod "fio"
    Then read IOPS is at least 100
    And p99 read latency is below 100 ms

@mayastor @source @vm
Feature: Mayastor's data path on a node whose kernel has nvme_tcp
  Pods mount volumes of the io-engine lab built: the CSI node plugin
  connects the node's kernel to the volume's NVMe-oF/TCP target and mounts
  it. The node may be a VM under qemu's software emulation, several times
  slower than the host: the fio floors only catch a volume that barely
  works. Regressions are judged against history, not here.

  Background:
    Given every node is Ready
    And every DiskPool is Online

  Scenario: a pod mounts a Mayastor volume and fio runs in it
    When I create a 256 MiB PVC "data" of StorageClass "mayastor-single-replica"
    Then the PVC "data" is Bound within 120 seconds
    When I start a pod "fio" using the PVC "data"
    Then the pod "fio" is Running within 300 seconds
    And Mayastor reports the volume of the PVC "data" Online with 1 replica
    And the node of the pod "fio" reaches the volume of the PVC "data" over NVMe-oF/TCP within 30 seconds
    When I run the fio profile "pvc-randread-4k" 2 times in the pod "fio"
    Then read IOPS is at least 20
    And p99 read latency is below 5000 ms

  # The written volume is the PVC "survivor", the Given's own.
  @faults @serial
  Scenario: data on a mounted volume verifies across an io-engine restart
    Given a volume of StorageClass "mayastor-single-replica" written with a verifiable pattern
    When I restart the io-engine on the node of the pod "writer"
    Then the io-engine runs again on that node within 300 seconds
    And Mayastor reports every pool Online within 180 seconds
    And every DiskPool is Online within 120 seconds
    And the node of the pod "writer" reaches the volume of the PVC "survivor" over NVMe-oF/TCP within 180 seconds
    And the data on the volume verifies

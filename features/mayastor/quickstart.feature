@mayastor @quickstart
Feature: The Mayastor quickstart
  Upstream's quickstart, as a conformance check: pools Online, a volume
  provisioned and bound, a pod writing to it, and fio meeting its floor.

  Background:
    Given every DiskPool is Online
    And the StorageClass "mayastor-single-replica" exists

  Scenario: a PVC binds and a pod runs fio on the volume
    When I create a 512 MiB PVC "data" of StorageClass "mayastor-single-replica"
    Then the PVC "data" is Bound within 120 seconds
    When I start a pod "fio" using the PVC "data"
    Then the pod "fio" is Running within 180 seconds
    When I run the fio profile "pvc-randread-4k" 3 times in the pod "fio"
    Then read IOPS is at least 100
    And p99 read latency is below 200 ms

  @faults
  Scenario: a volume survives an io-engine restart
    Given a volume of StorageClass "mayastor-single-replica" written with a verifiable pattern
    When I restart the io-engine on the node of the pod "writer"
    Then the io-engine runs again on that node within 300 seconds
    And every DiskPool is Online
    And the data on the volume verifies

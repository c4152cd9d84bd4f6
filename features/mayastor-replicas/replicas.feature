@mayastor @source @replicas
Feature: Replicated Mayastor volumes across io-engine nodes
  Two io-engine nodes with a pool each. These nodes share this host's
  kernel, which has no nvme_tcp, so data goes through a volume's nexus from
  userspace: the io-engine checkout's own initiator, run in an io-engine pod,
  writes a pattern of blocks spread over the volume and reads them back.

  Background:
    Given every node is Ready
    And every DiskPool is Online

  Scenario: a 2-replica volume lands on two nodes and two pools, and its data reads back
    When I create a 64 MiB PVC "vol" of StorageClass "mayastor-two-replicas"
    Then the PVC "vol" is Bound within 120 seconds
    And Mayastor reports the volume of the PVC "vol" Online with 2 replicas
    And the 2 replicas of the volume of the PVC "vol" are on 2 distinct nodes and pools
    When I publish the volume of the PVC "vol" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "vol" from userspace
    Then the data on the volume of the PVC "vol" verifies from userspace
    # The check can fail: the same blocks against a pattern never written.
    And the data on the volume of the PVC "vol" does not verify against another pattern

  Scenario: a replica added to a live volume is rebuilt from it, then taken away
    When I create a 64 MiB PVC "grow" of StorageClass "mayastor-single-replica"
    Then the PVC "grow" is Bound within 120 seconds
    When I publish the volume of the PVC "grow" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "grow" from userspace
    And I set the replica count of the volume of the PVC "grow" to 2
    Then Mayastor reports the volume of the PVC "grow" Online with 2 healthy replicas within 180 seconds
    And the 2 replicas of the volume of the PVC "grow" are on 2 distinct nodes and pools
    And the data on the volume of the PVC "grow" verifies from userspace
    When I set the replica count of the volume of the PVC "grow" to 1
    Then Mayastor reports the volume of the PVC "grow" Online with 1 healthy replica within 120 seconds
    And the data on the volume of the PVC "grow" verifies from userspace

  Scenario: a volume expanded while unpublished: its replicas grow, and the new space holds data
    When I create a 64 MiB PVC "big" of StorageClass "mayastor-two-replicas"
    Then the PVC "big" is Bound within 120 seconds
    When I expand the volume of the PVC "big" to 128 MiB through Mayastor's REST API
    Then every replica of the volume of the PVC "big" holds at least 128 MiB
    When I publish the volume of the PVC "big" over NVMe-oF through Mayastor's REST API
    Then the target of the volume of the PVC "big" offers more than 64 MiB
    # The pattern spans the new size: its later blocks lie past the old end.
    When I write a verifiable pattern to the volume of the PVC "big" from userspace
    Then the data on the volume of the PVC "big" verifies from userspace

  # Alone: a cordon would steer the other scenarios' replicas too.
  @serial
  Scenario: a node cordoned in Mayastor gets no new replica; uncordoned, it may again
    When I cordon one io-engine node in Mayastor
    And I create a 64 MiB PVC "elsewhere" of StorageClass "mayastor-single-replica"
    Then the PVC "elsewhere" is Bound within 120 seconds
    And no replica of the volume of the PVC "elsewhere" is on the cordoned node
    # Two replicas need both nodes: none is made while one is cordoned.
    When I create a 64 MiB PVC "both" of StorageClass "mayastor-two-replicas"
    Then the PVC "both" stays Pending for 20 seconds
    When I uncordon that node in Mayastor
    Then the PVC "both" is Bound within 180 seconds
    And the 2 replicas of the volume of the PVC "both" are on 2 distinct nodes and pools

  Scenario: a pool holding a replica refuses deletion; an empty pool deletes
    When I create a 64 MiB PVC "held" of StorageClass "mayastor-single-replica"
    Then the PVC "held" is Bound within 120 seconds
    And Mayastor refuses to delete the pool of a replica of the volume of the PVC "held"
    When I create an empty 64 MiB pool "lab-scratch" in memory on an io-engine node through Mayastor's REST API
    Then Mayastor reports every pool Online within 60 seconds
    And Mayastor deletes the pool "lab-scratch" within 60 seconds

  # Alone: killing an io-engine would take the other scenarios' replicas
  # and initiators with it. The restarted io-engine comes back within the
  # nexus's reconnect window here, so the nexus keeps the child (seen: the
  # volume stayed Online with both replicas): no Degraded, no rebuild.
  @serial
  Scenario: a replica's io-engine killed under I/O: writes go on, the io-engine returns, and the data verifies
    When I create a 64 MiB PVC "hit" of StorageClass "mayastor-two-replicas"
    Then the PVC "hit" is Bound within 120 seconds
    When I publish the volume of the PVC "hit" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "hit" from userspace
    And I kill the io-engine of a node with a replica but not the nexus of the volume of the PVC "hit" while writing that pattern to it
    Then the io-engine runs again on that node within 180 seconds
    And Mayastor reports the volume of the PVC "hit" Online with 2 healthy replicas within 300 seconds
    And the data on the volume of the PVC "hit" verifies from userspace

  # Alone: the volumes fill both pools' commitment, which would turn the
  # other scenarios' claims away. A thin replica may not be larger than its
  # pool (1 GiB here); the core agent lets a pool be committed up to 250 %
  # of its capacity: two 900 MiB thin volumes per pool, not three.
  @serial
  Scenario: thin volumes commit pools beyond their capacity, up to the pool commitment, and allocate what is written
    # One at a time, each placed once the core agent has polled the pools
    # again: a claim made before that is placed against the old figures
    # (seen here: three on one pool, a fifth Bound).
    When I create a 900 MiB PVC "thin-1" of StorageClass "mayastor-thin"
    Then the PVC "thin-1" is Bound within 120 seconds
    And Mayastor reports the pools together with at least 900 MiB committed within 90 seconds
    When I create a 900 MiB PVC "thin-2" of StorageClass "mayastor-thin"
    Then the PVC "thin-2" is Bound within 120 seconds
    And Mayastor reports the pools together with at least 1800 MiB committed within 90 seconds
    When I create a 900 MiB PVC "thin-3" of StorageClass "mayastor-thin"
    Then the PVC "thin-3" is Bound within 120 seconds
    And Mayastor reports the pools together with at least 2700 MiB committed within 90 seconds
    When I create a 900 MiB PVC "thin-4" of StorageClass "mayastor-thin"
    Then the PVC "thin-4" is Bound within 120 seconds
    And Mayastor reports the pools together with at least 3600 MiB committed within 90 seconds
    And Mayastor reports every pool with at least 1800 MiB committed within 90 seconds
    And the pool of the replica of the volume of the PVC "thin-1" has more committed than its capacity
    When I publish the volume of the PVC "thin-1" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "thin-1" from userspace
    Then the data on the volume of the PVC "thin-1" verifies from userspace
    And every replica of the volume of the PVC "thin-1" is thin with less than 128 MiB allocated
    # A fifth would take either pool past 250 %, though each has the free space it asks.
    When I create a 900 MiB PVC "thin-5" of StorageClass "mayastor-thin"
    Then the PVC "thin-5" stays Pending for 20 seconds

  Scenario: a StorageClass's node labels decide where replicas land
    When I label one io-engine node "lab-zone=east" in Mayastor
    And I create a 64 MiB PVC "east" of StorageClass "mayastor-east"
    Then the PVC "east" is Bound within 120 seconds
    And every replica of the volume of the PVC "east" is on a node labelled "lab-zone=east" in Mayastor
    # Two replicas need two labelled nodes; one is.
    When I create a 64 MiB PVC "east-two" of StorageClass "mayastor-east-two-replicas"
    Then the PVC "east-two" stays Pending for 20 seconds
    When I label every io-engine node "lab-zone=east" in Mayastor
    Then the PVC "east-two" is Bound within 180 seconds
    And every replica of the volume of the PVC "east-two" is on a node labelled "lab-zone=east" in Mayastor
    And the 2 replicas of the volume of the PVC "east-two" are on 2 distinct nodes and pools

  # Alone, as the kill above. Kept off its node (the DaemonSet's node label
  # removed) the io-engine stays away past the nexus's reconnect window: the
  # nexus faults its child and the volume runs on one replica until the
  # io-engine is back and the replica rebuilt.
  @serial
  Scenario: a replica's io-engine killed and kept off under I/O: the volume goes Degraded, is rebuilt when it returns, and the data verifies
    When I create a 64 MiB PVC "down" of StorageClass "mayastor-two-replicas"
    Then the PVC "down" is Bound within 120 seconds
    When I publish the volume of the PVC "down" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "down" from userspace
    And I take off the io-engine of a node with a replica but not the nexus of the volume of the PVC "down" while writing that pattern to it
    Then Mayastor reports the volume of the PVC "down" Degraded with 1 healthy replica within 120 seconds
    And the data on the volume of the PVC "down" verifies from userspace
    When I put the io-engine back on that node
    Then the io-engine runs again on that node within 180 seconds
    And Mayastor reports the volume of the PVC "down" Online with 2 healthy replicas within 300 seconds
    And the data on the volume of the PVC "down" verifies from userspace

  Scenario: a snapshot restored into a new volume holds the data of its moment, not what came after
    When I create a 64 MiB PVC "origin" of StorageClass "mayastor-thin"
    Then the PVC "origin" is Bound within 120 seconds
    When I publish the volume of the PVC "origin" over NVMe-oF through Mayastor's REST API
    And I write a verifiable pattern to the volume of the PVC "origin" from userspace
    And I take a snapshot "moment" of the PVC "origin" with VolumeSnapshotClass "mayastor-snapshots"
    Then the snapshot "moment" is ready to use within 120 seconds
    # Written over after the snapshot: the restored volume must not see it.
    When I write a verifiable pattern to the volume of the PVC "origin" from userspace
    # Mayastor restores into thin volumes of the snapshot's size.
    And I create a 64 MiB PVC "restored" of StorageClass "mayastor-thin" from the snapshot "moment"
    Then the PVC "restored" is Bound within 120 seconds
    When I publish the volume of the PVC "restored" over NVMe-oF through Mayastor's REST API
    Then the data on the volume of the PVC "restored" verifies against the pattern of the snapshot "moment"
    And the data on the volume of the PVC "origin" verifies from userspace

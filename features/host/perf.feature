@perf @host
Feature: Block performance on this host
  fio on a loop device made for each scenario and removed after it:
  floors any Linux machine clears, and no regression against the stored
  history of this machine (`results/host-perf/<profile>.jsonl`).

  @serial
  Scenario: 4k random reads on xfs meet their floor and do not regress
    Given a 512 MiB loop device formatted xfs
    When I run the fio profile "randread-4k" 3 times
    Then read IOPS is at least 500
    And p99 read latency is below 100 ms
    And read IOPS has not regressed against the history
    And p99 read latency has not regressed against the history

  @serial
  Scenario: 128k sequential writes on ext4 meet their floor and do not regress
    Given a 256 MiB loop device formatted ext4
    When I run the fio profile "seqwrite-128k" 3 times
    Then write bandwidth is at least 10 MiB/s
    And p99.9 write latency is below 1 s
    And write bandwidth has not regressed against the history

  @serial
  Scenario: 4k random reads on xfs keep up with the raw device, measured interleaved
    Interleaved runs (raw, xfs, xfs, raw, …) see the same machine, so this
    holds on a machine whose speed drifts, where a history does not.
    Given a 512 MiB loop device formatted xfs
    And a 512 MiB loop device as the baseline
    When I compare the fio profile "randread-4k-quick" with the baseline, interleaved
    Then read IOPS is at least 50% of the baseline's
    And p99 read latency is at most 300% of the baseline's

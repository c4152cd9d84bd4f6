@mayastor @perf
Feature: Mayastor volume performance does not regress
  The same fio profile on a fresh volume each run, judged against the
  history of this lab (`results/<scenario>/pvc-randread-4k.jsonl`).

  @serial
  Scenario: 4k random reads on a Mayastor volume
    Given every DiskPool is Online
    When I create a 512 MiB PVC "perf" of StorageClass "mayastor-single-replica"
    Then the PVC "perf" is Bound within 120 seconds
    When I start a pod "fio" using the PVC "perf"
    Then the pod "fio" is Running within 180 seconds
    When I run the fio profile "pvc-randread-4k" 5 times in the pod "fio"
    Then read IOPS has not regressed against the history
    And p99 read latency has not regressed against the history

@mayastor @nodes
Feature: Nodes are ready for Mayastor
  What `lab prepare` promises, checked through the cluster itself.

  Scenario: io-engine nodes have hugepages allocatable and NVMe-oF loaded
    Given every node is Ready
    Then every io-engine node has at least 2048 MiB of hugepages-2Mi allocatable
    And every io-engine node has the module nvme_tcp loaded

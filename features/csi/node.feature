Feature: the local cluster is a real Kubernetes node, prepared by lab

  The local provider runs Kubernetes as processes on this host, so CI
  checks what lab prepared on a real node.

  Scenario: the node is Ready, labelled, and has its hugepages allocatable
    Given every node is Ready
    Then every node has the label "lab.dev/role=storage"
    And every node has at least 128 MiB of hugepages-2Mi allocatable

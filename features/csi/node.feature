Feature: every node is a real Kubernetes node, prepared by lab

  The local provider runs Kubernetes as processes on this host, and kind
  runs it in Docker containers from lab's node image, so CI checks what lab
  prepared on real nodes.

  Scenario: the node is Ready, labelled, and has its hugepages allocatable
    Given every node is Ready
    Then every node has the label "lab.dev/role=storage"
    And every node has at least 128 MiB of hugepages-2Mi allocatable

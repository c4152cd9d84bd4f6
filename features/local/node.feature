Feature: the local cluster is a real Kubernetes node, prepared by lab

  The local provider runs Kubernetes as processes on this host; these
  checks need no storage driver, so CI runs them for real.

  Scenario: the node is Ready, labelled, and has its hugepages allocatable
    Given every node is Ready
    Then every node has the label "lab.dev/role=storage"
    And every node has at least 128 MiB of hugepages-2Mi allocatable

  Scenario: a pod runs an image lab built from a local checkout
    When I start a pod "hello" from the component "hello"
    Then the pod "hello" is Running within 60 seconds
    And the pod "hello" logs "hello from a locally built image"

@mayastor @source
Feature: Mayastor built from the contributor's checkouts
  The io-engine and the control plane that lab built, deployed on one node,
  asked through Kubernetes and through Mayastor's own REST API.

  Background:
    Given every node is Ready
    And every DiskPool is Online

  Scenario: the pools are Online in Mayastor itself
    Then Mayastor reports every pool Online within 60 seconds

  Scenario: a PVC is provisioned as a Mayastor volume and deleted with its replicas
    When I create a 64 MiB PVC "vol" of StorageClass "mayastor-single-replica"
    Then the PVC "vol" is Bound within 120 seconds
    And Mayastor reports the volume of the PVC "vol" Online with 1 replica
    When I delete the PVC "vol"
    Then the PV of the PVC "vol" is gone within 120 seconds
    And Mayastor has no volume and no replica of the PVC "vol" within 60 seconds

  @faults @serial
  Scenario: the pools come back after an io-engine restart
    When I restart the io-engine on the node of a DiskPool
    Then the io-engine runs again on that node within 300 seconds
    And Mayastor reports every pool Online within 180 seconds
    And every DiskPool is Online within 120 seconds

@csi
Feature: the hostpath CSI stack lab built from source serves volumes

  The plugin and upstream's external-provisioner, built by lab from Go
  modules and loaded into the node (manifests/csi-hostpath). Each scenario
  works in a namespace of its own, removed afterwards.

  Background:
    Given the StorageClass "csi-hostpath" exists

  Scenario: the plugin runs the driver built against the local copy of its dependency
    Then the container "hostpath" of every pod of the DaemonSet "csi-hostpath/csi-hostpath-plugin" logs "csi-hostpath 1.0.1-local (local override of driverinfo)"

  Scenario: a PVC of csi-hostpath binds
    When I create a 64 MiB PVC "data" of StorageClass "csi-hostpath"
    Then the PVC "data" is Bound within 60 seconds

  Scenario: data written with a checksum survives a new pod on the same volume
    When I create a 64 MiB PVC "data" of StorageClass "csi-hostpath"
    Then the PVC "data" is Bound within 60 seconds
    When I start a pod "writer" using the PVC "data"
    Then the pod "writer" is Running within 60 seconds
    When the pod "writer" writes a verifiable pattern of 32 MiB to its volume
    And I delete the pod "writer"
    Then the pod "writer" is gone within 60 seconds
    When I start a pod "reader" using the PVC "data"
    Then the pod "reader" is Running within 60 seconds
    And the pattern on the volume verifies in the pod "reader"

  Scenario: deleting the PVC removes its PV
    When I create a 64 MiB PVC "data" of StorageClass "csi-hostpath"
    Then the PVC "data" is Bound within 60 seconds
    When I delete the PVC "data"
    Then the PV of the PVC "data" is gone within 60 seconds

  # Restarting the node's kubelet disturbs every pod's volume calls: alone.
  @serial
  Scenario: data survives a kubelet restart and the deletion of its pod
    Given a volume written with a verifiable pattern
    When the kubelet restarts on the node of the pod "writer"
    Then the data on the volume verifies
    When I delete the pod "writer"
    Then the pod "writer" is gone within 60 seconds
    And the data on the volume verifies

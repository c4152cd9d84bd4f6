Feature: a VM node has a kernel of its own, with the modules lab loaded

  This host's kernel has no loadable modules; a VM's has. lab loads the
  modules the scenario asks for into each node's kernel (and persists them
  through /etc/modules-load.d), so a storage stack's node agent finds them.

  Scenario: the modules the scenario asks for are loaded in the node's kernel
    Given every node is Ready
    Then every node has the kernel module "nvme_tcp" loaded
    And every node has the kernel module "nbd" loaded

//! libvirt under Vagrant: every domain, network and storage pool of a lab
//! instance is named after it, recorded in the node list, and removed from
//! that record alone.

use serde::{Deserialize, Serialize};

use super::{NodeList, Vagrant};
use crate::plan::{Step, Target};
use crate::scenario::{DomainType, VagrantOptions};
use crate::shell::{Cmd, quote};

/// Where libvirt keeps the storage pools lab makes.
const POOL_PARENT: &str = "/var/lib/libvirt/images";

/// The libvirt objects of one lab instance: the record `lab down` removes from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LibvirtNames {
    /// Domains are named `<prefix><node>`.
    pub prefix: String,
    pub storage_pool: String,
    pub management_network: String,
    pub management_network_address: String,
    pub node_network: String,
    /// The domain type the scenario fixed; otherwise the probe writes `domainFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<serde_json::Value>,
    pub domain_file: String,
}

impl LibvirtNames {
    pub(super) fn new(instance: &str, options: &VagrantOptions) -> LibvirtNames {
        let base = format!("lab-{instance}");
        let domain = match options.driver {
            DomainType::Auto => None,
            DomainType::Kvm => Some(serde_json::json!({"type": "kvm", "cpuMode": "host-passthrough"})),
            // io-engine needs SSE4.2, which qemu's emulated Nehalem has.
            DomainType::Qemu => Some(serde_json::json!({"type": "qemu", "cpuMode": "custom", "cpuModel": "Nehalem"})),
        };
        LibvirtNames {
            prefix: format!("{base}-"),
            storage_pool: base.clone(),
            management_network: format!("{base}-mgmt"),
            management_network_address: format!("{}.0/24", options.management_network),
            node_network: format!("{base}-nodes"),
            domain,
            domain_file: "libvirt-domain.json".into(),
        }
    }

    fn pool_path(&self) -> String {
        format!("{POOL_PARENT}/{}", self.storage_pool)
    }
}

/// Before the VMs boot: the instance's own storage pool, and the domain type
/// when the scenario leaves it to the host.
pub(super) fn up_steps(vagrant: &Vagrant) -> Vec<Step> {
    let names = &vagrant.libvirt;
    let mut steps = vec![Step::run(
        format!("create libvirt storage pool {} in {}", names.storage_pool, names.pool_path()),
        Target::Host,
        Cmd::sh(format!(
            "virsh -c qemu:///system pool-define-as {pool} dir --target {path} && \
             virsh -c qemu:///system pool-build {pool} && virsh -c qemu:///system pool-start {pool}",
            pool = quote(&names.storage_pool),
            path = quote(&names.pool_path()),
        )),
    )];
    if names.domain.is_none() {
        steps.push(Step::run(
            "choose the libvirt domain type: KVM if a kernel boots under it within 30 s, else qemu (emulation)",
            Target::Host,
            super::script!("libvirt-domain-probe.sh")
                .args([vagrant.box_kernel(), vagrant.state.absolute().join(&names.domain_file).display().to_string()]),
        ));
    }
    steps
}

/// After `vagrant destroy`: what libvirt still holds of the recorded instance.
pub(super) fn down_step(cluster: &str, record: &NodeList) -> Step {
    let names = &record.libvirt;
    let domains = record.nodes.iter().map(|node| format!("{}{}", names.prefix, node.name));
    Step::run(
        format!(
            "remove what libvirt still holds of {cluster}: domains {}<node>, networks {} and {}, storage pool {}",
            names.prefix, names.management_network, names.node_network, names.storage_pool
        ),
        Target::Host,
        super::script!("libvirt-down.sh")
            .args([&names.storage_pool, &names.management_network, &names.node_network])
            .args(domains),
    )
}

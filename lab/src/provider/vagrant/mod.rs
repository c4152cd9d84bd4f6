//! Vagrant: one VM per node, each with its own kernel. The root `Vagrantfile`
//! defines the VMs from the node list `lab` writes; `lab` runs kubeadm itself,
//! as visible plan steps. Under libvirt every domain, network and storage
//! pool is named after the lab's instance, recorded in the node list, and
//! removed from that record.

mod boxes;
mod kubeadm;
mod libvirt;
mod prerequisites;
mod ssh;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Provider;
use crate::plan::{Action, Step, Target};
use crate::plan::{Cluster, NodeStatus};
use crate::scenario::{PlannedNode, Role, Scenario, VagrantOptions, VagrantProvider};
use crate::shell::{Cmd, LocalShell, Shell, quote};
use crate::state::StateDir;

/// The repository's Vagrantfile, copied into the lab's state directory so
/// each lab has its own `.vagrant/` and `lab` works from any directory.
pub const VAGRANTFILE: &str = include_str!("../../../../Vagrantfile");
const PROVISION_SCRIPT: &str = include_str!("scripts/provision.sh");
/// The environment variable through which the Vagrantfile finds the node list.
pub const NODES_ENV: &str = "LAB_NODES";
/// lab's own Vagrant home (boxes, the box's kernel): outside `/root`, which
/// libvirt's qemu user cannot enter. `$LAB_VAGRANT_HOME` overrides it.
pub const DEFAULT_VAGRANT_HOME: &str = "/var/lib/lab/vagrant";
const POD_CIDR: &str = "10.244.0.0/16";
/// kubeadm's default, named so the provisioning script can route it.
const SERVICE_CIDR: &str = "10.96.0.0/12";

pub use libvirt::LibvirtNames;
pub use ssh::VagrantShell;

/// One of the scripts in `scripts/`, shellchecked in CI.
macro_rules! script {
    ($name:literal) => {
        crate::shell::Cmd::script($name, include_str!(concat!("scripts/", $name)))
    };
}
use script;

pub struct Vagrant {
    cluster: String,
    nodes: Vec<PlannedNode>,
    options: VagrantOptions,
    box_file: Option<PathBuf>,
    state: StateDir,
    libvirt: LibvirtNames,
}

/// What the Vagrantfile reads.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NodeList {
    pub cluster: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub provider: VagrantProvider,
    pub kubernetes: String,
    pub provision_script: String,
    pub libvirt: LibvirtNames,
    pub nodes: Vec<VmNode>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct VmNode {
    pub name: String,
    pub role: String,
    pub ip: String,
    pub cpus: u32,
    pub memory_mib: u64,
    pub labels: BTreeMap<String, String>,
    /// An extra disk for the storage pool (libvirt), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_disk_mib: Option<u64>,
}

impl Vagrant {
    pub fn new(scenario: &Scenario, state: &StateDir, instance: &str) -> Vagrant {
        let options = scenario.cluster.vagrant.clone().unwrap_or_default();
        Vagrant {
            cluster: scenario.cluster_name(),
            nodes: scenario.planned_nodes(),
            box_file: options.box_file.as_deref().map(|f| scenario.path_of(f)),
            libvirt: LibvirtNames::new(instance, &options),
            options,
            state: state.clone(),
        }
    }

    pub fn node_list(&self) -> NodeList {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| VmNode {
                name: node.name.clone(),
                role: node.group.role.as_str().to_string(),
                ip: self.ip(i),
                cpus: node.group.cpus.unwrap_or(self.options.cpus),
                memory_mib: node.group.memory.unwrap_or(self.options.memory).mebibytes(),
                labels: node.group.labels.clone(),
                pool_disk_mib: node.group.pool.as_ref().filter(|p| p.device.is_none()).map(|p| p.size.mebibytes()),
            })
            .collect();
        NodeList {
            cluster: self.cluster.clone(),
            box_name: self.options.box_name.clone(),
            provider: self.options.provider,
            kubernetes: self.options.kubernetes.clone(),
            provision_script: "provision.sh".into(),
            libvirt: self.libvirt.clone(),
            nodes,
        }
    }

    fn ip(&self, index: usize) -> String {
        format!("{}.{}", self.options.network, 10 + index)
    }

    fn node_list_path(&self) -> PathBuf {
        self.state.file("nodes.json")
    }

    /// The node list an earlier `up` wrote: the record of its libvirt objects.
    fn recorded_node_list(&self) -> Option<NodeList> {
        let text = std::fs::read_to_string(self.node_list_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn vagrant_home() -> String {
        std::env::var("LAB_VAGRANT_HOME").unwrap_or_else(|_| DEFAULT_VAGRANT_HOME.to_string())
    }

    /// `vagrant …` run from the lab's state directory (absolute), where the
    /// Vagrantfile finds `nodes.json` beside itself; lab's own Vagrant home;
    /// no update check over the network.
    fn vagrant(&self) -> Cmd {
        Cmd::new("vagrant")
            .env("VAGRANT_CWD", self.state.absolute().display().to_string())
            .env("VAGRANT_HOME", Self::vagrant_home())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
    }

    /// Without lab's Vagrantfile in the state directory, Vagrant would search
    /// the parent folders for another and act on that project's VMs.
    fn vagrantfile(&self) -> PathBuf {
        self.state.absolute().join("Vagrantfile")
    }

    /// OpenSSH's settings for the VMs, from `vagrant ssh-config`: one `ssh`
    /// per command instead of a Vagrant start-up each time.
    fn ssh_config(&self) -> PathBuf {
        self.state.absolute().join("ssh-config")
    }

    fn control_plane(&self) -> (usize, &PlannedNode) {
        self.nodes.iter().enumerate().find(|(_, n)| n.group.role == Role::ControlPlane).unwrap_or((0, &self.nodes[0]))
    }

    fn is_libvirt(&self) -> bool {
        self.options.provider == VagrantProvider::Libvirt
    }
}

#[async_trait]
impl Cluster for Vagrant {
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        if !self.state.file("Vagrantfile").exists() {
            return Ok(Vec::new());
        }
        let output = LocalShell.run(&self.vagrant().args(["status", "--machine-readable"])).await?;
        let mut nodes = parse_machine_readable_status(&output.stdout);
        for node in &mut nodes {
            node.role = self
                .nodes
                .iter()
                .find(|n| n.name == node.name)
                .map(|n| n.group.role.as_str().to_string())
                .unwrap_or_default();
        }
        Ok(nodes)
    }

    async fn client(&self) -> anyhow::Result<kube::Client> {
        super::kube_client(self.state.kubeconfig(), None).await
    }

    fn node_shell(&self, node: &str) -> Box<dyn Shell> {
        Box::new(VagrantShell { node: node.to_string(), ssh_config: self.ssh_config() })
    }
}

#[async_trait]
impl Provider for Vagrant {
    fn capabilities(&self) -> super::Capabilities {
        use super::Capabilities;
        // Its VMs run with host-passthrough CPUs.
        Capabilities { cluster: true, nodes_on_this_cpu: true, ..Capabilities::default() }
    }

    fn up_steps(&self) -> Vec<Step> {
        let json = serde_json::to_string_pretty(&self.node_list()).unwrap_or_default();
        let mut steps = vec![
            Step::new(
                "write Vagrantfile",
                Action::WriteFile { path: self.state.file("Vagrantfile"), contents: VAGRANTFILE.into(), secret: false },
            ),
            Step::new(
                "write node provisioning script",
                Action::WriteFile {
                    path: self.state.file("provision.sh"),
                    contents: PROVISION_SCRIPT.replace("@SERVICE_CIDR@", SERVICE_CIDR),
                    secret: false,
                },
            ),
            Step::new(
                format!("write node list {}", self.node_list_path().display()),
                Action::WriteFile { path: self.node_list_path(), contents: json + "\n", secret: false },
            ),
        ];
        if let Some(file) = &self.box_file {
            steps.push(self.add_box_step(file));
        }
        if self.is_libvirt() {
            steps.extend(libvirt::up_steps(self));
        }
        steps.push(Step::run(
            match self.nodes.len() {
                1 => format!("boot 1 VM ({})", self.options.provider.as_str()),
                n => format!("boot {n} VMs ({})", self.options.provider.as_str()),
            },
            Target::Host,
            self.vagrant().env(NODES_ENV, "nodes.json").args(["up", "--provider", self.options.provider.as_str()]),
        ));
        // It names the key Vagrant made for the VMs: 0600 like the key.
        steps.push(Step::run(
            format!("write the VMs' ssh settings to {}", self.ssh_config().display()),
            Target::Host,
            Cmd::sh(format!(
                "(umask 077; {} > {})",
                self.vagrant().arg("ssh-config"),
                quote(&self.ssh_config().display().to_string())
            )),
        ));
        steps.extend(kubeadm::cluster_steps(self));
        steps
    }

    fn down_steps(&self) -> Vec<Step> {
        let vagrantfile = quote(&self.vagrantfile().display().to_string());
        let destroy = self.vagrant().args(["destroy", "--force"]);
        let script = format!(
            "if [ -f {vagrantfile} ]; then {destroy}; else echo 'no lab Vagrantfile at '{vagrantfile}': no VM of this lab to destroy'; fi"
        );
        let mut steps = vec![Step::run(format!("destroy the VMs of {}", self.cluster), Target::Host, Cmd::sh(script))];
        // What the recorded instance made, by the names it recorded.
        if let Some(record) = self.recorded_node_list().filter(|r| r.provider == VagrantProvider::Libvirt) {
            steps.push(libvirt::down_step(&self.cluster, &record));
        }
        steps
    }

    fn tools(&self) -> Vec<crate::findings::Tool> {
        prerequisites::tools()
    }

    async fn prerequisites(
        &self,
        scenario: &Scenario,
        machine: &crate::findings::Machine<'_>,
    ) -> Vec<crate::findings::Finding> {
        prerequisites::prerequisites(scenario, machine).await
    }

    fn preparation(&self, nodes: &[PlannedNode]) -> crate::prepare::Preparation {
        // A VM lab made is lab's to set up: every node's / is rshared.
        crate::prepare::each_node_on_its_own_kernel(nodes, |_| true, &self.kubelet_restart())
    }

    async fn exists(&self) -> anyhow::Result<bool> {
        Ok(self.nodes().await?.iter().any(|n| n.state != "not_created"))
    }

    fn interactive_shell(&self, node: &str) -> Cmd {
        let config = quote(&self.ssh_config().display().to_string());
        Cmd::sh(format!(
            "test -f {config} || {{ echo 'no ssh settings at '{config}': `lab up` writes them once the VMs boot' >&2; exit 1; }}; exec ssh -F {config} {}",
            quote(node)
        ))
    }
}

/// `vagrant status --machine-readable` lines are `time,target,type,data`.
fn parse_machine_readable_status(text: &str) -> Vec<NodeStatus> {
    let mut nodes: Vec<NodeStatus> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(4, ',').collect();
            match fields.as_slice() {
                [_, target, "state", state] if !target.is_empty() => {
                    Some(NodeStatus { name: target.to_string(), role: String::new(), state: state.to_string() })
                }
                _ => None,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vagrant_machine_readable_status() {
        let text = "1700000000,lab-v-worker,metadata,provider,libvirt\n1700000000,lab-v-worker,state,running\n1700000000,lab-v-control-plane,state,not_created\n1700000000,,ui,info,done\n";
        let nodes = parse_machine_readable_status(text);
        let got: Vec<(&str, &str)> = nodes.iter().map(|n| (n.name.as_str(), n.state.as_str())).collect();
        assert_eq!(got, [("lab-v-control-plane", "not_created"), ("lab-v-worker", "running")]);
    }
}

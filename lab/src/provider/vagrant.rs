//! Vagrant: one VM per node, each with its own kernel. The root `Vagrantfile`
//! defines the VMs from the node list `lab` writes; `lab` runs kubeadm itself,
//! as visible plan steps.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Serialize;

use super::Provider;
use crate::plan::{Action, Step, Target};
use crate::plan::{Cluster, NodeStatus};
use crate::scenario::{PlannedNode, Role, Scenario, VagrantOptions, VagrantProvider};
use crate::shell::{Cmd, LocalShell, Output, RunError, Shell, quote};
use crate::state::StateDir;

/// The repository's Vagrantfile, copied into the lab's state directory so
/// each lab has its own `.vagrant/` and `lab` works from any directory.
pub const VAGRANTFILE: &str = include_str!("../../../Vagrantfile");
const PROVISION_SCRIPT: &str = include_str!("vagrant-provision.sh");
/// The environment variable through which the Vagrantfile finds the node list.
pub const NODES_ENV: &str = "LAB_NODES";
const POD_CIDR: &str = "10.244.0.0/16";
const FLANNEL_MANIFEST: &str = "https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml";

pub struct Vagrant {
    cluster: String,
    nodes: Vec<PlannedNode>,
    options: VagrantOptions,
    state: StateDir,
}

/// What the Vagrantfile reads.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NodeList {
    pub cluster: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub provider: VagrantProvider,
    pub kubernetes: String,
    pub provision_script: String,
    pub nodes: Vec<VmNode>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct VmNode {
    pub name: String,
    pub role: &'static str,
    pub ip: String,
    pub cpus: u32,
    pub memory_mib: u64,
    pub labels: BTreeMap<String, String>,
    /// An extra disk for the storage pool (libvirt), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_disk_mib: Option<u64>,
}

impl Vagrant {
    pub fn new(scenario: &Scenario, state: &StateDir) -> Vagrant {
        Vagrant {
            cluster: scenario.cluster_name(),
            nodes: scenario.planned_nodes(),
            options: scenario.cluster.vagrant.clone().unwrap_or_default(),
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
                role: node.group.role.as_str(),
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
            nodes,
        }
    }

    fn ip(&self, index: usize) -> String {
        format!("{}.{}", self.options.network, 10 + index)
    }

    fn node_list_path(&self) -> PathBuf {
        self.state.file("nodes.json")
    }

    /// `vagrant …` run from the lab's state directory (absolute), where the
    /// Vagrantfile finds `nodes.json` beside itself.
    fn vagrant(&self) -> Cmd {
        Cmd::new("vagrant").env("VAGRANT_CWD", self.state.absolute().display().to_string())
    }

    /// Without lab's Vagrantfile in the state directory, Vagrant would search
    /// the parent folders for another and act on that project's VMs.
    fn vagrantfile(&self) -> PathBuf {
        self.state.absolute().join("Vagrantfile")
    }

    fn control_plane(&self) -> (usize, &PlannedNode) {
        self.nodes.iter().enumerate().find(|(_, n)| n.group.role == Role::ControlPlane).unwrap_or((0, &self.nodes[0]))
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
        Box::new(VagrantShell { node: node.to_string(), vagrant: self.vagrant(), vagrantfile: self.vagrantfile() })
    }
}

#[async_trait]
impl Provider for Vagrant {
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
                    contents: PROVISION_SCRIPT.into(),
                    secret: false,
                },
            ),
            Step::new(
                format!("write node list {}", self.node_list_path().display()),
                Action::WriteFile { path: self.node_list_path(), contents: json + "\n", secret: false },
            ),
            Step::run(
                format!("boot {} VMs ({})", self.nodes.len(), self.options.provider.as_str()),
                Target::Host,
                self.vagrant().env(NODES_ENV, "nodes.json").args(["up", "--provider", self.options.provider.as_str()]),
            ),
        ];
        let (cp_index, cp) = self.control_plane();
        let admin = "--kubeconfig=/etc/kubernetes/admin.conf";
        let init = format!(
            "test -f /etc/kubernetes/admin.conf || kubeadm init --apiserver-advertise-address={} --pod-network-cidr={POD_CIDR} --node-name={}",
            self.ip(cp_index),
            cp.name
        );
        steps.push(Step::run(format!("kubeadm init on {}", cp.name), Target::Node(cp.name.clone()), Cmd::sh(init)));
        steps.push(Step::run(
            "install the flannel pod network",
            Target::Node(cp.name.clone()),
            Cmd::new("kubectl").args([admin, "apply", "-f", FLANNEL_MANIFEST]),
        ));
        // The VMs' first NIC is Vagrant's NAT with the same address everywhere;
        // pod traffic must use the private network.
        steps.push(Step::run(
            "make flannel use the private network (eth1)",
            Target::Node(cp.name.clone()),
            Cmd::new("kubectl").args([
                admin,
                "-n",
                "kube-flannel",
                "set",
                "env",
                "daemonset/kube-flannel-ds",
                "FLANNELD_IFACE=eth1",
            ]),
        ));
        for node in self.nodes.iter().filter(|n| n.name != cp.name) {
            // The join command carries a token: its output is never logged.
            let token = (
                Target::Node(cp.name.clone()),
                Cmd::new("kubeadm").args(["token", "create", "--print-join-command"]).secret_output(),
            );
            // Reads the join command on stdin; a node that already joined skips it.
            let join = (Target::Node(node.name.clone()), Cmd::sh("test -f /etc/kubernetes/kubelet.conf || sh"));
            steps.push(Step::new(format!("join {} to the cluster", node.name), Action::Pipe { from: token, to: join }));
        }
        // The admin kubeconfig is 0600 from birth, as kubeadm writes it.
        let fetch = format!(
            "(umask 077; {} > {})",
            self.vagrant().args(["ssh", &cp.name, "-c", "sudo cat /etc/kubernetes/admin.conf"]),
            quote(&self.state.kubeconfig().display().to_string())
        );
        steps.push(Step::run(
            format!("fetch kubeconfig into {}", self.state.kubeconfig().display()),
            Target::Host,
            Cmd::sh(fetch),
        ));
        steps.push(Step::run(
            "wait until every node is Ready",
            Target::Host,
            Cmd::new("kubectl").arg("--kubeconfig").arg(self.state.kubeconfig().display().to_string()).args([
                "wait",
                "--for=condition=Ready",
                "node",
                "--all",
                "--timeout=10m",
            ]),
        ));
        steps
    }

    fn down_steps(&self) -> Vec<Step> {
        let vagrantfile = quote(&self.vagrantfile().display().to_string());
        let destroy = self.vagrant().args(["destroy", "--force"]);
        let script = format!(
            "if [ -f {vagrantfile} ]; then {destroy}; else echo 'no lab Vagrantfile at '{vagrantfile}': no VM of this lab to destroy'; fi"
        );
        vec![Step::run(format!("destroy the VMs of {}", self.cluster), Target::Host, Cmd::sh(script))]
    }

    async fn exists(&self) -> anyhow::Result<bool> {
        Ok(self.nodes().await?.iter().any(|n| n.state != "not_created"))
    }

    fn interactive_shell(&self, node: &str) -> Cmd {
        let vagrantfile = quote(&self.vagrantfile().display().to_string());
        let ssh = self.vagrant().args(["ssh", node]);
        Cmd::sh(format!(
            "test -f {vagrantfile} || {{ echo 'no lab Vagrantfile at '{vagrantfile} >&2; exit 1; }}; exec {ssh}"
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

/// Runs commands on a VM as root through `vagrant ssh NODE -c`.
pub struct VagrantShell {
    node: String,
    vagrant: Cmd,
    vagrantfile: PathBuf,
}

impl VagrantShell {
    /// Refuse to run `vagrant` where lab's Vagrantfile is not.
    fn guard(&self, cmd: &Cmd) -> Result<(), RunError> {
        if self.vagrantfile.is_file() {
            return Ok(());
        }
        Err(RunError::Spawn {
            place: self.place(),
            command: self.display(cmd),
            reason: format!(
                "lab's Vagrantfile {} is missing (`lab up` writes it); vagrant is not run, as it would look for another Vagrantfile in the parent folders",
                self.vagrantfile.display()
            ),
        })
    }

    fn host_command(&self, cmd: &Cmd) -> Cmd {
        self.vagrant.clone().args(["ssh", &self.node, "-c", &format!("sudo {cmd}")])
    }
}

#[async_trait]
impl Shell for VagrantShell {
    fn place(&self) -> String {
        format!("node {}", self.node)
    }

    fn display(&self, cmd: &Cmd) -> String {
        self.host_command(cmd).to_string()
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        self.guard(cmd)?;
        LocalShell.exec(&self.host_command(cmd), stdin).await.map_err(|e| self.on_node(cmd, e))
    }

    /// Image imports stream through `vagrant ssh` instead of gathering in memory.
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        self.guard(cmd)?;
        LocalShell.exec_streamed(&self.host_command(cmd), input).await.map_err(|e| self.on_node(cmd, e))
    }
}

impl VagrantShell {
    /// A spawn failure is reported where the command was meant to run.
    fn on_node(&self, cmd: &Cmd, e: RunError) -> RunError {
        match e {
            RunError::Spawn { reason, .. } => {
                RunError::Spawn { place: self.place(), command: self.display(cmd), reason }
            }
            other => other,
        }
    }
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

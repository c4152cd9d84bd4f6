//! Where a lab's nodes come from: kind containers, Vagrant VMs, an existing
//! cluster, or the host alone.

mod existing;
mod host;
pub mod kind;
pub mod local;
pub mod vagrant;

use async_trait::async_trait;

use crate::findings::{Finding, Machine, Tool};
use crate::plan::{Cluster, Step};
use crate::prepare::Preparation;
use crate::scenario::{PlannedNode, ProviderKind, Scenario};
use crate::shell::Cmd;
use crate::state::StateDir;

pub use existing::{
    Existing, client_for as kube_client, exec_in_pod, kubeconfig_path as existing_kubeconfig_path, node_ready,
    resolved_options as existing_options,
};
pub use host::Host;
pub use kind::Kind;
pub use local::Local;
pub use vagrant::Vagrant;

pub use crate::plan::NodeStatus;

/// What a provider's cluster is, for callers to ask instead of switching on
/// the provider's kind: what differs between providers is each one's own answer.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// It has nodes and a Kubernetes API (every provider but the host alone):
    /// images are loaded into it, a stack is applied to it and removed from it.
    pub cluster: bool,
    /// It was there before lab and outlives it (an existing cluster): what it
    /// holds may be someone else's, so lab checks before it changes anything.
    pub predates_lab: bool,
    /// Its nodes are containers on kind's Docker network, where lab's
    /// registry container must be connected for them to reach it.
    pub on_kind_network: bool,
    /// Where its kubelet keeps pods when that is not the usual
    /// `/var/lib/kubelet`: stack paths under the usual one are pointed there.
    pub kubelet_root: Option<String>,
    /// Its one node is this host (the local cluster): a path on the node is
    /// this host's path, so the node's pool folder is the lab's own.
    pub node_is_this_host: bool,
    /// Docker runs its nodes (kind's containers) or builds its images (the
    /// local cluster's pause image), so the daemon must answer.
    pub needs_docker: bool,
    /// Its nodes run on this machine's kernel (kind's containers, the local
    /// node, the host): their hugepages, modules and CPUs are this host's.
    pub shares_host_kernel: bool,
    /// Its nodes run on this machine's CPU (all but an existing cluster's).
    pub nodes_on_this_cpu: bool,
    /// A node's pool file lives in the lab's state folder on this host
    /// (kind mounts it into the node container): made there, gone with it.
    pub pool_files_in_state: bool,
    /// Its nodes outlive the lab (the host, an existing cluster's, the local
    /// node): what preparation changed on them is undone by `lab down`.
    pub nodes_outlive_lab: bool,
}

/// kubectl: providers whose nodes lab waits for or opens shells on through it.
fn kubectl_tool(required: bool) -> Tool {
    Tool {
        name: "kubectl",
        version: &["version", "--client"],
        required,
        why: "waits for nodes and opens node shells",
        install: "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    }
}

/// Makes and removes a lab's cluster; as a [`Cluster`], finds its nodes and API.
#[async_trait]
pub trait Provider: Cluster {
    /// What its cluster is (see [`Capabilities`]).
    fn capabilities(&self) -> Capabilities;
    /// Steps that create the cluster and make its nodes usable.
    fn up_steps(&self) -> Vec<Step>;
    /// Steps that remove what `up_steps` created.
    fn down_steps(&self) -> Vec<Step>;
    /// What preparing `nodes` takes here: the kernel's settings wherever the
    /// nodes' kernel is (this host's before the cluster exists, so the
    /// kubelet starts with the pages in place), then what each node needs.
    fn preparation(&self, nodes: &[PlannedNode]) -> Preparation;
    /// What of the user's own this provider works in, said before anything
    /// runs where the user did not start it (a shared bundle's replay):
    /// None where lab makes everything it uses.
    fn users_own(&self) -> Option<String> {
        None
    }
    /// The programs this provider runs on this machine (`lab doctor`, and
    /// `lab up` before it changes anything).
    fn tools(&self) -> Vec<Tool> {
        Vec::new()
    }
    /// What else it needs of this machine (daemons, images, a host free of
    /// another cluster), each a finding with its fix.
    async fn prerequisites(&self, _scenario: &Scenario, _machine: &Machine<'_>) -> Vec<Finding> {
        Vec::new()
    }
    /// Whether a cluster of this lab already exists, so `up` never clobbers
    /// (or, failing, cleans up) one it did not make. Adopted clusters and the
    /// host are never "made" by lab.
    async fn exists(&self) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// What a lab of this name left on the host that `exists` does not see
    /// (processes, cgroups, interfaces), each a line; found without state.
    fn leftovers(&self) -> Vec<String> {
        Vec::new()
    }
    /// The command, run in a node's shell, that restarts its kubelet so it
    /// reads the node anew (its hugepages): systemd's unit on most nodes.
    fn kubelet_restart(&self) -> Cmd {
        Cmd::new("systemctl").args(["restart", "kubelet"])
    }
    /// The host command that opens an interactive shell on a node.
    fn interactive_shell(&self, node: &str) -> Cmd;
    /// What `lab export logs` keeps of each node: a file name and the
    /// command that prints it in the node's shell (systemd's journal where
    /// the node runs systemd, as kind nodes and VMs do).
    fn node_logs(&self) -> Vec<(String, Cmd)> {
        vec![
            ("kubelet.log".into(), Cmd::sh("journalctl -u kubelet --no-pager -n 20000")),
            ("containerd.log".into(), Cmd::sh("journalctl -u containerd --no-pager -n 20000")),
            ("dmesg.txt".into(), Cmd::sh("dmesg")),
        ]
    }
}

/// The scenario's provider; `instance` names what it makes on the host (VMs).
pub fn for_scenario(scenario: &Scenario, state: &StateDir, instance: &str) -> Box<dyn Provider> {
    match scenario.cluster.provider {
        ProviderKind::Kind => Box::new(Kind::new(scenario, state)),
        ProviderKind::Vagrant => Box::new(Vagrant::new(scenario, state, instance)),
        ProviderKind::Existing => Box::new(Existing::new(scenario)),
        ProviderKind::Host => Box::new(Host),
        ProviderKind::Local => Box::new(Local::new(scenario, state)),
    }
}

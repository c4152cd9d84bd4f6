//! The host alone: the local machine is the only node, with no Kubernetes.

use async_trait::async_trait;

use super::Provider;
use crate::plan::{Cluster, NodeStatus};
use crate::plan::{Step, Target};
use crate::shell::{Cmd, LocalShell, Shell};

pub struct Host;

#[async_trait]
impl Cluster for Host {
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        Ok(vec![NodeStatus { name: "host".into(), role: "host".into(), state: "running".into() }])
    }

    fn node_shell(&self, _node: &str) -> Box<dyn Shell> {
        Box::new(LocalShell)
    }
}

#[async_trait]
impl Provider for Host {
    fn capabilities(&self) -> super::Capabilities {
        use super::Capabilities;
        Capabilities {
            nodes_outlive_lab: true,
            shares_host_kernel: true,
            nodes_on_this_cpu: true,
            ..Capabilities::default()
        }
    }

    fn up_steps(&self) -> Vec<Step> {
        vec![]
    }

    fn down_steps(&self) -> Vec<Step> {
        vec![]
    }

    fn preparation(&self, nodes: &[crate::scenario::PlannedNode]) -> crate::prepare::Preparation {
        // The host is the node: its settings are kept across reboots, as a
        // host's own are, and `lab down` restores them.
        let before_cluster = crate::prepare::kernel_steps(nodes, Target::Host, "host", true);
        crate::prepare::Preparation { before_cluster, on_nodes: Vec::new() }
    }

    fn interactive_shell(&self, _node: &str) -> Cmd {
        Cmd::new(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()))
    }
}

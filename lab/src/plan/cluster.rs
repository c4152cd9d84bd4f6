//! What the plan needs of a cluster: its nodes, a shell on each, its API.

use async_trait::async_trait;

use crate::shell::{LocalShell, Shell};

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Host,
    Node(String),
}

/// A node as the provider sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub role: String,
    pub state: String,
}

/// A node with a shell on it.
pub struct Node<'a> {
    pub name: String,
    pub shell: Box<dyn Shell + 'a>,
}

/// The cluster steps run against; every provider is one.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// The nodes that exist now, found by labels or the API, sorted by name.
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>>;
    /// A client for the cluster's API server; the host has none.
    async fn client(&self) -> anyhow::Result<kube::Client> {
        anyhow::bail!("this provider has no Kubernetes API")
    }
    /// A shell on a node; cheap to make, it connects on first use.
    fn node_shell(&self, node: &str) -> Box<dyn Shell>;
    /// Why the cluster's workloads cannot be removed one by one now though
    /// its API answers (its node agent died, so no pod would ever stop):
    /// teardown then leaves them to go with the cluster.
    fn why_workloads_cannot_go(&self) -> Option<String> {
        None
    }
}

/// The shell for a target.
pub fn shell_for(cluster: &dyn Cluster, on: &Target) -> Box<dyn Shell> {
    match on {
        Target::Host => Box::new(LocalShell),
        Target::Node(node) => cluster.node_shell(node),
    }
}

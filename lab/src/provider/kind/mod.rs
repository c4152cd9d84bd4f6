//! kind: nodes are Docker containers on this machine, sharing its kernel.

mod prerequisites;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::Provider;
use crate::docker::{self, DockerExecShell};
use crate::plan::{Action, Step, Target};
use crate::plan::{Cluster, NodeStatus};
use crate::scenario::{KindOptions, PlannedNode, Scenario};
use crate::shell::{Cmd, Shell};
use crate::state::StateDir;

/// Where io-engine finds a node's pool backing file (the upstream kind lab's path).
pub const POOL_MOUNT: &str = "/var/local/mayastor";

pub struct Kind {
    cluster: String,
    nodes: Vec<PlannedNode>,
    options: KindOptions,
    state: StateDir,
}

impl Kind {
    pub fn new(scenario: &Scenario, state: &StateDir) -> Kind {
        Kind {
            cluster: scenario.cluster_name(),
            nodes: scenario.planned_nodes(),
            options: {
                let mut options = scenario.cluster.kind.clone().unwrap_or_default();
                if crate::load::registry::Registry::of(scenario).is_some() {
                    options.containerd_config_patches.push(crate::load::registry::CONTAINERD_PATCH.into());
                }
                options.kubeadm_config_patches.push(KUBELET_ON_CGROUP_V1.into());
                options.containerd_config_patches.push(CONTAINERD_WITHOUT_SYS_RESOURCE.into());
                options
            },
            state: state.clone(),
        }
    }

    /// The kind `v1alpha4` cluster config for this scenario, as YAML.
    pub fn config_yaml(&self) -> String {
        let pools_root = self.state.absolute();
        let nodes = self
            .nodes
            .iter()
            .map(|node| {
                // Devices and udev state are shared with the host so io-engine
                // sees real block devices and their properties. The host's
                // mounts must then be shared, which preparation sees to.
                let mut mounts = Vec::new();
                if node.group.runs_io_engine() {
                    mounts.push(Mount::host_to_container("/dev", "/dev"));
                    mounts.push(Mount::host_to_container("/run/udev", "/run/udev"));
                }
                if node.group.pool.is_some() {
                    let host = pools_root.join("pools").join(&node.name);
                    mounts.push(Mount {
                        host_path: host.display().to_string(),
                        container_path: POOL_MOUNT.into(),
                        propagation: None,
                    });
                }
                KindNode {
                    role: node.group.role.as_str(),
                    image: self.options.image.clone(),
                    labels: node.group.labels.clone(),
                    extra_mounts: mounts,
                }
            })
            .collect();
        let config = KindConfig {
            kind: "Cluster",
            api_version: "kind.x-k8s.io/v1alpha4",
            name: self.cluster.clone(),
            nodes,
            networking: self.options.networking.clone(),
            feature_gates: self.options.feature_gates.clone(),
            runtime_config: self.options.runtime_config.clone(),
            kubeadm_config_patches: self.options.kubeadm_config_patches.clone(),
            containerd_config_patches: self.options.containerd_config_patches.clone(),
        };
        serde_saphyr::to_string(&config).unwrap_or_else(|e| format!("# cannot render kind config: {e}\n"))
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.state.file("kind.yaml")
    }
}

/// kind's defaults assume a host with cgroup v2 that grants every
/// capability; its nodes share the host's kernel, so on other hosts (a CI
/// sandbox, an older distribution) they fail. Both settings change nothing
/// where they are not needed, so every lab's kind config carries them and
/// its plan is the same on every machine.
///
/// The kubelet 1.35+ refuses to start on cgroup v1 unless told.
pub const KUBELET_ON_CGROUP_V1: &str =
    "# lets the kubelet run where the host's cgroups are v1\nkind: KubeletConfiguration\nfailCgroupV1: false\n";
/// containerd gives pods a lower oom_score_adj than its own only with
/// CAP_SYS_RESOURCE, which some hosts withhold (kind sets the same for
/// rootless nodes).
pub const CONTAINERD_WITHOUT_SYS_RESOURCE: &str = "# lets containerd run pods where the host withholds CAP_SYS_RESOURCE\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindConfig {
    kind: &'static str,
    api_version: &'static str,
    name: String,
    nodes: Vec<KindNode>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    networking: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    feature_gates: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    runtime_config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kubeadm_config_patches: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containerd_config_patches: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindNode {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_mounts: Vec<Mount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Mount {
    host_path: String,
    container_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation: Option<&'static str>,
}

impl Mount {
    fn host_to_container(host: &str, container: &str) -> Mount {
        Mount { host_path: host.into(), container_path: container.into(), propagation: Some("HostToContainer") }
    }
}

#[async_trait]
impl Cluster for Kind {
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        let docker = docker::connect().await?;
        let containers = docker::node_containers(&docker, &self.cluster).await?;
        Ok(containers.into_iter().map(|c| NodeStatus { name: c.name, role: c.role, state: c.state }).collect())
    }

    async fn client(&self) -> anyhow::Result<kube::Client> {
        super::kube_client(self.state.kubeconfig(), None).await
    }

    fn node_shell(&self, node: &str) -> Box<dyn Shell> {
        Box::new(DockerExecShell::new(node))
    }
}

#[async_trait]
impl Provider for Kind {
    fn capabilities(&self) -> super::Capabilities {
        use super::Capabilities;
        Capabilities {
            cluster: true,
            on_kind_network: true,
            pool_files_in_state: true,
            needs_docker: true,
            shares_host_kernel: true,
            nodes_on_this_cpu: true,
            ..Capabilities::default()
        }
    }

    fn up_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for node in self.nodes.iter().filter(|n| n.group.pool.is_some()) {
            let path = self.state.pool_dir(&node.name);
            steps.push(Step::new(format!("create pool directory for {}", node.name), Action::MakeDir { path }));
        }
        steps.push(Step::new(
            format!("write kind config {}", self.config_path().display()),
            Action::WriteFile { path: self.config_path(), contents: self.config_yaml(), secret: false },
        ));
        let create = Cmd::new("kind")
            .args(["create", "cluster", "--name", &self.cluster])
            .arg("--config")
            .arg(self.config_path().display().to_string())
            .arg("--kubeconfig")
            .arg(self.state.kubeconfig().display().to_string())
            .arg("--wait")
            .arg(&self.options.wait)
            // lab cleans up itself (unless --keep-on-failure), and kind's own
            // cleanup would hide the failed nodes from `lab status`.
            .arg("--retain");
        steps.push(Step::run(format!("create kind cluster {}", self.cluster), Target::Host, create));
        let names = self.nodes.iter().map(|n| n.name.clone()).collect();
        steps.push(Step::new(
            format!("find the {} node containers by label", self.nodes.len()),
            Action::ExpectNodes { names },
        ));
        steps
    }

    fn down_steps(&self) -> Vec<Step> {
        let delete = Cmd::new("kind")
            .args(["delete", "cluster", "--name", &self.cluster])
            .arg("--kubeconfig")
            .arg(self.state.kubeconfig().display().to_string());
        vec![Step::run(format!("delete kind cluster {}", self.cluster), Target::Host, delete)]
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
        use crate::prepare::{api_steps, kernel_steps, kind_node_steps, rshared_step};
        // One kernel for all: set it on the host, then check each node sees it.
        let mut before_cluster = kernel_steps(nodes, Target::Host, "host", false);
        // io-engine nodes get the host's /dev and /run/udev with
        // HostToContainer propagation, which Docker refuses unless the
        // host's mounts are shared.
        if nodes.iter().any(|n| n.group.runs_io_engine()) {
            before_cluster.push(rshared_step(Target::Host, "host"));
        }
        let restart = self.kubelet_restart();
        let on_nodes =
            nodes.iter().flat_map(|node| [kind_node_steps(node), api_steps(node, &restart)].concat()).collect();
        crate::prepare::Preparation { before_cluster, on_nodes }
    }

    async fn exists(&self) -> anyhow::Result<bool> {
        Ok(!self.nodes().await?.is_empty())
    }

    fn interactive_shell(&self, node: &str) -> Cmd {
        Cmd::new("docker").args(["exec", "-it", node, "bash"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_config_carries_the_host_fixes() {
        let text = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\ncluster:\n  provider: kind\n  nodes: [{role: control-plane}]\n";
        let scenario = Scenario::parse(std::path::Path::new("lab.yaml"), text).unwrap();
        let state = StateDir::at(std::path::PathBuf::from("/tmp/lab-kind-test"));
        let config = Kind::new(&scenario, &state).config_yaml();
        assert!(config.contains("failCgroupV1: false"), "{config}");
        assert!(config.contains("restrict_oom_score_adj = true"), "{config}");
    }
}

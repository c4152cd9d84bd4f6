//! Vagrant: one VM per node, each with its own kernel. The root `Vagrantfile`
//! defines the VMs from the node list `lab` writes; `lab` runs kubeadm itself,
//! as visible plan steps. Under libvirt every domain, network and storage
//! pool is named after the lab's instance, recorded in the node list, and
//! removed from that record.

mod prerequisites;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Provider;
use crate::plan::{Action, Step, Target};
use crate::plan::{Cluster, NodeStatus};
use crate::scenario::{DomainType, PlannedNode, Role, Scenario, VagrantOptions, VagrantProvider};
use crate::shell::{Cmd, LocalShell, Output, RunError, Shell, quote};
use crate::state::StateDir;

/// The repository's Vagrantfile, copied into the lab's state directory so
/// each lab has its own `.vagrant/` and `lab` works from any directory.
pub const VAGRANTFILE: &str = include_str!("../../../../Vagrantfile");
const PROVISION_SCRIPT: &str = include_str!("vagrant-provision.sh");
const DOMAIN_PROBE_SCRIPT: &str = include_str!("libvirt-domain-probe.sh");
/// The environment variable through which the Vagrantfile finds the node list.
pub const NODES_ENV: &str = "LAB_NODES";
/// lab's own Vagrant home (boxes, the box's kernel): outside `/root`, which
/// libvirt's qemu user cannot enter. `$LAB_VAGRANT_HOME` overrides it.
pub const DEFAULT_VAGRANT_HOME: &str = "/var/lib/lab/vagrant";
const POD_CIDR: &str = "10.244.0.0/16";
/// kubeadm's default, named so the provisioning script can route it.
const SERVICE_CIDR: &str = "10.96.0.0/12";
const FLANNEL_MANIFEST: &str = "https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml";
/// Where a box with Kubernetes inside keeps its pod network (lab's offline box).
const BOX_POD_NETWORK: &str = "/etc/lab/pod-network.yaml";
/// Where libvirt keeps the storage pools lab makes.
const POOL_PARENT: &str = "/var/lib/libvirt/images";

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

impl LibvirtNames {
    fn new(instance: &str, options: &VagrantOptions) -> LibvirtNames {
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

    /// Adds the scenario's box file to lab's Vagrant home when the box is
    /// missing there or older than the file (a rebuilt box).
    fn add_box_step(&self, file: &std::path::Path) -> Step {
        let name = &self.options.box_name;
        let added = format!(
            "{}/boxes/{}/0/{}/metadata.json",
            Self::vagrant_home(),
            name.replace('/', "-VAGRANTSLASH-"),
            self.options.provider.as_str()
        );
        let add = self.vagrant().args(["box", "add", "--force", "--name", name]).arg(file.display().to_string());
        let file = quote(&file.display().to_string());
        Step::run(
            format!("add box {name} from {} (when missing or older)", self.box_file_shown()),
            Target::Host,
            Cmd::sh(format!(
                "test -f {file} || {{ echo 'no box file '{file}': build it with .ci/vm/box' >&2; exit 1; }}; \
                 mkdir -p {home} && chmod 0755 {home}; \
                 if [ -f {added} ] && [ ! {file} -nt {added} ]; then echo 'box {name} is current'; else {add}; fi",
                home = quote(&Self::vagrant_home()),
                added = quote(&added),
            )),
        )
    }

    fn box_file_shown(&self) -> String {
        self.box_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
    }

    /// The kernel the domain probe boots: the box's own when it has one.
    fn box_kernel(&self) -> String {
        format!(
            "{}/boxes/{}/0/libvirt/vmlinuz",
            Self::vagrant_home(),
            self.options.box_name.replace('/', "-VAGRANTSLASH-")
        )
    }

    fn libvirt_up_steps(&self) -> Vec<Step> {
        let names = &self.libvirt;
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
                Cmd::new("sh")
                    .arg("-c")
                    .arg(DOMAIN_PROBE_SCRIPT)
                    .arg("libvirt-domain-probe")
                    .args([self.box_kernel(), self.state.absolute().join(&names.domain_file).display().to_string()]),
            ));
        }
        steps
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
            steps.extend(self.libvirt_up_steps());
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
        let (cp_index, cp) = self.control_plane();
        let cp_ip = self.ip(cp_index);
        let admin = "--kubeconfig=/etc/kubernetes/admin.conf";
        steps.push(Step::run(
            format!("kubeadm init on {}", cp.name),
            Target::Node(cp.name.clone()),
            Cmd::sh(kubeadm_init_script(&cp.name, &cp_ip)),
        ));
        steps.push(Step::run(
            "install the pod network (the box's own, else flannel from the internet)",
            Target::Node(cp.name.clone()),
            Cmd::sh(format!(
                "if [ -f {BOX_POD_NETWORK} ]; then \
                   sed 's|@CONTROL_PLANE_ENDPOINT@|{cp_ip}:6443|' {BOX_POD_NETWORK} | kubectl {admin} apply -f -; \
                 else \
                   kubectl {admin} apply -f {FLANNEL_MANIFEST} && \
                   kubectl {admin} -n kube-flannel set env daemonset/kube-flannel-ds FLANNELD_IFACE=eth1; \
                 fi"
            )),
        ));
        if self.nodes.len() == 1 {
            let node = quote(&cp.name);
            steps.push(Step::run(
                format!("let pods run on {}, the only node (remove the control-plane taint)", cp.name),
                Target::Node(cp.name.clone()),
                Cmd::sh(format!(
                    "kubectl {admin} get node {node} -o jsonpath='{{.spec.taints}}' | grep -q node-role.kubernetes.io/control-plane || exit 0; \
                     kubectl {admin} taint nodes {node} node-role.kubernetes.io/control-plane:NoSchedule-"
                )),
            ));
        }
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
            "(umask 077; ssh -F {} {} sudo cat /etc/kubernetes/admin.conf > {})",
            quote(&self.ssh_config().display().to_string()),
            quote(&cp.name),
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
        let mut steps = vec![Step::run(format!("destroy the VMs of {}", self.cluster), Target::Host, Cmd::sh(script))];
        // What the recorded instance made, by the names it recorded.
        if let Some(record) = self.recorded_node_list().filter(|r| r.provider == VagrantProvider::Libvirt) {
            let names = &record.libvirt;
            steps.push(Step::run(
                format!(
                    "remove what libvirt still holds of {}: domains {}<node>, networks {} and {}, storage pool {}",
                    self.cluster, names.prefix, names.management_network, names.node_network, names.storage_pool
                ),
                Target::Host,
                Cmd::sh(libvirt_down_script(&record)),
            ));
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

/// kubeadm init from a configuration: the node's own address, the Kubernetes
/// version of the kubeadm in the VM (no release lookup over the network), and
/// timeouts that hold under emulation. A node already initialised skips it.
fn kubeadm_init_script(node: &str, ip: &str) -> String {
    format!(
        r#"test -f /etc/kubernetes/admin.conf && exit 0
mkdir -p /etc/lab
cat > /etc/lab/kubeadm.yaml <<CONFIG
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {ip}
  bindPort: 6443
nodeRegistration:
  name: {node}
  kubeletExtraArgs:
  - name: node-ip
    value: {ip}
timeouts:
  controlPlaneComponentHealthCheck: 15m0s
  kubeletHealthCheck: 10m0s
  kubernetesAPICall: 5m0s
  tlsBootstrap: 10m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $(kubeadm version -o short)
controlPlaneEndpoint: {ip}:6443
networking:
  podSubnet: {POD_CIDR}
  serviceSubnet: {SERVICE_CIDR}
CONFIG
(umask 077; kubeadm init --config /etc/lab/kubeadm.yaml > /etc/lab/kubeadm-init.log 2>&1)
status=$?
sed -E '{WITHHOLD_TOKENS}' /etc/lab/kubeadm-init.log
rm -f /etc/lab/kubeadm-init.log
exit $status"#
    )
}

/// kubeadm init prints the join command with its token and the CA's hash
/// (and "Using token: …"): what lab's log, artifacts, bundles and exports
/// keep of its output has them withheld, as the join step's own output is.
const WITHHOLD_TOKENS: &str =
    r"s/(--token|--discovery-token-ca-cert-hash|[Uu]sing token:|--certificate-key)[ =]+[^ ]+/\1 (withheld)/g";

/// `virsh` commands that remove what libvirt still holds of a recorded lab
/// instance after `vagrant destroy`: its domains, networks and storage pool
/// (with the volumes in it, all lab's: the box's base image and the disks).
fn libvirt_down_script(record: &NodeList) -> String {
    let names = &record.libvirt;
    let virsh = "virsh -c qemu:///system";
    let mut script = String::new();
    for node in &record.nodes {
        let domain = quote(&format!("{}{}", names.prefix, node.name));
        script += &format!(
            "if {virsh} dominfo {domain} >/dev/null 2>&1; then {virsh} destroy {domain} >/dev/null 2>&1; {virsh} undefine {domain} && echo removed domain {domain}; fi\n"
        );
    }
    for network in [&names.management_network, &names.node_network] {
        let network = quote(network);
        script += &format!(
            "if {virsh} net-info {network} >/dev/null 2>&1; then {virsh} net-destroy {network} >/dev/null 2>&1; {virsh} net-undefine {network} && echo removed network {network}; fi\n"
        );
    }
    let pool = quote(&names.storage_pool);
    script += &format!(
        "if {virsh} pool-info {pool} >/dev/null 2>&1; then\n\
         \x20 {virsh} pool-start {pool} >/dev/null 2>&1\n\
         \x20 volumes=$({virsh} vol-list --pool {pool}) || exit 1\n\
         \x20 # A table: two heading lines, then `name path` per volume.\n\
         \x20 for volume in $(printf '%s\\n' \"$volumes\" | awk 'NR > 2 && NF {{ print $1 }}'); do {virsh} vol-delete --pool {pool} \"$volume\" >/dev/null || exit 1; done\n\
         \x20 {virsh} pool-destroy {pool} >/dev/null && {virsh} pool-delete {pool} >/dev/null && {virsh} pool-undefine {pool} && echo removed storage pool {pool}\n\
         fi\n"
    );
    script
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

/// Runs commands on a VM as root over ssh, with the settings `vagrant
/// ssh-config` wrote when the VMs booted (one ssh per command, no Vagrant
/// start-up each time).
pub struct VagrantShell {
    node: String,
    ssh_config: PathBuf,
}

impl VagrantShell {
    /// Refuse to run without lab's ssh settings: they exist once the VMs boot.
    fn guard(&self, cmd: &Cmd) -> Result<(), RunError> {
        if self.ssh_config.is_file() {
            return Ok(());
        }
        Err(RunError::Spawn {
            place: self.place(),
            command: self.display(cmd),
            reason: format!(
                "lab's ssh settings {} are missing (`lab up` writes them once the VMs boot)",
                self.ssh_config.display()
            ),
        })
    }

    fn host_command(&self, cmd: &Cmd) -> Cmd {
        Cmd::new("ssh").arg("-F").arg(self.ssh_config.display().to_string()).arg(&self.node).arg(format!("sudo {cmd}"))
    }

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

    /// Image imports stream through ssh instead of gathering in memory.
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        self.guard(cmd)?;
        LocalShell.exec_streamed(&self.host_command(cmd), input).await.map_err(|e| self.on_node(cmd, e))
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

    /// What kubeadm init prints, through the script's own sed: no token, no CA hash.
    #[test]
    fn kubeadm_init_output_has_its_join_token_withheld() {
        let printed = "[bootstrap-token] Using token: abcdef.0123456789abcdef\n\
            kubeadm join 192.168.121.10:6443 --token abcdef.0123456789abcdef \\\n\
            \t--discovery-token-ca-cert-hash sha256:4f1c0ffee0ddba11 \\\n\
            \t--control-plane --certificate-key 0123abcd\n";
        let out = std::process::Command::new("sed")
            .args(["-E", WITHHOLD_TOKENS])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(printed.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in ["abcdef.0123456789abcdef", "4f1c0ffee0ddba11", "0123abcd"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert!(text.contains("--token (withheld)") && text.contains("Using token: (withheld)"), "{text}");
        assert!(kubeadm_init_script("cp", "10.0.0.2").contains(WITHHOLD_TOKENS));
    }
}

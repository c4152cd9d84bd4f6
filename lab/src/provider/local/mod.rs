//! local: a single-node cluster run as processes on this host, from
//! Kubernetes binaries built here (`.ci/kube/build`): etcd → apiserver →
//! controller-manager → scheduler → containerd (its own root, state and
//! socket) → kubelet → kube-proxy. The node's address lives on a bridge lab
//! makes, the pods' network too. Everything lab starts
//! has a pid file and a log under `.lab/<name>/local/`, and `lab down` stops
//! it in reverse, unmounts what it mounted and removes what it made.
//!
//! Its host footprint is lab's own and named: the kubelet's root under
//! `/run/lab/<name>/kubelet` (never `/var/lib/kubelet`), its cgroups under
//! `lab-<name>-<id>` in each hierarchy, its bridge, etcd behind mutual TLS,
//! NodePorts on its bridge alone, and the iptables chains that appeared after
//! lab recorded the host's own (`local/chains-before.txt`). Teardown removes
//! those and nothing else.

mod component;
mod config;
mod pki;
mod prerequisites;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use super::Provider;
use crate::plan::{Action, Cluster, Context, NodeStatus, Step, Target, View, Work};
use crate::scenario::Scenario;
use crate::shell::{Cmd, LocalShell, Output, RunError, Shell};
use crate::state::StateDir;
pub use component::Component;

/// The components' binaries, in start order; `pause` is the sandbox image's program.
pub const BINARIES: [&str; 7] =
    ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "pause"];
/// Where a kubelet keeps pods on most clusters; stacks name it in their
/// paths, which lab rewrites to its own kubelet's root ([`Layout::kubelet_root`]).
pub const USUAL_KUBELET_ROOT: &str = "/var/lib/kubelet";
/// Addresses lab gives its cluster: the node's (the gateway of lab's pod
/// bridge), pods' and services'. None may overlap a network the host already has.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
pub const POD_SUBNET: &str = "10.244.0.0/24";
pub const POD_CIDR: &str = "10.244.0.0/16";
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// Ports lab's processes listen on (etcd off its usual ones, so a host etcd is left alone).
pub const PORTS: [(u16, &str); 5] =
    [(6443, "kube-apiserver"), (10250, "kubelet"), (12379, "etcd"), (12380, "etcd peers"), (10256, "kube-proxy")];
/// How long the node gets to become Ready after the kubelet starts.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Every path the local cluster uses; absolute, as other processes read them.
#[derive(Clone, Debug)]
pub struct Layout {
    pub lab: String,
    pub node: String,
    /// `.lab/<name>/local`: configs, PKI, logs, pid files, etcd and containerd data.
    pub dir: PathBuf,
    /// `/run/lab/<name>`: containerd's socket and state (unix socket paths are short).
    pub run: PathBuf,
    pub kubeconfig: PathBuf,
    pub binaries: PathBuf,
    /// lab's bridge: the node's address and the pods' network (this kernel has no dummy links).
    pub bridge: String,
}

impl Layout {
    pub fn new(scenario: &Scenario, state: &StateDir) -> Layout {
        let lab = scenario.name().to_string();
        let hash = Sha256::digest(lab.as_bytes());
        let short: String = hash.iter().take(3).map(|b| format!("{b:02x}")).collect();
        Layout {
            node: scenario.planned_nodes().first().map(|n| n.name.clone()).unwrap_or_else(|| scenario.cluster_name()),
            dir: state.absolute().join("local"),
            run: Path::new("/run/lab").join(&lab),
            kubeconfig: state.absolute().join("kubeconfig"),
            binaries: binaries_dir(scenario),
            bridge: format!("labbr-{short}"),
            lab,
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn text(&self, relative: &str) -> String {
        self.path(relative).display().to_string()
    }

    pub fn binary(&self, name: &str) -> String {
        self.binaries.join(name).display().to_string()
    }

    pub fn containerd_socket(&self) -> String {
        self.run.join("containerd.sock").display().to_string()
    }

    /// The kubelet's root: in lab's own run folder, so no other kubelet's
    /// pods, mounts or plugins are ever under it (and its socket paths stay short).
    pub fn kubelet_root(&self) -> String {
        self.run.join("kubelet").display().to_string()
    }

    /// The cgroup (in every mounted hierarchy) under which the kubelet puts
    /// its pods: `cgroupRoot`, lab's own, so teardown never touches another
    /// kubelet's `kubepods`.
    pub fn cgroup_root(&self) -> String {
        format!("/lab-{}-{}", self.lab, &self.bridge["labbr-".len()..])
    }

    /// The cgroup every process lab starts runs in (a leaf, as cgroup v2
    /// wants processes only in leaves): with containerd there, its shims
    /// and their pods stay in lab's tree too, which `lab down` empties.
    pub fn processes_cgroup(&self) -> String {
        format!("{}/processes", self.cgroup_root())
    }

    /// The host's iptables chains as they were before the kubelet started:
    /// those are never lab's to remove.
    pub fn chains_before(&self) -> PathBuf {
        self.path("chains-before.txt")
    }
}

/// `cluster.local.binaries` (relative to the scenario), else `$LAB_KUBE_BIN`,
/// else the folder on `PATH` that holds kubelet.
pub fn binaries_dir(scenario: &Scenario) -> PathBuf {
    if let Some(dir) = scenario.cluster.local.as_ref().and_then(|l| l.binaries.as_ref()) {
        return scenario.path_of(dir);
    }
    if let Some(dir) = std::env::var_os("LAB_KUBE_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("kubelet").is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

pub struct Local {
    layout: Layout,
}

impl Local {
    pub fn new(scenario: &Scenario, state: &StateDir) -> Local {
        Local { layout: Layout::new(scenario, state) }
    }
}

#[async_trait]
impl Cluster for Local {
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        if let Ok(client) = self.client().await
            && client.apiserver_version().await.is_ok()
        {
            let registered = super::existing::list_nodes(client).await?;
            if !registered.is_empty() {
                return Ok(registered);
            }
        }
        // Not registered (yet): the node is there while its containerd runs,
        // so images can be loaded before the kubelet starts.
        let containerd = Component::named(&self.layout, "containerd");
        Ok(match containerd.running_pid() {
            Some(_) => {
                vec![NodeStatus {
                    name: self.layout.node.clone(),
                    role: "control-plane".into(),
                    state: "running".into(),
                }]
            }
            None => vec![],
        })
    }

    async fn client(&self) -> anyhow::Result<kube::Client> {
        super::kube_client(self.layout.kubeconfig.clone(), None).await
    }

    fn why_workloads_cannot_go(&self) -> Option<String> {
        let kubelet = Component::named(&self.layout, "kubelet");
        kubelet.running_pid().is_none().then(|| {
            format!(
                "lab's kubelet is not running (no live process for {}), so no pod would stop; \
                 their processes are stopped with lab's cgroup tree, and the cluster's objects go with its etcd",
                kubelet.pid_path()
            )
        })
    }

    fn node_shell(&self, _node: &str) -> Box<dyn Shell> {
        Box::new(NodeShell { containerd: self.layout.containerd_socket(), node: self.layout.node.clone() })
    }
}

#[async_trait]
impl Provider for Local {
    fn capabilities(&self) -> super::Capabilities {
        use super::Capabilities;
        Capabilities {
            cluster: true,
            kubelet_root: Some(self.layout.kubelet_root()),
            node_is_this_host: true,
            pool_files_in_state: true,
            nodes_outlive_lab: true,
            needs_docker: true,
            shares_host_kernel: true,
            nodes_on_this_cpu: true,
            ..Capabilities::default()
        }
    }

    fn up_steps(&self) -> Vec<Step> {
        let layout = &self.layout;
        let mut steps = vec![
            Step::work("make the cluster's certificates", WritePki(layout.clone())),
            Step::new(
                "make lab's folders for the local cluster",
                Action::Run {
                    on: Target::Host,
                    cmd: Cmd::new("mkdir")
                        .arg("-p")
                        .args(
                            ["config", "logs", "run", "etcd", "containerd", "cni/net.d", "cni/ipam", "pod-logs"]
                                .map(|d| layout.text(d)),
                        )
                        .arg(layout.run.display().to_string()),
                },
            ),
        ];
        for (file, contents, secret) in config::files(layout) {
            steps.push(Step::new(
                format!("write {}", file.display()),
                Action::WriteFile { path: file, contents, secret },
            ));
        }
        steps.push(Step::run(
            format!("give the node {NODE_IP} on lab's bridge {}", layout.bridge),
            Target::Host,
            Cmd::sh(format!(
                "ip link add {0} type bridge && ip addr add {NODE_IP}/24 dev {0} && ip link set {0} up",
                layout.bridge
            )),
        ));
        steps.push(Step::run(
            format!("let pods on {} reach each other through the host's FORWARD chain", layout.bridge),
            Target::Host,
            Cmd::sh(format!("iptables -C {0} 2>/dev/null || iptables -I {0}", config::forward_rule(layout))),
        ));
        let root_only: Vec<String> = config::root_only_rules(layout)
            .iter()
            .map(|rule| format!("{{ iptables -w -C {rule} 2>/dev/null || iptables -w -I {rule}; }}"))
            .collect();
        steps.push(Step::run(
            format!(
                "let only root reach lab's addresses ({POD_CIDR}, {SERVICE_CIDR}): rules in the host's OUTPUT chain"
            ),
            Target::Host,
            Cmd::sh(root_only.join(" && ")),
        ));
        steps.push(Step::run(
            format!(
                "make lab's cgroup {} (its processes in {}) and the kubelet's folder {}",
                layout.cgroup_root(),
                layout.processes_cgroup(),
                layout.kubelet_root()
            ),
            Target::Host,
            config::make_cgroups(layout),
        ));
        for component in Component::all(layout) {
            if component.name == "kubelet" {
                // Before the kubelet: it makes chains too (KUBE-KUBELET-CANARY).
                steps.push(Step::run(
                    format!("record the host's iptables chains in {}", layout.chains_before().display()),
                    Target::Host,
                    config::record_chains(layout),
                ));
            }
            let containerd = component.name == "containerd";
            steps.push(Step::work(format!("start {}", component.name), component));
            if containerd {
                // The sandbox image, before the kubelet asks for it.
                steps.push(Step::work(
                    format!("build the pause image {}", config::PAUSE_IMAGE),
                    PauseImage(layout.clone()),
                ));
                steps.push(Step::work(
                    "load the pause image into the node",
                    crate::load::ImageSource::Preloaded(vec![config::PAUSE_IMAGE.to_string()]),
                ));
            }
        }
        steps.push(Step::work(format!("wait until node {} is Ready", layout.node), WaitReady(layout.clone())));
        steps
    }

    fn down_steps(&self) -> Vec<Step> {
        let layout = &self.layout;
        let components = Component::all(layout);
        let mut steps = vec![Step::work("remove every pod, so the kubelet unmounts and unplugs them", RemovePods)];
        for component in components.iter().rev() {
            steps.push(Step::run(format!("stop {}", component.name), Target::Host, component.stop()));
            if component.name == "kubelet" {
                steps.push(Step::run(
                    "kill the containers left in lab's containerd",
                    Target::Host,
                    config::remove_containers(layout),
                ));
            }
        }
        steps.push(Step::run(
            format!("stop every process left in lab's cgroup {} (pods, containerd's shims)", layout.cgroup_root()),
            Target::Host,
            config::stop_cgroup_processes(layout),
        ));
        steps.push(Step::run("unmount what the kubelet and containerd mounted", Target::Host, config::unmount(layout)));
        steps.push(Step::run(
            format!("remove lab's FORWARD rule for {}", layout.bridge),
            Target::Host,
            Cmd::sh(format!("! iptables -C {0} 2>/dev/null || iptables -D {0}", config::forward_rule(layout))),
        ));
        let root_only: Vec<String> = config::root_only_rules(layout)
            .iter()
            .map(|rule| format!("{{ ! iptables -w -C {rule} 2>/dev/null || iptables -w -D {rule}; }}"))
            .collect();
        steps.push(Step::run(
            format!("remove lab's rules for its addresses ({POD_CIDR}, {SERVICE_CIDR}) from the OUTPUT chain"),
            Target::Host,
            Cmd::sh(root_only.join(" && ")),
        ));
        steps.push(Step::run(
            format!("remove lab's bridge {}", layout.bridge),
            Target::Host,
            Cmd::sh(format!("! ip link show {0} >/dev/null 2>&1 || ip link delete {0}", layout.bridge)),
        ));
        steps.push(Step::run(
            format!("remove the iptables chains that appeared after {}", layout.chains_before().display()),
            Target::Host,
            config::remove_new_chains(layout),
        ));
        steps.push(Step::run(
            format!("remove the kubelet's folder {} and cgroup {}", layout.kubelet_root(), layout.cgroup_root()),
            Target::Host,
            config::remove_kubelet(layout),
        ));
        steps
    }

    async fn prerequisites(
        &self,
        scenario: &Scenario,
        machine: &crate::findings::Machine<'_>,
    ) -> Vec<crate::findings::Finding> {
        prerequisites::local_cluster(scenario, machine).await
    }

    fn preparation(&self, nodes: &[crate::scenario::PlannedNode]) -> crate::prepare::Preparation {
        use crate::prepare::{api_steps, kernel_steps, local_cluster_sysctls_step, rshared_step};
        // The node is this host: its kernel first, then what the local
        // cluster's processes need of it, recorded so `lab down` undoes it.
        let mut before_cluster = kernel_steps(nodes, Target::Host, "host", false);
        before_cluster.push(local_cluster_sysctls_step());
        before_cluster.push(rshared_step(Target::Host, "host"));
        let restart = self.kubelet_restart();
        let on_nodes = nodes.iter().flat_map(|node| api_steps(node, &restart)).collect();
        crate::prepare::Preparation { before_cluster, on_nodes }
    }

    async fn exists(&self) -> anyhow::Result<bool> {
        Ok(Component::all(&self.layout).iter().any(|c| c.running_pid().is_some()))
    }

    fn leftovers(&self) -> Vec<String> {
        leftovers(&self.layout)
    }

    /// lab's kubelet is a process of this host: stopped and started again.
    fn kubelet_restart(&self) -> Cmd {
        let kubelet = Component::named(&self.layout, "kubelet");
        Cmd::sh(format!("{} && {}", kubelet.stop(), kubelet.start()))
    }

    /// The node is this host's processes: each one's own log (kubelet,
    /// containerd, the control plane), and the host's kernel log.
    fn node_logs(&self) -> Vec<(String, Cmd)> {
        let mut out: Vec<(String, Cmd)> = Component::all(&self.layout)
            .iter()
            .map(|c| (format!("{}.log", c.name), Cmd::new("tail").args(["-n", "20000", c.log_path()])))
            .collect();
        out.push(("dmesg.txt".into(), Cmd::sh("dmesg")));
        out
    }

    fn interactive_shell(&self, _node: &str) -> Cmd {
        Cmd::new("env")
            .arg(format!("CONTAINERD_ADDRESS={}", self.layout.containerd_socket()))
            .arg(format!("KUBECONFIG={}", self.layout.kubeconfig.display()))
            .arg(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()))
    }
}

/// The node is this host; `ctr` talks to lab's containerd, not the system's.
struct NodeShell {
    containerd: String,
    node: String,
}

impl NodeShell {
    fn with_address(&self, cmd: &Cmd) -> Cmd {
        cmd.clone().env("CONTAINERD_ADDRESS", &self.containerd)
    }
}

#[async_trait]
impl Shell for NodeShell {
    fn place(&self) -> String {
        format!("node {} (this host)", self.node)
    }
    fn display(&self, cmd: &Cmd) -> String {
        self.with_address(cmd).to_string()
    }
    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        LocalShell.exec(&self.with_address(cmd), stdin).await
    }
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        LocalShell.exec_streamed(&self.with_address(cmd), input).await
    }
}

/// The PKI, written before any process needs it.
#[derive(Debug)]
struct WritePki(Layout);

#[async_trait(?Send)]
impl Work for WritePki {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "writes {} (made in-process: a CA, serving and client certificates, the service-account keys)",
            self.0.text("pki")
        )
    }

    async fn run(&self, _ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let leaves = config::certificates(&self.0);
        pki::write(&self.0.path("pki"), &leaves)?;
        Ok(Some(format!("a CA and {} certificates", leaves.len())))
    }
}

/// The sandbox image, `FROM scratch` with the pause binary built beside
/// Kubernetes; Docker keeps it, so it is built once.
#[derive(Debug)]
struct PauseImage(Layout);

#[async_trait(?Send)]
impl Work for PauseImage {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "unless Docker has it: docker build -t {} (FROM scratch, COPY {} /pause, ENTRYPOINT [\"/pause\"])",
            config::PAUSE_IMAGE,
            self.0.binary("pause")
        )
    }

    async fn run(&self, _ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        use anyhow::Context as _;
        use futures_util::StreamExt as _;
        let docker = crate::docker::connect().await?;
        if crate::build::missing_images(&docker, &[config::PAUSE_IMAGE.to_string()]).await?.is_empty() {
            return Ok(Some("Docker has it".into()));
        }
        let pause_path = self.0.binary("pause");
        let pause = std::fs::read(&pause_path).with_context(|| format!("cannot read {pause_path}"))?;
        let dockerfile = b"FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n";
        let mut context = tar::Builder::new(Vec::new());
        for (name, data, mode) in [("Dockerfile", &dockerfile[..], 0o644), ("pause", &pause[..], 0o755)] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            context.append_data(&mut header, name, data)?;
        }
        let body = bollard::body_full(context.into_inner()?.into());
        let options =
            bollard::query_parameters::BuildImageOptionsBuilder::new().t(config::PAUSE_IMAGE).rm(true).build();
        let mut stream = docker.build_image(options, None, Some(body));
        while let Some(item) = stream.next().await {
            let info = item.context("building the pause image")?;
            if let Some(detail) = info.error_detail {
                anyhow::bail!("building the pause image: {}", detail.message.unwrap_or_default());
            }
        }
        Ok(Some("built".into()))
    }
}

/// The node Ready and the `default` ServiceAccount made: pods can be created.
#[derive(Debug)]
struct WaitReady(Layout);

#[async_trait(?Send)]
impl Work for WaitReady {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "api: GET /api/v1/nodes/{} until Ready, and the default ServiceAccount (at most {}s)",
            self.0.node,
            READY_TIMEOUT.as_secs()
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        use k8s_openapi::api::core::v1::{Node, ServiceAccount};
        let client = ctx.client().await?;
        let nodes: kube::Api<Node> = kube::Api::all(client.clone());
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client, "default");
        let components = Component::all(&self.0);
        let started = std::time::Instant::now();
        let pending = crate::wait::until_none_pending(READY_TIMEOUT, Duration::from_secs(1), async || {
            // A component that died is named with its log, not waited for.
            for component in &components {
                component.check_alive()?;
            }
            let mut pending = Vec::new();
            match nodes.get_opt(&self.0.node).await? {
                Some(node) if super::node_ready(&node) == Some(true) => {}
                Some(_) => pending.push(format!("node {} is not Ready", self.0.node)),
                None => pending.push(format!("node {} has not registered", self.0.node)),
            }
            if accounts.get_opt("default").await?.is_none() {
                pending.push("no default ServiceAccount yet".to_string());
            }
            Ok::<_, anyhow::Error>(pending)
        })
        .await?;
        if !pending.is_empty() {
            let kubelet = Component::named(&self.0, "kubelet");
            anyhow::bail!(
                "after {}s: {}; the kubelet's last lines:\n{}",
                READY_TIMEOUT.as_secs(),
                pending.join(", "),
                kubelet.last_lines(20)
            );
        }
        Ok(Some(format!("Ready after {:.0}s", started.elapsed().as_secs_f64())))
    }
}

/// Every pod deleted at once, and waited for: the kubelet stops their
/// sandboxes, which unmounts their volumes and unplugs them from the bridge.
/// With the kubelet gone (killed, crashed) no pod would ever go: their
/// processes are stopped with lab's cgroup tree instead.
#[derive(Debug)]
struct RemovePods;

#[async_trait(?Send)]
impl Work for RemovePods {
    fn describe(&self, _view: &View<'_>) -> String {
        "api: DELETE every pod (grace 1s) of lab's own cluster; waits until they are gone (at most 120s)".into()
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{DeleteParams, ListParams};
        let client = match ctx.teardown_client().await {
            Ok(client) => client,
            Err(why) => return Ok(Some(format!("{why}; skipped"))),
        };
        let pods: kube::Api<Pod> = kube::Api::all(client.clone());
        let found = pods.list(&ListParams::default()).await?;
        for pod in &found.items {
            let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else { continue };
            let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
            let _ = api.delete(name, &DeleteParams::default().grace_period(1)).await;
        }
        let left = crate::wait::until_none_pending(Duration::from_secs(120), Duration::from_secs(1), async || {
            let names = pods.list(&ListParams::default()).await?.items.into_iter().filter_map(|p| p.metadata.name);
            Ok::<Vec<String>, anyhow::Error>(names.collect())
        })
        .await?;
        if !left.is_empty() {
            anyhow::bail!("pods still there after 120s: {}", left.join(", "));
        }
        Ok(Some(format!("{} pod(s) removed", found.items.len())))
    }
}

/// What a lab of this name left on the host, found without its state:
/// processes in its cgroup tree, the tree, its bridge, the kubelet's folder.
pub fn leftovers(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    let pids = config::processes_in_tree(layout);
    if !pids.is_empty() {
        let named: Vec<String> = pids
            .iter()
            .map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                format!("{p} ({})", comm.trim())
            })
            .collect();
        out.push(format!("{} process(es) in lab's cgroup {}: {}", pids.len(), layout.cgroup_root(), named.join(", ")));
    }
    for dir in config::cgroup_dirs(layout) {
        out.push(format!("cgroup {}", dir.display()));
    }
    if Path::new("/sys/class/net").join(&layout.bridge).exists() {
        out.push(format!("interface {}", layout.bridge));
    }
    if Path::new(&layout.kubelet_root()).exists() {
        out.push(format!("folder {}", layout.kubelet_root()));
    }
    out
}

/// What a host must not already have for lab's local cluster: its own
/// kubelet folder and cgroups, Kubernetes chains, lab's interfaces,
/// overlapping networks, taken ports. Each is a sentence saying what to do.
pub fn host_conflicts(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    let pids = config::processes_in_tree(layout);
    let cgroups = config::cgroup_dirs(layout);
    if !cgroups.is_empty() {
        out.push(format!(
            "lab's cgroup {} exists ({} process(es) in it): a lab of this name left it; `lab down` stops its processes and removes it",
            layout.cgroup_root(),
            pids.len()
        ));
    }
    if Path::new(&layout.kubelet_root()).exists() {
        out.push(format!(
            "{} exists: a lab of this name is up or left it; `lab down` removes a lab's leftover one",
            layout.kubelet_root()
        ));
    }
    // kube-proxy's own chains have fixed names: another kube-proxy's would be shared, and lost with lab's.
    if !config::iptables_answers() {
        out.push(
            "iptables does not answer (`iptables -w -S`), so the chains cannot be checked: apt-get install iptables"
                .into(),
        );
    }
    for (table, chain) in config::KUBE_PROXY_CHAINS {
        if config::chain_exists(table, chain) {
            out.push(format!(
                "iptables chain {chain} in table {table} exists: another kube-proxy runs on this host, and lab's would share its rules; stop it first"
            ));
        }
    }
    if Path::new("/sys/class/net").join(&layout.bridge).exists() {
        out.push(format!("interface {} exists: `lab down` removes a lab's leftover one", layout.bridge));
    }
    let addresses = std::process::Command::new("ip").args(["-4", "-o", "addr", "show"]).output();
    if let Ok(output) = addresses {
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some(cidr) = line.split_whitespace().nth(3) else { continue };
            for (what, ours) in [("the pod network", POD_CIDR), ("the service network", SERVICE_CIDR)] {
                if overlaps(cidr, ours) {
                    out.push(format!("{what} {ours} overlaps {cidr}, which this host already has"));
                }
            }
        }
    }
    for (port, who) in PORTS {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            out.push(format!("port {port} ({who}) is taken: another cluster may be running (`ss -ltnp`)"));
        }
    }
    out
}

/// What [`host_conflicts`] found free, said as precisely as it checked it.
pub fn what_host_conflicts_checks(layout: &Layout) -> String {
    let chains: Vec<String> =
        config::KUBE_PROXY_CHAINS.iter().map(|(table, chain)| format!("{chain} ({table})")).collect();
    let ports: Vec<String> = PORTS.iter().map(|(port, _)| port.to_string()).collect();
    format!(
        "no {}; no cgroup {}; no kube-proxy chain {}; no interface {}; {POD_CIDR} and {SERVICE_CIDR} overlap no address of this host; ports {} free",
        layout.kubelet_root(),
        layout.cgroup_root(),
        chains.join(", "),
        layout.bridge,
        ports.join(", ")
    )
}

/// Whether two IPv4 networks share an address.
fn overlaps(a: &str, b: &str) -> bool {
    let parse = |cidr: &str| -> Option<(u32, u32)> {
        let (ip, bits) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits.min(32)) };
        Some((u32::from(ip) & mask, mask))
    };
    match (parse(a), parse(b)) {
        (Some((net_a, mask_a)), Some((net_b, mask_b))) => {
            let mask = mask_a & mask_b;
            net_a & mask == net_b & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_overlap_when_they_share_an_address() {
        assert!(overlaps("10.244.3.0/24", POD_CIDR));
        assert!(overlaps("10.0.0.0/8", "10.96.0.0/16"));
        assert!(!overlaps("192.0.2.2/24", POD_CIDR));
        assert!(!overlaps("127.0.0.1/8", "10.244.0.1/32"));
        assert!(!overlaps("not an address", POD_CIDR));
    }
}

//! The scenario file a user writes: which cluster, which nodes, what they need.
//!
//! Loading is strict: unknown fields, wrong types and impossible combinations
//! are errors that name the file, line, column and field path, before `lab`
//! touches anything.

mod check;
pub mod component;
mod locate;
mod size;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use check::{IO_ENGINE_MIN_CPUS, is_module_name, parse_core_list, parse_duration_secs};
pub use component::{BuildRecipe, Component, Images, Override, Source};
pub use size::ByteSize;

pub const API_VERSION: &str = "lab/v1alpha1";
pub const KIND: &str = "Scenario";

/// The label that marks a node for Mayastor's io-engine.
pub const IO_ENGINE_LABEL: (&str, &str) = ("openebs.io/engine", "mayastor");

/// Modules an io-engine node needs when the scenario names none: NVMe-oF over
/// TCP is how Mayastor exports volumes. (The legacy nexus quickstart also
/// wanted `nbd` and `xfs`; list them under `modules:` for that.)
pub const MAYASTOR_MODULES: &[&str] = &["nvme_tcp"];

/// The core list the Mayastor chart renders by default.
pub const IO_ENGINE_DEFAULT_CORE_LIST: &str = "1,2";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub cluster: Cluster,
    /// Images built from local checkouts, loaded into every node.
    #[serde(default)]
    pub components: Vec<Component>,
    /// How built images reach the nodes.
    #[serde(default)]
    pub images: ImageOptions,
    /// The storage stack `lab deploy` applies, layer by layer.
    #[serde(default)]
    pub stack: Option<StackSpec>,
    /// The feature files or folders `lab test` runs (relative to the
    /// scenario): one path or a list.
    #[serde(default)]
    pub features: Option<Features>,
    /// fio profiles the features name, and how regressions are judged.
    #[serde(default)]
    pub fio: FioOptions,
    /// Where the scenario was read from, for messages.
    #[serde(skip)]
    pub source: PathBuf,
    /// The text it was parsed from: what a bundle of it carries (a
    /// replayed bundle's scenario is not the file at `source`).
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    pub provider: ProviderKind,
    #[serde(default)]
    pub nodes: Vec<NodeGroup>,
    #[serde(default)]
    pub kind: Option<KindOptions>,
    #[serde(default)]
    pub vagrant: Option<VagrantOptions>,
    #[serde(default)]
    pub existing: Option<ExistingOptions>,
    #[serde(default)]
    pub local: Option<LocalOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Kind,
    Vagrant,
    Existing,
    Host,
    /// A single-node cluster run as processes on this host.
    Local,
}

impl ProviderKind {
    /// Whether the nodes see this host's `/dev` (kind containers, the local
    /// node, the host itself): a device path in the scenario is then a disk
    /// of this machine, and lab must check what is on it before a pool writes to it.
    pub fn shares_host_dev(self) -> bool {
        matches!(self, ProviderKind::Kind | ProviderKind::Local | ProviderKind::Host)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Kind => "kind",
            ProviderKind::Vagrant => "vagrant",
            ProviderKind::Existing => "existing",
            ProviderKind::Host => "host",
            ProviderKind::Local => "local",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    /// The spelling kind and kubeadm use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

/// One entry of `cluster.nodes`: `count` nodes alike.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeGroup {
    pub role: Role,
    #[serde(default = "one")]
    pub count: u32,
    /// The node's name in an existing cluster (provider `existing` only).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// 2 MiB hugepages the node needs.
    #[serde(default)]
    pub hugepages2_mi: Option<u64>,
    /// Kernel modules the node needs loaded; io-engine nodes default to
    /// [`MAYASTOR_MODULES`], `[]` asks for none.
    #[serde(default)]
    pub modules: Option<Vec<String>>,
    /// A storage pool backing file or device on each node.
    #[serde(default)]
    pub pool: Option<PoolSpec>,
    /// VM size (vagrant); defaults to `cluster.vagrant.cpus` / `.memory`.
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// io-engine core list (e.g. "1"): lets io-engine run on nodes with fewer than 3 CPUs.
    #[serde(default)]
    pub io_engine_core_list: Option<String>,
}

fn one() -> u32 {
    1
}

impl NodeGroup {
    /// One node of `role` with no requirements.
    pub fn plain(role: Role) -> NodeGroup {
        NodeGroup {
            role,
            count: 1,
            name: None,
            labels: BTreeMap::new(),
            hugepages2_mi: None,
            modules: None,
            pool: None,
            cpus: None,
            memory: None,
            io_engine_core_list: None,
        }
    }

    pub fn runs_io_engine(&self) -> bool {
        self.labels.get(IO_ENGINE_LABEL.0).map(String::as_str) == Some(IO_ENGINE_LABEL.1)
    }

    /// The modules to load: the scenario's list, else the stack's default set.
    pub fn needed_modules(&self) -> Vec<String> {
        match &self.modules {
            Some(modules) => modules.clone(),
            None if self.runs_io_engine() => MAYASTOR_MODULES.iter().map(|m| m.to_string()).collect(),
            None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolSpec {
    pub size: ByteSize,
    /// A block device on the node to use instead of a backing file (VMs).
    #[serde(default)]
    pub device: Option<String>,
    /// Where nodes share this host's /dev (kind, local, host): let `device`
    /// be a disk of the host and not a loop device this lab made.
    #[serde(default)]
    pub allow_host_device: bool,
    /// The second consent (as `mkfs -F` and `wipefs --force`): overwrite a
    /// host device that carries a filesystem, partition table or RAID/LVM
    /// signature, or that another device sits on. A mounted device is refused always.
    #[serde(default)]
    pub overwrite: bool,
}

/// What kind already offers, passed through into its config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindOptions {
    /// Node image, e.g. `kindest/node:v1.33.1`; kind's default when absent.
    #[serde(default)]
    pub image: Option<String>,
    /// How long `kind create cluster --wait` waits for the control plane.
    #[serde(default = "default_kind_wait")]
    pub wait: String,
    #[serde(default)]
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(default)]
    pub runtime_config: BTreeMap<String, String>,
    #[serde(default)]
    pub networking: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    #[serde(default)]
    pub containerd_config_patches: Vec<String>,
}

impl Default for KindOptions {
    /// As if the section were written empty: serde's defaults, not the types'.
    fn default() -> Self {
        KindOptions {
            image: None,
            wait: default_kind_wait(),
            feature_gates: BTreeMap::new(),
            runtime_config: BTreeMap::new(),
            networking: BTreeMap::new(),
            kubeadm_config_patches: Vec::new(),
            containerd_config_patches: Vec::new(),
        }
    }
}

fn default_kind_wait() -> String {
    "5m".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VagrantOptions {
    #[serde(rename = "box", default = "default_box")]
    pub box_name: String,
    #[serde(default)]
    pub provider: VagrantProvider,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// First three octets of the private network; nodes get .10, .11, …
    #[serde(default = "default_network")]
    pub network: String,
    /// Kubernetes minor release installed by kubeadm, e.g. `v1.33` (only
    /// where the box has no Kubernetes inside).
    #[serde(default = "default_kubernetes")]
    pub kubernetes: String,
    /// A `.box` file (lab's offline box, `.ci/vm/box`) that lab adds to its
    /// Vagrant home under `box` when missing or older than the file.
    #[serde(default)]
    pub box_file: Option<String>,
    /// libvirt's domain type: `auto` probes KVM (a kernel must boot under it
    /// within 30 s) and falls back to `qemu` (software emulation).
    #[serde(default)]
    pub driver: DomainType,
    /// First three octets of libvirt's isolated management network (DHCP,
    /// what `vagrant ssh` uses); the nodes' own network is `network`.
    #[serde(default = "default_management_network")]
    pub management_network: String,
}

/// `features:`, one path or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Features {
    One(String),
    Many(Vec<String>),
}

/// Which libvirt domain type runs the VMs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    #[default]
    Auto,
    Kvm,
    Qemu,
}

impl Default for VagrantOptions {
    fn default() -> Self {
        VagrantOptions {
            box_name: default_box(),
            provider: VagrantProvider::default(),
            cpus: default_cpus(),
            memory: default_memory(),
            network: default_network(),
            kubernetes: default_kubernetes(),
            box_file: None,
            driver: DomainType::default(),
            management_network: default_management_network(),
        }
    }
}

fn default_management_network() -> String {
    "192.168.121".into()
}

fn default_box() -> String {
    "debian/bookworm64".into()
}
fn default_cpus() -> u32 {
    4
}
fn default_memory() -> ByteSize {
    ByteSize(8 << 30)
}
fn default_network() -> String {
    "192.168.56".into()
}
fn default_kubernetes() -> String {
    "v1.33".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VagrantProvider {
    #[default]
    Libvirt,
    Virtualbox,
}

impl VagrantProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            VagrantProvider::Libvirt => "libvirt",
            VagrantProvider::Virtualbox => "virtualbox",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExistingOptions {
    /// Defaults to `$KUBECONFIG`, then `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    /// Image of the short-lived privileged pod that gives a shell on a node.
    #[serde(default = "default_node_shell_image")]
    pub node_shell_image: String,
}

/// The local provider: Kubernetes from binaries on this host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalOptions {
    /// The folder with etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler, kubelet, kube-proxy and pause; else `$LAB_KUBE_BIN`,
    /// else `PATH`. Relative to the scenario's folder.
    #[serde(default)]
    pub binaries: Option<String>,
}

fn default_node_shell_image() -> String {
    "busybox:1.36".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FioOptions {
    #[serde(default)]
    pub profiles: Vec<crate::fio::Job>,
    /// A change smaller than this (relative) is noise, never a regression.
    #[serde(default = "default_noise")]
    pub noise_threshold: f64,
    /// Where results are kept: `<results>/<scenario>/<profile>.jsonl`.
    #[serde(default = "default_results")]
    pub results: String,
    /// The image of test pods that run fio on a volume (needs `fio` and `sleep`).
    #[serde(default = "default_pod_image")]
    pub pod_image: String,
    /// A check the data cannot decide (too little history, an unsettled
    /// comparison) fails instead of being reported as not judged.
    #[serde(default)]
    pub strict: bool,
}

impl Default for FioOptions {
    fn default() -> Self {
        FioOptions {
            profiles: Vec::new(),
            noise_threshold: default_noise(),
            results: default_results(),
            pod_image: default_pod_image(),
            strict: false,
        }
    }
}

fn default_noise() -> f64 {
    0.05
}
fn default_results() -> String {
    "results".into()
}
fn default_pod_image() -> String {
    "ghcr.io/kastenhq/kubestr:0.4.48".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackSpec {
    /// Applied in order; removed in reverse.
    pub layers: Vec<Layer>,
    #[serde(default)]
    pub timeouts: StackTimeouts,
}

/// A folder of YAML files, or a Helm chart rendered with `helm template`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected `{manifests: DIR}` or `{chart: CHART, release: NAME, namespace: NS, values: {...}}`"
)]
pub enum Layer {
    Manifests(ManifestsLayer),
    Chart(ChartLayer),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestsLayer {
    pub manifests: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartLayer {
    /// A chart folder, a `.tgz`, or `repo/name` known to helm.
    pub chart: String,
    #[serde(default)]
    pub version: Option<String>,
    pub release: String,
    pub namespace: String,
    #[serde(default)]
    pub values: serde_json::Value,
}

/// How long each stage of a deploy (and its teardown) may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackTimeouts {
    #[serde(default = "one_minute")]
    pub crds: String,
    #[serde(default = "ten_minutes")]
    pub ready: String,
    #[serde(default = "five_minutes")]
    pub pools: String,
    #[serde(default = "five_minutes")]
    pub teardown: String,
}

impl Default for StackTimeouts {
    fn default() -> Self {
        StackTimeouts { crds: one_minute(), ready: ten_minutes(), pools: five_minutes(), teardown: five_minutes() }
    }
}

fn one_minute() -> String {
    "1m".into()
}
fn five_minutes() -> String {
    "5m".into()
}
fn ten_minutes() -> String {
    "10m".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageOptions {
    #[serde(default)]
    pub load: LoadMode,
    /// The registry for `load: registry`; lab starts one unless `start: false`.
    #[serde(default)]
    pub registry: Option<RegistryOptions>,
    /// Images from the local Docker put into every node under their own
    /// names, for nodes that cannot pull them (e.g. `alpine-sh` for tests).
    #[serde(default)]
    pub preload: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// `docker save` streamed into each node's containerd, missing layers only.
    #[default]
    Stream,
    /// Pushed to a local registry the nodes pull from: only changed layers move.
    Registry,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryOptions {
    /// `host:port` that `docker push` uses and image names carry.
    #[serde(default = "default_registry_address")]
    pub address: String,
    /// Where the nodes' containerd reaches it; defaults to the registry
    /// container lab starts on kind's network, else `http://<address>`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Whether lab starts (and `lab down` removes) a registry container.
    #[serde(default = "yes")]
    pub start: bool,
    /// The image of the registry lab starts.
    #[serde(default = "default_registry_image")]
    pub image: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            address: default_registry_address(),
            endpoint: None,
            start: true,
            image: default_registry_image(),
        }
    }
}

fn default_registry_address() -> String {
    "localhost:5001".into()
}
fn default_registry_image() -> String {
    "registry:2".into()
}
fn yes() -> bool {
    true
}

/// One problem in a scenario file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Field path, e.g. `cluster.nodes[1].hugepages2Mi`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

/// A scenario that could not be loaded: every problem found, located.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub text: String,
    pub problems: Vec<Problem>,
}

impl std::error::Error for ScenarioError {}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        let lines: Vec<&str> = self.text.lines().collect();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let field = if p.path.is_empty() { String::new() } else { format!("{}: ", p.path) };
            write!(f, "{file}:{}:{}: {field}{}", p.line, p.column, p.message)?;
            if let Some(source_line) = p.line.checked_sub(1).and_then(|i| lines.get(i)) {
                let gutter = p.line.to_string().len();
                write!(
                    f,
                    "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}^",
                    "",
                    p.line,
                    source_line,
                    "",
                    " ".repeat(p.column.saturating_sub(1))
                )?;
            }
        }
        Ok(())
    }
}

impl Scenario {
    /// Read, parse and check a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, anyhow::Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
        Ok(Scenario::parse(path, &text)?)
    }

    /// Parse and check scenario text; `file` is only used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let fail = |problems| ScenarioError { file: file.to_path_buf(), text: text.to_string(), problems };
        let mut scenario: Scenario = parse_typed(text).map_err(|p| fail(vec![p]))?;
        scenario.source = file.to_path_buf();
        scenario.text = text.to_string();
        let findings = check::check(&scenario);
        if findings.is_empty() {
            return Ok(scenario);
        }
        let spans = locate::SpanIndex::build(text);
        let problems = findings
            .into_iter()
            .map(|(path, message)| {
                let (line, column) = spans.find(&path);
                Problem { line, column, path, message }
            })
            .collect();
        Err(fail(problems))
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// A problem found after loading (against this machine, say), located in
    /// the scenario file like the problems found while loading it.
    pub fn problem(&self, path: &str, message: String) -> ScenarioError {
        let text = std::fs::read_to_string(&self.source).unwrap_or_default();
        let (line, column) = locate::SpanIndex::build(&text).find(path);
        ScenarioError {
            file: self.source.clone(),
            text,
            problems: vec![Problem { line, column, path: path.into(), message }],
        }
    }

    /// Hugepages on this host's kernel (kind, local and host labs) must fit
    /// in its memory (`MemTotal`: the kernel would hand out nearly all of it
    /// first), and in `room_kib`, what the host can give without running
    /// short (`margin_kib` kept back for its processes).
    pub fn check_host_memory(
        &self,
        mem_total_kib: u64,
        room_kib: Option<u64>,
        margin_kib: u64,
    ) -> Result<(), ScenarioError> {
        if !matches!(self.cluster.provider, ProviderKind::Kind | ProviderKind::Local | ProviderKind::Host) {
            return Ok(());
        }
        // One kernel serves every node here: the pages of all of them, summed.
        let Some(i) = self.cluster.nodes.iter().position(|g| g.hugepages2_mi.is_some()) else { return Ok(()) };
        let pages = self.host_hugepages();
        let want_kib = pages.saturating_mul(2048);
        let field = format!("cluster.nodes[{i}].hugepages2Mi");
        if want_kib >= mem_total_kib {
            return Err(self.problem(
                &field,
                format!(
                    "{pages} 2 MiB hugepages take {} MiB (every node's together: they share this host's kernel), and this host has {} MiB of memory (MemTotal): ask for fewer",
                    want_kib / 1024,
                    mem_total_kib / 1024
                ),
            ));
        }
        if let Some(room) = room_kib.filter(|room| want_kib > *room) {
            return Err(self.problem(
                &field,
                format!(
                    "{pages} 2 MiB hugepages take {} MiB (every node's together: they share this host's kernel), and this host can give {} MiB without running short \
                     (MemAvailable and the pages already free, less {} MiB kept for its processes): ask for fewer, or free memory first",
                    want_kib / 1024,
                    room / 1024,
                    margin_kib / 1024
                ),
            ));
        }
        Ok(())
    }

    /// The 2 MiB hugepages of every node together: what a kernel that serves
    /// them all (kind's, the local node's, the host's) must hold, since each
    /// node's io-engine takes its own.
    pub fn host_hugepages(&self) -> u64 {
        self.cluster.nodes.iter().filter_map(|g| g.hugepages2_mi.map(|p| p * u64::from(g.count))).sum()
    }

    /// Where this lab keeps its state: beside the scenario file, or under `$LAB_STATE_DIR`.
    pub fn state_dir(&self) -> anyhow::Result<crate::state::StateDir> {
        crate::state::StateDir::for_scenario(&self.source, self.name())
    }

    /// The fio profile named `name`, or why not (the profiles it has).
    pub fn fio_profile(&self, name: &str) -> Result<&crate::fio::Job, String> {
        self.fio.profiles.iter().find(|j| j.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.fio.profiles.iter().map(|j| j.name.as_str()).collect();
            format!("no fio profile `{name}` in {}; it has: {}", self.source.display(), known.join(", "))
        })
    }

    /// The feature files or folders the scenario names, resolved.
    pub fn feature_paths(&self) -> Vec<PathBuf> {
        let written = match &self.features {
            None => return Vec::new(),
            Some(Features::One(path)) => std::slice::from_ref(path),
            Some(Features::Many(paths)) => paths.as_slice(),
        };
        written.iter().map(|p| self.path_of(p)).collect()
    }

    /// A path written in the scenario: relative ones are relative to its folder.
    pub fn path_of(&self, written: &str) -> PathBuf {
        component::resolve(&self.source, written)
    }

    /// The cluster name lab gives the provider: `lab-<name>`.
    pub fn cluster_name(&self) -> String {
        format!("lab-{}", self.metadata.name)
    }

    /// Every node the scenario asks for, expanded from groups and named the
    /// way the provider names them (kind's scheme: `<cluster>-worker`, `-worker2`).
    pub fn planned_nodes(&self) -> Vec<PlannedNode> {
        let cluster = self.cluster_name();
        let mut per_role: BTreeMap<&str, u32> = BTreeMap::new();
        let mut nodes = Vec::new();
        for group in &self.cluster.nodes {
            for _ in 0..group.count {
                let n = per_role.entry(group.role.as_str()).or_default();
                *n += 1;
                let name = match (&group.name, self.cluster.provider) {
                    (Some(name), _) => name.clone(),
                    (None, ProviderKind::Host) => "host".to_string(),
                    (None, _) if *n == 1 => format!("{cluster}-{}", group.role.as_str()),
                    (None, _) => format!("{cluster}-{}{}", group.role.as_str(), n),
                };
                nodes.push(PlannedNode { name, group: group.clone() });
            }
        }
        if nodes.is_empty() && self.cluster.provider == ProviderKind::Host {
            nodes.push(PlannedNode { name: "host".into(), group: NodeGroup::plain(Role::Worker) });
        }
        nodes
    }
}

/// A node the scenario asks for, with its group's settings.
#[derive(Debug, Clone)]
pub struct PlannedNode {
    pub name: String,
    pub group: NodeGroup,
}

/// serde-saphyr parse with the failing field's path.
fn parse_typed<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((1, 1));
        let path = if path == "." { String::new() } else { path };
        Problem { line, column, path, message: bare_message(&e) }
    })
}

/// serde-saphyr's message without its own location prefix and snippet.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 5 column 7: unknown field ... at line 5, column 7" -> "unknown field ..."
    let message = match first.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((_, message)) => message,
        None => first,
    };
    match message.rfind(" at line ") {
        Some(cut) if message[cut..].contains(", column ") => message[..cut].to_string(),
        _ => message.to_string(),
    }
}

/// Where the scenario is when none is named: `./lab.yaml`, else the quickstart.
pub fn default_path() -> PathBuf {
    let local = PathBuf::from("lab.yaml");
    if local.exists() { local } else { PathBuf::from("scenarios/quickstart.yaml") }
}

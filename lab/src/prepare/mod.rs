//! Node preparation: CPU preflight, kernel modules, 2 MiB hugepages, mount
//! propagation, labels and the kubelet's view of hugepages. Each task is a
//! plan step over a node's `Shell` (or the API), idempotent: a second run
//! changes nothing and says so. Host and node state is recorded in the
//! [`UndoLog`] before it changes, so `lab down` can restore it.

pub mod cpu;
pub mod host_record;
pub mod hugepages;
pub mod kubelet;
pub mod label;
pub mod module;
pub mod propagation;
pub mod sysctl;
pub mod undo;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plan::{Cluster, Context, Detail, Step, Target, View, Work};
use crate::scenario::PlannedNode;
use crate::shell::{Cmd, Shell, quote};
use undo::Recorder;
pub use undo::UndoLog;

/// How long a node's kubelet gets to report the hugepages after a restart.
const ALLOCATABLE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Debug)]
pub enum Task {
    CpuPreflight {
        on: Target,
        cores: Vec<u32>,
        core_list: String,
    },
    LoadModules {
        on: Target,
        modules: Vec<String>,
        persist: bool,
    },
    SeesModules {
        on: Target,
        modules: Vec<String>,
    },
    Hugepages {
        on: Target,
        pages: u64,
        persist: bool,
    },
    SeesHugepages {
        on: Target,
        pages: u64,
    },
    Rshared {
        on: Target,
    },
    Labels {
        node: String,
        labels: BTreeMap<String, String>,
    },
    Allocatable {
        node: String,
        pages: u64,
        restart: Cmd,
    },
    /// Kernel settings (`net.ipv4.ip_forward`): set those with a value;
    /// only record those without, which a process lab starts will change.
    Sysctls {
        on: Target,
        settings: Vec<(String, Option<String>)>,
    },
}

impl Task {
    /// Where the task's commands run.
    pub fn target(&self) -> Target {
        match self {
            Task::CpuPreflight { on, .. }
            | Task::LoadModules { on, .. }
            | Task::SeesModules { on, .. }
            | Task::Hugepages { on, .. }
            | Task::SeesHugepages { on, .. }
            | Task::Rshared { on }
            | Task::Sysctls { on, .. } => on.clone(),
            Task::Labels { node, .. } | Task::Allocatable { node, .. } => Target::Node(node.clone()),
        }
    }

    pub fn details(&self) -> Vec<Detail> {
        match self {
            Task::CpuPreflight { .. } => cpu::details(),
            Task::LoadModules { modules, persist, .. } => module::ensure_details(modules, *persist),
            Task::SeesModules { modules, .. } => module::verify_details(modules),
            Task::Hugepages { pages, persist, .. } => hugepages::ensure_details(*pages, *persist),
            Task::SeesHugepages { .. } => vec![Detail::run(hugepages::read_cmd())],
            Task::Rshared { .. } => propagation::details(),
            Task::Labels { node, labels } => vec![Detail::api(label::describe(node, labels))],
            Task::Allocatable { node, restart, .. } => kubelet::details(node, restart),
            Task::Sysctls { settings, .. } => sysctl::details(settings),
        }
    }

    /// Do it; the result says what changed, or that nothing needed to.
    pub async fn run(&self, cluster: &dyn Cluster, shell: &dyn Shell, undo: &UndoLog) -> anyhow::Result<String> {
        let record = Recorder { log: undo, on: self.target() };
        match self {
            Task::CpuPreflight { cores, core_list, .. } => cpu::preflight(shell, cores, core_list).await,
            Task::LoadModules { modules, persist, .. } => module::ensure(shell, modules, *persist, &record).await,
            Task::SeesModules { modules, .. } => module::verify(shell, modules).await,
            Task::Hugepages { pages, persist, .. } => hugepages::ensure(shell, *pages, *persist, &record).await,
            Task::SeesHugepages { pages, .. } => hugepages::verify(shell, *pages).await,
            Task::Rshared { .. } => propagation::make_rshared(shell, &record).await,
            Task::Labels { node, labels } => {
                let remember = |key: &str, was: Option<&str>| {
                    record.remember(undo::Change::Label { key: key.into(), was: was.map(String::from) })
                };
                label::apply(cluster.client().await?, node, labels, remember).await
            }
            Task::Allocatable { node, pages, restart } => {
                let client = cluster.client().await?;
                let poll = Duration::from_secs(2);
                kubelet::make_hugepages_allocatable(client, shell, node, *pages, restart, poll, ALLOCATABLE_TIMEOUT)
                    .await
            }
            Task::Sysctls { settings, .. } => sysctl::ensure(shell, settings, &record).await,
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Work for Task {
    fn describe(&self, view: &View<'_>) -> String {
        view.details(&self.target(), &self.details())
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let shell = ctx.shell(&self.target());
        let undo = UndoLog::new(ctx.state.changes());
        Ok(Some(Task::run(self, ctx.cluster, &shell, &undo).await?))
    }
}

/// The preparation of a scenario, in two parts: what is done before the
/// cluster exists (on the host, whose kernel kind nodes share, so the kubelet
/// starts with the pages in place) and what is done on its nodes.
pub struct Preparation {
    pub before_cluster: Vec<Step>,
    pub on_nodes: Vec<Step>,
}

fn step(title: String, task: Task) -> Step {
    Step::work(title, task)
}

// Each provider composes its nodes' preparation from the pieces below
// (`Provider::preparation`): where its nodes' kernel is decides where the
// kernel's settings go.

/// `/` made rshared on `on`: the stack's Bidirectional and HostToContainer
/// mounts need it (Docker refuses them otherwise).
pub fn rshared_step(on: Target, place: &str) -> Step {
    step(format!("make / rshared on {place}"), Task::Rshared { on })
}

/// Nodes with kernels of their own (VMs, an existing cluster's): each gets
/// its kernel settings (kept across its reboots), `/` rshared where
/// `rshared` says, then its labels and allocatable pages.
pub fn each_node_on_its_own_kernel(
    nodes: &[PlannedNode],
    rshared: impl Fn(&PlannedNode) -> bool,
    kubelet_restart: &Cmd,
) -> Preparation {
    let mut on_nodes = Vec::new();
    for node in nodes {
        let on = Target::Node(node.name.clone());
        on_nodes.extend(kernel_steps(std::slice::from_ref(node), on.clone(), &node.name, true));
        if rshared(node) {
            on_nodes.push(rshared_step(on, &node.name));
        }
        on_nodes.extend(api_steps(node, kubelet_restart));
    }
    Preparation { before_cluster: Vec::new(), on_nodes }
}

/// The kernel settings the local cluster's processes need of this host,
/// recorded so `lab down` undoes them.
pub fn local_cluster_sysctls_step() -> Step {
    step(
        "set the kernel settings the local cluster needs on host".into(),
        Task::Sysctls { on: Target::Host, settings: sysctl::local_cluster() },
    )
}

/// CPU preflight, modules and hugepages for `nodes`, all done on `on`
/// (`persist`: kept across the machine's reboots too, where it outlives the lab).
pub fn kernel_steps(nodes: &[PlannedNode], on: Target, place: &str, persist: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut core_lists: Vec<String> = nodes
        .iter()
        .filter(|n| n.group.runs_io_engine())
        .map(|n| n.group.io_engine_core_list.clone().unwrap_or(crate::scenario::IO_ENGINE_DEFAULT_CORE_LIST.into()))
        .collect();
    core_lists.sort();
    core_lists.dedup();
    for list in core_lists {
        let cores = crate::scenario::parse_core_list(&list).unwrap_or_default();
        steps.push(step(
            format!("check {place}'s CPU for io-engine (SSE4.2, cores {list})"),
            Task::CpuPreflight { on: on.clone(), cores, core_list: list },
        ));
    }
    let mut modules: Vec<String> = nodes.iter().flat_map(|n| n.group.needed_modules()).collect();
    modules.sort();
    modules.dedup();
    if !modules.is_empty() {
        steps.push(step(
            format!("load kernel modules {} on {place}", modules.join(", ")),
            Task::LoadModules { on: on.clone(), modules, persist },
        ));
    }
    // Nodes sharing one kernel (kind) draw on one pool: each io-engine
    // takes its own pages, so the kernel needs all of them.
    let pages: u64 = nodes.iter().filter_map(|n| n.group.hugepages2_mi).sum();
    if pages > 0 {
        steps.push(step(format!("reserve {pages} 2 MiB hugepages on {place}"), Task::Hugepages { on, pages, persist }));
    }
    steps
}

/// A kind node: its /sys made writable, / rshared, and the host's kernel
/// settings checked from inside it.
pub fn kind_node_steps(node: &PlannedNode) -> Vec<Step> {
    let on = Target::Node(node.name.clone());
    let name = &node.name;
    // kind mounts /sys read-only; io-engine and CSI need to write there.
    let mut steps = vec![
        Step::run(
            format!("remount /sys read-write on {name}"),
            on.clone(),
            Cmd::new("mount").args(["-o", "remount,rw", "/sys"]),
        ),
        step(format!("make / rshared on {name}"), Task::Rshared { on: on.clone() }),
    ];
    let modules = node.group.needed_modules();
    if !modules.is_empty() {
        steps.push(step(
            format!("check {name} sees modules {}", modules.join(", ")),
            Task::SeesModules { on: on.clone(), modules },
        ));
    }
    if let Some(pages) = node.group.hugepages2_mi {
        steps.push(step(format!("check {name} sees {pages} free hugepages"), Task::SeesHugepages { on, pages }));
    }
    steps
}

/// Labels and the kubelet's allocatable hugepages, through the API.
pub fn api_steps(node: &PlannedNode, restart: &Cmd) -> Vec<Step> {
    let mut steps = Vec::new();
    let name = &node.name;
    if !node.group.labels.is_empty() {
        let labels = node.group.labels.clone();
        steps.push(step(format!("label node {name}"), Task::Labels { node: name.clone(), labels }));
    }
    if let Some(pages) = node.group.hugepages2_mi {
        steps.push(step(
            format!("make {pages} hugepages allocatable on {name}"),
            Task::Allocatable { node: name.clone(), pages, restart: restart.clone() },
        ));
    }
    steps
}

/// A file's contents, or `None` when it does not exist.
async fn read_file(shell: &dyn Shell, path: &str) -> anyhow::Result<Option<String>> {
    let exists = shell.exec(&exists_cmd(path), None).await?;
    if !exists.success() {
        return Ok(None);
    }
    Ok(Some(shell.run(&Cmd::new("cat").arg(path)).await?.stdout))
}

fn exists_cmd(path: &str) -> Cmd {
    Cmd::new("test").args(["-e", path])
}

/// Make `path` hold `text`, recording what it held before; false when it already did.
pub async fn write_if_different(
    shell: &dyn Shell,
    path: &str,
    text: &str,
    record: &Recorder<'_>,
) -> anyhow::Result<bool> {
    let current = read_file(shell, path).await?;
    if current.as_deref() == Some(text) {
        // Another lab's file, perhaps: this lab needs it as it is.
        record.rely_on(undo::Change::File { path: path.into(), was: current })?;
        return Ok(false);
    }
    record.remember(undo::Change::File { path: path.into(), was: current })?;
    shell.run(&write_file(path, text)).await?;
    Ok(true)
}

/// What [`write_if_different`] runs: read what is there, write when it differs.
fn persist_details(path: &str, text: &str) -> Vec<Detail> {
    vec![
        Detail::run(exists_cmd(path)),
        Detail::when(Cmd::new("cat").arg(path), "when it exists"),
        Detail::when(write_file(path, text), "unless it already says so"),
    ]
}

/// Writes the lines of `text` to `path`, creating its directory; one line of
/// shell however many lines the file has, so `--dry-run` stays readable.
fn write_file(path: &str, text: &str) -> Cmd {
    let dir = std::path::Path::new(path).parent().map(|d| d.display().to_string()).unwrap_or_else(|| "/".into());
    let lines: Vec<String> = text.lines().map(quote).collect();
    Cmd::sh(format!("mkdir -p {} && printf '%s\\n' {} > {}", quote(&dir), lines.join(" "), quote(path)))
}

/// Steps that undo what preparation recorded; see [`UndoLog::restore_steps`].
/// `nodes_outlive_lab`: the host's, an existing cluster's and the local
/// node do; kind containers and VMs take their changes with them.
pub fn restore_steps(undo: &UndoLog, nodes_outlive_lab: bool) -> anyhow::Result<Vec<Step>> {
    Ok(undo.restore_steps(&undo.entries()?, nodes_outlive_lab))
}

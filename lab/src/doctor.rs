//! `lab doctor`: every prerequisite a scenario needs on this machine, each
//! with how to fix it. Reads only; changes nothing.

use crate::provider::{Capabilities, Provider};
use crate::scenario::{BuildRecipe, Override, Scenario};
use crate::shell::Cmd;

pub use crate::findings::{Finding, Level, Machine, this_machine};
use crate::findings::{Tool, tool_finding};

pub async fn examine(scenario: &Scenario, provider: &dyn Provider, machine: &Machine<'_>) -> Vec<Finding> {
    let mut findings = provisioning(scenario, provider, machine).await;
    findings.extend(node_needs(scenario, &provider.capabilities(), machine).await);
    findings
}

/// What the provider itself needs to create the cluster (daemon, tools,
/// its own checks), and what building and testing the scenario need.
pub async fn provisioning(scenario: &Scenario, provider: &dyn Provider, machine: &Machine<'_>) -> Vec<Finding> {
    let capabilities = provider.capabilities();
    let mut findings = Vec::new();
    // Components are built by Docker on any provider.
    if capabilities.needs_docker || !scenario.components.is_empty() {
        findings.push(docker_daemon().await);
    }
    for tool in provider.tools().into_iter().chain(tools_for(scenario, &capabilities)) {
        findings.push(tool_finding(machine, tool).await);
    }
    if uses_charts(scenario) {
        findings.push(helm(machine).await);
    }
    findings.extend(provider.prerequisites(scenario, machine).await);
    findings
}

/// What the nodes need of this machine's kernel and CPU.
async fn node_needs(scenario: &Scenario, capabilities: &Capabilities, machine: &Machine<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let nodes = scenario.planned_nodes();
    let io_engine = nodes.iter().any(|n| n.group.runs_io_engine());
    // Nodes on this kernel: its pages, modules and CPUs are theirs.
    if capabilities.shares_host_kernel {
        let pages = scenario.host_hugepages();
        if pages > 0 {
            findings.push(hugepages(machine, pages));
        }
        let mut modules: Vec<String> = nodes.iter().flat_map(|n| n.group.needed_modules()).collect();
        modules.sort();
        modules.dedup();
        for module in modules {
            findings.push(kernel_module(machine, &module).await);
        }
    }
    if io_engine && capabilities.nodes_on_this_cpu {
        findings.push(sse4_2(machine));
    }
    if io_engine && capabilities.shares_host_kernel {
        let core_list = nodes.iter().any(|n| n.group.io_engine_core_list.is_some());
        findings.push(cpu_count(machine, core_list));
    }
    findings
}

/// What building and testing the scenario run on this machine, beside the
/// provider's own tools.
fn tools_for(scenario: &Scenario, capabilities: &Capabilities) -> Vec<Tool> {
    let mut tools = Vec::new();
    // A component with a `go` override built by a command (not a Dockerfile)
    // is most likely built by this machine's Go.
    let go_on_host = scenario.components.iter().any(|c| {
        matches!(c.build, BuildRecipe::Command(_)) && c.overrides.iter().any(|o| matches!(o, Override::Go(_)))
    });
    if go_on_host {
        tools.push(Tool {
            name: "go",
            version: &["version"],
            required: false,
            why: "builds the components with a `go` override and a build command",
            install: "install Go and put `go` on PATH (Debian: apt-get install golang)",
        });
    }
    // The host's own steps (fio on loop devices with xfs or ext4) run on this
    // machine: a scenario without a cluster cannot do without them, others may use them.
    if scenario.features.is_some() {
        tools.extend(host_test_tools(!capabilities.cluster));
    }
    tools
}

fn host_test_tools(required: bool) -> [Tool; 4] {
    [
        Tool {
            name: "fio",
            version: &["--version"],
            required,
            why: "runs the fio checks on this host",
            install: "apt-get install fio",
        },
        Tool {
            name: "losetup",
            version: &["--version"],
            required,
            why: "makes the loop devices host scenarios measure",
            install: "apt-get install util-linux",
        },
        Tool {
            name: "mkfs.xfs",
            version: &["-V"],
            required,
            why: "formats loop devices with xfs",
            install: "apt-get install xfsprogs",
        },
        Tool {
            name: "mkfs.ext4",
            version: &["-V"],
            required,
            why: "formats loop devices with ext4",
            install: "apt-get install e2fsprogs",
        },
    ]
}

fn uses_charts(scenario: &Scenario) -> bool {
    scenario.stack.iter().flat_map(|s| s.layers.iter()).any(|l| matches!(l, crate::scenario::Layer::Chart(_)))
}

/// How to get the helm lab is tested with.
const HELM_FIX: &str = "put helm 3 or 4 on PATH: `bash .ci/helm/build` in lab's repository builds the tested \
    helm v4.2.3 from Go modules (add the directory it prints to PATH), or install your distribution's helm";

/// A stack with chart layers needs `helm template` from helm 3 or 4.
async fn helm(machine: &Machine<'_>) -> Finding {
    let check = "helm";
    let Some(version) = machine.version(Cmd::new("helm").args(["version", "--short"])).await else {
        return Finding::missing(check, "not found on PATH (renders the stack's chart layers)", HELM_FIX);
    };
    match helm_major(&version) {
        Some(3 | 4) => Finding::ok(check, version),
        _ => Finding::missing(check, format!("{version}: lab renders charts with helm 3 or 4"), HELM_FIX),
    }
}

/// `v4.2.3+g…` → 4; helm 2 printed `Client: v2.…`.
fn helm_major(version: &str) -> Option<u32> {
    let at = version.find('v')?;
    version[at + 1..].split('.').next()?.parse().ok()
}

async fn docker_daemon() -> Finding {
    let check = "docker daemon";
    match crate::docker::connect().await {
        Ok(docker) => match docker.version().await {
            Ok(v) => Finding::ok(
                check,
                format!("Docker {} (API {})", v.version.unwrap_or_default(), v.api_version.unwrap_or_default()),
            ),
            Err(e) => {
                Finding::missing(check, e.to_string(), "start the daemon: `systemctl start docker` or `dockerd &`")
            }
        },
        Err(e) => Finding::missing(
            check,
            format!("{e:#}"),
            "apt-get install docker.io, then `systemctl start docker` or `dockerd &`",
        ),
    }
}

const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";

fn hugepages(machine: &Machine<'_>, want: u64) -> Finding {
    let check = "2 MiB hugepages";
    let total = machine.read_number(&format!("{HUGEPAGES_DIR}/nr_hugepages"));
    let free = machine.read_number(&format!("{HUGEPAGES_DIR}/free_hugepages"));
    match (total, free) {
        (Some(total), Some(free)) if free >= want => {
            Finding::ok(check, format!("{free} free of {total}, {want} needed"))
        }
        // lab reserves them itself; only a kernel that refuses is a problem.
        (Some(total), Some(free)) => Finding::warn(
            check,
            format!("{free} free of {total}, {want} needed"),
            format!("`lab prepare` (or `lab up`) reserves them: sysctl -w vm.nr_hugepages={}", total + (want - free)),
        ),
        _ => Finding::missing(
            check,
            format!("{HUGEPAGES_DIR} is not readable"),
            "use a kernel with 2 MiB hugepage support",
        ),
    }
}

async fn kernel_module(machine: &Machine<'_>, module: &str) -> Finding {
    let check = format!("module {module}");
    // Built-in modules show in /sys/module too, unlike /proc/modules.
    if machine.has(&format!("/sys/module/{}", crate::prepare::module::sysfs_name(module))) {
        return Finding::ok(&check, "loaded");
    }
    let release = machine.read("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let modprobe = machine.version(Cmd::sh("command -v modprobe")).await.is_some();
    let shipped = machine.has(&format!("/lib/modules/{release}"));
    match crate::prepare::module::cannot_load(&[module.to_string()], &release, modprobe, shipped) {
        None => Finding::warn(&check, "not loaded", format!("modprobe {module}")),
        Some((why, fix)) => Finding::missing(&check, format!("not loaded: {why}"), fix),
    }
}

fn sse4_2(machine: &Machine<'_>) -> Finding {
    let check = "CPU SSE4.2";
    let cpuinfo = machine.read("/proc/cpuinfo").unwrap_or_default();
    if crate::prepare::cpu::has_sse4_2(&cpuinfo) != Some(false) {
        Finding::ok(check, "sse4_2 present")
    } else {
        Finding::missing(
            check,
            "no sse4_2 flag: io-engine is built for nehalem and dies with SIGILL (exit 132)",
            "use an x86-64 CPU with SSE4.2 (for VMs, CPU mode host-passthrough)",
        )
    }
}

fn cpu_count(machine: &Machine<'_>, core_list_set: bool) -> Finding {
    let check = "CPU count";
    let cpus =
        machine.read("/proc/cpuinfo").unwrap_or_default().lines().filter(|l| l.starts_with("processor")).count() as u32;
    let need = crate::scenario::IO_ENGINE_MIN_CPUS;
    if cpus >= need || core_list_set {
        Finding::ok(check, format!("{cpus} CPUs"))
    } else {
        Finding::missing(
            check,
            format!("{cpus} CPUs; io-engine's default core list 1,2 needs {need} (\"EAL: invalid core list\")"),
            "set `ioEngineCoreList: \"1\"` on the io-engine nodes",
        )
    }
}

/// The findings as a table; the fix column only where there is something to do.
pub fn render(findings: &[Finding]) -> String {
    let check_width = findings.iter().map(|f| f.check.len()).max().unwrap_or(5).max(5);
    let detail_width = findings.iter().map(|f| f.detail.chars().count()).max().unwrap_or(6).clamp(6, 60);
    let mut out = String::new();
    for f in findings {
        let mark = match f.level {
            Level::Ok => "✓",
            Level::Warn => "!",
            Level::Missing => "✗",
        };
        let line = format!("{mark} {:check_width$}  {:detail_width$}", f.check, f.detail);
        if f.fix.is_empty() {
            out.push_str(line.trim_end());
        } else {
            out.push_str(&format!("{line}  → {}", f.fix));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::provider::Host;
    use crate::shell::LocalShell;

    /// A machine described by files under a temporary root: 2 CPUs without
    /// SSE4.2, 100 of 200 hugepages free, nvme_tcp loaded.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let full = root.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        write("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu sse2\n\nprocessor\t: 1\nflags\t\t: fpu sse2\n");
        write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "200\n");
        write("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "100\n");
        std::fs::create_dir_all(root.path().join("sys/module/nvme_tcp")).unwrap();
        root
    }

    #[tokio::test]
    async fn findings_follow_what_the_machine_has() {
        let root = fake_root();
        let machine = Machine { root: root.path(), shell: &LocalShell };
        let text = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\ncluster:\n  provider: host\n  nodes:\n    - role: worker\n      labels: {openebs.io/engine: mayastor}\n      hugepages2Mi: 1024\n      modules: [nvme_tcp]\n";
        let scenario = Scenario::parse(Path::new("t.yaml"), text).unwrap();
        let findings = examine(&scenario, &Host, &machine).await;
        let summary: Vec<(&str, Level, &str)> =
            findings.iter().map(|f| (f.check.as_str(), f.level, f.fix.as_str())).collect();
        assert_eq!(
            summary,
            [
                (
                    "2 MiB hugepages",
                    Level::Warn,
                    "`lab prepare` (or `lab up`) reserves them: sysctl -w vm.nr_hugepages=1124"
                ),
                ("module nvme_tcp", Level::Ok, ""),
                ("CPU SSE4.2", Level::Missing, "use an x86-64 CPU with SSE4.2 (for VMs, CPU mode host-passthrough)"),
                ("CPU count", Level::Missing, "set `ioEngineCoreList: \"1\"` on the io-engine nodes"),
            ]
        );
    }

    #[tokio::test]
    async fn a_host_scenario_with_features_needs_fio_and_the_filesystem_tools() {
        let root = fake_root();
        let machine = Machine { root: root.path(), shell: &LocalShell };
        let text = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\ncluster:\n  provider: host\nfeatures: sys\n";
        let scenario = Scenario::parse(&root.path().join("t.yaml"), text).unwrap();
        let names: Vec<&str> = tools_for(&scenario, &Host.capabilities()).iter().map(|t| t.name).collect();
        assert_eq!(names, ["fio", "losetup", "mkfs.xfs", "mkfs.ext4"]);
        assert!(tools_for(&scenario, &Host.capabilities()).iter().all(|t| t.required));
        // A tool that is not there is named with the package that brings it.
        let absent = Tool { name: "lab-no-such-tool", ..host_test_tools(true).into_iter().next().unwrap() };
        let finding = tool_finding(&machine, absent).await;
        assert_eq!((finding.level, finding.fix.as_str()), (Level::Missing, "apt-get install fio"));
    }

    #[test]
    fn a_go_override_built_by_a_command_asks_for_go() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cluster = Capabilities { cluster: true, ..Capabilities::default() };
        let local = Scenario::load(&repo.join("scenarios/local.yaml")).unwrap();
        let go: Vec<Tool> = tools_for(&local, &cluster).into_iter().filter(|t| t.name == "go").collect();
        assert_eq!(go.len(), 1, "scenarios/local.yaml builds its plugin with a go override");
        assert!(!go[0].required, "a build command may run Go in a container");
        let quickstart = Scenario::load(&repo.join("scenarios/quickstart.yaml")).unwrap();
        assert!(tools_for(&quickstart, &cluster).iter().all(|t| t.name != "go"));
    }

    #[test]
    fn helm_versions_3_and_4_are_told_from_2() {
        assert_eq!(helm_major("v4.2.3+gmodule-v4.2.3"), Some(4));
        assert_eq!(helm_major("v3.19.0+g3d8990f"), Some(3));
        assert_eq!(helm_major("Client: v2.17.0+ga690bad"), Some(2));
        assert_eq!(helm_major("garbage"), None);
    }
}

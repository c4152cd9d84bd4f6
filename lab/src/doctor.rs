//! `lab doctor`: every prerequisite a scenario needs on this machine, each
//! with how to fix it. Reads only; changes nothing.

use std::path::Path;
use std::time::Duration;

use crate::provider::existing_kubeconfig_path;
use crate::scenario::{BuildRecipe, DomainType, Override, ProviderKind, Scenario, VagrantProvider};
use crate::shell::{Cmd, LocalShell, Shell};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Not as it should be, but `lab` or the user can carry on.
    Warn,
    /// A required prerequisite is missing: the scenario cannot run.
    Missing,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub check: String,
    pub level: Level,
    pub detail: String,
    pub fix: String,
}

impl Finding {
    fn ok(check: &str, detail: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Ok, detail: detail.into(), fix: String::new() }
    }
    fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Warn, detail: detail.into(), fix: fix.into() }
    }
    fn missing(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Missing, detail: detail.into(), fix: fix.into() }
    }
}

/// What the doctor reads of the machine; a seam so tests can describe any machine.
pub struct Machine<'a> {
    /// Root under which `/proc` and `/sys` are read (`/` for the real machine).
    pub root: &'a Path,
    pub shell: &'a dyn Shell,
}

impl Machine<'_> {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    fn read_number(&self, path: &str) -> Option<u64> {
        self.read(path)?.trim().parse().ok()
    }

    fn has(&self, path: &str) -> bool {
        self.root.join(path.trim_start_matches('/')).exists()
    }

    /// First line of a tool's version output, or None when it is not installed.
    async fn version(&self, cmd: Cmd) -> Option<String> {
        let output = tokio::time::timeout(Duration::from_secs(20), self.shell.exec(&cmd, None)).await.ok()?.ok()?;
        let text = if output.stdout.trim().is_empty() { output.stderr } else { output.stdout };
        Some(text.lines().next().unwrap_or("").trim().to_string()).filter(|_| output.status == 0)
    }
}

pub async fn examine(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let mut findings = provisioning(scenario, machine).await;
    findings.extend(node_needs(scenario, machine).await);
    findings
}

/// What the provider itself needs to create the cluster: daemon, tools, kubeconfig.
pub async fn provisioning(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let provider = scenario.cluster.provider;
    let mut findings = Vec::new();
    // kind's nodes are containers, the local cluster's pause image is built
    // by Docker, and components are built by Docker on any provider.
    if matches!(provider, ProviderKind::Kind | ProviderKind::Local) || !scenario.components.is_empty() {
        findings.push(docker_daemon().await);
    }
    for tool in tools_for(scenario) {
        findings.push(tool_finding(machine, tool).await);
    }
    if uses_charts(scenario) {
        findings.push(helm(machine).await);
    }
    if provider == ProviderKind::Kind {
        findings.push(privileged_nodes(machine).await);
        if let Some(image) = scenario.cluster.kind.as_ref().and_then(|k| k.image.as_deref()) {
            findings.push(kind_node_image(image).await);
        }
    }
    if provider == ProviderKind::Vagrant {
        findings.push(vagrant_provider(machine, scenario).await);
        findings.extend(vagrant_libvirt_host(machine, scenario).await);
    }
    if provider == ProviderKind::Local {
        findings.extend(local_cluster(scenario, machine).await);
    }
    if provider == ProviderKind::Existing {
        let path = existing_kubeconfig_path(&crate::provider::existing_options(scenario));
        findings.push(if path.exists() {
            Finding::ok("kubeconfig", path.display().to_string())
        } else {
            Finding::missing(
                "kubeconfig",
                format!("{} does not exist", path.display()),
                "set cluster.existing.kubeconfig or KUBECONFIG",
            )
        });
    }
    findings
}

/// What the nodes need of this machine's kernel and CPU.
async fn node_needs(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let provider = scenario.cluster.provider;
    let mut findings = Vec::new();
    // kind nodes and the host share this kernel: its pages, modules and CPUs are theirs.
    let shares_kernel = matches!(provider, ProviderKind::Kind | ProviderKind::Host);
    let nodes = scenario.planned_nodes();
    let io_engine = nodes.iter().any(|n| n.group.runs_io_engine());
    if shares_kernel {
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
    if io_engine && provider != ProviderKind::Existing {
        findings.push(sse4_2(machine));
    }
    if io_engine && shares_kernel {
        let core_list = nodes.iter().any(|n| n.group.io_engine_core_list.is_some());
        findings.push(cpu_count(machine, core_list));
    }
    if provider == ProviderKind::Kind && nodes.len() > 1 {
        findings.push(inotify(machine));
    }
    findings
}

struct Tool {
    name: &'static str,
    version: &'static [&'static str],
    required: bool,
    why: &'static str,
    install: &'static str,
}

fn tools_for(scenario: &Scenario) -> Vec<Tool> {
    let kind = Tool {
        name: "kind",
        version: &["version"],
        required: true,
        why: "creates the cluster",
        install: "install kind: `bash .ci/kind/build` in lab's repository builds the pinned kind v0.33.0 from its Go module (add the directory it prints to PATH), or see https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    };
    let kubectl = |required| Tool {
        name: "kubectl",
        version: &["version", "--client"],
        required,
        why: "waits for nodes and opens node shells",
        install: "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    };
    let vagrant = Tool {
        name: "vagrant",
        version: &["--version"],
        required: true,
        why: "boots the VMs",
        install: "apt-get install vagrant",
    };
    let mut tools = match scenario.cluster.provider {
        ProviderKind::Kind => vec![kind, kubectl(false)],
        ProviderKind::Vagrant => vec![vagrant, kubectl(true)],
        ProviderKind::Existing => vec![kubectl(false)],
        ProviderKind::Host | ProviderKind::Local => vec![],
    };
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
    // machine: a host scenario cannot do without them, others may use them.
    if scenario.features.is_some() {
        tools.extend(host_test_tools(scenario.cluster.provider == ProviderKind::Host));
    }
    tools
}

/// The local provider: lab's Kubernetes binaries, Debian's runtime
/// packages, Docker for the pause image, and a host free of another cluster.
async fn local_cluster(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    use crate::provider::local;
    let dir = local::binaries_dir(scenario);
    let mut findings = Vec::new();
    let absent: Vec<&str> = local::BINARIES.iter().copied().filter(|b| !dir.join(b).is_file()).collect();
    findings.push(if absent.is_empty() {
        Finding::ok("Kubernetes binaries", dir.display().to_string())
    } else {
        Finding::missing(
            "Kubernetes binaries",
            format!("{} not in {}", absent.join(", "), dir.display()),
            "build them: `export LAB_KUBE_BIN=$(bash .ci/kube/build | tail -n 1)` (or set cluster.local.binaries)",
        )
    });
    let packages = [
        ("containerd", &["--version"][..], "apt-get install containerd"),
        ("runc", &["--version"][..], "apt-get install runc"),
        ("ctr", &["--version"][..], "apt-get install containerd"),
        ("iptables", &["--version"][..], "apt-get install iptables"),
        ("ip", &["-V"][..], "apt-get install iproute2"),
        ("conntrack", &["--version"][..], "apt-get install conntrack"),
    ];
    for (name, version, install) in packages {
        let why = "runs the local cluster";
        findings.push(tool_finding(machine, Tool { name, version, required: true, why, install }).await);
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        let path = format!("/usr/lib/cni/{plugin}");
        findings.push(if machine.has(&path) {
            Finding::ok(&format!("CNI {plugin}"), path)
        } else {
            Finding::missing(
                &format!("CNI {plugin}"),
                format!("{path} is absent"),
                "apt-get install containernetworking-plugins",
            )
        });
    }
    let state = match scenario.state_dir() {
        Ok(state) => state,
        Err(e) => {
            findings.push(Finding::missing(
                "state directory",
                format!("{e:#}"),
                "set LAB_STATE_DIR to an absolute path",
            ));
            return findings;
        }
    };
    let layout = local::Layout::new(scenario, &state);
    let conflicts = local::host_conflicts(&layout);
    findings.push(if conflicts.is_empty() {
        Finding::ok("host free for a local cluster", local::what_host_conflicts_checks(&layout))
    } else {
        Finding::missing(
            "host free for a local cluster",
            conflicts.join("; "),
            "clear what is named, or `lab down` a lab left behind",
        )
    });
    findings
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

async fn tool_finding(machine: &Machine<'_>, tool: Tool) -> Finding {
    match machine.version(Cmd::new(tool.name).args(tool.version.iter().copied())).await {
        Some(version) => Finding::ok(tool.name, version),
        None if tool.required => Finding::missing(tool.name, format!("not found on PATH ({})", tool.why), tool.install),
        None => Finding::warn(tool.name, format!("not found on PATH ({})", tool.why), tool.install),
    }
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

const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities the kernel knows (up to `last_cap`) that a process
/// with this `/proc/<pid>/status` may never hold.
fn withheld_capabilities(status: &str, last_cap: u32) -> Vec<String> {
    let Some(bounding) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Vec::new();
    };
    (0..=last_cap.min(63))
        .filter(|bit| bounding & (1 << bit) == 0)
        .map(|bit| CAPABILITY_NAMES.get(bit as usize).map_or(format!("capability {bit}"), |n| format!("CAP_{n}")))
        .collect()
}

/// kind starts nodes `--privileged`, and Docker's runc then asks for every
/// capability: where the host withholds one, no node starts.
async fn privileged_nodes(machine: &Machine<'_>) -> Finding {
    let check = "privileged nodes";
    let status = machine.read("/proc/self/status").unwrap_or_default();
    let last_cap = machine.read_number("/proc/sys/kernel/cap_last_cap").unwrap_or(40) as u32;
    let withheld = withheld_capabilities(&status, last_cap);
    if withheld.is_empty() {
        return Finding::ok(check, "this host grants every capability");
    }
    let runtime = match crate::docker::connect().await {
        Ok(docker) => docker.info().await.ok().and_then(|info| info.default_runtime),
        Err(_) => None,
    };
    let detail = format!("this host withholds {}", withheld.join(", "));
    match runtime.as_deref() {
        Some("runc") | None => Finding::missing(
            check,
            format!("{detail}; Docker's runc then fails kind's --privileged nodes (\"unable to apply caps\")"),
            "make Docker's default runtime drop them: dockerd --add-runtime lab-runc=<lab>/.ci/kind/runc-host-caps --default-runtime lab-runc (.ci/run does)",
        ),
        Some(other) => Finding::ok(check, format!("{detail}; Docker's default runtime is {other}")),
    }
}

/// The scenario's kind node image: kind pulls one Docker lacks, but lab's
/// offline image (`lab.local/…`) comes from no registry.
async fn kind_node_image(image: &str) -> Finding {
    let check = "kind node image";
    let present = match crate::docker::connect().await {
        Ok(docker) => docker.inspect_image(image).await.is_ok(),
        Err(_) => false,
    };
    if present {
        Finding::ok(check, format!("{image} is in Docker"))
    } else if image.starts_with("lab.local/") {
        Finding::missing(
            check,
            format!("Docker has no {image}, and no registry serves it"),
            "`bash .ci/kind/node-image` in lab's repository assembles it offline",
        )
    } else {
        Finding::warn(
            check,
            format!("Docker has no {image} yet; kind pulls it at `lab up`"),
            format!("`docker pull {image}` now, where a registry is reachable"),
        )
    }
}

async fn vagrant_provider(machine: &Machine<'_>, scenario: &Scenario) -> Finding {
    let provider = scenario.cluster.vagrant.clone().unwrap_or_default().provider;
    match provider {
        VagrantProvider::Libvirt => {
            let plugins = machine.version(Cmd::sh("vagrant plugin list | grep vagrant-libvirt")).await;
            match plugins {
                Some(line) => Finding::ok("vagrant-libvirt", line),
                None => Finding::missing(
                    "vagrant-libvirt",
                    "the libvirt provider plugin is not installed",
                    "apt-get install vagrant-libvirt libvirt-daemon-system",
                ),
            }
        }
        VagrantProvider::Virtualbox => match machine.version(Cmd::new("VBoxManage").arg("--version")).await {
            Some(version) => Finding::ok("virtualbox", version),
            None => {
                Finding::missing("virtualbox", "VBoxManage not found", "install VirtualBox, or use provider: libvirt")
            }
        },
    }
}

/// What lab's libvirt VMs need of this host: a libvirtd that answers, the
/// offline box file, and how the guests will run (KVM or emulation).
async fn vagrant_libvirt_host(machine: &Machine<'_>, scenario: &Scenario) -> Vec<Finding> {
    let options = scenario.cluster.vagrant.clone().unwrap_or_default();
    if options.provider != VagrantProvider::Libvirt {
        return Vec::new();
    }
    let mut findings = Vec::new();
    findings.push(match machine.version(Cmd::new("virsh").args(["-c", "qemu:///system", "version"])).await {
        Some(_) => Finding::ok("libvirtd", "answers on qemu:///system"),
        None => Finding::missing(
            "libvirtd",
            "nothing answers on qemu:///system",
            "start it: `systemctl start libvirtd`, or `virtlogd -d && libvirtd -d` where no init system runs",
        ),
    });
    findings.push(match &options.box_file {
        Some(file) => {
            let path = scenario.path_of(file);
            if path.is_file() {
                Finding::ok("vagrant box file", path.display().to_string())
            } else {
                Finding::missing(
                    "vagrant box file",
                    format!("{} does not exist", path.display()),
                    "`bash .ci/vm/box` in lab's repository assembles it offline",
                )
            }
        }
        None => Finding::warn(
            "vagrant box",
            format!("{} comes from Vagrant Cloud and the nodes install Kubernetes from the internet", options.box_name),
            "set cluster.vagrant.boxFile to lab's offline box (`bash .ci/vm/box`) where there is no internet",
        ),
    });
    let kvm_usable = machine.root.join("dev/kvm").exists();
    findings.push(match (options.driver, kvm_usable) {
        (DomainType::Qemu, _) => {
            Finding::ok("VM acceleration", "driver: qemu, software emulation (several times slower)")
        }
        (_, true) => Finding::ok(
            "VM acceleration",
            "/dev/kvm is present; `lab up` checks that a kernel really boots under KVM before using it",
        ),
        (DomainType::Kvm, false) => Finding::missing(
            "VM acceleration",
            "driver: kvm, but this host has no /dev/kvm",
            "set cluster.vagrant.driver: auto (or qemu) to run the VMs under emulation",
        ),
        (DomainType::Auto, false) => Finding::warn(
            "VM acceleration",
            "no /dev/kvm: the VMs run under software emulation, several times slower",
            "enable KVM (nested virtualisation on a VM host) for faster VMs",
        ),
    });
    findings
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

fn inotify(machine: &Machine<'_>) -> Finding {
    let check = "inotify limits";
    let watches = machine.read_number("/proc/sys/fs/inotify/max_user_watches").unwrap_or(0);
    let instances = machine.read_number("/proc/sys/fs/inotify/max_user_instances").unwrap_or(0);
    let detail = format!("max_user_watches={watches}, max_user_instances={instances}");
    if watches >= 524_288 && instances >= 512 {
        Finding::ok(check, detail)
    } else {
        Finding::warn(
            check,
            format!("{detail}: many kind nodes exhaust them (\"too many open files\")"),
            "sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512",
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

/// This machine.
pub fn this_machine() -> Machine<'static> {
    Machine { root: Path::new("/"), shell: &LocalShell }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_capabilities_are_read_from_the_bounding_set() {
        let status = |bounding: &str| format!("Name:\tlab\nCapPrm:\t0\nCapBnd:\t{bounding}\n");
        assert!(withheld_capabilities(&status("000001ffffffffff"), 40).is_empty());
        assert_eq!(withheld_capabilities(&status("000001fffeffffff"), 40), ["CAP_SYS_RESOURCE"]);
        // A kernel that knows fewer capabilities is not asked for the others.
        assert!(withheld_capabilities(&status("000000ffffffffff"), 39).is_empty());
        assert!(withheld_capabilities("no such line", 40).is_empty());
    }

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
        let findings = examine(&scenario, &machine).await;
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
        let names: Vec<&str> = tools_for(&scenario).iter().map(|t| t.name).collect();
        assert_eq!(names, ["fio", "losetup", "mkfs.xfs", "mkfs.ext4"]);
        assert!(tools_for(&scenario).iter().all(|t| t.required));
        // A tool that is not there is named with the package that brings it.
        let absent = Tool { name: "lab-no-such-tool", ..host_test_tools(true).into_iter().next().unwrap() };
        let finding = tool_finding(&machine, absent).await;
        assert_eq!((finding.level, finding.fix.as_str()), (Level::Missing, "apt-get install fio"));
    }

    #[test]
    fn a_go_override_built_by_a_command_asks_for_go() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let local = Scenario::load(&repo.join("scenarios/local.yaml")).unwrap();
        let go: Vec<Tool> = tools_for(&local).into_iter().filter(|t| t.name == "go").collect();
        assert_eq!(go.len(), 1, "scenarios/local.yaml builds its plugin with a go override");
        assert!(!go[0].required, "a build command may run Go in a container");
        let quickstart = Scenario::load(&repo.join("scenarios/quickstart.yaml")).unwrap();
        assert!(tools_for(&quickstart).iter().all(|t| t.name != "go"));
    }

    #[test]
    fn helm_versions_3_and_4_are_told_from_2() {
        assert_eq!(helm_major("v4.2.3+gmodule-v4.2.3"), Some(4));
        assert_eq!(helm_major("v3.19.0+g3d8990f"), Some(3));
        assert_eq!(helm_major("Client: v2.17.0+ga690bad"), Some(2));
        assert_eq!(helm_major("garbage"), None);
    }
}

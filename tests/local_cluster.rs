//! The main job on a real Kubernetes: the README's first command,
//! `bash .ci/main-job` (which gets what is missing, then runs `lab run scenarios/local.yaml`), brings
//! up the local provider's single-node cluster from the binaries
//! `.ci/kube/build` makes (`LAB_KUBE_BIN`), prepares the node (hugepages,
//! label, allocatable), builds and loads the hostpath CSI stack, deploys it,
//! runs `features/csi`, and tears it all down. Afterwards the host is as it was: no lab process,
//! no mount under /var/lib/kubelet, no new interface or iptables chain, the
//! same kernel settings and the same propagation of `/`. Without the binaries the test fails; it never skips.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod support;

use support::local::{ONE_CLUSTER, binaries, copy_manifests, down_on_drop, lab_in, repo};
use support::output;

/// What a cluster could leave behind on the host, as text to compare.
#[derive(Debug, PartialEq)]
struct Host {
    processes: Vec<String>,
    mounts: Vec<String>,
    interfaces: Vec<String>,
    chains: Vec<String>,
    /// The rules of the host's FORWARD and OUTPUT chains.
    rules: Vec<String>,
    /// `lab-…` cgroups at the top of every hierarchy.
    cgroups: Vec<String>,
    settings: Vec<(String, String)>,
    root_shared: Option<bool>,
}

impl Host {
    fn now() -> Host {
        let names = ["etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy"];
        let mut processes = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let name = status.lines().next().unwrap_or("").trim_start_matches("Name:").trim().to_string();
            // A zombie is not running; where PID 1 reaps nothing it outlives everything.
            let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
            let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
            let lab_containerd = name == "containerd" && cmdline.contains("/.lab/");
            if !zombie && (names.contains(&name.as_str()) || lab_containerd || name.starts_with("containerd-shim")) {
                processes.push(format!("{name} {}", cmdline.replace('\0', " ")));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with("/var/lib/kubelet") || m.starts_with("/run/lab"))
            .map(String::from)
            .collect();
        let interfaces = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("veth"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Chains made by someone, as `save table:chain`: a built-in chain
        // (with a policy) appears whenever anything lists its table, and is
        // nobody's to make or remove.
        let mut chains: Vec<String> = ["iptables-save", "ip6tables-save"]
            .iter()
            .flat_map(|save| {
                let mut table = String::new();
                let mut made = Vec::new();
                for line in output(save, &[]).lines() {
                    if let Some(name) = line.strip_prefix('*') {
                        table = name.to_string();
                    }
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    if let (Some(chain), Some(&"-")) = (fields.first().and_then(|f| f.strip_prefix(':')), fields.get(1))
                    {
                        made.push(format!("{save} {table}:{chain}"));
                    }
                }
                made
            })
            .collect();
        chains.sort();
        let rules = ["FORWARD", "OUTPUT"]
            .iter()
            .flat_map(|chain| output("iptables", &["-w", "-S", chain]).lines().map(String::from).collect::<Vec<_>>())
            .collect();
        let mut cgroups: Vec<String> = all_cgroup_hierarchies()
            .iter()
            .flat_map(|h| std::fs::read_dir(h).into_iter().flatten().flatten().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("lab-")))
            .map(|p| p.display().to_string())
            .collect();
        cgroups.sort();
        let keys = [
            "net/ipv4/ip_forward",
            "net/bridge/bridge-nf-call-iptables",
            "fs/inotify/max_user_instances",
            "vm/overcommit_memory",
            "vm/panic_on_oom",
            "kernel/panic",
            "kernel/panic_on_oops",
            "kernel/keys/root_maxkeys",
            "kernel/keys/root_maxbytes",
            "vm/nr_hugepages",
        ];
        let settings = keys
            .iter()
            .map(|k| {
                (k.to_string(), std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default().trim().into())
            })
            .collect();
        let root_shared =
            lab::prepare::propagation::root_is_shared(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        Host { processes, mounts, interfaces, chains, rules, cgroups, settings, root_shared }
    }
}

/// Host state that is not lab's, made before a lab comes up (as podman's
/// CNI chains, another tool's mounts and another kubelet's cgroups would
/// be), checked after it is down, and removed by the test even on failure.
struct Foreign {
    made_kubelet_dir: bool,
    made_kubepods: Vec<PathBuf>,
}

const FOREIGN_MOUNT: &str = "/var/lib/kubelet/lab-test-foreign";

fn run_ok(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every mounted cgroup hierarchy.
fn all_cgroup_hierarchies() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.get(2).is_some_and(|t| *t == "cgroup" || *t == "cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .collect()
}

/// The v1 hierarchies (or the v2 root) where a kubelet would put `kubepods`.
fn cgroup_roots() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.get(2).is_some_and(|t| *t == "cgroup" || *t == "cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .filter(|p| p.ends_with("memory") || p.ends_with("pids") || p == Path::new("/sys/fs/cgroup"))
        .collect()
}

impl Foreign {
    fn make() -> Foreign {
        run_ok("iptables", &["-w", "-N", "KUBE-LAB-TEST-FOREIGN"]);
        run_ok("iptables", &["-w", "-A", "FORWARD", "-j", "KUBE-LAB-TEST-FOREIGN"]);
        run_ok("iptables", &["-w", "-t", "nat", "-N", "CNI-LAB-TEST-FOREIGN"]);
        run_ok("iptables", &["-w", "-t", "nat", "-N", "KUBE-LAB-TEST-FOREIGN-NAT"]);
        let made_kubelet_dir = !Path::new("/var/lib/kubelet").exists();
        std::fs::create_dir_all(FOREIGN_MOUNT).unwrap();
        run_ok("mount", &["-t", "tmpfs", "lab-test-foreign", FOREIGN_MOUNT]);
        let mut made_kubepods = Vec::new();
        for root in cgroup_roots() {
            let dir = root.join("kubepods").join("lab-test-foreign");
            if std::fs::create_dir_all(&dir).is_ok() {
                made_kubepods.push(dir);
            }
        }
        Foreign { made_kubelet_dir, made_kubepods }
    }

    /// What of it is gone, if anything.
    fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        let filter = output("iptables", &["-w", "-S"]);
        let nat = output("iptables", &["-w", "-t", "nat", "-S"]);
        for (text, line) in [
            (&filter, "-N KUBE-LAB-TEST-FOREIGN"),
            (&filter, "-A FORWARD -j KUBE-LAB-TEST-FOREIGN"),
            (&nat, "-N CNI-LAB-TEST-FOREIGN"),
            (&nat, "-N KUBE-LAB-TEST-FOREIGN-NAT"),
        ] {
            if !text.lines().any(|l| l == line) {
                out.push(format!("iptables: {line}"));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(FOREIGN_MOUNT)) {
            out.push(format!("the mount on {FOREIGN_MOUNT}"));
        }
        out.extend(self.made_kubepods.iter().filter(|d| !d.is_dir()).map(|d| format!("cgroup {}", d.display())));
        out
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let run = |program: &str, args: &[&str]| {
            let _ = std::process::Command::new(program).args(args).output();
        };
        run("iptables", &["-w", "-D", "FORWARD", "-j", "KUBE-LAB-TEST-FOREIGN"]);
        run("iptables", &["-w", "-X", "KUBE-LAB-TEST-FOREIGN"]);
        run("iptables", &["-w", "-t", "nat", "-X", "CNI-LAB-TEST-FOREIGN"]);
        run("iptables", &["-w", "-t", "nat", "-X", "KUBE-LAB-TEST-FOREIGN-NAT"]);
        run("umount", &[FOREIGN_MOUNT]);
        let _ = std::fs::remove_dir(FOREIGN_MOUNT);
        if self.made_kubelet_dir {
            let _ = std::fs::remove_dir("/var/lib/kubelet");
        }
        for dir in &self.made_kubepods {
            let _ = std::fs::remove_dir(dir);
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Every scenario name of the feature files in `dir`.
fn scenarios_of(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        names.extend(text.lines().filter_map(|l| l.trim().strip_prefix("Scenario: ")).map(String::from));
    }
    names
}

/// The main job, for real: the hostpath CSI stack built from Go sources (the
/// plugin with a `go` override), loaded, deployed, every scenario of
/// `features/csi` passed (fio in a pod, a checksummed pattern across pods,
/// the override's log line in the running plugin), and every object of the
/// stack gone before the cluster is.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn lab_run_on_the_local_provider_runs_the_features_and_leaves_the_host_as_it_was() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    // Made first, so `before` holds them: they must all be there after.
    let foreign = Foreign::make();
    let before = Host::now();
    assert!(before.processes.is_empty(), "Kubernetes processes run already: {:?}", before.processes);
    let dir = tempfile::tempdir().unwrap();
    let scenario = repo().join("scenarios/local.yaml");
    let _results = support::Results::of("local");
    let down = down_on_drop(dir.path(), scenario.clone());

    // The README's first command, as a newcomer runs it (with this build of lab).
    let started = std::time::Instant::now();
    let run = std::process::Command::new("bash")
        .arg(repo().join(".ci/main-job"))
        .arg(&scenario)
        .args(["--junit", "junit.xml", "--artifacts"])
        .arg(dir.path().join("artifacts"))
        .current_dir(dir.path())
        .env("LAB_BIN", assert_cmd::cargo::cargo_bin("lab"))
        // The script finds (here: in .ci/run's cache) the binaries itself.
        .env_remove("LAB_KUBE_BIN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the main job (.ci/main-job, lab run) failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("main-job [") && stderr.contains("]: set up; lab run"), "{stderr}");
    eprintln!(
        "the main job (set-up checked, build, up, deploy, test, down) took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    for step in [
        "build component csi-hostpath-plugin",
        "build component csi-provisioner",
        "start kubelet",
        "load component csi-hostpath-plugin into the nodes",
        "wait until the stack's workloads are ready",
        "label node",
        "stop etcd",
    ] {
        assert!(stderr.contains(step), "no step {step:?}:\n{stderr}");
    }
    // Each removal waits until its objects are gone; together they are every object applied.
    let gone: usize = stderr
        .lines()
        .filter(|l| l.starts_with("✓") && l.contains(" object(s) gone"))
        .filter_map(|l| l.split(": ").last()?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    let applied: usize = stderr
        .lines()
        .filter(|l| l.starts_with("✓") && l.contains(" object(s) applied"))
        .filter_map(|l| l.split(": ").last()?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(applied >= 9 && gone == applied, "applied {applied} object(s), removed {gone}:\n{stderr}");
    // Where the time went, by phase: said, and kept beside the run's artifacts folder.
    let account = stderr.lines().find(|l| l.starts_with("where the time went: build ")).unwrap_or_default();
    for phase in ["cluster", "load", "rollout", "ready", "features", "teardown"] {
        assert!(account.contains(&format!(" · {phase} ")), "no {phase} in {account:?}:\n{stderr}");
    }
    let kept = std::fs::read_to_string(dir.path().join("timings.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(kept.lines().last().unwrap()).unwrap();
    assert_eq!(record["command"], "run", "{kept}");
    assert!(record["seconds"]["features"].as_f64().is_some_and(|s| s > 0.0), "{kept}");

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let expected = scenarios_of(&repo().join("features/csi"));
    assert!(expected.len() >= 6, "{expected:?}");
    for name in &expected {
        assert!(junit.contains(&format!("<testcase name=\"Scenario: {name}:")), "no test case {name:?}:\n{junit}");
    }
    assert!(!junit.contains("<failure") && !junit.contains("<skipped") && !junit.contains("<error"), "{junit}");
    assert!(!repo().join("scenarios/.lab/local").exists(), "the state directory is left");
    drop(down);
    assert_eq!(Host::now(), before, "the host is not as it was before lab run");
    assert_eq!(foreign.missing(), Vec::<String>::new(), "lab removed host state it did not make");
}

/// `lab doctor` checks what its line says: with kube-proxy's own chain
/// already on the host (another kube-proxy's), it names the chain and fails;
/// without it, the line lists what was found free.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn doctor_names_a_kube_proxy_chain_in_the_way() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let doctor = || {
        let out = lab_in(dir.path(), &binaries)
            .env("LAB_STATE_DIR", dir.path())
            .arg("doctor")
            .arg(repo().join("scenarios/local.yaml"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    run_ok("iptables", &["-w", "-t", "nat", "-N", "KUBE-SERVICES"]);
    let (ok, text) = doctor();
    let _ = std::process::Command::new("iptables").args(["-w", "-t", "nat", "-X", "KUBE-SERVICES"]).output();
    assert!(!ok, "{text}");
    assert!(
        text.contains("iptables chain KUBE-SERVICES in table nat exists: another kube-proxy runs on this host"),
        "{text}"
    );
    let (_, text) = doctor();
    assert!(
        text.contains("no kube-proxy chain KUBE-SERVICES (nat), KUBE-POSTROUTING (nat), KUBE-FORWARD (filter)"),
        "{text}"
    );
}

/// A pid file left in a lab's state (an older lab's, or one outliving a
/// reboot) that points at a live process with the component's very name is
/// not enough: `lab down` signals a process only when its pid, start time
/// and executable all match what lab recorded, so this one lives.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn a_stale_pid_file_never_gets_an_unrelated_process_killed() {
    // Its process is named etcd: the other tests' view of the host must not see it.
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // An unrelated process whose executable is named etcd.
    let etcd = dir.path().join("etcd");
    std::fs::copy("/bin/sleep", &etcd).unwrap();
    let mut victim = std::process::Command::new(&etcd).arg("300").spawn().unwrap();
    let pid = victim.id();
    let run_dir = state.join("local/local/run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let start: u64 = {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(19).unwrap().parse().unwrap()
    };
    // An old pid file (a pid alone), a record with another start time, and one with another executable.
    std::fs::write(run_dir.join("etcd.pid"), format!("{pid}\n")).unwrap();
    std::fs::write(run_dir.join("kube-apiserver.pid"), format!("{pid} {}\n", start + 1)).unwrap();
    std::fs::write(run_dir.join("containerd.pid"), format!("{pid} {start} /usr/bin/containerd\n")).unwrap();
    std::fs::write(state.join("local/instance"), "0123456789ab\n").unwrap();

    let down = Command::cargo_bin("lab")
        .unwrap()
        .env("LAB_STATE_DIR", &state)
        .env("LAB_KUBE_BIN", dir.path())
        .args(["down", "-q"])
        .arg(repo().join("scenarios/local.yaml"))
        .output()
        .unwrap();
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(alive, "lab down killed a process it did not start:\n{}", String::from_utf8_lossy(&down.stderr));
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
}

/// A broken stack fails the run before anything waits on it: a scratch copy
/// of the manifests with a misspelt image names the container, its
/// DaemonSet, its file and the image, asks no registry (the stack never pulls),
/// and leaves nothing behind.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn a_stack_with_a_wrong_image_fails_the_run_naming_the_container_and_the_image() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    copy_manifests(&repo().join("manifests/csi-hostpath"), &manifests);
    let plugin = manifests.join("10-plugin.yaml");
    let text = std::fs::read_to_string(&plugin).unwrap();
    assert!(text.contains("image: lab-local/csi-hostpath-plugin:dev"), "the fixture's image changed: {text}");
    std::fs::write(&plugin, text.replace("lab-local/csi-hostpath-plugin:dev", "lab-local/csi-hostpath-plugn:dev"))
        .unwrap();
    let shipped = std::fs::read_to_string(repo().join("scenarios/local.yaml")).unwrap();
    let fixtures = repo().join("tests/fixtures");
    let scenario = shipped
        .replace("../manifests/csi-hostpath", &manifests.display().to_string())
        .replace("../tests/fixtures", &fixtures.display().to_string())
        .replace("../features/csi", &repo().join("features/csi").display().to_string())
        .replace("name: local\n", "name: local-broken\n");
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();

    let before = Host::now();
    let _down = down_on_drop(dir.path(), dir.path().join("lab.yaml"));
    let run = lab_in(dir.path(), &binaries).args(["run", "--junit", "junit.xml", "lab.yaml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "lab run passed with a misspelt image:\n{stderr}");
    let line = stderr.lines().find(|l| l.contains("lab-local/csi-hostpath-plugn:dev")).unwrap_or_default();
    assert!(line.contains("container hostpath of DaemonSet csi-hostpath/csi-hostpath-plugin"), "{stderr}");
    assert!(line.contains("10-plugin.yaml") && line.contains("never pulled"), "{stderr}");
    assert!(stderr.contains("cleaning up"), "{stderr}");
    assert!(!dir.path().join("junit.xml").exists(), "the suite ran on a broken stack");
    // The failed up gathered the cluster's logs before its cleanup, unasked.
    let runs = dir.path().join("artifacts/local-broken");
    let run_dir = std::fs::read_dir(&runs).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    let node = run_dir.join("logs/nodes/lab-local-broken-control-plane");
    assert!(
        std::fs::metadata(node.join("kubelet.log")).is_ok_and(|m| m.len() > 0),
        "no kubelet log in {}",
        run_dir.display()
    );
    assert!(run_dir.join("logs/namespaces/default/events.txt").is_file(), "no events in {}", run_dir.display());
    assert!(run_dir.join("logs/not-ready.txt").is_file(), "no not-ready list in {}", run_dir.display());
    assert_eq!(Host::now(), before, "the failed lab run left something behind");
}

/// A component that cannot start is named, with the last lines of its log,
/// and the half-made cluster is removed.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn a_component_that_dies_is_named_with_its_log() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("bin");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(&binaries).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    // A kube-scheduler that says why and exits.
    std::fs::remove_file(broken.join("kube-scheduler")).unwrap();
    std::fs::write(
        broken.join("kube-scheduler"),
        "#!/bin/sh\necho 'scheduler: no such config, giving up' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(broken.join("kube-scheduler"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let scenario = repo().join("scenarios/local.yaml");
    let before = Host::now();
    let _down = down_on_drop(dir.path(), scenario.clone());
    let evidence = dir.path().join("evidence");
    let up = lab_in(dir.path(), &broken).arg("up").arg("--artifacts").arg(&evidence).arg(&scenario).output().unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "lab up succeeded with a broken scheduler:\n{stderr}");
    assert!(stderr.contains("✗ [") && stderr.contains("start kube-scheduler"), "{stderr}");
    assert!(stderr.contains("kube-scheduler exited"), "{stderr}");
    assert!(stderr.contains("scheduler: no such config, giving up"), "{stderr}");
    assert!(stderr.contains("cleaning up"), "{stderr}");
    // The log outlives the cleanup that removed the state folder.
    assert!(stderr.contains(&format!("the log of the failed lab up: {}", evidence.display())), "{stderr}");
    let log = std::fs::read_to_string(evidence.join("lab.log")).unwrap();
    assert!(log.contains("kube-scheduler"), "{log}");
    assert!(dir.path().join("evidence.tar.gz").is_file(), "no tarball beside {}", evidence.display());
    assert!(!repo().join("scenarios/.lab/local").exists(), "the state folder is left");
    assert_eq!(Host::now(), before, "the failed lab up left something behind");
}

/// The Mayastor manifests checked by a real API server: the CRD and the
/// namespace applied, every other object through `dryRun=All` with no
/// rejection and nothing stored; a scratch copy with an invalid Service is
/// rejected, naming the object, its file and the server's reason.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn the_mayastor_manifests_pass_a_real_api_servers_dry_run_and_a_broken_one_does_not() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    // Same lab name, so both files reach the same cluster: `lab up` of the
    // first (no stack: Mayastor's images cannot run here), checks with the others.
    let base = repo().join("manifests/mayastor-base");
    let scenario = |stack: &str| {
        let stack = if stack.is_empty() {
            String::new()
        } else {
            format!("stack:\n  layers:\n    - manifests: {}\n    - manifests: {stack}\n", base.display())
        };
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: mayastor-check\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\n{stack}"
        )
    };
    let manifests = repo().join("manifests/mayastor");
    std::fs::write(dir.path().join("up.yaml"), scenario("")).unwrap();
    std::fs::write(dir.path().join("shipped.yaml"), scenario(&manifests.display().to_string())).unwrap();
    let broken = dir.path().join("broken");
    copy_manifests(&manifests, &broken);
    let service = broken.join("11-api-rest.yaml");
    let text = std::fs::read_to_string(&service).unwrap();
    assert!(text.contains("type: ClusterIP"), "the fixture's Service changed: {text}");
    std::fs::write(&service, text.replace("type: ClusterIP", "type: Bogus")).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), scenario("broken")).unwrap();

    let _down = down_on_drop(dir.path(), dir.path().join("up.yaml"));
    let lab = |args: &[&str]| lab_in(dir.path(), &binaries).args(args).output().unwrap();
    let up = lab(&["up", "up.yaml"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let shipped = lab(&["deploy", "--server-dry-run", "shipped.yaml"]);
    let stderr = String::from_utf8_lossy(&shipped.stderr);
    assert!(shipped.status.success(), "the shipped manifests were rejected:\n{stderr}");
    assert!(stderr.contains("8 object(s) accepted by the API server, none stored"), "{stderr}");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(binaries.join("kubectl"))
            .env("KUBECONFIG", dir.path().join(".lab/mayastor-check/kubeconfig"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        kubectl(&["get", "crd", "-o", "name"]).trim(),
        "customresourcedefinition.apiextensions.k8s.io/diskpools.openebs.io"
    );
    assert_eq!(
        kubectl(&["get", "deploy,daemonset,statefulset,svc", "-n", "mayastor", "-o", "name"]),
        "",
        "a dry run stored objects"
    );

    let rejected = lab(&["deploy", "--server-dry-run", "broken.yaml"]);
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(!rejected.status.success(), "an invalid Service was accepted:\n{stderr}");
    assert!(stderr.contains("the API server rejects 1 of 5 object(s)"), "{stderr}");
    assert!(
        stderr.contains("applying Service mayastor/mayastor-api-rest (broken/11-api-rest.yaml:1)")
            && stderr.contains("spec.type: Unsupported value: \"Bogus\""),
        "{stderr}"
    );
}

/// `lab status` and `lab shell` on the local node; a larger hugepage pool
/// than the kubelet saw when it started: `lab prepare` grows the pool,
/// restarts lab's own kubelet, and the API then shows the new allocatable.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn status_shell_and_a_kubelet_restart_for_more_hugepages() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let scenario = |pages: u32| {
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: local-restart\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\n      hugepages2Mi: {pages}\n"
        )
    };
    std::fs::write(dir.path().join("lab.yaml"), scenario(32)).unwrap();
    let _down = down_on_drop(dir.path(), dir.path().join("lab.yaml"));
    // An index of labs of this test's own, so `lab list` sees this lab alone.
    let index = dir.path().join("index");
    let lab = |args: &[&str]| {
        let mut cmd = lab_in(dir.path(), &binaries);
        cmd.env("LAB_INDEX_DIR", &index).args(args);
        cmd
    };
    let up = lab(&["up"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let status = String::from_utf8(lab(&["status"]).output().unwrap().stdout).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("lab-local-restart-control-plane") && l.ends_with("Ready")),
        "{status}"
    );
    let json = String::from_utf8(lab(&["status", "--json"]).output().unwrap().stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(json["up"], true, "{json}");
    assert_eq!(json["nodes"][0]["name"], "lab-local-restart-control-plane", "{json}");
    assert_eq!(json["nodes"][0]["state"], "Ready", "{json}");
    assert!(json["kubeconfig"].as_str().is_some_and(|k| k.starts_with('/')), "{json}");
    let list = String::from_utf8(lab(&["list", "--json"]).output().unwrap().stdout).unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap_or_else(|e| panic!("{e}: {list}"));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        (list[0]["name"].as_str(), list[0]["provider"].as_str()),
        (Some("local-restart"), Some("local")),
        "{list}"
    );
    assert_eq!(list[0]["up"], "up", "{list}");
    let table = String::from_utf8(lab(&["list"]).output().unwrap().stdout).unwrap();
    assert!(table.lines().any(|l| l.starts_with("local-restart") && l.ends_with("  up")), "{table}");

    // `lab export logs DIR`: the node's process logs, every namespace's pods and events, the path on stdout.
    let logs = dir.path().join("logs");
    let export = lab(&["export", "logs", logs.to_str().unwrap()]).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert_eq!(String::from_utf8_lossy(&export.stdout).trim(), logs.display().to_string());
    let node = logs.join("nodes/lab-local-restart-control-plane");
    let kubelet = std::fs::read_to_string(node.join("kubelet.log")).unwrap();
    assert!(kubelet.contains("kubelet") && kubelet.lines().count() > 10, "{kubelet}");
    for file in ["containerd.log", "kube-apiserver.log", "etcd.log", "dmesg.txt"] {
        assert!(node.join(file).is_file(), "{file} not exported");
    }
    for file in
        ["nodes.json", "not-ready.txt", "lab.log", "namespaces/default/events.txt", "namespaces/kube-system/pods.json"]
    {
        assert!(logs.join(file).is_file(), "{file} not exported");
    }
    let nodes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("nodes.json")).unwrap()).unwrap();
    assert_eq!(nodes[0]["metadata"]["name"], "lab-local-restart-control-plane");

    // The shell is on the node, with ctr pointed at lab's containerd and kubectl at the cluster.
    let kubectl = binaries.join("kubectl").display().to_string();
    let shell = lab(&["shell", "lab-local-restart-control-plane"])
        .env("SHELL", "/bin/sh")
        .write_stdin(format!("ctr -n k8s.io images ls -q; {kubectl} get nodes -o name; exit 3\n"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&shell.stdout);
    assert_eq!(shell.status.code(), Some(3), "{said}\n{}", String::from_utf8_lossy(&shell.stderr));
    assert!(said.contains("lab.local/pause:3.10"), "lab's containerd is not the shell's: {said}");
    assert!(said.contains("node/lab-local-restart-control-plane"), "{said}");

    std::fs::write(dir.path().join("lab.yaml"), scenario(48)).unwrap();
    let prepare = lab(&["prepare"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&prepare.stderr);
    assert!(prepare.status.success(), "{stderr}");
    assert!(stderr.contains("32 → 48 pages"), "the pool did not grow:\n{stderr}");
    assert!(stderr.contains("kubelet restarted; allocatable 32 → 48 pages"), "{stderr}");

    // Down, the lab leaves the index with its state.
    let down = lab(&["down"]).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let list = String::from_utf8(lab(&["list"]).output().unwrap().stdout).unwrap();
    assert!(list.starts_with("no labs on this machine"), "{list}");
}

/// A tiny stack with no image: a namespace, a ConfigMap, a ServiceAccount
/// and a StorageClass whose claims bind to volumes made by hand.
const OWN_STACK: &str = "apiVersion: v1
kind: Namespace
metadata: {name: own-stack}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: own-stack}
data: {mode: test}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: agent, namespace: own-stack}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: own-static}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
";

/// Removes a Docker image the test built, whatever happens.
struct DockerImage(&'static str);

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rmi", "-f", self.0]).output();
    }
}

/// `provider: existing` pointed at a cluster someone else runs (a local
/// cluster the test brings up): lab refuses a stack that is already there
/// and changes nothing, adopts it only when told, and its `lab down` deletes
/// only what it made. A user's claim in their own namespace, a user's
/// ConfigMap in the stack's namespace and the node's previous label value
/// all survive. Then a failing `lab run` leaves its artifacts beside the
/// scenario, bundled in a tarball with the pod logs and the events.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn on_an_existing_cluster_lab_touches_only_what_it_made_and_keeps_the_evidence() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The node shell and test pods need an image with nsenter, sleep and fio, in the cluster already.
    let shell_image = DockerImage("lab-test/shell:1");
    let build = std::process::Command::new("sh")
        .arg(repo().join("tests/fixtures/csi-hostpath/fio/build.sh"))
        .arg(shell_image.0)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let head = |name: &str| format!("apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: {name}\n");
    std::fs::write(
        root.join("base.yaml"),
        format!(
            "{}cluster:\n  provider: local\n  nodes:\n    - role: control-plane\nimages:\n  preload: [{}]\n",
            head("own-base"),
            shell_image.0
        ),
    )
    .unwrap();
    let _down = down_on_drop(root, root.join("base.yaml"));
    let lab = |args: &[&str]| {
        let out = lab_in(root, &binaries).args(args).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, said) = lab(&["up", "base.yaml"]);
    assert!(ok, "{said}");

    let kubeconfig = root.join(".lab/own-base/kubeconfig");
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(binaries.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let apply = |yaml: &str| {
        let file = root.join("apply.yaml");
        std::fs::write(&file, yaml).unwrap();
        kubectl(&["apply", "-f", file.to_str().unwrap()]);
    };
    let node = "lab-own-base-control-plane";
    let node_label = || kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.labels.lab\\.dev/role}"]);
    let exists = |kind: &str, name: &str, ns: Option<&str>| {
        let mut args = vec!["get", kind, name, "--ignore-not-found", "-o", "name"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        !kubectl(&args).trim().is_empty()
    };
    // What the cluster's owner had before lab came: a label, a namespace with a claim of the stack's class.
    kubectl(&["label", "node", node, "lab.dev/role=before"]);
    apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: users}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: users}\nspec:\n  storageClassName: own-static\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 8Mi}}\n",
    );

    std::fs::create_dir(root.join("stack")).unwrap();
    std::fs::write(root.join("stack/stack.yaml"), OWN_STACK).unwrap();
    let existing = |name: &str, rest: &str| {
        format!(
            "{}cluster:\n  provider: existing\n  existing:\n    kubeconfig: {}\n    nodeShellImage: {}\n  nodes:\n    - role: worker\n      name: {node}\n      labels: {{lab.dev/role: storage}}\n{rest}",
            head(name),
            kubeconfig.display(),
            shell_image.0
        )
    };
    std::fs::write(root.join("own.yaml"), existing("own", "stack:\n  layers:\n    - manifests: stack\n")).unwrap();

    // 1. A fresh install: lab creates the stack, labels the node, and its
    //    down removes what it made, leaving the namespace that now holds a user's ConfigMap.
    let (ok, said) = lab(&["up", "own.yaml"]);
    assert!(ok, "{said}");
    assert_eq!(node_label(), "storage");
    let marks = kubectl(&["get", "configmap", "settings", "-n", "own-stack", "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        marks.contains("\"app.kubernetes.io/managed-by\":\"lab\"") && marks.contains("\"lab.dev/lab\":\"own\""),
        "{marks}"
    );
    apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: user-notes, namespace: own-stack}\ndata: {note: mine}\n");
    // Kinds a guard of a fixed list would miss: a (suspended) Job, and a custom resource of the user's own CRD.
    apply(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: notes.users.example.com}\nspec:\n  group: users.example.com\n  scope: Namespaced\n  names: {plural: notes, singular: note, kind: Note}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    );
    kubectl(&["wait", "--for=condition=Established", "crd/notes.users.example.com", "--timeout=60s"]);
    apply(
        "apiVersion: users.example.com/v1\nkind: Note\nmetadata: {name: mine, namespace: own-stack}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: user-job, namespace: own-stack}\nspec:\n  suspend: true\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: lab.local/pause:3.10, imagePullPolicy: Never}]\n",
    );
    let (ok, said) = lab(&["down", "own.yaml"]);
    assert!(ok, "{said}");
    let kept = said
        .lines()
        .find(|l| l.contains("Namespace own-stack (it holds objects lab did not make:"))
        .unwrap_or_default();
    for foreign in ["ConfigMap own-stack/user-notes", "Job own-stack/user-job", "Note own-stack/mine"] {
        assert!(kept.contains(foreign), "the namespace guard missed {foreign}:\n{said}");
    }
    assert!(exists("job", "user-job", Some("own-stack")) && exists("note", "mine", Some("own-stack")), "{said}");
    assert!(
        !exists("configmap", "settings", Some("own-stack")) && !exists("storageclass", "own-static", None),
        "{said}"
    );
    assert!(exists("configmap", "user-notes", Some("own-stack")), "lab down deleted a user's ConfigMap");
    assert!(exists("pvc", "data", Some("users")), "lab down deleted a user's claim");
    assert_eq!(node_label(), "before", "the node's label is not back to its old value");

    // 2. The stack installed by someone else: lab up refuses, names the objects and their manager, changes nothing.
    apply(OWN_STACK);
    let versions = || {
        let kinds = "namespaces,configmaps,serviceaccounts,storageclasses,persistentvolumeclaims,persistentvolumes";
        let list = kubectl(&[
            "get",
            kinds,
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name} {.metadata.resourceVersion}{\"\\n\"}{end}",
        ]);
        (list, node_label())
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let before = versions();
    assert!(before.0.lines().count() >= 10, "{}", before.0);
    let (ok, said) = lab(&["up", "own.yaml"]);
    assert!(!ok, "lab up took over a stack it did not install:\n{said}");
    for conflict in [
        "ConfigMap own-stack/settings (no lab mark, managed by kubectl-client-side-apply)",
        "ServiceAccount own-stack/agent (no lab mark, managed by kubectl-client-side-apply)",
        "StorageClass own-static (no lab mark, managed by kubectl-client-side-apply)",
    ] {
        assert!(said.contains(conflict), "{conflict} not named:\n{said}");
    }
    assert!(said.contains("nothing was changed; `--adopt` takes them over"), "{said}");
    assert_eq!(versions(), before, "a refused lab up changed the cluster");

    // 3. Adopted: lab works with them, and its down leaves them.
    let (ok, said) = lab(&["up", "--adopt", "own.yaml"]);
    assert!(ok, "{said}");
    let (ok, said) = lab(&["down", "own.yaml"]);
    assert!(ok, "{said}");
    assert!(said.contains("ConfigMap own-stack/settings (adopted; --delete-adopted removes it)"), "{said}");
    assert!(exists("configmap", "settings", Some("own-stack")) && exists("storageclass", "own-static", None));
    assert_eq!(node_label(), "before");

    // 4. Adopted and then deleted on request: still never the user's own objects.
    let (ok, said) = lab(&["up", "--adopt", "own.yaml"]);
    assert!(ok, "{said}");
    let (ok, said) = lab(&["down", "--delete-adopted", "own.yaml"]);
    assert!(ok, "{said}");
    assert!(
        !exists("configmap", "settings", Some("own-stack")) && !exists("storageclass", "own-static", None),
        "{said}"
    );
    assert!(exists("configmap", "user-notes", Some("own-stack")) && exists("pvc", "data", Some("users")), "{said}");
    assert_eq!(node_label(), "before");

    // 5. A failing lab run keeps its evidence beside the scenario, after its down.
    let volume = root.join("pv");
    std::fs::create_dir(&volume).unwrap();
    apply(&format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: own-pv}}\nspec:\n  storageClassName: own-fail-static\n  capacity: {{storage: 64Mi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: {}}}\n",
        volume.display()
    ));
    std::fs::create_dir_all(root.join("fail/stack")).unwrap();
    std::fs::write(
        root.join("fail/stack/class.yaml"),
        OWN_STACK.split("---\n").last().unwrap().replace("own-static", "own-fail-static"),
    )
    .unwrap();
    std::fs::create_dir(root.join("fail/features")).unwrap();
    std::fs::write(root.join("fail/features/fail.feature"), "Feature: a failure on purpose\n  Scenario: a running pod is not gone\n    When I create a 8 MiB PVC \"data\" of StorageClass \"own-fail-static\"\n    Then the PVC \"data\" is Bound within 60 seconds\n    When I start a pod \"p\" using the PVC \"data\"\n    Then the pod \"p\" is Running within 120 seconds\n    And the pod \"p\" is gone within 1 seconds\n").unwrap();
    let fail = existing(
        "own-fail",
        &format!(
            "stack:\n  layers:\n    - manifests: stack\nfeatures: features\nfio:\n  podImage: {}\n",
            shell_image.0
        ),
    );
    std::fs::write(root.join("fail/lab.yaml"), fail).unwrap();
    let (ok, said) = lab(&["run", "fail/lab.yaml"]);
    kubectl(&["delete", "pv", "own-pv", "--ignore-not-found"]);
    assert!(!ok, "the failing scenario passed:\n{said}");
    let runs: Vec<PathBuf> = std::fs::read_dir(root.join("fail/artifacts/own-fail"))
        .unwrap_or_else(|e| panic!("no artifacts beside the scenario ({e}):\n{said}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    let tarball = runs
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".tar.gz") && !p.to_string_lossy().ends_with("-bundle.tar.gz"))
        .unwrap_or_else(|| panic!("no tarball in {runs:?}"));
    // The failed run was bundled too (`lab bundle`), with its artifacts.
    let bundle = runs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-bundle.tar.gz"))
        .unwrap_or_else(|| panic!("no bundle of the failed run in {runs:?}:\n{said}"));
    let bundled = output("tar", &["-tzf", bundle.to_str().unwrap()]);
    for file in ["bundle.json", "scenario/lab.yaml", "artifacts/a-running-pod-is-not-gone/events.txt"] {
        assert!(bundled.lines().any(|l| l.ends_with(file)), "{file} not in the bundle:\n{bundled}");
    }
    assert!(
        said.contains(&tarball.display().to_string()) || said.contains("fail/artifacts/own-fail/"),
        "the path is not printed:\n{said}"
    );
    assert!(!root.join("fail/.lab/own-fail").exists(), "lab run did not remove the lab:\n{said}");
    let listing = output("tar", &["-tzf", tarball.to_str().unwrap()]);
    for file in [
        "a-running-pod-is-not-gone/events.txt",
        "a-running-pod-is-not-gone/pods.json",
        "a-running-pod-is-not-gone/pod-p-fio.log",
        "lab.log",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(file)), "{file} not in the tarball:\n{listing}");
    }
    let unpacked = root.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    output("tar", &["-xzf", tarball.to_str().unwrap(), "-C", unpacked.to_str().unwrap()]);
    let events = walk_files(&unpacked).into_iter().find(|p| p.ends_with("events.txt")).unwrap();
    let events = std::fs::read_to_string(events).unwrap();
    assert!(events.contains("Pod/p") && events.contains("Scheduled"), "{events}");
}

fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A DaemonSet with `updateStrategy: OnDelete`, as Mayastor's io-engine has:
/// after its template changes, Kubernetes replaces no pod by itself, so
/// readiness alone would wait forever. `lab deploy` deletes the outdated pod
/// and waits for its Ready replacement, on a real API server and kubelet.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn lab_deploy_rolls_an_on_delete_daemon_set_itself() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let daemon_set = |revision: u32| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: roll}}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: waiter, namespace: roll}}\nspec:\n  selector: {{matchLabels: {{app: waiter}}}}\n  updateStrategy: {{type: OnDelete}}\n  template:\n    metadata:\n      labels: {{app: waiter}}\n      annotations: {{lab.dev/test-revision: \"{revision}\"}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      tolerations: [{{operator: Exists}}]\n      containers:\n        - name: pause\n          image: lab.local/pause:3.10\n          imagePullPolicy: Never\n"
        )
    };
    std::fs::create_dir(root.join("stack")).unwrap();
    std::fs::write(root.join("stack/waiter.yaml"), daemon_set(1)).unwrap();
    std::fs::write(
        root.join("lab.yaml"),
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: roll\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\nstack:\n  layers:\n    - manifests: stack\n  timeouts: {ready: 2m}\n",
    )
    .unwrap();
    let _down = down_on_drop(root, root.join("lab.yaml"));
    let lab = |args: &[&str]| {
        let out = lab_in(root, &binaries).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let revision = || {
        let out = std::process::Command::new(binaries.join("kubectl"))
            .arg("--kubeconfig")
            .arg(root.join(".lab/roll/kubeconfig"))
            .args(["get", "pods", "-n", "roll", "-l", "app=waiter,role!=bystander", "-o"])
            .arg("jsonpath={range .items[*]}{.metadata.labels.controller-revision-hash} {.status.phase}{\"\\n\"}{end}")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (ok, said) = lab(&["up"]);
    assert!(ok, "{said}");
    let first = revision();
    assert!(first.ends_with(" Running") && first.lines().count() == 1, "{first}");
    // A user's pod that matches the DaemonSet's selector, on an old revision, but is not its pod.
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = assert_cmd::Command::new(binaries.join("kubectl"));
        cmd.arg("--kubeconfig").arg(root.join(".lab/roll/kubeconfig")).args(args);
        if let Some(text) = stdin {
            cmd.write_stdin(text);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // It has a controller of its own, so the DaemonSet controller does not adopt it.
    kubectl(&["create", "configmap", "-n", "roll", "bystander-owner"], None);
    let owner = kubectl(&["get", "configmap", "-n", "roll", "bystander-owner", "-o", "jsonpath={.metadata.uid}"], None);
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bystander\n  namespace: roll\n  labels: {{app: waiter, role: bystander, controller-revision-hash: old}}\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: bystander-owner, uid: {owner}, controller: true}}]\nspec:\n  terminationGracePeriodSeconds: 1\n  tolerations: [{{operator: Exists}}]\n  containers: [{{name: pause, image: lab.local/pause:3.10, imagePullPolicy: Never}}]\n"
        )),
    );
    let bystander_uid = kubectl(&["get", "pod", "-n", "roll", "bystander", "-o", "jsonpath={.metadata.uid}"], None);

    std::fs::write(root.join("stack/waiter.yaml"), daemon_set(2)).unwrap();
    let (ok, said) = lab(&["deploy"]);
    assert!(ok, "lab deploy did not finish the OnDelete rollout:\n{said}");
    assert!(said.contains("DaemonSet roll/waiter: replaced the pods on 1 node(s), one at a time"), "{said}");
    let second = revision();
    assert!(second.ends_with(" Running") && second.lines().count() == 1, "{second}");
    assert_ne!(first.split(' ').next(), second.split(' ').next(), "the pod still runs the old template");

    // Nothing changed: nothing is replaced.
    let (ok, said) = lab(&["deploy"]);
    assert!(ok && said.contains("DaemonSet roll/waiter: every pod runs the newest template"), "{said}");
    let still = kubectl(&["get", "pod", "-n", "roll", "bystander", "-o", "jsonpath={.metadata.uid}"], None);
    assert_eq!(still, bystander_uid, "the rollout deleted a pod the DaemonSet does not own");
    kubectl(&["delete", "configmap", "-n", "roll", "bystander-owner"], None);
    kubectl(&["delete", "pod", "-n", "roll", "bystander", "--wait=true"], None);
}

/// lab's fixture chart, rendered by the real helm (`.ci/helm/build`), on a
/// real cluster: its CRD first, the workload Ready on an image the node has,
/// the custom resource last, every object carrying lab's marks; `lab down`
/// removes each of them by those marks and leaves none behind.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn a_helm_chart_layer_deploys_and_is_torn_down_by_ownership() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let helm = std::process::Command::new("helm").args(["version", "--short"]).output();
    assert!(
        helm.is_ok_and(|o| o.status.success()),
        "no helm on PATH: `bash .ci/helm/build` builds it (.ci/run does and puts it on PATH)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let chart = repo().join("tests/fixtures/charts/lab-fixture");
    std::fs::write(
        root.join("lab.yaml"),
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: chart\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\nstack:\n  layers:\n    - chart: {}\n      release: fx\n      namespace: default\n      values: {{image: {{repository: lab.local/pause, tag: '3.10'}}, extra: {{enabled: true}}}}\n  timeouts: {{ready: 2m}}\n",
            chart.display()
        ),
    )
    .unwrap();
    let _down = down_on_drop(root, root.join("lab.yaml"));
    let lab = |args: &[&str]| {
        let out = lab_in(root, &binaries).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(binaries.join("kubectl"))
            .arg("--kubeconfig")
            .arg(root.join(".lab/chart/kubeconfig"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (ok, said) = lab(&["up"]);
    assert!(ok, "{said}");
    let marked = kubectl(&["get", "deployment,configmap,widget,crd", "-A", "-l", "lab.dev/lab=chart", "-o", "name"]);
    for object in [
        "deployment.apps/fx-app",
        "configmap/fx-extra",
        "widget.fixture.lab.dev/fx-widget",
        "customresourcedefinition.apiextensions.k8s.io/widgets.fixture.lab.dev",
    ] {
        assert!(marked.lines().any(|l| l == object), "{object} missing or unmarked:\n{marked}\n{said}");
    }
    let applied: usize = said
        .lines()
        .filter(|l| l.starts_with("✓") && l.contains(" object(s) applied"))
        .filter_map(|l| l.split(": ").last()?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    let (ok, said) = lab(&["down"]);
    assert!(ok, "{said}");
    let gone: usize = said
        .lines()
        .filter(|l| l.starts_with("✓") && l.contains(" object(s) gone"))
        .filter_map(|l| l.split(": ").last()?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(applied >= 4 && gone == applied && !said.contains("; left "), "applied {applied}, removed {gone}:\n{said}");
}

/// `lab COMMAND -q scenarios/local.yaml` with its state in `state`.
fn local_lab(state: &Path, binaries: &Path, command: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"));
    cmd.env("LAB_KUBE_BIN", binaries).env("LAB_STATE_DIR", state).args([command, "-q"]);
    cmd.arg(repo().join("scenarios/local.yaml"));
    cmd
}

/// `lab up` as a child process; the log of an up that stops goes into `state`, not beside the shipped scenario.
fn spawn_up(state: &Path, binaries: &Path) -> std::process::Child {
    let mut up = local_lab(state, binaries, "up");
    up.arg("--artifacts").arg(state.join("stopped-up"));
    up.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
}

fn lab_down(state: &Path, binaries: &Path) -> std::process::Output {
    local_lab(state, binaries, "down").output().unwrap()
}

/// One lab process per lab: a second `lab up` of the same scenario while the
/// first runs is refused, naming the first's pid, and the first ends with a
/// working lab. Then Ctrl-C (SIGINT) at several points of `lab up`: each
/// run stops, and `lab down` leaves the host exactly as it was.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn a_second_up_waits_for_no_one_and_ctrl_c_leaves_nothing_lab_down_cannot_remove() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let lab = LocalLab::new();
    let (binaries, before, state) = (lab.binaries.clone(), Host::now(), lab.state.clone());

    let mut first = Running(Some(spawn_up(&state, &binaries)));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = spawn_up(&state, &binaries).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second lab up ran beside the first:\n{said}");
    assert!(said.contains("is in use by another lab process (pid"), "{said}");
    let first = first.0.take().unwrap().wait_with_output().unwrap();
    assert!(first.status.success(), "the first lab up failed:\n{}", String::from_utf8_lossy(&first.stderr));
    let kubeconfig = state.join("local/kubeconfig");
    let nodes = output(
        binaries.join("kubectl").to_str().unwrap(),
        &["--kubeconfig", kubeconfig.to_str().unwrap(), "get", "nodes"],
    );
    assert!(nodes.contains(" Ready "), "the lab that won is not working: {nodes}");
    // Secrets are root's alone: every key and kubeconfig lab wrote.
    let lab_dir = state.join("local");
    let mut secrets = vec![lab_dir.join("kubeconfig")];
    for dir in ["local/config", "local/pki"] {
        for entry in std::fs::read_dir(lab_dir.join(dir)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".key") || name.ends_with(".kubeconfig") {
                secrets.push(entry.path());
            }
        }
    }
    assert!(secrets.len() >= 15, "{secrets:?}");
    for secret in &secrets {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", secret.display());
    }
    // etcd asks every client for a certificate lab's CA signed.
    let pki = lab_dir.join("local/pki");
    let ca = pki.join("ca.crt");
    let etcd = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "5", "--cacert", ca.to_str().unwrap()])
            .args(extra)
            .arg("https://127.0.0.1:12379/version")
            .output()
            .expect("curl (apt-get install curl)")
    };
    let anonymous = etcd(&[]);
    assert!(!anonymous.status.success(), "etcd answered a client without a certificate");
    let plain = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "http://127.0.0.1:12379/version"])
        .output()
        .unwrap();
    assert!(
        !plain.status.success() || !String::from_utf8_lossy(&plain.stdout).contains("etcdserver"),
        "etcd answered plain HTTP"
    );
    let (cert, key) = (pki.join("apiserver-etcd-client.crt"), pki.join("apiserver-etcd-client.key"));
    let with_cert = etcd(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&with_cert.stdout).contains("etcdserver"),
        "etcd refused lab's own client certificate"
    );
    let down = lab_down(&state, &binaries);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(Host::now(), before, "the host is not as it was");

    for millis in [800, 3000, 6000, 10000] {
        let up = spawn_up(&state, &binaries);
        std::thread::sleep(std::time::Duration::from_millis(millis));
        let pid = up.id().to_string();
        let _ = std::process::Command::new("kill").args(["-INT", &pid]).status();
        let stopped = up.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&stopped.stderr).into_owned();
        let down = lab_down(&state, &binaries);
        assert!(
            down.status.success(),
            "lab down after Ctrl-C at {millis} ms failed:\n{said}\n{}",
            String::from_utf8_lossy(&down.stderr)
        );
        assert!(!state.join("local").exists(), "state left after Ctrl-C at {millis} ms and lab down");
        assert_eq!(Host::now(), before, "after Ctrl-C at {millis} ms and lab down, the host is not as it was:\n{said}");
    }
}

/// A pod that answers HTTP on port 8080 (busybox's httpd in the plugin
/// image lab built), Ready; its address.
fn web_pod(binaries: &Path, kubeconfig: &Path) -> String {
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(binaries.join("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let images = kubectl(&["get", "pods", "-A", "-o", "jsonpath={.items[*].spec.containers[*].image}"], None);
    let image = images
        .split_whitespace()
        .find(|i| i.starts_with("lab-local/csi-hostpath-plugin:"))
        .unwrap_or_else(|| panic!("no plugin pod runs: {images}"));
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: lab-test-web, namespace: default}}\nspec:\n  terminationGracePeriodSeconds: 1\n  tolerations: [{{operator: Exists}}]\n  containers:\n    - name: web\n      image: {image}\n      imagePullPolicy: Never\n      command: [/bin/busybox, httpd, -f, -p, '8080', -h, /tmp]\n"
    );
    kubectl(&["apply", "-f", "-"], Some(&pod));
    kubectl(&["wait", "--for=condition=Ready", "pod/lab-test-web", "--timeout=120s"], None);
    kubectl(&["get", "pod", "lab-test-web", "-o", "jsonpath={.status.podIP}"], None)
}

/// The pid a component's pid file records (`PID START EXE`).
fn recorded_pid(state: &Path, component: &str) -> String {
    let file = state.join(format!("local/local/run/{component}.pid"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.split_whitespace().next().unwrap().to_string()
}

/// Other users of the host reach none of lab's addresses (a pod's, the
/// node's API server and kubelet, a service's), while root does. Then lab's
/// containerd and kubelet are killed under running pods, as the OOM killer
/// would: `lab down` stops every process of the lab (the pods, containerd's
/// shims) through lab's cgroup tree, removes the tree and leaves the host as
/// it was; `lab up` of the same name works again.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn other_users_reach_nothing_and_a_lab_whose_containerd_and_kubelet_died_goes_whole() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let lab = LocalLab::new();
    let (binaries, before, state) = (lab.binaries.clone(), Host::now(), lab.state.clone());

    let up = local_lab(&state, &binaries, "up").output().unwrap();
    assert!(up.status.success(), "lab up: {}", String::from_utf8_lossy(&up.stderr));
    let kubeconfig = state.join("local/kubeconfig");
    let pod_ip = web_pod(&binaries, &kubeconfig);
    for url in [
        format!("http://{pod_ip}:8080/"),
        "https://10.244.0.1:6443/readyz".to_string(),
        "https://10.244.0.1:10250/healthz".to_string(),
        "https://10.96.0.1:443/readyz".to_string(),
    ] {
        let (root, other) = support::curl_as_root_and_another_user(&url);
        assert_eq!(root, 0, "root's curl to {url} got no answer (exit {root})");
        assert_eq!(other, 7, "another user's curl to {url} was not refused (exit {other})");
    }

    let shims_before = Host::now().processes.iter().filter(|p| p.starts_with("containerd-shim")).count();
    assert!(shims_before >= 2, "the pods' shims are not there: {:?}", Host::now().processes);
    for component in ["containerd", "kubelet"] {
        let pid = recorded_pid(&state, component);
        assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let down = lab_down(&state, &binaries);
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "lab down after containerd and kubelet died: {said}");
    assert!(!state.join("local").exists(), "state left after lab down");
    assert_eq!(Host::now(), before, "after lab down of a lab whose containerd and kubelet died:\n{said}");

    let again = local_lab(&state, &binaries, "up").output().unwrap();
    assert!(again.status.success(), "lab up after that: {}", String::from_utf8_lossy(&again.stderr));
    let down = lab_down(&state, &binaries);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(Host::now(), before, "the host is not as it was");
}

/// A `lab` child: on a failed test, stopped (SIGINT) and waited for before the lab is downed.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

/// A local lab's test on a host where no Kubernetes process runs: the
/// binaries, a state folder of its own, and on drop (even on failure) `lab
/// down`, then the host's hugepages as they were, then the folder.
struct LocalLab {
    binaries: PathBuf,
    state: PathBuf,
    _down: DownAt,
    _pages: support::HostState,
    _work: tempfile::TempDir,
}

impl LocalLab {
    fn new() -> LocalLab {
        let binaries = binaries();
        let running = Host::now().processes;
        assert!(running.is_empty(), "Kubernetes processes run already: {running:?}");
        let pages = support::HostState::save();
        let work = tempfile::tempdir().unwrap();
        let state = work.path().join("state");
        let down = DownAt { state: state.clone(), binaries: binaries.clone() };
        LocalLab { binaries, state, _down: down, _pages: pages, _work: work }
    }
}

/// `lab down` of the local scenario with its state in `state`, even when the test fails.
struct DownAt {
    state: PathBuf,
    binaries: PathBuf,
}

impl Drop for DownAt {
    fn drop(&mut self) {
        let _ = lab_down(&self.state, &self.binaries);
    }
}

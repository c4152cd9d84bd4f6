//! The main job on a real Kubernetes: `lab run scenarios/local.yaml` brings
//! up the local provider's single-node cluster from the binaries
//! `.ci/kube/build` makes (`LAB_KUBE_BIN`), prepares the node (hugepages,
//! label, allocatable), builds and loads the hostpath CSI stack, deploys it,
//! runs `features/csi`, and tears it all down. Afterwards the host is as it was: no lab process,
//! no mount under /var/lib/kubelet, no new interface or iptables chain, the
//! same kernel settings and the same propagation of `/`. Without the binaries the test fails; it never skips.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod support;

/// One local cluster per host at a time: its ports and folders are fixed.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn binaries() -> PathBuf {
    let dir = std::env::var_os("LAB_KUBE_BIN").map(PathBuf::from).unwrap_or_default();
    assert!(
        dir.join("kubelet").is_file(),
        "no Kubernetes binaries: run `export LAB_KUBE_BIN=$(bash .ci/kube/build | tail -n 1)` first (.ci/run does)"
    );
    dir
}

fn output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `lab`, run in `dir` with the Kubernetes binaries in `binaries`.
fn lab_in(dir: &Path, binaries: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_KUBE_BIN", binaries);
    cmd
}

/// A scratch copy of a manifests folder, for a test to break.
fn copy_manifests(from: &Path, to: &Path) {
    let options = fs_extra::dir::CopyOptions::new().content_only(true);
    fs_extra::dir::copy(from, to, &options).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

/// What a cluster could leave behind on the host, as text to compare.
#[derive(Debug, PartialEq)]
struct Host {
    processes: Vec<String>,
    mounts: Vec<String>,
    interfaces: Vec<String>,
    chains: Vec<String>,
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
        let mut chains: Vec<String> = ["iptables-save", "ip6tables-save"]
            .iter()
            .flat_map(|save| {
                output(save, &[]).lines().filter(|l| l.starts_with(':')).map(String::from).collect::<Vec<_>>()
            })
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        chains.sort();
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
        Host { processes, mounts, interfaces, chains, settings, root_shared }
    }
}

/// `lab down` even when an assertion fails half-way, then the host's pages.
struct Down<'a> {
    dir: &'a Path,
    scenario: PathBuf,
    _pages: support::HostState,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::cargo_bin("lab").unwrap().current_dir(self.dir).arg("down").arg(&self.scenario).output();
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

/// Removes the fio history a test run wrote under the repository's
/// `scenarios/results/<name>`, unless that folder was there before.
struct Results(Option<PathBuf>);

impl Results {
    fn of(name: &str) -> Results {
        let dir = repo().join("scenarios/results").join(name);
        Results((!dir.exists()).then_some(dir))
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The main job, for real: the hostpath CSI stack built from Go sources (the
/// plugin with a `go` override), loaded, deployed, every scenario of
/// `features/csi` passed (fio in a pod, a checksummed pattern across pods,
/// the override's log line in the running plugin), and every object of the
/// stack gone before the cluster is.
#[test]
fn lab_run_on_the_local_provider_runs_the_features_and_leaves_the_host_as_it_was() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let before = Host::now();
    assert!(before.processes.is_empty(), "Kubernetes processes run already: {:?}", before.processes);
    let dir = tempfile::tempdir().unwrap();
    let scenario = repo().join("scenarios/local.yaml");
    let _results = Results::of("local");
    let down = Down { dir: dir.path(), scenario: scenario.clone(), _pages: support::HostState::save() };

    let started = std::time::Instant::now();
    let run = lab_in(dir.path(), &binaries).args(["run", "--junit", "junit.xml"]).arg(&scenario).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "lab run failed:\n{stdout}\n{stderr}");
    eprintln!("lab run (build, up, deploy, test, down) took {:.0}s", started.elapsed().as_secs_f64());
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

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let expected = scenarios_of(&repo().join("features/csi"));
    assert!(expected.len() >= 6, "{expected:?}");
    for name in &expected {
        assert!(junit.contains(&format!("<testcase name=\"Scenario: {name}:")), "no test case {name:?}:\n{junit}");
    }
    assert!(!junit.contains("<failure") && !junit.contains("<skipped") && !junit.contains("<error"), "{junit}");
    assert!(!dir.path().join(".lab/local").exists(), "the state directory is left");
    drop(down);
    assert_eq!(Host::now(), before, "the host is not as it was before lab run");
}

/// A broken stack fails the run before anything waits on it: a scratch copy
/// of the manifests with a misspelt image names the container, its
/// DaemonSet, its file and the image, asks no registry (the stack never pulls),
/// and leaves nothing behind.
#[test]
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
    let _down = Down { dir: dir.path(), scenario: dir.path().join("lab.yaml"), _pages: support::HostState::save() };
    let run = lab_in(dir.path(), &binaries).args(["run", "--junit", "junit.xml", "lab.yaml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "lab run passed with a misspelt image:\n{stderr}");
    let line = stderr.lines().find(|l| l.contains("lab-local/csi-hostpath-plugn:dev")).unwrap_or_default();
    assert!(line.contains("container hostpath of DaemonSet csi-hostpath/csi-hostpath-plugin"), "{stderr}");
    assert!(line.contains("10-plugin.yaml") && line.contains("never pulled"), "{stderr}");
    assert!(stderr.contains("cleaning up"), "{stderr}");
    assert!(!dir.path().join("junit.xml").exists(), "the suite ran on a broken stack");
    assert_eq!(Host::now(), before, "the failed lab run left something behind");
}

/// A component that cannot start is named, with the last lines of its log,
/// and the half-made cluster is removed.
#[test]
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
    let _down = Down { dir: dir.path(), scenario: scenario.clone(), _pages: support::HostState::save() };
    let up = lab_in(dir.path(), &broken).arg("up").arg(&scenario).output().unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "lab up succeeded with a broken scheduler:\n{stderr}");
    assert!(stderr.contains("✗ [") && stderr.contains("start kube-scheduler"), "{stderr}");
    assert!(stderr.contains("kube-scheduler exited"), "{stderr}");
    assert!(stderr.contains("scheduler: no such config, giving up"), "{stderr}");
    assert!(stderr.contains("cleaning up"), "{stderr}");
    assert_eq!(Host::now(), before, "the failed lab up left something behind");
}

/// The Mayastor manifests checked by a real API server: the CRD and the
/// namespace applied, every other object through `dryRun=All` with no
/// rejection and nothing stored; a scratch copy with an invalid Service is
/// rejected, naming the object, its file and the server's reason.
#[test]
fn the_mayastor_manifests_pass_a_real_api_servers_dry_run_and_a_broken_one_does_not() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let dir = tempfile::tempdir().unwrap();
    // Same lab name, so both files reach the same cluster: `lab up` of the
    // first (no stack: Mayastor's images cannot run here), checks with the others.
    let scenario = |stack: &str| {
        let stack =
            if stack.is_empty() { String::new() } else { format!("stack:\n  layers:\n    - manifests: {stack}\n") };
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

    let _down = Down { dir: dir.path(), scenario: dir.path().join("up.yaml"), _pages: support::HostState::save() };
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
    let _down = Down { dir: dir.path(), scenario: dir.path().join("lab.yaml"), _pages: support::HostState::save() };
    let lab = |args: &[&str]| {
        let mut cmd = lab_in(dir.path(), &binaries);
        cmd.args(args);
        cmd
    };
    let up = lab(&["up"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let status = String::from_utf8(lab(&["status"]).output().unwrap().stdout).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("lab-local-restart-control-plane") && l.ends_with("Ready")),
        "{status}"
    );

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
}

//! Named long checks (`beyond_ci_`: Mayastor's cold build alone takes
//! about 25 min of both cores, so with them a fresh `.ci/run` would pass
//! CI's budget; `bash .ci/run --long-checks` runs them after the same
//! set-up, see docs/mayastor-source.md for their times):
//!
//! - Mayastor built by lab from upstream's sources in `../shared/sources`
//!   (unpacked by `.ci/mayastor/sources`, standing in for a contributor's
//!   checkouts), deployed on a local node and tested with
//!   `features/mayastor-source` (and another user of the host, through
//!   `setpriv`, reaches none of its REST API, etcd and io-engine gRPC, while
//!   root does); then a contributor's one-line change in the
//!   mayastor-dependencies checkout, which the scenario puts into the
//!   io-engine with a `tree:` override, is rebuilt, reloaded and seen in the
//!   running io-engine's log; `lab down` leaves no pool file, hugepage, mount
//!   or process. The checkouts are byte-identical afterwards (the
//!   dependencies' one as the contributor left it).
//! - The same builds on two kind workers (`scenarios/mayastor-replicas.yaml`):
//!   replicated volumes, faults and data verified from userspace.
//! - The same builds on a VM node, where pods mount Mayastor volumes over
//!   NVMe-oF/TCP.
//!
//! Needs what `lab doctor scenarios/mayastor-source.yaml` names (Docker, the
//! Kubernetes binaries of `.ci/kube/build` through `LAB_KUBE_BIN`, SPDK's and
//! Mayastor's build packages, see docs/mayastor-source.md) and the tarballs
//! (`LAB_MAYASTOR_TARBALLS`, else `../shared/sources`); fails without them.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use assert_cmd::Command;

mod support;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn lab(sources: &Path, state: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(repo_root()).env("LAB_STATE_DIR", state).env("MAYASTOR_SOURCES", sources);
    cmd
}

/// Runs a lab command, printing how long it took; its output on failure.
fn run(what: &str, cmd: &mut Command) -> String {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("mayastor-source: {what} took {:.0} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// `lab test` ran `scenarios` scenarios and every one passed (cucumber's
/// summary line; a failed or skipped one changes it).
fn assert_all_passed(test: &str, scenarios: usize) {
    let noun = if scenarios == 1 { "scenario" } else { "scenarios" };
    let summary = format!("{scenarios} {noun} ({scenarios} passed)");
    assert!(test.lines().any(|l| l.trim() == summary), "expected {summary:?}:\n{test}");
}

/// Every file under `dir` with its size and a hash of its contents.
fn listing(dir: &Path) -> String {
    let out = Process::new("sh")
        .arg("-c")
        .arg("find . -type f -print0 | sort -z | xargs -0 sha256sum")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl(state: &Path, args: &[&str]) -> String {
    let bin = std::env::var_os("LAB_KUBE_BIN").map(PathBuf::from).unwrap_or_default();
    let out = Process::new(bin.join("kubectl"))
        .env("KUBECONFIG", state.join("mayastor-source/kubeconfig"))
        .args(args)
        .output()
        .expect("kubectl of LAB_KUBE_BIN (`bash .ci/kube/build`)");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One check's lab: the machine to itself, the tarballs laid out as
/// checkouts in a folder of its own, its state beside them; on drop (even
/// when an assertion fails half-way) `lab down`, then the folder goes, then
/// the next check may start.
struct Check {
    scenario: &'static str,
    work: tempfile::TempDir,
    sources: PathBuf,
    state: PathBuf,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Check {
    fn start(scenario: &'static str) -> Check {
        let one = ONE_LAB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let work = tempfile::tempdir().unwrap();
        let sources = unpack_sources(work.path());
        let state = work.path().join("state");
        Check { scenario, work, sources, state, _one: one }
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        let _ = lab(&self.sources, &self.state).args(["down", self.scenario]).output();
    }
}

/// One lab at a time: both labs load this 2-core machine, and the second
/// finds the images the first built in Docker (the same content keys).
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The upstream tarballs laid out as checkouts under `dir`.
fn unpack_sources(dir: &Path) -> PathBuf {
    let sources = dir.join("sources");
    let unpacked = Process::new("bash").arg(repo_root().join(".ci/mayastor/sources")).arg(&sources).status().unwrap();
    assert!(unpacked.success(), "`.ci/mayastor/sources` could not lay the tarballs (LAB_MAYASTOR_TARBALLS?)");
    sources
}

fn hugepages_total() -> String {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").unwrap().trim().to_string()
}

#[test]
#[ignore = "long check (Mayastor's cold build ≈ 25 min, then ≈ 10 min): bash .ci/run --long-checks, or cargo test -p lab --test mayastor_source -- --ignored --exact beyond_ci_mayastor_built_from_its_sources_runs_its_features_and_takes_a_contributors_change"]
fn beyond_ci_mayastor_built_from_its_sources_runs_its_features_and_takes_a_contributors_change() {
    let check = Check::start("scenarios/mayastor-source.yaml");
    let (sources, state, scenario) = (&check.sources, &check.state, check.scenario);
    let mayastor_before = listing(&sources.join("mayastor"));
    let control_plane_before = listing(&sources.join("mayastor-control-plane"));
    let hugepages_before = hugepages_total();

    let up = run("lab up (build, cluster, load, deploy, pools Online)", lab(sources, state).args(["up", scenario]));
    let tag = up
        .split("lab-local/mayastor-io-engine:")
        .nth(1)
        .and_then(|rest| rest.get(..16))
        .expect("lab up names the io-engine image it built")
        .to_string();
    let test = run("lab test (features/mayastor-source)", lab(sources, state).args(["test", scenario]));
    assert_all_passed(&test, 3);

    // Another user of the host reaches none of Mayastor's endpoints (its
    // REST API, its etcd's plain HTTP, the io-engine's gRPC on the node's
    // address); root does.
    let rest =
        kubectl(state, &["-n", "mayastor", "get", "svc", "mayastor-api-rest", "-o", "jsonpath={.spec.clusterIP}"]);
    let etcd = kubectl(state, &["-n", "mayastor", "get", "pod", "mayastor-etcd-0", "-o", "jsonpath={.status.podIP}"]);
    for url in [
        format!("http://{rest}:8081/v0/nodes"),
        format!("http://{etcd}:2379/version"),
        "http://10.244.0.1:10124/".into(),
    ] {
        let (root, other) = support::curl_as_root_and_another_user(&url);
        assert!(![7, 28].contains(&root), "root's curl to {url} did not connect (exit {root})");
        assert_eq!(other, 7, "another user's curl to {url} was not refused (exit {other})");
    }

    // The running io-engine is the build lab made: it logs the image's tag as its revision.
    let log = kubectl(state, &["-n", "mayastor", "logs", "ds/mayastor-io-engine", "-c", "io-engine"]);
    assert!(log.contains(&format!("revision {tag}")), "io-engine does not log revision {tag}:\n{log}");

    // The contributor changes one line of mayastor-dependencies (their own
    // checkout, put into the io-engine by the scenario's `tree:` override).
    let macros = sources.join("mayastor-dependencies/version-info/src/macros.rs");
    let text = std::fs::read_to_string(&macros).unwrap();
    let line = r#"format!("{} {}", vi.fmt_description(), vi)"#;
    assert!(text.contains(line), "version-info's fmt_package_info changed upstream:\n{text}");
    // A marker of this run: an edit an earlier run made is already built, and cached.
    let marker = format!("lab tree override {}", check.work.path().file_name().unwrap().to_string_lossy());
    let edited = format!(r#"format!("{{}} {{}} ({marker})", vi.fmt_description(), vi)"#);
    std::fs::write(&macros, text.replace(line, &edited)).unwrap();
    let dependencies_edited = listing(&sources.join("mayastor-dependencies"));
    // Both workspaces take the dependencies through the override: both are
    // rebuilt and reloaded, nothing else.
    let build = run("lab build after the one-line change", lab(sources, state).args(["build", scenario]));
    assert!(build.contains("built lab-local/mayastor-io-engine:lab-"), "{build}");
    assert!(build.contains("built lab-local/mayastor-agent-core:lab-"), "{build}");
    assert!(build.contains("cached: lab-local/etcd:lab-"), "{build}");
    run("lab load after the one-line change", lab(sources, state).args(["load", scenario]));
    run("lab deploy (the new images rolled out)", lab(sources, state).args(["deploy", scenario]));
    let log = kubectl(state, &["-n", "mayastor", "logs", "ds/mayastor-io-engine", "-c", "io-engine"]);
    assert!(log.contains(&format!("({marker})")), "the running io-engine does not print the override's line:\n{log}");
    let test = run(
        "lab test after the change",
        lab(sources, state).args(["test", scenario, "-n", "pools are Online in Mayastor"]),
    );
    assert_all_passed(&test, 1);

    run("lab down", lab(sources, state).args(["down", scenario]));
    assert!(!state.join("mayastor-source").exists(), "the state folder (pool files) is left after lab down");
    assert_eq!(hugepages_total(), hugepages_before, "hugepages were not given back");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/run/lab/mayastor-source"), "mounts of the lab are left:\n{mounts}");
    let processes = Process::new("pgrep").args(["-f", "io-engine"]).output().unwrap();
    assert!(
        processes.stdout.is_empty(),
        "io-engine processes are left: {}",
        String::from_utf8_lossy(&processes.stdout)
    );

    assert_eq!(listing(&sources.join("mayastor")), mayastor_before, "the io-engine checkout changed");
    assert_eq!(
        listing(&sources.join("mayastor-control-plane")),
        control_plane_before,
        "the control-plane checkout changed"
    );
    assert_eq!(
        listing(&sources.join("mayastor-dependencies")),
        dependencies_edited,
        "the dependencies checkout changed"
    );
}

/// Several io-engine nodes: the same builds on two kind workers (a pool on
/// each, both io-engines polling the second core), the catalogue
/// `features/mayastor-replicas` passes, all 10 scenarios (docs/mayastor-source.md
/// lists them): replicas on distinct nodes and pools, replicas added and
/// removed, a replica's io-engine killed under I/O and killed and kept off
/// (Degraded, then rebuilt), a cordon, a pool refusing deletion, an
/// expansion, a snapshot restored, thin over-commitment, topology by node
/// labels — data written and verified from userspace through the volume's
/// nexus (and once against a pattern never written, which must fail).
/// `lab down` leaves no kind node, pool file, hugepage or io-engine.
#[test]
#[ignore = "long check (Mayastor's cold build ≈ 25 min, then ≈ 10 min): bash .ci/run --long-checks, or cargo test -p lab --test mayastor_source -- --ignored --exact beyond_ci_mayastor_built_from_its_sources_keeps_replicated_data_on_two_kind_workers_through_faults"]
fn beyond_ci_mayastor_built_from_its_sources_keeps_replicated_data_on_two_kind_workers_through_faults() {
    let check = Check::start("scenarios/mayastor-replicas.yaml");
    let (sources, state, scenario) = (&check.sources, &check.state, check.scenario);
    let hugepages_before = hugepages_total();

    run(
        "lab up (kind, two io-engine workers, pools Online, the control plane serving)",
        lab(sources, state).args(["up", scenario]),
    );
    let test = run("lab test (features/mayastor-replicas)", lab(sources, state).args(["test", scenario]));
    assert_all_passed(&test, 10);
    for step in [
        "does not verify against another pattern",
        "to 2",
        "stays Pending",
        "refuses to delete the pool",
        "while writing that pattern to it",
        "holds at least 128 MiB",
        "Degraded with 1 healthy replica",
        "verifies against the pattern of the snapshot",
        "has more committed than its capacity",
        "is on a node labelled",
    ] {
        assert!(test.contains(step), "lab test did not run the step {step:?}:\n{test}");
    }

    run("lab down", lab(sources, state).args(["down", scenario]));
    assert!(!state.join("mayastor-replicas").exists(), "the state folder (pool files) is left after lab down");
    assert_eq!(hugepages_total(), hugepages_before, "hugepages were not given back");
    let nodes = Process::new("docker")
        .args(["ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster=lab-mayastor-replicas"])
        .output()
        .unwrap();
    assert!(nodes.stdout.is_empty(), "kind nodes are left: {}", String::from_utf8_lossy(&nodes.stdout));
    let processes = Process::new("pgrep").args(["-f", "io-engine"]).output().unwrap();
    assert!(
        processes.stdout.is_empty(),
        "io-engine processes are left: {}",
        String::from_utf8_lossy(&processes.stdout)
    );
}

/// The data path, on a VM node whose kernel has nvme_tcp: the same builds
/// deployed with the CSI node plugin; pods mount Mayastor volumes over
/// NVMe-oF/TCP, fio runs in one, and a written volume verifies across an
/// io-engine restart (`features/mayastor-source-vm`, with
/// `features/mayastor-source`). `lab down` leaves nothing of the lab in
/// libvirt, and the checkouts are byte-identical afterwards.
///
/// A named long check, outside CI (docs/mayastor-source.md gives the numbers:
/// with it, a fresh `.ci/run` would run past CI's 75 minutes). Asked for, it
/// fails without libvirt, lab's box, the tarballs or the build packages.
#[test]
#[ignore = "long check (≈ 33 min warm, emulated VM): bash .ci/run --long-checks, or cargo test -p lab --test mayastor_source -- --ignored --exact beyond_ci_mayastor_built_from_its_sources_serves_pods_on_a_vm_node_over_nvme_tcp"]
fn beyond_ci_mayastor_built_from_its_sources_serves_pods_on_a_vm_node_over_nvme_tcp() {
    support::vm::require_vms();
    let check = Check::start("scenarios/mayastor-source-vm.yaml");
    let (sources, state, scenario) = (&check.sources, &check.state, check.scenario);
    let mayastor_before = listing(&sources.join("mayastor"));
    let control_plane_before = listing(&sources.join("mayastor-control-plane"));

    run(
        "lab up on a VM (builds, VM, kubeadm, modules, load, deploy, pool Online)",
        lab(sources, state).args(["up", scenario]),
    );
    let instance = support::vm::instance(state, "mayastor-source-vm");
    support::vm::assert_domain_of(&instance);
    let test = run("lab test on the VM", lab(sources, state).args(["test", scenario]));
    assert_all_passed(&test, 4);
    assert!(test.contains("2 passed, 0 failed, 0 not judged"), "the fio floors were not both judged passed:\n{test}");
    for scenario_name in [
        "a pod mounts a Mayastor volume and fio runs in it",
        "data on a mounted volume verifies across an io-engine restart",
        "the pools come back after an io-engine restart",
    ] {
        assert!(test.contains(scenario_name), "lab test did not run {scenario_name:?}:\n{test}");
    }

    run("lab down of the VM lab", lab(sources, state).args(["down", scenario]));
    support::vm::assert_nothing_left_of(&instance);
    assert!(!state.join("mayastor-source-vm").exists(), "the state folder is left after lab down");
    assert_eq!(listing(&sources.join("mayastor")), mayastor_before, "the io-engine checkout changed");
    assert_eq!(
        listing(&sources.join("mayastor-control-plane")),
        control_plane_before,
        "the control-plane checkout changed"
    );
}

//! On this machine's real kernel (the host provider): `lab prepare` reserves
//! 2 MiB hugepages and proves it, `lab down` gives them back, and a module
//! the kernel cannot load stops preparation with a fix and no change.
//! Every test restores the hugepage count and /etc files, even on failure.

use std::path::Path;
use std::sync::Mutex;

mod support;
use support::{HostState, NR_HUGEPAGES as NR};

const FREE: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
const SYSCTL_FILE: &str = support::HOST_FILES[0];

/// The tests share one kernel: one at a time.
static HOST: Mutex<()> = Mutex::new(());

fn number(path: &str) -> u64 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn lab(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = assert_cmd::Command::cargo_bin("lab").unwrap().current_dir(dir).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stderr).unwrap())
}

fn scenario(dir: &Path, node: &str) {
    let text = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: hosttest\ncluster:\n  provider: host\n  nodes:\n    - role: worker\n{node}"
    );
    std::fs::write(dir.join("lab.yaml"), text).unwrap();
}

#[test]
#[ignore = "needs root (hugepages): bash .ci/run runs it"]
fn prepare_reserves_hugepages_verifies_them_and_down_restores_them() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let (total, free) = (number(NR), number(FREE));
    // Ask for more than is free, so there is something to change.
    let want = free + 16;
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &format!("      hugepages2Mi: {want}\n"));

    let (ok, stderr) = lab(dir.path(), &["prepare"]);
    assert!(ok, "{stderr}");
    let expected = total - free + want;
    assert!(
        stderr.contains(&format!("{total} → {expected} pages, {want} free; persisted in {SYSCTL_FILE}")),
        "{stderr}"
    );
    assert_eq!((number(NR), number(FREE)), (expected, want), "sysfs");
    assert_eq!((meminfo("HugePages_Total:"), meminfo("HugePages_Free:")), (expected, want), "/proc/meminfo");
    let persisted = std::fs::read_to_string(SYSCTL_FILE).unwrap();
    assert!(persisted.contains(&format!("vm.nr_hugepages = {expected}\n")), "{persisted}");

    let (ok, stderr) = lab(dir.path(), &["prepare"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("already {expected} pages, {want} free; unchanged")), "{stderr}");
    assert_eq!(number(NR), expected, "the second run changed the pool");

    let (ok, stderr) = lab(dir.path(), &["down"]);
    assert!(ok, "{stderr}");
    assert_eq!(number(NR), saved.pages, "lab down did not restore the pool");
    assert_eq!(saved.changed_files(), Vec::<&str>::new(), "lab down left files changed");
    assert!(!dir.path().join(".lab/hosttest").exists(), "state directory left behind");
}

/// A module no kernel has stops preparation with the fix and changes
/// nothing, on any kernel: here, where /lib/modules is absent, before any
/// module is loaded; on a host that can load nbd, after loading it, which
/// the failed run then unloads again.
#[test]
fn a_module_this_kernel_cannot_load_stops_preparation_with_a_fix_and_no_change() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let nbd_before = Path::new("/sys/module/nbd").exists();
    // Modules load in name order: this one sorts after nbd, so a host that can load nbd does so first.
    let absent = "zz_lab_absent_module";
    assert!(!Path::new("/sys/module").join(absent).exists());
    let saved = HostState::save();
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &format!("      modules: [nbd, {absent}]\n      hugepages2Mi: {}\n", number(FREE) + 8));

    let (ok, stderr) = lab(dir.path(), &["prepare"]);
    assert!(!ok, "prepare succeeded without the modules:\n{stderr}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
    assert!(stderr.contains(&format!("✗ [2/3] load kernel modules nbd, {absent} on host")), "{stderr}");
    assert!(stderr.contains("cannot be loaded on host") && stderr.contains(absent), "{stderr}");
    assert!(stderr.contains(&format!("linux-modules-extra-{release}")), "{stderr}");
    assert!(!stderr.contains("✓ [2/3]") && !stderr.contains("[3/3]"), "later steps ran or were reported:\n{stderr}");
    assert_eq!(Path::new("/sys/module/nbd").exists(), nbd_before, "nbd left loaded (or unloaded) by a failed run");
    assert_eq!(number(NR), saved.pages, "hugepages changed although preparation failed");
    assert_eq!(saved.changed_files(), Vec::<&str>::new(), "files written although preparation failed");
}

fn lab_env(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> (bool, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env_remove("LAB_STATE_DIR");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stderr).unwrap())
}

#[test]
#[ignore = "needs root (hugepages): bash .ci/run runs it"]
fn down_from_another_directory_finds_the_state_and_restores_the_hugepages() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let work = tempfile::tempdir().unwrap();
    let (project, elsewhere) = (work.path().join("project"), work.path().join("elsewhere"));
    std::fs::create_dir_all(project.join("labs")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    scenario(&project.join("labs"), &format!("      hugepages2Mi: {}\n", number(FREE) + 8));
    let file = project.join("labs/lab.yaml");
    let file = file.to_str().unwrap();

    // Beside the scenario, whatever the working directory.
    let (ok, stderr) = lab_env(&project, &[], &["up", "labs/lab.yaml"]);
    assert!(ok, "{stderr}");
    assert!(project.join("labs/.lab/hosttest/changes.json").exists(), "the state is not beside the scenario");
    assert!(!project.join(".lab").exists(), "state written in the working directory");
    assert_ne!(number(NR), saved.pages, "up reserved nothing, so down proves nothing");
    let (ok, stderr) = lab_env(&elsewhere, &[], &["down", file]);
    assert!(ok, "{stderr}");
    assert_eq!(number(NR), saved.pages, "lab down from another folder did not restore the pool");
    assert!(!project.join("labs/.lab").exists(), "state (or the emptied .lab folder) left behind");

    // Under an absolute $LAB_STATE_DIR, from two working directories.
    let states = work.path().join("states");
    let (ok, stderr) = lab_env(&project, &[("LAB_STATE_DIR", &states)], &["up", "labs/lab.yaml"]);
    assert!(ok, "{stderr}");
    assert!(states.join("hosttest/changes.json").exists(), "the state is not under $LAB_STATE_DIR");
    let (ok, stderr) = lab_env(&elsewhere, &[("LAB_STATE_DIR", &states)], &["down", file]);
    assert!(ok, "{stderr}");
    assert_eq!(number(NR), saved.pages, "lab down with $LAB_STATE_DIR did not restore the pool");
    let (ok, stderr) = lab_env(&elsewhere, &[("LAB_STATE_DIR", Path::new("relative"))], &["down", file]);
    assert!(!ok && stderr.contains("$LAB_STATE_DIR is relative, a relative path: it must be absolute"), "{stderr}");

    // No state and no trace: nothing to do, and it says so.
    let (ok, stderr) = lab_env(&elsewhere, &[], &["down", file]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("nothing to remove: no state at") && stderr.contains("no trace of lab hosttest"),
        "{stderr}"
    );
    // A state an older lab left in the working directory is a trace, not a success.
    std::fs::create_dir_all(elsewhere.join(".lab/hosttest")).unwrap();
    let (ok, stderr) = lab_env(&elsewhere, &[], &["down", file]);
    assert!(!ok, "lab down reported success with the lab's state elsewhere:\n{stderr}");
    assert!(stderr.contains("but lab hosttest left traces:"), "{stderr}");
    assert!(stderr.contains(&format!("a state directory {}", elsewhere.join(".lab/hosttest").display())), "{stderr}");
    assert!(stderr.contains("host changes recorded there (hugepages, modules, sysctls) were not undone"), "{stderr}");
    assert_eq!(saved.changed_files(), Vec::<&str>::new(), "files left changed");
}

/// Folders `first` and `second` in `work`, each with a host lab of that
/// name asking for `pages` 2 MiB hugepages.
fn two_host_labs(work: &Path, first_pages: u64, second_pages: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let (first, second) = (work.join("first"), work.join("second"));
    for (dir, name, pages) in [(&first, "first", first_pages), (&second, "second", second_pages)] {
        std::fs::create_dir_all(dir).unwrap();
        let text = format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: {name}\ncluster:\n  provider: host\n  nodes:\n    - role: worker\n      hugepages2Mi: {pages}\n"
        );
        std::fs::write(dir.join("lab.yaml"), text).unwrap();
    }
    (first, second)
}

/// Two labs up at once on one host, with 64 and 96 more pages than are
/// free: the first one down leaves the second its pages, the last one down
/// leaves the host exactly as it was (pages and files), in either order.
#[test]
#[ignore = "needs root (hugepages): bash .ci/run runs it"]
fn two_labs_side_by_side_downed_in_either_order_leave_the_host_as_it_was() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("host-changes.json");
    let free = number(FREE);
    let (first, second) = two_host_labs(work.path(), free + 64, free + 96);
    let env = [("LAB_HOST_RECORD", record.as_path())];
    for order in [[&first, &second], [&second, &first]] {
        for dir in [&first, &second] {
            let (ok, stderr) = lab_env(dir, &env, &["up"]);
            assert!(ok, "{stderr}");
        }
        assert!(number(FREE) >= free + 96, "both labs up: {} free", number(FREE));
        let (ok, stderr) = lab_env(order[0], &env, &["down"]);
        assert!(ok, "{stderr}");
        let still = if order[1] == &second { free + 96 } else { free + 64 };
        assert!(
            number(FREE) >= still,
            "the lab still up lost its pages: {} free, it needs {still}\n{stderr}",
            number(FREE)
        );
        assert!(stderr.contains("kept: other labs hold it too"), "{stderr}");
        let (ok, stderr) = lab_env(order[1], &env, &["down"]);
        assert!(ok, "{stderr}");
        assert_eq!(number(NR), saved.pages, "the last lab down did not restore the pool\n{stderr}");
        assert_eq!(saved.changed_files(), Vec::<&str>::new(), "files left changed\n{stderr}");
        assert!(!record.exists(), "the host-level record is left: {:?}", std::fs::read_to_string(&record));
    }
}

/// A lab killed between writing the host-level record's new version and
/// renaming it into place (the debug build's `LAB_FAULT` hook aborts there,
/// as `kill -9` would) leaves the record as it was, whole and readable; the
/// labs then go down and the host is as it was. An emptied record is refused.
#[test]
#[ignore = "needs root (hugepages): bash .ci/run runs it"]
fn a_crash_while_the_host_record_is_written_leaves_the_old_record_whole() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("host-changes.json");
    let free = number(FREE);
    let (first, second) = two_host_labs(work.path(), free + 32, free + 48);
    let env = [("LAB_HOST_RECORD", record.as_path())];
    let (ok, stderr) = lab_env(&first, &env, &["up"]);
    assert!(ok, "{stderr}");
    let before = std::fs::read_to_string(&record).unwrap();

    let crash = [("LAB_HOST_RECORD", record.as_path()), ("LAB_FAULT", Path::new("host-record-before-rename"))];
    let (ok, stderr) = lab_env(&second, &crash, &["up"]);
    assert!(!ok && stderr.contains("LAB_FAULT=host-record-before-rename"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), before, "the record changed under a crash");
    serde_json::from_str::<serde_json::Value>(&before).unwrap();

    for dir in [&second, &first] {
        let (ok, stderr) = lab_env(dir, &env, &["down"]);
        assert!(ok, "{stderr}");
    }
    assert_eq!(number(NR), saved.pages, "the labs down did not restore the pool");
    assert!(!record.exists(), "the host-level record is left: {:?}", std::fs::read_to_string(&record));

    // A record emptied by something else is refused, naming it, before any change.
    let (ok, stderr) = lab_env(&first, &env, &["up"]);
    assert!(ok, "{stderr}");
    std::fs::write(&record, "").unwrap();
    let (ok, stderr) = lab_env(&second, &env, &["up"]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("host-changes.json is damaged: it is empty (0 bytes)"), "{stderr}");
    std::fs::write(&record, &before).unwrap();
    for dir in [&second, &first] {
        let (ok, stderr) = lab_env(dir, &env, &["down"]);
        assert!(ok, "{stderr}");
    }
    assert_eq!(number(NR), saved.pages, "the labs down did not restore the pool");
}

/// A second `lab up` of a lab that is up is refused before it changes
/// anything: the first run's hugepages and record stay, and `lab down` then
/// restores them.
#[test]
#[ignore = "needs root (hugepages): bash .ci/run runs it"]
fn a_second_up_of_a_lab_that_is_up_is_refused_and_leaves_the_first_runs_changes() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let work = tempfile::tempdir().unwrap();
    let record = work.path().join("host-changes.json");
    let env = [("LAB_HOST_RECORD", record.as_path())];
    let want = number(FREE) + 16;
    scenario(work.path(), &format!("      hugepages2Mi: {want}\n"));
    let (ok, stderr) = lab_env(work.path(), &env, &["up"]);
    assert!(ok, "{stderr}");
    let (pages, changes) =
        (number(NR), std::fs::read_to_string(work.path().join(".lab/hosttest/changes.json")).unwrap());
    // The second run would also fail on a module no kernel has.
    scenario(work.path(), &format!("      hugepages2Mi: {want}\n      modules: [lab-no-such-module]\n"));
    let (ok, stderr) = lab_env(work.path(), &env, &["up"]);
    assert!(!ok && stderr.contains("lab hosttest is already up"), "{stderr}");
    assert_eq!(number(NR), pages, "the refused run changed the pool");
    assert_eq!(std::fs::read_to_string(work.path().join(".lab/hosttest/changes.json")).unwrap(), changes);
    let (ok, stderr) = lab_env(work.path(), &env, &["down"]);
    assert!(ok, "{stderr}");
    assert_eq!(number(NR), saved.pages, "lab down did not restore the pool");
}

/// Each hostile scenario or argument is refused with its location before
/// anything changes: no state, no results, the host's pages and files as they were.
#[test]
fn hostile_input_is_refused_with_its_location_and_changes_nothing() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let saved = HostState::save();
    let head = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: hostile\n";
    let kind = "cluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n";
    let host = "cluster:\n  provider: host\n";
    let fio = |bs: &str| {
        format!("{head}{host}fio:\n  profiles:\n    - {{name: p, rw: read, bs: \"{bs}\", size: 4M, runtime: 1}}\n")
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "huge count",
            format!("{head}{kind}    - role: worker\n      count: 100000000\n"),
            "lab.yaml:10:14: cluster.nodes[1].count:",
            "100000000 nodes is more than lab runs in one scenario (64 at most)",
        ),
        (
            "huge hugepages",
            format!("{head}{host}  nodes:\n    - role: worker\n      hugepages2Mi: 100000000\n"),
            "lab.yaml:9:21: cluster.nodes[0].hugepages2Mi:",
            "100000000 2 MiB hugepages take 200000000 MiB (every node's together: they share this host's kernel), and this host has",
        ),
        (
            "newline in a fio field",
            fio("4k\\nfilename=/etc/passwd"),
            "lab.yaml:9:7: fio.profiles[0]:",
            "bs `4k\\nfilename=/etc/passwd` is not a fio value",
        ),
        ("= in a fio field", fio("4k=1"), "lab.yaml:9:7: fio.profiles[0]:", "bs `4k=1` is not a fio value"),
        (
            "a ref that is an option",
            format!(
                "{head}{kind}components:\n  - name: app\n    source: {{git: https://example.invalid/app.git, ref: \"--upload-pack=touch /tmp/lab-pwned\"}}\n    build: {{command: make}}\n    image: x/app\n"
            ),
            "lab.yaml:11:57: components[0].source.ref:",
            "is not a git ref: refs start with no '-'",
        ),
        (
            "a host disk as a kind pool",
            format!("{head}{kind}    - role: worker\n      pool: {{size: 1GiB, device: /dev/sda}}\n"),
            "lab.yaml:10:34: cluster.nodes[1].pool.device:",
            "/dev/sda is a disk of this host (kind nodes share its /dev), and a pool overwrites it",
        ),
    ];
    for (what, text, location, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.yaml"), &text).unwrap();
        let (ok, stderr) = lab(dir.path(), &["up"]);
        assert!(!ok, "{what}: lab up accepted it");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(
            stderr.contains(location) && stderr.contains(message),
            "{what}: want `{location} … {message}`:\n{stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["lab.yaml"], "{what}: lab up wrote something");
        assert_eq!(number(NR), saved.pages, "{what}: the hugepage pool changed");
        assert_eq!(saved.changed_files(), Vec::<&str>::new(), "{what}: host files changed");
    }
    assert!(!Path::new("/tmp/lab-pwned").exists());

    // A label that would leave the results folder is refused before fio runs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("work/lab.yaml"), fio("4k")).unwrap();
    let target = dir.path().join("target.img");
    std::fs::write(&target, vec![0u8; 4 << 20]).unwrap();
    for label in ["../x", "a/b", ".hidden", "-rf"] {
        let label_arg = format!("--label={label}");
        let args = ["fio", "--profile", "p", "--target", target.to_str().unwrap(), &label_arg, "--repeat", "2"];
        let (ok, stderr) = lab(&dir.path().join("work"), &args);
        assert!(!ok, "--label {label} was accepted");
        assert!(stderr.contains(&format!("--label `{label}`: it becomes part of file names")), "{stderr}");
    }
    let (ok, stderr) = lab(&dir.path().join("work"), &["fio", "--profile", "p", "--target", "/tmp/x\nrw=write"]);
    assert!(!ok && stderr.contains("without newlines or control characters"), "{stderr}");
    let mut left: Vec<_> = walk(dir.path());
    left.sort();
    assert_eq!(left, ["target.img", "work", "work/lab.yaml"], "lab fio wrote something");
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    out
}

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

#[test]
fn modules_this_kernel_cannot_load_stop_preparation_with_a_fix_and_no_change() {
    let _one = HOST.lock().unwrap_or_else(|e| e.into_inner());
    for module in ["nbd", "nvme_tcp"] {
        assert!(
            !Path::new("/sys/module").join(module).exists(),
            "this test needs a kernel without {module} loaded; this one has it"
        );
    }
    let saved = HostState::save();
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &format!("      modules: [nbd, nvme_tcp]\n      hugepages2Mi: {}\n", number(FREE) + 8));

    let (ok, stderr) = lab(dir.path(), &["prepare"]);
    assert!(!ok, "prepare succeeded without the modules:\n{stderr}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
    assert!(stderr.contains("✗ [2/3] load kernel modules nbd, nvme_tcp on host"), "{stderr}");
    assert!(stderr.contains("module(s) nbd, nvme_tcp cannot be loaded on host"), "{stderr}");
    assert!(stderr.contains(&format!("linux-modules-extra-{release}")), "{stderr}");
    assert!(stderr.contains("CONFIG_BLK_DEV_NBD, CONFIG_NVME_TCP"), "{stderr}");
    assert!(!stderr.contains("✓ [2/3]") && !stderr.contains("[3/3]"), "later steps ran or were reported:\n{stderr}");
    assert_eq!(number(NR), saved.pages, "hugepages changed although preparation failed");
    assert_eq!(saved.changed_files(), Vec::<&str>::new(), "files written although preparation failed");
}

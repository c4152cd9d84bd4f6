//! Real VMs: what the tests that boot lab's box through vagrant-libvirt
//! need, and the libvirt objects a lab leaves (or must not leave) behind.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// Where `.ci/vm/box` leaves the box: `$LAB_VM_CACHE`, else ~/.cache/lab/vm.
pub fn box_file() -> PathBuf {
    let cache = std::env::var_os("LAB_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/lab/vm"));
    cache.join("lab-bookworm-k8s.box")
}

pub fn virsh(args: &[&str]) -> String {
    let out = Process::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh is not installed: apt-get install libvirt-clients (.ci/run does)");
    assert!(out.status.success(), "virsh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// libvirtd answering, vagrant-libvirt and the box: fails naming what is missing.
pub fn require_vms() {
    virsh(&["version"]);
    let plugins = Process::new("vagrant").args(["plugin", "list"]).env("VAGRANT_CHECKPOINT_DISABLE", "1").output();
    assert!(
        plugins.as_ref().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("vagrant-libvirt")),
        "vagrant-libvirt is not installed: apt-get install vagrant-libvirt (.ci/run does)"
    );
    assert!(box_file().is_file(), "no box at {}: `bash .ci/vm/box` builds it (.ci/run does)", box_file().display());
}

/// Names of libvirt objects, one per line of `virsh <list> --name`.
pub fn names(list: &[&str]) -> Vec<String> {
    virsh(list).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// The lab instance a state folder recorded (`<state>/<name>/instance`).
pub fn instance(state: &Path, lab: &str) -> String {
    std::fs::read_to_string(state.join(lab).join("instance")).unwrap().trim().to_string()
}

/// A domain of the lab `instance` is defined in libvirt.
pub fn assert_domain_of(instance: &str) {
    let prefix = format!("lab-{instance}-");
    let domains = names(&["list", "--all", "--name"]);
    assert!(domains.iter().any(|d| d.starts_with(&prefix)), "no domain of the lab ({prefix}…): {domains:?}");
}

/// No domain, network, storage pool or pool folder of the lab `instance` is left in libvirt.
pub fn assert_nothing_left_of(instance: &str) {
    let prefix = format!("lab-{instance}-");
    let left: Vec<String> =
        names(&["list", "--all", "--name"]).into_iter().filter(|d| d.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "domains of the lab left after down: {left:?}");
    let networks = names(&["net-list", "--all", "--name"]);
    for network in [format!("{prefix}mgmt"), format!("{prefix}nodes")] {
        assert!(!networks.contains(&network), "network {network} left after down: {networks:?}");
    }
    let pool = format!("lab-{instance}");
    let pools = names(&["pool-list", "--all", "--name"]);
    assert!(!pools.contains(&pool), "storage pool {pool} left after down: {pools:?}");
    let pool_dir = Path::new("/var/lib/libvirt/images").join(&pool);
    assert!(!pool_dir.exists(), "{} left after down", pool_dir.display());
}

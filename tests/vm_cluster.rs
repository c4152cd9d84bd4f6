//! Real VM clusters: `lab up` of a one-node kubeadm cluster in a libvirt VM
//! (Debian's vagrant + vagrant-libvirt on qemu; KVM where a kernel boots
//! under it, else emulation), from lab's offline box (`.ci/vm/box`). The
//! node's own kernel loads the modules the scenario asks for, which
//! `features/vm` verifies through `lab test`; `lab down` then leaves no
//! domain, network, storage pool or volume of the lab in libvirt.
//!
//! Needs libvirtd answering on qemu:///system, vagrant-libvirt and the box
//! file (`.ci/run` installs, starts and builds them); fails, naming what is
//! missing, without them.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Where `.ci/vm/box` leaves the box: `$LAB_VM_CACHE`, else ~/.cache/lab/vm.
fn box_file() -> PathBuf {
    let cache = std::env::var_os("LAB_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/lab/vm"));
    cache.join("lab-bookworm-k8s.box")
}

fn virsh(args: &[&str]) -> String {
    let out = Process::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh is not installed: apt-get install libvirt-clients (.ci/run does)");
    assert!(out.status.success(), "virsh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_vms() {
    virsh(&["version"]);
    let plugins = Process::new("vagrant").args(["plugin", "list"]).env("VAGRANT_CHECKPOINT_DISABLE", "1").output();
    assert!(
        plugins.as_ref().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("vagrant-libvirt")),
        "vagrant-libvirt is not installed: apt-get install vagrant-libvirt (.ci/run does)"
    );
    assert!(box_file().is_file(), "no box at {}: `bash .ci/vm/box` builds it (.ci/run does)", box_file().display());
}

fn lab(dir: &Path, state: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_STATE_DIR", state);
    cmd
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `lab down` even when an assertion fails half-way.
struct Down<'a> {
    dir: &'a Path,
    state: &'a Path,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = lab(self.dir, self.state).args(["down", "lab.yaml"]).output();
    }
}

/// Names of libvirt objects, one per line of `virsh <list> --name`.
fn names(list: &[&str]) -> Vec<String> {
    virsh(list).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn vm_cluster_loads_modules_in_its_own_kernel_and_down_leaves_nothing_in_libvirt() {
    require_vms();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    // Networks of their own, apart from the repository's VM scenarios, so
    // this test runs beside a lab of those.
    let scenario = format!(
        "apiVersion: lab/v1alpha1
kind: Scenario
metadata:
  name: vmtest
cluster:
  provider: vagrant
  vagrant:
    box: lab-bookworm-k8s
    boxFile: {box_file}
    cpus: 2
    memory: 2GiB
    network: 192.168.131
    managementNetwork: 192.168.132
  nodes:
    - role: control-plane
      hugepages2Mi: 32
      modules: [nvme_tcp, nbd]
features: {features}
",
        box_file = box_file().display(),
        features = repo_root().join("features/vm/kernel.feature").display(),
    );
    std::fs::write(work.path().join("lab.yaml"), scenario).unwrap();
    let _down = Down { dir: work.path(), state: &state };

    let (ok, up) = run(lab(work.path(), &state).args(["up", "lab.yaml"]));
    assert!(ok, "lab up failed:\n{up}");
    let instance = std::fs::read_to_string(state.join("vmtest/instance")).unwrap().trim().to_string();
    let prefix = format!("lab-{instance}-");
    let domains = names(&["list", "--all", "--name"]);
    assert!(domains.iter().any(|d| d.starts_with(&prefix)), "no domain of the lab ({prefix}…) after up: {domains:?}");

    let (ok, test) = run(lab(work.path(), &state).args(["test", "lab.yaml"]));
    assert!(ok, "lab test failed:\n{test}");
    assert!(test.contains("nvme_tcp") && test.contains("passed"), "{test}");

    let (ok, down) = run(lab(work.path(), &state).args(["down", "lab.yaml"]));
    assert!(ok, "lab down failed:\n{down}");
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

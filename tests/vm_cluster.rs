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

use assert_cmd::Command;
use std::path::{Path, PathBuf};

mod support;
use support::vm::{assert_domain_of, assert_nothing_left_of, box_file, instance, require_vms};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
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
    let instance = instance(&state, "vmtest");
    assert_domain_of(&instance);

    let (ok, test) = run(lab(work.path(), &state).args(["test", "lab.yaml"]));
    assert!(ok, "lab test failed:\n{test}");
    assert!(test.contains("nvme_tcp") && test.contains("passed"), "{test}");

    let (ok, down) = run(lab(work.path(), &state).args(["down", "lab.yaml"]));
    assert!(ok, "lab down failed:\n{down}");
    assert_nothing_left_of(&instance);
}

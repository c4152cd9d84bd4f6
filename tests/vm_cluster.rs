//! Real VM clusters: `lab up` of a one-node kubeadm cluster in a libvirt VM
//! (Debian's vagrant + vagrant-libvirt on qemu; KVM where a kernel boots
//! under it, else emulation), from lab's offline box (`.ci/vm/box`). The
//! node's own kernel loads the modules the scenario asks for, which
//! `features/vm` verifies through `lab test`; `lab down` then leaves no
//! domain, network, storage pool or volume of the lab in libvirt.
//!
//! A named long check (about 11 minutes emulated here, beyond CI's budget
//! on these 2-core machines): `bash .ci/run --long-checks` runs it. Needs
//! libvirtd answering on qemu:///system, vagrant-libvirt and the box file
//! (`.ci/run` installs, starts and builds them); fails, naming what is
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

/// The cluster's bootstrap tokens (`ID.SECRET`), read from its API.
fn bootstrap_tokens(kubeconfig: &Path) -> Vec<String> {
    use k8s_openapi::api::core::v1::Secret;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = lab::provider::kube_client(kubeconfig.to_path_buf(), None).await.unwrap();
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client, "kube-system");
        let listed = secrets.list(&Default::default()).await.unwrap();
        listed
            .items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some("bootstrap.kubernetes.io/token"))
            .filter_map(|s| {
                let data = s.data?;
                let part = |key: &str| data.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned());
                Some(format!("{}.{}", part("token-id")?, part("token-secret")?))
            })
            .collect()
    })
}

/// Every file under `root` (none when it does not exist).
fn walk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out
}

#[test]
#[ignore = "long check (the box ≈ 4 min, then ≈ 11 min emulated): bash .ci/run --long-checks, or cargo test -p lab --test vm_cluster -- --ignored beyond_ci_"]
fn beyond_ci_vm_cluster_loads_modules_in_its_own_kernel_and_down_leaves_nothing_in_libvirt() {
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
    // `lab down` even when an assertion fails half-way.
    let _down = support::on_drop(|| {
        let _ = lab(work.path(), &state).args(["down", "lab.yaml"]).output();
    });

    let (ok, up) = run(lab(work.path(), &state).args(["up", "lab.yaml"]));
    assert!(ok, "lab up failed:\n{up}");
    let instance = instance(&state, "vmtest");
    assert_domain_of(&instance);

    let (ok, test) = run(lab(work.path(), &state).args(["test", "lab.yaml"]));
    assert!(ok, "lab test failed:\n{test}");
    assert!(test.contains("nvme_tcp") && test.contains("passed"), "{test}");

    // kubeadm's join token (printed by `kubeadm init` and by the join
    // step) is in no file lab wrote: its state, log and artifacts, and the
    // logs it exports.
    let tokens = bootstrap_tokens(&state.join("vmtest/kubeconfig"));
    assert!(!tokens.is_empty(), "the cluster has no bootstrap token to look for");
    let export = work.path().join("exported");
    let (ok, exported) = run(lab(work.path(), &state).args(["export", "logs"]).arg(&export).args(["-s", "lab.yaml"]));
    assert!(ok, "lab export logs failed:\n{exported}");
    let mut files = walk_files(&state);
    files.extend(walk_files(&work.path().join("artifacts")));
    files.extend(walk_files(&export));
    assert!(files.iter().any(|f| f.ends_with("lab.log")), "no lab.log among {files:?}");
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else { continue };
        for token in &tokens {
            let secret = token.split('.').nth(1).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the join token's secret",
                file.display()
            );
        }
    }

    let (ok, down) = run(lab(work.path(), &state).args(["down", "lab.yaml"]));
    assert!(ok, "lab down failed:\n{down}");
    assert_nothing_left_of(&instance);
}

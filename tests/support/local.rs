//! What the local-provider tests share: one cluster per host at a time,
//! lab's Kubernetes binaries, and `lab down` on drop.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// One local cluster per host at a time: its ports and folders are fixed.
pub static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn binaries() -> PathBuf {
    let dir = std::env::var_os("LAB_KUBE_BIN").map(PathBuf::from).unwrap_or_default();
    assert!(
        dir.join("kubelet").is_file(),
        "no Kubernetes binaries: run `export LAB_KUBE_BIN=$(bash .ci/kube/build | tail -n 1)` first (.ci/run does)"
    );
    dir
}

/// `lab`, run in `dir` with the Kubernetes binaries in `binaries`.
pub fn lab_in(dir: &Path, binaries: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_KUBE_BIN", binaries);
    cmd
}

/// A scratch copy of a manifests folder, for a test to break.
pub fn copy_manifests(from: &Path, to: &Path) {
    let options = fs_extra::dir::CopyOptions::new().content_only(true);
    fs_extra::dir::copy(from, to, &options).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

/// `lab down` even when an assertion fails half-way, then the host's pages
/// as they were now.
pub fn down_on_drop(dir: &Path, scenario: PathBuf) -> super::OnDrop<'_> {
    let pages = super::HostState::save();
    super::on_drop(move || {
        let _ = Command::cargo_bin("lab").unwrap().current_dir(dir).arg("down").arg(&scenario).output();
        drop(pages);
    })
}

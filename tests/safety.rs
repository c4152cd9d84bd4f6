//! lab never writes to a disk or file no one handed it, tested on real loop
//! devices, a real ext4 on one, a real mount and real fio: a pool device on
//! a provider whose nodes share this host's /dev (local, host, kind) and a
//! writing fio profile's target are probed first, and anything that holds
//! data is refused, naming the file, line and field or the flag that
//! consents, before anything is made. Needs root (losetup, mount), util-linux
//! (blkid), e2fsprogs and fio; `.ci/run` installs them. Every loop device,
//! mount and file a test makes is removed, even when it fails.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

/// A loop device over a file, optionally with ext4 and mounted; gone on drop.
struct Loop {
    device: String,
    mount: Option<PathBuf>,
}

impl Loop {
    fn new(file: &Path, ext4: bool) -> Loop {
        let ok = |p: &mut Process| {
            let out = p.output().unwrap();
            assert!(out.status.success(), "{p:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        ok(Process::new("truncate").args(["-s", "80M"]).arg(file));
        let device = ok(Process::new("losetup").args(["--find", "--show"]).arg(file));
        let made = Loop { device, mount: None };
        if ext4 {
            ok(Process::new("mkfs.ext4").args(["-q", "-F", &made.device]));
        }
        made
    }

    fn mount_on(&mut self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let status = Process::new("mount").arg(&self.device).arg(dir).status().unwrap();
        assert!(status.success(), "mount {} {}", self.device, dir.display());
        self.mount = Some(dir.to_path_buf());
    }

    fn unmount(&mut self) {
        if let Some(dir) = self.mount.take() {
            let _ = Process::new("umount").arg(&dir).status();
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.unmount();
        let _ = Process::new("losetup").args(["-d", &self.device]).status();
    }
}

fn lab(dir: &Path, args: &[&str]) -> (bool, String) {
    let out =
        Command::cargo_bin("lab").unwrap().current_dir(dir).env_remove("LAB_STATE_DIR").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked at"), "{text}");
    (out.status.success(), text)
}

/// A local-provider scenario whose one node runs io-engine on a pool device.
fn pool_scenario(dir: &Path, pool: &str) -> PathBuf {
    let text = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: pooltest\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\n      labels:\n        openebs.io/engine: mayastor\n      hugepages2Mi: 1024\n      pool:\n        size: 64MiB\n{pool}"
    );
    let path = dir.join("lab.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs root (loop devices, mounts) and fio: bash .ci/run runs it"]
fn a_pool_device_in_this_host_s_dev_holds_nothing_or_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".lab");

    // A host disk by a typo: refused by the scenario check, with the fix.
    pool_scenario(dir.path(), "        device: /dev/vda\n");
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(out.contains("lab.yaml") && out.contains("cluster.nodes[0].pool.device"), "{out}");
    assert!(out.contains("a disk of this host (local nodes share its /dev)"), "{out}");

    // A loop device that is not this lab's (its file lies elsewhere).
    let outside = tempfile::tempdir().unwrap();
    let mut foreign = Loop::new(&outside.path().join("disk.img"), true);
    pool_scenario(dir.path(), &format!("        device: {}\n", foreign.device));
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(out.contains("lies outside the lab's state folder"), "{out}");

    // Allowed as a host disk, it still carries ext4: the second consent is named.
    pool_scenario(dir.path(), &format!("        device: {}\n        allowHostDevice: true\n", foreign.device));
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(out.contains("cluster.nodes[0].pool.device"), "{out}");
    assert!(out.contains("carries ext4 (filesystem)") && out.contains("add `overwrite: true`"), "{out}");

    // Mounted, even both consents do not let a pool overwrite it.
    foreign.mount_on(&outside.path().join("mnt"));
    pool_scenario(
        dir.path(),
        &format!("        device: {}\n        allowHostDevice: true\n        overwrite: true\n", foreign.device),
    );
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(out.contains("is mounted on") && out.contains("unmount it first"), "{out}");
    foreign.unmount();

    // Unmounted, with both consents, it passes the checks (a stack's deploy
    // plan then says in capitals what happens to it).
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(ok, "{out}");
    assert!(!state.exists(), "a dry run made {}", state.display());

    // The lab's own loop device, over a file in its state folder: a clean one
    // passes, one that carries a filesystem is refused with the way out.
    let pools = state.join("pooltest");
    std::fs::create_dir_all(&pools).unwrap();
    let own = Loop::new(&pools.join("pool.img"), false);
    pool_scenario(dir.path(), &format!("        device: {}\n", own.device));
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(ok, "{out}");
    drop(own);
    let own = Loop::new(&pools.join("pool2.img"), true);
    pool_scenario(dir.path(), &format!("        device: {}\n", own.device));
    let (ok, out) = lab(dir.path(), &["up", "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(out.contains("carries ext4") && out.contains("wipefs -a"), "{out}");
}

/// A host scenario with one writing and one reading profile.
fn fio_scenario(dir: &Path) -> PathBuf {
    let text = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: fiotest\ncluster:\n  provider: host\n  nodes:\n    - role: worker\nfio:\n  profiles:\n    - {{name: w, rw: randwrite, bs: 4k, iodepth: 1, size: 8M, runtime: 1, ioengine: psync}}\n    - {{name: r, rw: randread, bs: 4k, iodepth: 1, size: 8M, runtime: 1, ioengine: psync}}\n  results: {}\n",
        dir.join("results").display()
    );
    let path = dir.join("lab.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn history_lines(dir: &Path) -> usize {
    let history = dir.join("results/fiotest/w.jsonl");
    std::fs::read_to_string(history).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
#[ignore = "needs root (loop devices, mounts) and fio: bash .ci/run runs it"]
fn a_writing_fio_profile_never_overwrites_what_lab_did_not_make_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    fio_scenario(dir.path());
    let fio = |target: &str, profile: &str, extra: &[&str]| {
        let mut args = vec!["fio", "-p", profile, "--target", target, "--repeat", "1"];
        args.extend(extra);
        lab(dir.path(), &args)
    };

    // A device with a filesystem: refused before fio runs, nothing recorded.
    let disks = tempfile::tempdir().unwrap();
    let mut disk = Loop::new(&disks.path().join("disk.img"), true);
    let (ok, out) = fio(&disk.device, "w", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("carries ext4 (filesystem)") && out.contains("give --overwrite"), "{out}");
    assert_eq!(history_lines(dir.path()), 0);
    // Reading it is free.
    let (ok, out) = fio(&disk.device, "r", &[]);
    assert!(ok, "{out}");

    // Mounted: refused even with --overwrite; fio's own refusal would have said the same.
    disk.mount_on(&disks.path().join("mnt"));
    let (ok, out) = fio(&disk.device, "w", &["--overwrite"]);
    assert!(!ok, "{out}");
    assert!(out.contains("is mounted on"), "{out}");
    disk.unmount();

    // With --overwrite, the unmounted device is written.
    let (ok, out) = fio(&disk.device, "w", &["--overwrite"]);
    assert!(ok, "{out}");

    // A file lab did not make: refused; a new one is made, recorded, and may be written again.
    let mine = dir.path().join("user-data.bin");
    std::fs::write(&mine, b"someone's data").unwrap();
    let (ok, out) = fio(&mine.display().to_string(), "w", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("a file lab did not make"), "{out}");
    assert_eq!(std::fs::read(&mine).unwrap(), b"someone's data");
    let made = dir.path().join("fio.data");
    let (ok, out) = fio(&made.display().to_string(), "w", &[]);
    assert!(ok, "{out}");
    let (ok, out) = fio(&made.display().to_string(), "w", &[]);
    assert!(ok, "lab's own file, written again: {out}");
    // Replaced by someone else's file at the same path: no longer lab's.
    std::fs::remove_file(&made).unwrap();
    std::fs::write(&made, b"new owner").unwrap();
    let (ok, out) = fio(&made.display().to_string(), "w", &[]);
    assert!(!ok, "{out}");
}

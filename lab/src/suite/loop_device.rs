//! A loop device with a filesystem, made for a scenario and removed after
//! it (even when it fails), so a run leaves nothing behind. Each lives in a
//! folder of its own under the lab's state (`test-devices/`), which names
//! its device: a run stopped before it could clean up (Ctrl-C, a crash) is
//! finished by `lab down` from that record ([`detach_recorded`]).

use std::process::Command as Process;

/// A backing file, its loop device (direct I/O) and, if formatted, a mount.
#[derive(Debug)]
pub struct LoopDevice {
    pub device: String,
    pub mount: Option<std::path::PathBuf>,
    /// xfs, ext4, or none (the raw device).
    pub filesystem: Option<String>,
    /// Its folder, removed once the device is detached; kept (with its
    /// record) when it cannot be, for `lab down`.
    dir: Option<tempfile::TempDir>,
}

/// Where a lab's test loop devices live, one folder each.
pub fn devices_dir(state: &crate::state::StateDir) -> std::path::PathBuf {
    state.absolute().join("test-devices")
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Process::new(program).args(args).output().map_err(|e| format!("`{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl LoopDevice {
    /// A device of `size_mib`, formatted with `filesystem` if given, its
    /// folder under `dir` (the lab's `test-devices/`).
    pub fn create(size_mib: u64, filesystem: Option<&str>, dir: &std::path::Path) -> Result<LoopDevice, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dir = tempfile::Builder::new().prefix("loop-").tempdir_in(dir).map_err(|e| e.to_string())?;
        let file = dir.path().join("backing.img");
        let file_text = file.display().to_string();
        run("truncate", &["-s", &format!("{size_mib}M"), &file_text])?;
        if filesystem.is_none() {
            // Written through, so reads of the raw device reach the disk: reading
            // holes in a sparse file (or fallocate's unwritten extents) measures nothing.
            let (of, count) = (format!("of={file_text}"), format!("count={size_mib}"));
            run("dd", &["if=/dev/zero", &of, "bs=1M", &count, "conv=fsync,notrunc", "status=none"])?;
        }
        let device = run("losetup", &["--find", "--show", "--direct-io=on", &file_text])?;
        // The record first: whatever happens next, `lab down` finds this device.
        let recorded = std::fs::write(dir.path().join("device"), format!("{device}\n"));
        let folder = dir.path().to_path_buf();
        let mut made = LoopDevice { device, mount: None, filesystem: filesystem.map(str::to_string), dir: Some(dir) };
        recorded.map_err(|e| format!("cannot record {}: {e}", made.device))?;
        if let Some(fs) = filesystem {
            let mkfs = match fs {
                "xfs" => ("mkfs.xfs", vec!["-q", "-f"]),
                "ext4" => ("mkfs.ext4", vec!["-q", "-F"]),
                other => return Err(format!("filesystem `{other}`: lab formats xfs or ext4")),
            };
            let mut args = mkfs.1;
            args.push(&made.device);
            run(mkfs.0, &args).map_err(|e| format!("{e} (mkfs.xfs comes with xfsprogs)"))?;
            let mount = folder.join("mnt");
            std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
            run("mount", &[&made.device, &mount.display().to_string()])?;
            made.mount = Some(mount);
        }
        Ok(made)
    }
}

impl Drop for LoopDevice {
    /// Unmounted and detached; fio, killed when a run is interrupted, may
    /// hold the mount a moment longer, so busy is retried for a few seconds.
    fn drop(&mut self) {
        let mut unmounted = true;
        if let Some(mount) = &self.mount {
            let mount = mount.display().to_string();
            unmounted = (0..50).any(|_| {
                let done = run("umount", &[&mount]).is_ok();
                if !done {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                done
            });
        }
        let detached = unmounted && run("losetup", &["-d", &self.device]).is_ok();
        if !detached && let Some(dir) = self.dir.take() {
            // Its record stays: `lab down` detaches the device from it.
            let kept = dir.keep();
            eprintln!("{} stays attached; `lab down` detaches it (recorded in {})", self.device, kept.display());
        }
    }
}

impl LoopDevice {
    /// Where fio works: a file on the filesystem, or the device itself.
    pub fn fio_target(&self) -> String {
        match &self.mount {
            Some(mount) => mount.join("fio.data").display().to_string(),
            None => self.device.clone(),
        }
    }

    /// The device for the history's fingerprint: a fresh loop device differs
    /// only by name, but results on xfs and ext4 are not comparable.
    pub fn fingerprint(&self) -> String {
        format!("loop ({})", self.filesystem.as_deref().unwrap_or("raw"))
    }
}

/// Detaches the test devices recorded in `dir` that are still backed by
/// their own folder's file, then removes the folders.
pub fn detach_recorded(dir: &std::path::Path) -> crate::shell::Cmd {
    crate::shell::Cmd::script("detach-test-devices.sh", include_str!("scripts/detach-test-devices.sh"))
        .arg(dir.display().to_string())
}

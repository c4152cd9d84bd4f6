//! A loop device with a filesystem, made for a scenario and removed after
//! it (even when it fails), so a run leaves nothing behind.

use std::process::Command as Process;

/// A backing file, its loop device (direct I/O) and, if formatted, a mount.
#[derive(Debug)]
pub struct LoopDevice {
    pub device: String,
    pub mount: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
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
    pub fn create(size_mib: u64, filesystem: Option<&str>) -> Result<LoopDevice, String> {
        let dir = tempfile::Builder::new().prefix("lab-loop-").tempdir_in("/var/tmp").map_err(|e| e.to_string())?;
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
        let mut made = LoopDevice { device, mount: None, _dir: dir };
        if let Some(fs) = filesystem {
            let mkfs = match fs {
                "xfs" => ("mkfs.xfs", vec!["-q", "-f"]),
                "ext4" => ("mkfs.ext4", vec!["-q", "-F"]),
                other => return Err(format!("filesystem `{other}`: lab formats xfs or ext4")),
            };
            let mut args = mkfs.1;
            args.push(&made.device);
            run(mkfs.0, &args).map_err(|e| format!("{e} (mkfs.xfs comes with xfsprogs)"))?;
            let mount = made._dir.path().join("mnt");
            std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
            run("mount", &[&made.device, &mount.display().to_string()])?;
            made.mount = Some(mount);
        }
        Ok(made)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Some(mount) = &self.mount {
            let _ = run("umount", &[&mount.display().to_string()]);
        }
        let _ = run("losetup", &["-d", &self.device]);
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

    /// The device for the history's fingerprint: a fresh loop device differs only by name.
    pub fn fingerprint(&self) -> String {
        format!("loop ({})", if self.mount.is_some() { "filesystem" } else { "raw" })
    }
}

//! Mount propagation: CSI mounts made inside pods must reach the node, which
//! needs `/` to be a shared mount. It does not survive a node restart, so
//! every `lab up` and `lab prepare` applies it again.

use crate::plan::Detail;
use crate::shell::{Cmd, Shell};

fn mountinfo_cmd() -> Cmd {
    Cmd::new("cat").arg("/proc/self/mountinfo")
}

fn rshared_cmd() -> Cmd {
    Cmd::new("mount").args(["--make-rshared", "/"])
}

pub fn details() -> Vec<Detail> {
    vec![
        Detail::run(mountinfo_cmd()),
        Detail::when(rshared_cmd(), "when / is not shared"),
        Detail::when(mountinfo_cmd(), "verify"),
    ]
}

/// Whether the mount at `/` carries a `shared:N` propagation tag.
pub fn root_is_shared(mountinfo: &str) -> Option<bool> {
    // Fields: id parent major:minor root mountpoint options [optional…] - fs …
    let root = mountinfo.lines().rfind(|l| l.split_whitespace().nth(4) == Some("/"))?;
    let optional = root.split_whitespace().skip(6).take_while(|f| *f != "-");
    Some(optional.into_iter().any(|f| f.starts_with("shared:")))
}

pub async fn make_rshared(shell: &dyn Shell) -> anyhow::Result<String> {
    let shared = |text: &str| root_is_shared(text).unwrap_or(false);
    if shared(&shell.run(&mountinfo_cmd()).await?.stdout) {
        return Ok("/ is already shared".into());
    }
    shell.run(&rshared_cmd()).await?;
    if !shared(&shell.run(&mountinfo_cmd()).await?.stdout) {
        anyhow::bail!("{}: `mount --make-rshared /` succeeded but / is still not shared", shell.place());
    }
    Ok("made / rshared".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_mount_s_propagation_is_read_from_mountinfo() {
        let shared = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n23 22 0:5 / /dev rw - devtmpfs udev rw\n";
        let private = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n";
        // The last mount at / wins: an overlay mounted over the first.
        let stacked = format!("{shared}40 22 0:30 / / rw master:3 - overlay overlay rw\n");
        assert_eq!(root_is_shared(shared), Some(true));
        assert_eq!(root_is_shared(private), Some(false));
        assert_eq!(root_is_shared(&stacked), Some(false));
        assert_eq!(root_is_shared(""), None);
    }
}

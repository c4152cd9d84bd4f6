//! Mount propagation: CSI mounts made inside pods must reach the node, which
//! needs `/` to be a shared mount. It does not survive a node restart, so
//! every `lab up` and `lab prepare` applies it again. The mounts it turns
//! shared are recorded with what they were, for `lab down` to put back.

use super::undo::{Change, Recorder};
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

/// Each mount that is not shared, with its propagation (`private` or `slave`).
pub fn unshared_mounts(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let mountpoint = fields.get(4)?;
            let optional: Vec<&&str> = fields.iter().skip(6).take_while(|f| **f != "-").collect();
            if optional.iter().any(|f| f.starts_with("shared:")) {
                return None;
            }
            let kind = if optional.iter().any(|f| f.starts_with("master:")) { "slave" } else { "private" };
            // mountinfo escapes blanks as octal (`\040`); mount takes the plain path.
            Some((mountpoint.replace("\\040", " "), kind.to_string()))
        })
        .collect()
}

pub async fn make_rshared(shell: &dyn Shell, record: &Recorder<'_>) -> anyhow::Result<String> {
    let shared = |text: &str| root_is_shared(text).unwrap_or(false);
    let before = shell.run(&mountinfo_cmd()).await?.stdout;
    if shared(&before) {
        record.rely_on(Change::Propagation { mounts: Vec::new() })?;
        return Ok("/ is already shared".into());
    }
    record.remember(Change::Propagation { mounts: unshared_mounts(&before) })?;
    shell.run(&rshared_cmd()).await?;
    if !shared(&shell.run(&mountinfo_cmd()).await?.stdout) {
        anyhow::bail!("{}: `mount --make-rshared /` succeeded but / is still not shared", shell.place());
    }
    Ok("made / rshared".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unshared_mounts_are_read_with_their_propagation() {
        let mountinfo = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:5 / /dev rw shared:2 - devtmpfs udev rw
24 22 0:6 / /mnt/with\\040blank rw master:3 - tmpfs tmpfs rw
";
        assert_eq!(
            super::unshared_mounts(mountinfo),
            [("/".to_string(), "private".to_string()), ("/mnt/with blank".into(), "slave".into())]
        );
    }

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

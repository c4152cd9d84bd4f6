//! What is on a disk or file before lab writes to it: whether it is mounted
//! or swap, whether another device sits on it (device-mapper, md, LVM), and
//! what signature blkid finds (a filesystem, a partition table, a RAID or
//! LVM member). The probe (`probe.sh`) only reads, and runs the same way on
//! this host and in a node's shell; the verdict is [`Probe::refusal`].

use std::fmt;

use crate::shell::{Cmd, Shell};

pub const PROBE_SCRIPT: &str = include_str!("probe.sh");

/// What a path is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Missing,
    File,
    Block,
    /// The null or zero device (character device 1:3 or 1:5): writing there destroys nothing.
    Sink,
    /// A folder, a character device, a socket …: not something to write data to.
    Other,
}

/// What the probe saw at one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub path: String,
    pub kind: Kind,
    /// A regular file's device, inode and last change (`stat %z`): an inode
    /// number is reused as soon as a file is removed, its change time is not.
    pub id: Option<String>,
    pub mounts: Vec<String>,
    pub swap: bool,
    pub holders: Vec<String>,
    /// What blkid found: `ext4 (filesystem)`, `gpt (partition table)`, `LVM2_member (raid)` …
    pub signatures: Vec<String>,
    /// Why the signatures could not be read (blkid missing or failing): then nothing may be written.
    pub unreadable: Option<String>,
}

/// Why lab will not write to a path, and whether the user may overrule it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub why: String,
    /// Holders, signatures and files lab did not make yield to an explicit
    /// overwrite; a mount, swap or an unreadable device never does.
    pub overridable: bool,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

/// The probe as a command; the script ([`PROBE_SCRIPT`]) goes on its stdin.
pub fn probe_cmd(path: &str) -> Cmd {
    Cmd::new("sh").args(["-s", "--", path])
}

/// Probe `path` in `shell` (this host, a node).
pub async fn probe(shell: &dyn Shell, path: &str) -> anyhow::Result<Probe> {
    let output = shell
        .run_with_input(&probe_cmd(path), Some(PROBE_SCRIPT.as_bytes()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    parse(path, &output.stdout).map_err(|e| anyhow::anyhow!("{}: probing {path}: {e}", shell.place()))
}

/// The probe's lines, as [`Probe`].
pub fn parse(path: &str, text: &str) -> Result<Probe, String> {
    let mut probe = Probe { path: path.to_string(), ..Probe::default() };
    let mut kind = None;
    let (mut types, mut usage) = (Vec::new(), None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "kind" => {
                kind = Some(match value {
                    "missing" => Kind::Missing,
                    "file" => Kind::File,
                    "block" => Kind::Block,
                    "sink" => Kind::Sink,
                    "other" => Kind::Other,
                    other => return Err(format!("unknown kind `{other}`")),
                })
            }
            "id" => {
                let mut words = value.split_whitespace();
                let numbers = words
                    .next()
                    .zip(words.next())
                    .filter(|(d, i)| d.parse::<u64>().is_ok() && i.parse::<u64>().is_ok());
                if numbers.is_none() || words.next().is_none() {
                    return Err(format!("unreadable file id `{value}`"));
                }
                probe.id = Some(value.to_string());
            }
            "mount" => probe.mounts.push(value.to_string()),
            "swap" => probe.swap = true,
            "holder" => probe.holders.push(value.to_string()),
            "blkid-status" => match value {
                "0" | "2" => {}
                "8" => probe.signatures.push("several signatures (blkid cannot tell which one is real)".into()),
                "missing" => probe.unreadable = Some("blkid is not installed there (util-linux)".into()),
                status => probe.unreadable = Some(format!("blkid -p exited {status}")),
            },
            "blkid" => match value.split_once('=') {
                Some(("TYPE", t)) => types.push(t.to_string()),
                Some(("PTTYPE", t)) => probe.signatures.push(format!("a {t} partition table")),
                Some(("USAGE", u)) => usage = Some(u.to_string()),
                _ => {}
            },
            other => return Err(format!("unexpected line `{other}`")),
        }
    }
    probe.kind = kind.ok_or("the probe printed nothing")?;
    for t in types {
        probe.signatures.push(match &usage {
            Some(usage) => format!("{t} ({usage})"),
            None => t,
        });
    }
    Ok(probe)
}

impl Probe {
    /// Why writing to this block device would destroy something, if it would.
    pub fn block_refusal(&self) -> Option<Refusal> {
        let path = &self.path;
        if !self.mounts.is_empty() {
            let why = format!("{path} is mounted on {}: unmount it first", self.mounts.join(", "));
            return Some(Refusal { why, overridable: false });
        }
        if self.swap {
            return Some(Refusal { why: format!("{path} is swap in use: swapoff it first"), overridable: false });
        }
        if let Some(why) = &self.unreadable {
            let why = format!("what is on {path} cannot be read ({why}), so lab does not write to it");
            return Some(Refusal { why, overridable: false });
        }
        if !self.holders.is_empty() {
            let why =
                format!("{path} is in use by {} (device-mapper, md or LVM on top of it)", self.holders.join(", "));
            return Some(Refusal { why, overridable: true });
        }
        if !self.signatures.is_empty() {
            let why = format!("{path} carries {} (blkid -p), which writing to it destroys", self.signatures.join(", "));
            return Some(Refusal { why, overridable: true });
        }
        None
    }

    /// Why lab may not write fio's data to this path: a block device that
    /// holds something ([`Probe::block_refusal`]), a regular file lab did not
    /// make (`made_by_lab` tells), or neither a file nor a device.
    pub fn write_refusal(&self, made_by_lab: bool) -> Option<Refusal> {
        match self.kind {
            Kind::Missing | Kind::Sink => None,
            Kind::Block => self.block_refusal(),
            Kind::File if made_by_lab => None,
            Kind::File => Some(Refusal {
                why: format!("{} is a file lab did not make, and the profile writes to it", self.path),
                overridable: true,
            }),
            Kind::Other => Some(Refusal {
                why: format!("{} is neither a regular file nor a block device", self.path),
                overridable: false,
            }),
        }
    }
}

/// A refusal with what the user may do about it (`consent` names the flag or field).
pub fn explain(refusal: &Refusal, consent: &str) -> String {
    if refusal.overridable { format!("{}; {consent} if you mean it", refusal.why) } else { refusal.why.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_device_may_be_written() {
        let probe = parse("/dev/loop3", "kind block\nblkid-status 2\n").unwrap();
        assert_eq!(probe.kind, Kind::Block);
        assert_eq!(probe.block_refusal(), None);
    }

    #[test]
    fn a_filesystem_or_partition_table_needs_consent_and_a_mount_never_yields() {
        let ext4 =
            parse("/dev/loop3", "kind block\nblkid-status 0\nblkid TYPE=ext4\nblkid USAGE=filesystem\n").unwrap();
        let refusal = ext4.block_refusal().unwrap();
        assert!(refusal.overridable);
        assert!(refusal.why.contains("carries ext4 (filesystem)"), "{refusal}");
        let table = parse("/dev/sdb", "kind block\nblkid-status 0\nblkid PTTYPE=gpt\n").unwrap();
        assert!(table.block_refusal().unwrap().why.contains("a gpt partition table"));
        let mounted = parse("/dev/sdb", "kind block\nmount /srv\nblkid-status 0\nblkid TYPE=xfs\n").unwrap();
        let refusal = mounted.block_refusal().unwrap();
        assert!(!refusal.overridable && refusal.why.contains("mounted on /srv"), "{refusal}");
        let held = parse("/dev/sdb", "kind block\nholder dm-0\nblkid-status 2\n").unwrap();
        assert!(held.block_refusal().unwrap().why.contains("in use by dm-0"));
        let ambivalent = parse("/dev/sdb", "kind block\nblkid-status 8\n").unwrap();
        assert!(ambivalent.block_refusal().is_some());
    }

    #[test]
    fn a_device_whose_signatures_cannot_be_read_is_refused() {
        let probe = parse("/dev/sdb", "kind block\nblkid-status missing\n").unwrap();
        let refusal = probe.block_refusal().unwrap();
        assert!(!refusal.overridable && refusal.why.contains("blkid is not installed"), "{refusal}");
    }

    #[test]
    fn files_are_written_only_when_lab_made_them() {
        let file = parse("/srv/data", "kind file\nid 2049 1234 2026-12-07 05:10:11.123456789 +0000\n").unwrap();
        assert_eq!(file.id.as_deref(), Some("2049 1234 2026-12-07 05:10:11.123456789 +0000"));
        assert!(parse("/srv/data", "kind file\nid 2049 1234\n").is_err());
        assert!(file.write_refusal(false).unwrap().overridable);
        assert_eq!(file.write_refusal(true), None);
        assert_eq!(parse("/srv/new", "kind missing\n").unwrap().write_refusal(false), None);
        assert_eq!(parse("/dev/null", "kind sink\n").unwrap().write_refusal(false), None);
        assert!(!parse("/srv", "kind other\n").unwrap().write_refusal(false).unwrap().overridable);
        assert!(parse("/srv", "").is_err());
        assert!(parse("/srv", "kind block\nsurprise\n").is_err());
    }
}

//! Where a writing fio job may write. fio overwrites whatever its
//! `filename=` names; it refuses only a mounted device. lab refuses, before
//! the first run, a block device that another device sits on or that holds
//! any signature, and an existing regular file lab did not make, unless the
//! user consents (`--overwrite`). Files a run made are recorded in the lab's
//! state, so the next run (or `lab fio` again) may write them again.

use std::path::PathBuf;

use anyhow::Context as _;

use super::Job;
use crate::device::{self, Kind, Probe};
use crate::shell::Shell;

/// How much the user allowed, and the record of files lab's fio made.
pub struct Writes {
    /// `--overwrite`: holders, signatures and foreign files do not stop the run.
    pub overwrite: bool,
    /// `fio-files.txt` in the lab's state folder.
    pub record: PathBuf,
}

impl Writes {
    /// No consent beyond what lab made; the record in `state`.
    pub fn of(state: &crate::state::StateDir, overwrite: bool) -> Writes {
        Writes { overwrite, record: state.file("fio-files.txt") }
    }

    /// Whether `probe` (a regular file seen at `place`) is as lab's fio left
    /// it: same path, device, inode and change time.
    fn made(&self, place: &str, probe: &Probe) -> bool {
        let Some(id) = &probe.id else { return false };
        let wanted = record_line(place, &probe.path, id);
        std::fs::read_to_string(&self.record).is_ok_and(|text| text.lines().any(|l| l == wanted))
    }

    /// Record the file as lab's fio left it, replacing what was recorded of that place and path.
    fn remember(&self, place: &str, probe: &Probe) -> anyhow::Result<()> {
        let Some(id) = &probe.id else { return Ok(()) };
        if let Some(dir) = self.record.parent() {
            crate::state::make_private_dir(dir)?;
        }
        let key = record_line(place, &probe.path, "");
        let old = std::fs::read_to_string(&self.record).unwrap_or_default();
        let mut lines: Vec<&str> = old.lines().filter(|l| !l.starts_with(&key)).collect();
        let line = record_line(place, &probe.path, id);
        lines.push(&line);
        crate::state::write_new(&self.record, &format!("{}\n", lines.join("\n")), 0o600)
            .with_context(|| format!("cannot record the file fio made in {}", self.record.display()))
    }
}

fn record_line(place: &str, path: &str, id: &str) -> String {
    format!("{}\t{}\t{id}", place.escape_default(), path.escape_default())
}

/// Whether `job` changes what its target holds.
pub fn writes(job: &Job) -> bool {
    !matches!(job.rw.as_str(), "read" | "randread")
}

/// A writing job's target as it was before the run.
pub struct Checked {
    probe: Probe,
    /// New, or a file lab's fio left: recorded again after the run.
    lab_s: bool,
}

/// Before a writing job runs on `filename` in `shell`: refused, with what
/// the user can do, unless the target is new, lab's own, or consented to.
pub async fn check(shell: &dyn Shell, job: &Job, filename: &str, writes: &Writes) -> anyhow::Result<Option<Checked>> {
    if !self::writes(job) {
        return Ok(None);
    }
    let probe = device::probe(shell, filename).await?;
    let made = probe.kind == Kind::File && writes.made(&shell.place(), &probe);
    if let Some(refusal) = probe.write_refusal(made) {
        if refusal.overridable && writes.overwrite {
            tracing::warn!("{}: {refusal}; overwritten as --overwrite allows", shell.place());
        } else {
            anyhow::bail!(
                "{}: fio job {} (rw={}) would write to it: {}",
                shell.place(),
                job.name,
                job.rw,
                device::explain(&refusal, "give --overwrite")
            );
        }
    }
    let lab_s = made || probe.kind == Kind::Missing;
    Ok(Some(Checked { probe, lab_s }))
}

/// After a run: a file fio made for lab (missing before) or wrote again is
/// recorded as it is now; anything else stays the user's.
pub async fn remember_made(shell: &dyn Shell, before: &Checked, writes: &Writes) -> anyhow::Result<()> {
    if !before.lab_s {
        return Ok(());
    }
    let after = device::probe(shell, &before.probe.path).await?;
    if after.kind == Kind::File { writes.remember(&shell.place(), &after) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_profiles_write_nothing() {
        assert!(!writes(&Job::new("r", "randread", "4k", "16M", 1)));
        assert!(!writes(&Job::new("r", "read", "4k", "16M", 1)));
        for rw in ["write", "randwrite", "rw", "randrw", "trim", "randtrim", "readwrite"] {
            assert!(writes(&Job::new("w", rw, "4k", "16M", 1)), "{rw}");
        }
    }

    #[test]
    fn a_file_is_lab_s_only_with_its_recorded_place_path_and_inode() {
        let dir = tempfile::tempdir().unwrap();
        let writes = Writes { overwrite: false, record: dir.path().join("fio-files.txt") };
        let id = |stamp: &str| Some(format!("2049 77 2026-12-07 05:10:11.{stamp} +0000"));
        let probe = Probe { path: "/srv/fio.data".into(), kind: Kind::File, id: id("1"), ..Probe::default() };
        assert!(!writes.made("host", &probe));
        writes.remember("host", &probe).unwrap();
        assert!(writes.made("host", &probe));
        assert!(!writes.made("node lab-w1", &probe));
        let replaced = Probe { id: id("2"), ..probe.clone() };
        assert!(!writes.made("host", &replaced), "another file at the same path and inode is not lab's");
        writes.remember("host", &replaced).unwrap();
        assert!(writes.made("host", &replaced) && !writes.made("host", &probe), "one line per place and path");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&writes.record).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

//! What preparation changed on a host or node, recorded before the change is
//! made, so `lab down` (or a failed `lab prepare`) can put it back.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::plan::{Step, Target};
use crate::shell::{Cmd, quote};

/// One change, with what was there before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Change {
    /// A kernel setting file (`/sys/...`, `/proc/sys/...`) and the value it held.
    Setting { path: String, was: String },
    /// A file lab wrote, and what it held before (`None`: it did not exist).
    File { path: String, was: Option<String> },
    /// A kernel module lab loaded (it was not loaded before).
    Module { name: String },
    /// Mounts lab made shared (`mount --make-rshared /`), each with the
    /// propagation it had: `private` or `slave`.
    Propagation { mounts: Vec<(String, String)> },
    /// A node label lab set, and the value it had (`None`: the node had no such label).
    Label { key: String, was: Option<String> },
}

impl Change {
    /// Two changes to the same thing share a key; only the first is kept, as
    /// it holds the original state.
    fn key(&self) -> (&'static str, &str) {
        match self {
            Change::Setting { path, .. } => ("setting", path),
            Change::File { path, .. } => ("file", path),
            Change::Module { name } => ("module", name),
            Change::Propagation { .. } => ("propagation", "/"),
            Change::Label { key, .. } => ("label", key),
        }
    }

    /// The step that puts the original back.
    fn restore_step(&self, on: &Target) -> Step {
        let place = match on {
            Target::Host => "host".to_string(),
            Target::Node(node) => node.clone(),
        };
        match self {
            Change::Setting { path, was } => Step::run(
                format!("restore {path} to {was} on {place}"),
                on.clone(),
                Cmd::sh(format!("echo {} > {}", quote(was), quote(path))),
            ),
            Change::File { path, was: None } => {
                Step::run(format!("remove {path} on {place}"), on.clone(), Cmd::new("rm").args(["-f", path]))
            }
            Change::File { path, was: Some(text) } => Step::run(
                format!("restore the previous {path} on {place}"),
                on.clone(),
                Cmd::sh(format!("printf %s {} > {}", quote(text), quote(path))),
            ),
            // A mount gone since is skipped: there is nothing left to put back.
            Change::Propagation { mounts } => {
                let commands: Vec<String> = mounts
                    .iter()
                    .map(|(mount, kind)| format!("mount --make-{kind} {} 2>/dev/null", quote(mount)))
                    .collect();
                Step::run(
                    format!("make {} mount(s) {place} had unshared again", mounts.len()),
                    on.clone(),
                    Cmd::sh(format!("{}; true", commands.join("; "))),
                )
            }
            Change::Label { key, was } => {
                let said = match was {
                    Some(was) => format!("set label {key} back to {was} on {place}"),
                    None => format!("remove label {key} from {place}"),
                };
                let labels = [(key.clone(), was.clone())].into();
                Step::work(said, super::label::RestoreLabels { node: place, labels })
            }
            // A module another user started to rely on cannot be unloaded; that
            // leaves the kernel as capable as before, so it is not a failure.
            Change::Module { name } => Step::run(
                format!("unload module {name} on {place}"),
                on.clone(),
                Cmd::sh(format!(
                    "modprobe -r {name} 2>/dev/null || echo '{name} stays loaded: it is in use or cannot be unloaded'"
                )),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub on: Target,
    #[serde(flatten)]
    pub change: Change,
}

/// The record file, `.lab/<name>/changes.json`: a JSON list, rewritten whole
/// (through a temporary file) on every change so it is never half-written.
#[derive(Clone, Debug)]
pub struct UndoLog {
    path: PathBuf,
}

impl UndoLog {
    pub fn new(path: impl Into<PathBuf>) -> UndoLog {
        UndoLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every recorded change, oldest first; none when nothing was recorded.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!("{} is damaged; restore host settings by hand from it, then delete it", self.path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Record a change about to be made on `on`, unless the same thing was
    /// recorded before (that record holds the original).
    pub fn remember(&self, on: &Target, change: Change) -> anyhow::Result<()> {
        let mut entries = self.entries()?;
        if entries.iter().any(|e| &e.on == on && e.change.key() == change.key()) {
            return Ok(());
        }
        entries.push(Entry { on: on.clone(), change });
        let text = serde_json::to_string_pretty(&entries)?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text + "\n")
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .with_context(|| format!("cannot record a change in {}", self.path.display()))
    }

    /// Steps that undo `entries`, newest first. Changes on nodes that do not
    /// outlive the lab (kind containers, VMs) go with them and are skipped.
    pub fn restore_steps(entries: &[Entry], nodes_outlive_lab: bool) -> Vec<Step> {
        entries
            .iter()
            .rev()
            .filter(|e| nodes_outlive_lab || e.on == Target::Host)
            .map(|e| e.change.restore_step(&e.on))
            .collect()
    }
}

/// An [`UndoLog`] bound to the place the changes are made.
pub struct Recorder<'a> {
    pub log: &'a UndoLog,
    pub on: Target,
}

impl Recorder<'_> {
    pub fn remember(&self, change: Change) -> anyhow::Result<()> {
        self.log.remember(&self.on, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_of_a_thing_wins_and_restores_run_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = UndoLog::new(dir.path().join("changes.json"));
        let pages = |was: &str| Change::Setting { path: "/proc/sys/vm/nr_hugepages".into(), was: was.into() };
        log.remember(&Target::Host, pages("0")).unwrap();
        log.remember(&Target::Host, Change::File { path: "/etc/sysctl.d/x.conf".into(), was: None }).unwrap();
        log.remember(&Target::Host, pages("64")).unwrap();
        log.remember(&Target::Node("n1".into()), Change::Module { name: "nbd".into() }).unwrap();
        let entries = log.entries().unwrap();
        assert_eq!(entries.len(), 3, "{entries:?}");

        let titles = |steps: Vec<Step>| steps.into_iter().map(|s| s.title).collect::<Vec<_>>();
        assert_eq!(
            titles(UndoLog::restore_steps(&entries, true)),
            [
                "unload module nbd on n1",
                "remove /etc/sysctl.d/x.conf on host",
                "restore /proc/sys/vm/nr_hugepages to 0 on host"
            ]
        );
        assert_eq!(titles(UndoLog::restore_steps(&entries, false)).len(), 2, "node changes go with the nodes");
    }

    #[test]
    fn a_damaged_record_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changes.json");
        std::fs::write(&path, "[{").unwrap();
        let err = UndoLog::new(&path).entries().unwrap_err();
        assert!(format!("{err:#}").contains("changes.json is damaged"), "{err:#}");
    }
}

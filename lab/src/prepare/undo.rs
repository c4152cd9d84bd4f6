//! What preparation changed on a host or node, recorded before the change is
//! made, so `lab down` (or a failed `lab prepare`) can put it back. Changes
//! to the host are shared with other labs on it through the host-level
//! record ([`super::host_record`]): the last lab down restores them.

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

use crate::scenario::is_module_name;

/// A plain absolute path: no `..`, no control characters.
fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.chars().any(char::is_control)
        && Path::new(path).components().all(|c| !matches!(c, std::path::Component::ParentDir))
}

impl Change {
    /// What a record read back from disk may hold before lab turns it into
    /// a command: a file anyone who can write the record edits must not
    /// become a command of its choosing.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Change::Setting { path, .. }
                if !(is_plain_path(path) && (path.starts_with("/proc/sys/") || path.starts_with("/sys/"))) =>
            {
                Err(format!("setting `{}` is not a kernel setting under /proc/sys or /sys", path.escape_debug()))
            }
            Change::File { path, .. } if !is_plain_path(path) || path == "/" => {
                Err(format!("file `{}` is not a plain absolute path", path.escape_debug()))
            }
            Change::Module { name } if !is_module_name(name) => {
                Err(format!("module `{}` is not a kernel module name", name.escape_debug()))
            }
            Change::Propagation { mounts } => match mounts
                .iter()
                .find(|(mount, kind)| !is_plain_path(mount) || !matches!(kind.as_str(), "private" | "slave" | "shared"))
            {
                Some((mount, kind)) => Err(format!(
                    "mount `{}` with propagation `{}` is not one lab records",
                    mount.escape_debug(),
                    kind.escape_debug()
                )),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The key of the thing changed, in the host-level record.
    fn host_key(&self) -> String {
        let (kind, what) = self.key();
        format!("{kind} {what}")
    }

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

    /// The command that puts the original back (labels go through the API instead).
    fn restore_cmd(&self) -> Option<Cmd> {
        Some(match self {
            Change::Setting { path, was } => Cmd::sh(format!("echo {} > {}", quote(was), quote(path))),
            Change::File { path, was: None } => Cmd::new("rm").args(["-f", path]),
            Change::File { path, was: Some(text) } => Cmd::sh(format!("printf %s {} > {}", quote(text), quote(path))),
            // A mount gone since is skipped: there is nothing left to put back.
            Change::Propagation { mounts } => {
                let commands: Vec<String> = mounts
                    .iter()
                    .map(|(mount, kind)| format!("mount --make-{kind} {} 2>/dev/null", quote(mount)))
                    .collect();
                Cmd::sh(format!("{}; true", commands.join("; ")))
            }
            // A module another user started to rely on cannot be unloaded; that
            // leaves the kernel as capable as before, so it is not a failure.
            Change::Module { name } => Cmd::sh(format!(
                "modprobe -r {name} 2>/dev/null || echo '{name} stays loaded: it is in use or cannot be unloaded'"
            )),
            Change::Label { .. } => return None,
        })
    }

    /// What restoring it is called in a plan.
    fn restore_title(&self, place: &str) -> String {
        match self {
            Change::Setting { path, was } => format!("restore {path} to {was} on {place}"),
            Change::File { path, was: None } => format!("remove {path} on {place}"),
            Change::File { path, was: Some(_) } => format!("restore the previous {path} on {place}"),
            Change::Propagation { mounts } => format!("make {} mount(s) {place} had unshared again", mounts.len()),
            Change::Module { name } => format!("unload module {name} on {place}"),
            Change::Label { key, was: Some(was) } => format!("set label {key} back to {was} on {place}"),
            Change::Label { key, was: None } => format!("remove label {key} from {place}"),
        }
    }

    /// The step that puts the original back.
    fn restore_step(&self, on: &Target) -> Step {
        let place = match on {
            Target::Host => "host".to_string(),
            Target::Node(node) => node.clone(),
        };
        let title = self.restore_title(&place);
        match (self.restore_cmd(), self) {
            (Some(cmd), _) => Step::run(title, on.clone(), cmd),
            (None, Change::Label { key, was }) => {
                let labels = [(key.clone(), was.clone())].into();
                Step::work(title, super::label::RestoreLabels { node: place, labels })
            }
            (None, _) => unreachable!("every change but a label restores by a command"),
        }
    }
}

/// A host change shared with other labs: released from the host-level
/// record, restored (to what the host had before the first lab) only by the
/// last lab holding it.
#[derive(Debug)]
struct ReleaseHostChange {
    change: Change,
    holder: String,
    host_record: PathBuf,
}

#[async_trait::async_trait(?Send)]
impl crate::plan::Work for ReleaseHostChange {
    fn describe(&self, view: &crate::plan::View<'_>) -> String {
        let cmd = self.change.restore_cmd().map(|c| view.command(&Target::Host, &c)).unwrap_or_default();
        format!(
            "releases this lab's hold in {}; when no other lab holds it, puts back what the host had before the first lab:\n     $ {cmd}",
            self.host_record.display()
        )
    }

    async fn run(&self, ctx: &crate::plan::Context<'_>) -> anyhow::Result<Option<String>> {
        use super::host_record::Release;
        let mut record = super::host_record::open(&self.host_record)?;
        let original = match record.release(&self.change.host_key(), &self.holder) {
            Release::Kept(holders) => {
                record.save()?;
                return Ok(Some(format!("kept: other labs hold it too ({})", holders.join(", "))));
            }
            Release::Last(original) => {
                let original: Change = serde_json::from_value(original)
                    .with_context(|| format!("{} holds an original lab cannot read", self.host_record.display()))?;
                original
                    .check()
                    .map_err(|why| anyhow::anyhow!("{}: {why}: lab will not run it", self.host_record.display()))?;
                original
            }
            Release::NotShared => self.change.clone(),
        };
        if let Some(cmd) = original.restore_cmd() {
            use crate::shell::Shell as _;
            ctx.shell(&Target::Host).run(&cmd).await?;
        }
        // Saved only once restored: a failed restore stays recorded for the next `lab down`.
        record.save()?;
        Ok(Some(original.restore_title("host")))
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
    /// The host-level record of settings shared with other labs.
    host_record: PathBuf,
}

impl UndoLog {
    pub fn new(path: impl Into<PathBuf>) -> UndoLog {
        UndoLog { path: path.into(), host_record: super::host_record::default_path() }
    }

    /// With the host-level record elsewhere (tests).
    pub fn with_host_record(path: impl Into<PathBuf>, host_record: impl Into<PathBuf>) -> UndoLog {
        UndoLog { path: path.into(), host_record: host_record.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This lab, as the host-level record names its holders: its state folder.
    fn holder(&self) -> String {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string()
    }

    /// Every recorded change, oldest first; none when nothing was recorded.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let entries: Vec<Entry> = serde_json::from_str(&text).with_context(|| {
                    format!("{} is damaged; restore host settings by hand from it, then delete it", self.path.display())
                })?;
                for (i, entry) in entries.iter().enumerate() {
                    entry.change.check().map_err(|why| {
                        anyhow::anyhow!(
                            "{}: entry {i}: {why}: lab did not write it and will not run it; restore host settings by hand from the file, then delete it",
                            self.path.display()
                        )
                    })?;
                }
                Ok(entries)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Record a change about to be made on `on`, unless the same thing was
    /// recorded before (that record holds the original). A host change is
    /// also held in the host-level record, whose original is the host's
    /// before the first lab.
    pub fn remember(&self, on: &Target, change: Change) -> anyhow::Result<()> {
        let mut entries = self.entries()?;
        if entries.iter().any(|e| &e.on == on && e.change.key() == change.key()) {
            return Ok(());
        }
        if on == &Target::Host {
            let mut record = super::host_record::open(&self.host_record)?;
            record.hold(&change.host_key(), &self.holder(), &change)?;
            record.save()?;
        }
        entries.push(Entry { on: on.clone(), change });
        self.write(&entries)
    }

    /// This lab needs a host setting as it is now, without changing it: when
    /// another lab changed it (the host-level record holds it), this lab
    /// holds it too, so that lab's `down` does not take it away.
    pub fn rely_on(&self, on: &Target, change: Change) -> anyhow::Result<()> {
        if on != &Target::Host {
            return Ok(());
        }
        let mut entries = self.entries()?;
        if entries.iter().any(|e| &e.on == on && e.change.key() == change.key()) {
            return Ok(());
        }
        let mut record = super::host_record::open(&self.host_record)?;
        if !record.settings.contains_key(&change.host_key()) {
            return Ok(());
        }
        record.hold(&change.host_key(), &self.holder(), &change)?;
        record.save()?;
        entries.push(Entry { on: on.clone(), change });
        self.write(&entries)
    }

    fn write(&self, entries: &[Entry]) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(entries)?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text + "\n")
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .with_context(|| format!("cannot record a change in {}", self.path.display()))
    }

    /// Steps that undo `entries`, newest first. Changes on nodes that do not
    /// outlive the lab (kind containers, VMs) go with them and are skipped.
    /// Host changes are released through the host-level record.
    pub fn restore_steps(&self, entries: &[Entry], nodes_outlive_lab: bool) -> Vec<Step> {
        entries
            .iter()
            .rev()
            .filter(|e| nodes_outlive_lab || e.on == Target::Host)
            .map(|e| match (&e.on, &e.change) {
                (Target::Host, change) if change.restore_cmd().is_some() => Step::work(
                    change.restore_title("host"),
                    ReleaseHostChange {
                        change: change.clone(),
                        holder: self.holder(),
                        host_record: self.host_record.clone(),
                    },
                ),
                (on, change) => change.restore_step(on),
            })
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

    /// See [`UndoLog::rely_on`].
    pub fn rely_on(&self, change: Change) -> anyhow::Result<()> {
        self.log.rely_on(&self.on, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_of_a_thing_wins_and_restores_run_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = UndoLog::with_host_record(dir.path().join("changes.json"), dir.path().join("host.json"));
        let pages = |was: &str| Change::Setting { path: "/proc/sys/vm/nr_hugepages".into(), was: was.into() };
        log.remember(&Target::Host, pages("0")).unwrap();
        log.remember(&Target::Host, Change::File { path: "/etc/sysctl.d/x.conf".into(), was: None }).unwrap();
        log.remember(&Target::Host, pages("64")).unwrap();
        log.remember(&Target::Node("n1".into()), Change::Module { name: "nbd".into() }).unwrap();
        let entries = log.entries().unwrap();
        assert_eq!(entries.len(), 3, "{entries:?}");

        let titles = |steps: Vec<Step>| steps.into_iter().map(|s| s.title).collect::<Vec<_>>();
        assert_eq!(
            titles(log.restore_steps(&entries, true)),
            [
                "unload module nbd on n1",
                "remove /etc/sysctl.d/x.conf on host",
                "restore /proc/sys/vm/nr_hugepages to 0 on host"
            ]
        );
        assert_eq!(titles(log.restore_steps(&entries, false)).len(), 2, "node changes go with the nodes");
    }

    #[test]
    fn a_record_that_would_become_another_command_is_refused_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = UndoLog::with_host_record(dir.path().join("changes.json"), dir.path().join("host.json"));
        for (entry, said) in [
            (
                r#"{"on":"host","change":"module","name":"nbd; rm -rf /"}"#,
                "module `nbd; rm -rf /` is not a kernel module name",
            ),
            (r#"{"on":"host","change":"module","name":"-r"}"#, "module `-r`"),
            (r#"{"on":"host","change":"setting","path":"/etc/passwd","was":"x"}"#, "not a kernel setting"),
            (r#"{"on":"host","change":"setting","path":"/proc/sys/../../etc/x","was":"x"}"#, "not a kernel setting"),
            (r#"{"on":"host","change":"file","path":"relative/x","was":null}"#, "not a plain absolute path"),
        ] {
            std::fs::write(log.path(), format!("[{entry}]")).unwrap();
            let err = log.entries().unwrap_err().to_string();
            assert!(err.contains("changes.json: entry 0:") && err.contains(said), "{err}");
        }
        assert!(is_module_name("nvme_tcp") && !is_module_name("-nbd") && !is_module_name(""));
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

//! Host-wide settings shared by labs side by side (hugepages, modules, mount
//! propagation, sysctls, files such as the persisted hugepage count). Each
//! lab records its own changes in its state; this host-level record adds,
//! per setting, what the host had before the first lab changed it and which
//! labs hold it now. A lab going down releases its hold: while another lab
//! holds the setting it stays as it is, and the last one down restores what
//! was there before the first one up. The record lives in
//! `/var/lib/lab/host-changes.json` (`$LAB_HOST_RECORD` moves it), under an
//! exclusive `flock` of its own.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Where the host-level record is, unless `$LAB_HOST_RECORD` says otherwise.
pub const DEFAULT_PATH: &str = "/var/lib/lab/host-changes.json";

pub fn default_path() -> PathBuf {
    std::env::var_os("LAB_HOST_RECORD").filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or(DEFAULT_PATH.into())
}

/// One shared setting: the host's original (the change record that holds
/// it, as the lab that made it wrote it), and the labs (their state folders)
/// holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shared {
    pub original: serde_json::Value,
    pub holders: Vec<String>,
}

/// The record, locked while it is open; written back whole on [`Open::save`].
pub struct Open {
    file: std::fs::File,
    path: PathBuf,
    pub settings: BTreeMap<String, Shared>,
}

/// Open the record at `path` (made on first use, mode 0600) and hold its lock
/// until the returned value is dropped. The record is only ever replaced
/// whole (a new file, synced, renamed over it), so an existing record that
/// is empty or unreadable was damaged by something else: refused, naming
/// the file and what it held, never read as "no record".
pub fn open(path: &Path) -> anyhow::Result<Open> {
    use std::os::unix::fs::MetadataExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A writer renames a new file over the record, and the last lab to let
    // go removes it: one that locked the old file meanwhile opens the path again.
    let mut file = loop {
        let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create(path)? {
                Some(file) => break file,
                None => continue,
            },
            Err(e) => return Err(e).with_context(|| format!("cannot open the host-level record {}", path.display())),
        };
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        let same = std::fs::metadata(path).is_ok_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
        if same {
            break file;
        }
    };
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text).with_context(|| format!("cannot read the host-level record {}", path.display()))?;
    let settings = serde_json::from_str(&text).map_err(|e| damaged(path, &text, &e.to_string()))?;
    Ok(Open { file, path: path.to_path_buf(), settings })
}

/// A record that cannot be read: what it held, and what to do.
fn damaged(path: &Path, text: &str, why: &str) -> anyhow::Error {
    let held = if text.trim().is_empty() {
        format!("it is empty ({} bytes)", text.len())
    } else {
        let shown: String = text.chars().take(400).collect();
        format!("{why}; it holds:\n{shown}{}", if text.chars().count() > 400 { "\n…" } else { "" })
    };
    anyhow::anyhow!(
        "the host-level record {} is damaged: {held}\nIt lists the host settings labs changed and what the host had before; \
         restore those by hand, then delete the file",
        path.display()
    )
}

/// A new, empty record, locked, put at `path` only if none is there yet
/// (`None`: another lab made one first; open that).
fn create(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let (file, temporary) = locked_temporary(path, "{}\n")?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_folder(path)?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot create the host-level record {}", path.display())),
    }
}

/// `text` in a new file beside `path` (0600), synced and locked before any
/// other process can see it under the record's name.
fn locked_temporary(path: &Path, text: &str) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let (file, temporary) = crate::state::temporary_beside(path, text, 0o600)?;
    file.lock().with_context(|| format!("cannot lock {}", temporary.display()))?;
    Ok((file, temporary))
}

/// The folder's entry for `path` on disk: a rename or link survives a crash.
fn sync_folder(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))
}

impl Open {
    /// Replaced whole: a new file, synced and locked, renamed over the
    /// record, the folder synced; a crash leaves the old record or the new
    /// one, never a part. Removed once no setting is held (lab leaves no
    /// file of its own behind).
    pub fn save(&mut self) -> anyhow::Result<()> {
        if self.settings.is_empty() {
            let _ = std::fs::remove_file(&self.path);
            // lab's own folder goes with its last record (only when empty).
            if self.path == Path::new(DEFAULT_PATH) {
                let _ = std::fs::remove_dir(Path::new(DEFAULT_PATH).parent().unwrap_or(Path::new("/")));
            }
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&self.settings)? + "\n";
        let (file, temporary) = locked_temporary(&self.path, &text)?;
        fault_point("host-record-before-rename");
        std::fs::rename(&temporary, &self.path)
            .with_context(|| format!("cannot replace the host-level record {}", self.path.display()))?;
        sync_folder(&self.path)?;
        // Held until dropped: the new record is locked already.
        self.file = file;
        Ok(())
    }

    /// `holder` holds the setting `key`; `original` is what the host has
    /// now, kept only when no lab held it yet.
    pub fn hold(&mut self, key: &str, holder: &str, original: &impl Serialize) -> anyhow::Result<()> {
        let original = serde_json::to_value(original)?;
        let shared = self.settings.entry(key.to_string()).or_insert_with(|| Shared { original, holders: vec![] });
        if !shared.holders.iter().any(|h| h == holder) {
            shared.holders.push(holder.to_string());
        }
        Ok(())
    }

    /// Drop `holder`'s hold on `key`, and holders whose state is gone (a lab
    /// removed without `lab down` holds nothing). What remains: `Kept` with
    /// the labs still holding it, or `Last` with the original to restore.
    pub fn release(&mut self, key: &str, holder: &str) -> Release {
        let Some(shared) = self.settings.get_mut(key) else { return Release::NotShared };
        shared.holders.retain(|h| h != holder && Path::new(h).is_dir());
        if shared.holders.is_empty() {
            let original = shared.original.clone();
            self.settings.remove(key);
            Release::Last(original)
        } else {
            Release::Kept(shared.holders.clone())
        }
    }
}

/// Debug builds only (the tests' binary): `LAB_FAULT=<point>` stops the
/// process dead there, as a crash or `kill -9` would.
fn fault_point(point: &str) {
    if cfg!(debug_assertions) && std::env::var("LAB_FAULT").is_ok_and(|p| p == point) {
        eprintln!("lab: LAB_FAULT={point}: stopping here, as a crash would");
        std::process::abort();
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Release {
    /// No lab recorded the setting here (a record older than this file): the lab's own original applies.
    NotShared,
    /// Other labs hold it: it stays.
    Kept(Vec<String>),
    /// This lab was the last: put back what the host had before the first lab.
    Last(serde_json::Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_holder_restores_what_was_there_before_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (a, b) = (a.display().to_string(), b.display().to_string());
        let pages =
            |was: &str| serde_json::json!({"change": "setting", "path": "/proc/sys/vm/nr_hugepages", "was": was});
        let path = dir.path().join("host.json");
        {
            let mut record = open(&path).unwrap();
            record.hold("setting /proc/sys/vm/nr_hugepages", &a, &pages("0")).unwrap();
            record.hold("setting /proc/sys/vm/nr_hugepages", &b, &pages("64")).unwrap();
            record.save().unwrap();
        }
        let mut record = open(&path).unwrap();
        assert_eq!(record.release("setting /proc/sys/vm/nr_hugepages", &a), Release::Kept(vec![b.clone()]));
        assert_eq!(record.release("setting /proc/sys/vm/nr_hugepages", &b), Release::Last(pages("0")));
        assert_eq!(record.release("setting /proc/sys/vm/nr_hugepages", &b), Release::NotShared);
    }

    #[test]
    fn a_holder_whose_state_is_gone_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        let a = a.display().to_string();
        let mut record = open(&dir.path().join("host.json")).unwrap();
        let module = serde_json::json!({"change": "module", "name": "nbd"});
        record.hold("module nbd", "/nonexistent/lab/state", &module).unwrap();
        record.hold("module nbd", &a, &module).unwrap();
        assert_eq!(record.release("module nbd", &a), Release::Last(module));
    }

    #[test]
    fn an_empty_or_damaged_record_is_refused_with_what_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.json");
        std::fs::write(&path, "").unwrap();
        let err = open(&path).err().unwrap().to_string();
        assert!(err.contains("host.json is damaged: it is empty (0 bytes)"), "{err}");
        std::fs::write(&path, "{\"setting /proc/sys/vm/nr_hug").unwrap();
        let err = open(&path).err().unwrap().to_string();
        assert!(err.contains("it holds:\n{\"setting /proc/sys/vm/nr_hug"), "{err}");
    }

    #[test]
    fn a_saved_record_replaces_the_old_one_whole_and_stays_locked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.json");
        let mut record = open(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n", "a new record is never empty");
        record.hold("module nbd", "/x", &serde_json::json!({"change": "module", "name": "nbd"})).unwrap();
        record.save().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("host.json")], "no temporary file is left");
        let other = std::fs::File::open(&path).unwrap();
        assert!(other.try_lock().is_err(), "the new record is locked while the lab holds it");
        drop(record);
        assert!(other.try_lock().is_ok());
    }
}

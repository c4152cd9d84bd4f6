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
use std::io::{Read as _, Seek as _, Write as _};
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
/// until the returned value is dropped.
pub fn open(path: &Path) -> anyhow::Result<Open> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // The last lab to let go removes the file; one that locked it meanwhile
    // holds a removed file, so it opens the path again.
    let mut file = loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the host-level record {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        let same = std::fs::metadata(path).is_ok_and(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0));
        if same {
            break file;
        }
    };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let settings = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(&text).with_context(|| {
            format!("{} is damaged; restore the host settings it lists by hand, then delete it", path.display())
        })?
    };
    Ok(Open { file, path: path.to_path_buf(), settings })
}

impl Open {
    /// Written back whole; removed once no setting is held (lab leaves no file of its own behind).
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
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()?;
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
}

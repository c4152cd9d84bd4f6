//! Where a lab keeps its files: `.lab/<name>/` next to its scenario file (or
//! under an absolute `$LAB_STATE_DIR`), so `lab down` finds them from any
//! working directory. It holds what cannot be rediscovered (kubeconfig,
//! generated configs, logs, the record of host changes); nodes themselves are
//! always found by labels, never remembered here.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::Digest as _;

/// The environment variable that moves every lab's state somewhere else.
pub const STATE_DIR_VAR: &str = "LAB_STATE_DIR";

#[derive(Clone, Debug)]
pub struct StateDir {
    /// As commands and messages show it: relative to the working directory
    /// when it lies under it, else absolute.
    dir: PathBuf,
    absolute: PathBuf,
}

impl StateDir {
    /// The state of the lab `lab_name` whose scenario file is `scenario_file`:
    /// `$LAB_STATE_DIR/<name>` when that is set, else `.lab/<name>` beside the file.
    pub fn for_scenario(scenario_file: &Path, lab_name: &str) -> anyhow::Result<StateDir> {
        let root = match std::env::var_os(STATE_DIR_VAR).filter(|v| !v.is_empty()) {
            Some(root) => {
                let root = PathBuf::from(root);
                if !root.is_absolute() {
                    anyhow::bail!(
                        "${STATE_DIR_VAR} is {}, a relative path: it must be absolute, so every command finds the same state wherever it runs",
                        root.display()
                    );
                }
                root
            }
            None => {
                let folder = scenario_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                absolute(folder).join(".lab")
            }
        };
        Ok(StateDir::at(root.join(lab_name)))
    }

    /// A state directory at a given place (tests, and the anchored one above).
    pub fn at(dir: impl Into<PathBuf>) -> StateDir {
        let absolute = absolute(&dir.into());
        let cwd = std::env::current_dir().ok();
        let dir = cwd
            .as_deref()
            .and_then(|cwd| absolute.strip_prefix(cwd).ok())
            .filter(|rel| !rel.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| absolute.clone());
        StateDir { dir, absolute }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path, for configs read by other processes (kind's hostPath).
    pub fn absolute(&self) -> PathBuf {
        self.absolute.clone()
    }

    pub fn exists(&self) -> bool {
        self.absolute.is_dir()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.file("kubeconfig")
    }

    pub fn log(&self) -> PathBuf {
        self.file("lab.log")
    }

    /// Host and node changes to undo on `lab down`.
    pub fn changes(&self) -> PathBuf {
        self.file("changes.json")
    }

    /// The stack objects lab created (not those it found and adopted).
    pub fn created_objects(&self) -> PathBuf {
        self.file("created-objects.txt")
    }

    /// The recorded id of this lab instance (`instance`), if this state has
    /// one: written when the lab is first held, it is in every mark lab puts
    /// on cluster objects, so two labs of one name (two CI jobs on one shared
    /// cluster) never take each other's objects.
    pub fn instance(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.absolute.join("instance")).ok()?;
        Some(text.trim().to_string()).filter(|id| !id.is_empty())
    }

    /// Take this lab for the life of the process: an exclusive `flock` on
    /// `<state>/lock` (the state folder is made). A second `lab` process on
    /// the same lab is refused, naming the holder. The lock goes with the
    /// process, so a crashed holder never leaves it stuck. A state without an
    /// instance id gets `instance`.
    pub fn hold(&self, command: &str, instance: &str) -> anyhow::Result<Held> {
        use std::io::{Read as _, Seek as _, Write as _};
        use std::os::unix::fs::OpenOptionsExt as _;
        let created = !self.absolute.is_dir();
        make_private_dir(&self.absolute)?;
        let path = self.absolute.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "lab {} is in use by another lab process ({}): wait for it to finish, or stop it; \
                     one lab process holds a lab at a time ({})",
                    self.dir.display(),
                    if holder.is_empty() { "its pid is not written yet".to_string() } else { holder.to_string() },
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "pid {} (`lab {command}`, since unix time {since})", std::process::id())?;
        if self.instance().is_none() {
            write_new(&self.absolute.join("instance"), &format!("{instance}\n"), 0o644)?;
        }
        Ok(Held { _file: file, made: created.then(|| self.absolute.clone()) })
    }

    /// The host directory that holds a node's pool backing file.
    pub fn pool_dir(&self, node: &str) -> PathBuf {
        self.dir.join("pools").join(node)
    }
}

/// Where `lab` keeps what outlives a lab: cloned sources, build caches, step durations.
/// `LAB_CACHE_DIR`, else `$XDG_CACHE_HOME/lab`, else `~/.cache/lab`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAB_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("lab");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("lab")
}

/// The lock on a lab, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Held {
    _file: std::fs::File,
    /// The state folder, when taking the lock made it.
    made: Option<PathBuf>,
}

/// A state folder this process made and left holding nothing but the lock,
/// the instance id and an empty `test-devices` (a `lab test` of a lab that
/// was never up) goes when the lock is let go.
impl Drop for Held {
    fn drop(&mut self) {
        let Some(dir) = &self.made else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let only_ours = entries.flatten().all(|e| match e.file_name().to_str() {
            Some("lock" | "instance") => true,
            Some("test-devices") => std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_none()),
            _ => false,
        });
        if only_ours {
            self.forget_if_new();
        }
    }
}

impl Held {
    /// A command refused right after taking the lock leaves no state
    /// folder behind when the lock made it.
    pub fn forget_if_new(&self) {
        if let Some(dir) = &self.made {
            let _ = remove_state_dir(dir);
        }
    }
}

/// Remove a state folder (gone already is fine); the `.lab` folder beside a
/// scenario goes with its last lab (only when empty), and the lab leaves the
/// machine's index of labs.
pub fn remove_state_dir(path: &Path) -> std::io::Result<()> {
    if let Ok(instance) = std::fs::read_to_string(path.join("instance")) {
        index::unregister(instance.trim())?;
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Some(parent) = path.parent().filter(|p| p.file_name().is_some_and(|n| n == ".lab")) {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// A fresh instance id: 12 hex digits from the kernel's random source.
pub fn new_instance_id() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: time and pid still differ between two runs.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let seed = sha2::Sha256::digest(format!("{nanos}-{}", std::process::id()));
        bytes.copy_from_slice(&seed[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder only its owner can enter (0700), made with its missing parents
/// the same way; an existing one is narrowed to 0700. Lab's state, results
/// and artifacts hold kubeconfigs, keys, pods' logs and volume data.
pub fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (0700)", dir.display()))
}

/// Write a new file with `mode` from the moment it exists (no window in
/// which a secret is readable by others); an existing file is replaced
/// through a temporary one made the same way.
pub fn write_new(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let (file, temporary) = temporary_beside(path, contents, mode)?;
    drop(file);
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `contents` in a new file beside `path`, with `mode` from the moment it
/// exists, synced to disk: the first half of replacing `path` whole.
pub fn temporary_beside(path: &Path, contents: &str, mode: u32) -> anyhow::Result<(std::fs::File, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", temporary.display()))?;
    file.sync_all().with_context(|| format!("cannot sync {}", temporary.display()))?;
    Ok((file, temporary))
}

/// `path` made absolute against the working directory, with `.` and `..`
/// parts resolved by name (the path need not exist yet).
pub fn absolute(path: &Path) -> PathBuf {
    let joined =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join("ci"));
        std::fs::create_dir_all(state.dir()).unwrap();
        let held = state.hold("up", "0123456789ab").unwrap();
        let id = state.instance().expect("an instance id is written with the first hold");
        assert_eq!(id, "0123456789ab");
        let err = state.hold("down", "other").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {} (`lab up`", std::process::id())), "{err}");
        drop(held);
        state.hold("down", "other").expect("free again once the holder is gone");
        assert_eq!(state.instance().unwrap(), id, "the instance id stays");
    }

    #[test]
    fn a_state_folder_the_lock_made_goes_with_it_unless_something_was_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join(".lab/ci"));
        drop(state.hold("test", "0123456789ab").unwrap());
        assert!(!dir.path().join(".lab").exists(), "an empty state folder was left");
        let held = state.hold("up", "0123456789ab").unwrap();
        std::fs::write(state.changes(), "[]").unwrap();
        drop(held);
        assert!(state.exists(), "a state with a record was removed");
    }

    #[test]
    fn secrets_are_never_readable_by_others() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_new(&path, "new", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn the_state_lies_beside_the_scenario_whatever_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        let state = StateDir::for_scenario(Path::new("/srv/labs/ci/lab.yaml"), "ci").unwrap();
        assert_eq!(state.absolute(), Path::new("/srv/labs/ci/.lab/ci"));
        let here = StateDir::for_scenario(Path::new("sub/../lab.yaml"), "x").unwrap();
        assert_eq!(here.absolute(), cwd.join(".lab/x"));
        assert_eq!(here.dir(), Path::new(".lab/x"), "shown relative when under the working directory");
        assert_eq!(StateDir::for_scenario(Path::new("lab.yaml"), "x").unwrap().dir(), Path::new(".lab/x"));
    }
}

/// This machine's index of labs, for `lab list`: one file per lab instance
/// (`<instance>.json`: name, provider, scenario file, state folder, since),
/// written when a lab process first holds the lab and removed with its state.
pub mod index {
    use std::path::{Path, PathBuf};

    use anyhow::Context as _;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Entry {
        pub instance: String,
        pub name: String,
        pub provider: String,
        pub scenario: PathBuf,
        pub state: PathBuf,
        /// Unix time of the first hold.
        pub since: u64,
    }

    /// `$LAB_INDEX_DIR`, else `$XDG_STATE_HOME/lab/labs`, else `~/.local/state/lab/labs`.
    pub fn dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("LAB_INDEX_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("lab/labs");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        home.join(".local/state/lab/labs")
    }

    fn file(instance: &str) -> PathBuf {
        dir().join(format!("{instance}.json"))
    }

    pub fn register(state: &super::StateDir, name: &str, provider: &str, scenario: &Path) -> anyhow::Result<()> {
        let Some(instance) = state.instance() else { return Ok(()) };
        let path = file(&instance);
        if path.exists() {
            return Ok(());
        }
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let entry = Entry {
            instance,
            name: name.to_string(),
            provider: provider.to_string(),
            scenario: super::absolute(scenario),
            state: state.absolute(),
            since,
        };
        std::fs::create_dir_all(dir()).with_context(|| format!("cannot create {}", dir().display()))?;
        super::write_new(&path, &serde_json::to_string(&entry)?, 0o644)
    }

    pub fn unregister(instance: &str) -> std::io::Result<()> {
        if instance.is_empty() || !instance.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(());
        }
        match std::fs::remove_file(file(instance)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every lab in the index, oldest first; unreadable entries are named, not hidden.
    pub fn entries() -> anyhow::Result<Vec<Result<Entry, String>>> {
        let mut out = Vec::new();
        let read = match std::fs::read_dir(dir()) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir().display())),
        };
        for item in read {
            let path = item?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Entry>(&text).map_err(|e| e.to_string()))
                .map_err(|e| format!("{}: {e}", path.display()));
            out.push(parsed);
        }
        out.sort_by_key(|e| e.as_ref().map(|e| e.since).unwrap_or(0));
        Ok(out)
    }
}

//! Where a lab keeps its files: `.lab/<name>/` next to its scenario file (or
//! under an absolute `$LAB_STATE_DIR`), so `lab down` finds them from any
//! working directory. It holds what cannot be rediscovered (kubeconfig,
//! generated configs, logs, the record of host changes); nodes themselves are
//! always found by labels, never remembered here.

use std::path::{Path, PathBuf};

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

    /// The host directory that holds a node's pool backing file.
    pub fn pool_dir(&self, node: &str) -> PathBuf {
        self.dir.join("pools").join(node)
    }
}

/// `path` made absolute against the working directory, with `.` and `..`
/// parts resolved by name (the path need not exist yet).
fn absolute(path: &Path) -> PathBuf {
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

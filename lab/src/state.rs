//! Where a lab keeps its files: `.lab/<name>/` under the working directory.
//! It holds what cannot be rediscovered (kubeconfig, generated configs, logs);
//! nodes themselves are always found by labels, never remembered here.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct StateDir {
    /// Relative to the working directory, as commands and messages show it.
    dir: PathBuf,
}

impl StateDir {
    pub fn new(lab_name: &str) -> StateDir {
        StateDir::at(Path::new(".lab").join(lab_name))
    }

    /// A state directory somewhere else (tests).
    pub fn at(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path, for configs read by other processes (kind's hostPath).
    pub fn absolute(&self) -> PathBuf {
        std::env::current_dir().map(|cwd| cwd.join(&self.dir)).unwrap_or_else(|_| self.dir.clone())
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

    /// The host directory that holds a node's pool backing file.
    pub fn pool_dir(&self, node: &str) -> PathBuf {
        self.dir.join("pools").join(node)
    }
}

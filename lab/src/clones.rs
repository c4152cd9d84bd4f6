//! lab's own clones of a user's checkout (`git clone --shared`: the user's
//! repository is only read), where `lab bisect` and `lab replay` check out
//! other commits than the user's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// lab's clones of the checkout, in a folder this process made (under
/// lab's cache) and removes when it ends.
pub struct Clones(PathBuf);

impl Clones {
    /// For lab `lab`; `purpose` names the folder under the cache (`bisect`, `replay`).
    pub fn make(lab: &str, purpose: &str) -> anyhow::Result<Clones> {
        let root = crate::build::cache_root().join(purpose);
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let dir = root.join(format!("{lab}-{}", std::process::id()));
        // A folder of the same name is another process's (a reused pid): never ours to use.
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Clones(dir))
    }

    /// `git clone --shared` of `checkout`: its objects are only read.
    pub fn clone_of(&self, checkout: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let clone = self.0.join(name);
        let cloned = std::process::Command::new("git")
            .args(["clone", "--quiet", "--shared", "--no-checkout"])
            .arg(checkout)
            .arg(&clone)
            .status()?;
        if !cloned.success() {
            bail!("cannot clone {} into {}", checkout.display(), clone.display());
        }
        Ok(clone)
    }
}

impl Drop for Clones {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! lab's own clones of a user's checkout (`git clone --shared`: the user's
//! repository is only read), where `lab bisect` and `lab replay` check out
//! other commits than the user's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// `git -C dir args…`: its output, trimmed; git's own words when it fails.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .with_context(|| format!("cannot run git in {}", dir.display()))?;
    if !out.status.success() {
        bail!("`git {}` in {}: {}", args.join(" "), dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// lab's clones of the checkout, in a folder this process made (under
/// lab's cache) and removes when it ends.
pub struct Clones(PathBuf);

impl Clones {
    /// For lab `lab`; `purpose` names the folder under the cache (`bisect`, `replay`).
    pub fn make(lab: &str, purpose: &str) -> anyhow::Result<Clones> {
        let root = crate::state::cache_root().join(purpose);
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        let dir = root.join(format!("{lab}-{}", std::process::id()));
        // A folder of the same name is another process's (a reused pid): never ours to use.
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Clones(dir))
    }

    /// `git clone --shared` of the repository `checkout` is in (its objects
    /// are only read), as `name`; the returned path is `checkout`'s folder in
    /// the clone: a component may live in a folder of a larger repository.
    pub fn clone_of(&self, checkout: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let top = git(checkout, &["rev-parse", "--show-toplevel"])?;
        let prefix = git(checkout, &["rev-parse", "--show-prefix"])?;
        let clone = self.0.join(name);
        git(&self.0, &["clone", "--quiet", "--shared", "--no-checkout", &top, name])?;
        // Made now, so that git can be run in it before the first checkout fills it.
        let folder = clone.join(prefix);
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
        Ok(folder)
    }
}

impl Drop for Clones {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! A source tree as `lab` sees it: the files that are build inputs, in a
//! fixed order, for hashing, copying and tarring alike.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the tree's root.
    pub path: PathBuf,
    pub kind: Kind,
}

/// Whether `.git` is part of the tree: copies keep it (builds run `git
/// describe`), content hashes leave it out (a fetch alone changes nothing built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Git {
    Keep,
    Skip,
}

/// Every entry under `root`, sorted, leaving out build caches (folders with
/// a `CACHEDIR.TAG`, such as cargo's `target/`) and `.lab` state folders at
/// any depth (a lab's state lies beside its scenario file, which may be
/// anywhere in a checkout; a copy must never copy itself).
pub fn entries(root: &Path, git: Git) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, Path::new(""), git, &mut out).with_context(|| format!("cannot read the tree {}", root.display()))?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, git: Git, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for item in names {
        let name = item.file_name();
        let path = rel.join(&name);
        let meta = std::fs::symlink_metadata(root.join(&path))?;
        if meta.file_type().is_symlink() {
            out.push(Entry { path, kind: Kind::Symlink(std::fs::read_link(root.join(rel).join(&name))?) });
        } else if meta.is_dir() {
            let skipped = (name == ".git" && git == Git::Skip)
                || name == ".lab"
                || root.join(&path).join("CACHEDIR.TAG").exists();
            if skipped {
                continue;
            }
            out.push(Entry { path: path.clone(), kind: Kind::Dir });
            walk(root, &path, git, out)?;
        } else if meta.is_file() {
            out.push(Entry { path, kind: Kind::File { executable: meta.permissions().mode() & 0o111 != 0 } });
        }
        // Sockets, fifos and devices are not build inputs.
    }
    Ok(())
}

/// Feed a tree's names, kinds and contents into a hash.
pub fn hash_into(hasher: &mut Sha256, root: &Path) -> anyhow::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in entries(root, Git::Skip)? {
        hasher.update(entry.path.as_os_str().as_encoded_bytes());
        match &entry.kind {
            Kind::Dir => hasher.update(b"\0d\0"),
            Kind::Symlink(target) => {
                hasher.update(b"\0l\0");
                hasher.update(target.as_os_str().as_encoded_bytes());
            }
            Kind::File { executable } => {
                hasher.update(if *executable { b"\0x\0" } else { b"\0f\0" });
                let path = root.join(&entry.path);
                let mut file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
                loop {
                    let n = file.read(&mut buffer).with_context(|| format!("cannot read {}", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buffer[..n]);
                }
            }
        }
        hasher.update(b"\0");
    }
    Ok(())
}

/// Copy a tree to `dest` (which must not exist), keeping modes and symlinks.
/// Not fs_extra: the copy must take exactly the entries the content hash
/// reads, leaving out build caches and `.lab`, and keep symlinks as links.
pub fn copy(root: &Path, dest: &Path, git: Git) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for entry in entries(root, git)? {
        let (from, to) = (root.join(&entry.path), dest.join(&entry.path));
        let result = match &entry.kind {
            Kind::Dir => std::fs::create_dir(&to),
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &to),
            Kind::File { .. } => std::fs::copy(&from, &to).map(drop),
        };
        result.with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Append a tree to a tar archive, under `prefix`.
pub fn append_to_tar<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    prefix: &Path,
    git: Git,
) -> anyhow::Result<()> {
    builder.follow_symlinks(false);
    for entry in entries(root, git)? {
        let from = root.join(&entry.path);
        let name = prefix.join(&entry.path);
        builder
            .append_path_with_name(&from, &name)
            .with_context(|| format!("cannot add {} to the build context", from.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_caches_git_and_lab_state_are_not_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["src", "target/debug", ".git", ".lab/x", "sub/.lab"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("target/CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55").unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main").unwrap();
        std::os::unix::fs::symlink("src/main.rs", root.join("link")).unwrap();

        let names =
            |git| -> Vec<String> { entries(root, git).unwrap().iter().map(|e| e.path.display().to_string()).collect() };
        assert_eq!(names(Git::Skip), ["link", "src", "src/main.rs", "sub"]);
        assert_eq!(names(Git::Keep), [".git", ".git/HEAD", "link", "src", "src/main.rs", "sub"]);
    }

    #[test]
    fn the_hash_follows_content_names_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "one").unwrap();
        let hash = || {
            let mut h = Sha256::new();
            hash_into(&mut h, root).unwrap();
            format!("{:x}", h.finalize())
        };
        let first = hash();
        assert_eq!(first, hash(), "same tree, same hash");
        std::fs::write(root.join("a"), "two").unwrap();
        let second = hash();
        assert_ne!(first, second, "content");
        std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(second, hash(), "mode");
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/FETCH_HEAD"), "x").unwrap();
        let third = hash();
        std::fs::write(root.join(".git/FETCH_HEAD"), "y").unwrap();
        assert_eq!(third, hash(), ".git is not an input");
    }
}

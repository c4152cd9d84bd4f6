//! Where the evidence of a failure goes: `artifacts/<lab>/<UTC time>/`
//! beside the scenario file (or a folder the user names), outside the state
//! folder so `lab down` never removes it, bundled into one tarball beside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `artifacts/<lab>/<UTC time>` beside the scenario file.
pub fn default_dir(scenario: &crate::scenario::Scenario) -> PathBuf {
    scenario.path_of("artifacts").join(scenario.name()).join(utc_stamp(std::time::SystemTime::now()))
}

/// `20261130T224440Z`: sorts by time and is a plain file name.
pub fn utc_stamp(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Copy `files` that exist into `dir` (made if needed, private), by their file names.
pub fn keep(dir: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    crate::state::make_private_dir(dir)?;
    for file in files.iter().filter(|f| f.is_file()) {
        let name = file.file_name().context("a file without a name")?;
        std::fs::copy(file, dir.join(name)).with_context(|| format!("copying {}", file.display()))?;
    }
    seal(dir)
}

/// Everything under `dir` readable by its owner only (folders 0700, files
/// 0600): artifacts, bundles and exported logs carry pods' environments and
/// logs. Symbolic links are left as they are, never followed.
pub fn seal(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mode = if meta.is_dir() {
        0o700
    } else if meta.is_file() {
        0o600
    } else {
        return Ok(());
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            seal(&entry?.path())?;
        }
    }
    Ok(())
}

/// A folder the user named for lab to fill (`--out`, `export logs DIR`):
/// new, or empty. One that holds anything (a home folder, a checkout with
/// `.lab/` keys in it) would be shipped whole, so it is refused.
pub fn check_new_folder(dir: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => anyhow::bail!(
            "{what} {} exists and is not empty: lab puts only what it gathers into a folder it fills, and everything in it would be shared; name a new folder",
            dir.display()
        ),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            anyhow::bail!("{what} {} is a file: name a new folder", dir.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// The folder (sealed, see [`seal`]) as `<folder>.tar.gz` beside it, 0600.
pub fn bundle(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    seal(dir)?;
    let name = dir.file_name().context("the artifacts folder has no name")?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tarball = parent.join(format!("{}.tar.gz", name.to_string_lossy()));
    // Made 0600 before tar writes a byte into it.
    let _ = std::fs::remove_file(&tarball);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tarball)
        .with_context(|| format!("cannot create {}", tarball.display()))?;
    let out = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(parent)
        .arg(name)
        .output()
        .context("running tar")?;
    if !out.status.success() {
        anyhow::bail!("tar -czf {}: {}", tarball.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(tarball)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_are_named_by_utc_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_078_680);
        assert_eq!(utc_stamp(at), "20261130T224440Z");
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101T000000Z");
    }

    #[test]
    fn a_folder_is_kept_and_bundled_beside_itself() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("lab.log");
        std::fs::write(&log, "step 3 failed\n").unwrap();
        let run = dir.path().join("artifacts/x/20261130T000000Z");
        keep(&run, &[log, dir.path().join("absent.txt")]).unwrap();
        let tarball = bundle(&run).unwrap();
        assert_eq!(tarball, dir.path().join("artifacts/x/20261130T000000Z.tar.gz"));
        let listing = std::process::Command::new("tar").arg("-tzf").arg(&tarball).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&listing.stdout), "20261130T000000Z/\n20261130T000000Z/lab.log\n");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&run), mode(&run.join("lab.log")), mode(&tarball)), (0o700, 0o600, 0o600));
        assert_eq!(mode(&dir.path().join("artifacts")), 0o700, "the folders made on the way too");
    }

    #[test]
    fn a_folder_to_fill_must_be_new_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_new_folder(&dir.path().join("new"), "--out").is_ok());
        assert!(check_new_folder(dir.path(), "--out").is_ok());
        std::fs::write(dir.path().join("key"), "secret").unwrap();
        let err = check_new_folder(dir.path(), "--out").unwrap_err().to_string();
        assert!(err.contains("exists and is not empty"), "{err}");
        assert!(check_new_folder(&dir.path().join("key"), "--out").unwrap_err().to_string().contains("is a file"));
    }
}

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

/// Copy `files` that exist into `dir` (made if needed), by their file names.
pub fn keep(dir: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for file in files.iter().filter(|f| f.is_file()) {
        let name = file.file_name().context("a file without a name")?;
        std::fs::copy(file, dir.join(name)).with_context(|| format!("copying {}", file.display()))?;
    }
    Ok(())
}

/// The folder as `<folder>.tar.gz` beside it.
pub fn bundle(dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir.file_name().context("the artifacts folder has no name")?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tarball = parent.join(format!("{}.tar.gz", name.to_string_lossy()));
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
    }
}

//! The repository's own files, checked as files: every shell script lab or
//! CI runs passes shellcheck (warnings and errors), and every test file under
//! `tests/` is a test target of the lab package (they live outside it, so
//! Cargo finds none by itself: one left out would silently never run).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The files git tracks (so build outputs and caches never count).
fn tracked() -> Vec<PathBuf> {
    let out =
        Command::new("git").arg("-C").arg(repo()).args(["ls-files", "-z"]).output().expect("running git ls-files");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).as_ref()))
        .collect()
}

/// A shell script: named `*.sh`, or starting with a `sh` or `bash` shebang.
fn is_shell_script(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let Ok(text) = std::fs::read(repo().join(path)) else { return false };
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first.starts_with("#!") && (first.ends_with("/sh") || first.ends_with("bash") || first.ends_with("/sh -e"))
}

#[test]
#[ignore = "needs shellcheck (Debian's shellcheck): bash .ci/run installs it"]
fn every_shell_script_passes_shellcheck() {
    let scripts: Vec<PathBuf> = tracked().into_iter().filter(|p| is_shell_script(p)).collect();
    assert!(scripts.len() >= 20, "found only {} shell scripts: {scripts:?}", scripts.len());
    let out = Command::new("shellcheck")
        .current_dir(repo())
        .args(["--external-sources", "--severity=warning", "--format=gcc"])
        .args(&scripts)
        .output()
        .expect("running shellcheck (Debian: apt-get install shellcheck)");
    assert!(
        out.status.success(),
        "shellcheck found warnings in lab's scripts:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_test_file_is_a_test_target() {
    let manifest = std::fs::read_to_string(repo().join("lab/Cargo.toml")).unwrap();
    let missing: Vec<String> = tracked()
        .into_iter()
        .filter(|p| p.parent() == Some(Path::new("tests")) && p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !manifest.contains(&format!("path = \"../{p}\"")))
        .collect();
    assert!(missing.is_empty(), "not a [[test]] in lab/Cargo.toml, so never run: {missing:?}");
}

#[test]
fn the_script_finder_sees_shebangs_and_names() {
    assert!(is_shell_script(Path::new(".ci/run")));
    assert!(is_shell_script(Path::new("lab/src/device/probe.sh")));
    assert!(!is_shell_script(Path::new("Cargo.toml")));
    assert!(!is_shell_script(Path::new("tests/scripts.rs")));
}

//! `lab bisect` refuses a range with nothing to bisect before it holds the
//! lab, clones or builds; and stopped by Ctrl-C or SIGTERM it removes its
//! clones, says what the lab runs (taking a half-made `--fresh` lab down)
//! and exits 130. A real git repository, the host provider, a build that
//! is still running when the signal comes. Needs git and `kill` (procps).
//! (The search itself, on a real cluster, is in tests/local_cluster.rs.)

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

/// `src/app` with three commits that touch it; a host scenario whose build of it sleeps.
fn project(root: &Path) -> Vec<String> {
    let app = root.join("src/app");
    std::fs::create_dir_all(&app).unwrap();
    support::git(&root.join("src"), &["init", "-q"]);
    let mut commits = Vec::new();
    for i in 1..=3 {
        std::fs::write(app.join("run.sh"), format!("echo {i}\n")).unwrap();
        support::git(&root.join("src"), &["add", "."]);
        support::git(&root.join("src"), &["commit", "-q", "-m", &format!("commit {i}")]);
        commits.push(support::git(&root.join("src"), &["rev-parse", "HEAD"]));
    }
    std::fs::write(root.join("src/NOTES"), "beside the app\n").unwrap();
    support::git(&root.join("src"), &["add", "."]);
    support::git(&root.join("src"), &["commit", "-q", "-m", "notes only"]);
    commits.push(support::git(&root.join("src"), &["rev-parse", "HEAD"]));
    std::fs::write(
        root.join("lab.yaml"),
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: bisecting\ncluster:\n  provider: host\n  nodes:\n    - role: worker\ncomponents:\n  - name: app\n    source: src/app\n    build:\n      command: sleep 120\n    image: lab-test-bisect-stop/app\n",
    )
    .unwrap();
    commits
}

fn lab(dir: &Path, cache: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"));
    cmd.current_dir(dir).env_remove("LAB_STATE_DIR").env("LAB_CACHE_DIR", cache);
    cmd
}

#[test]
fn nothing_to_bisect_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let commits = project(dir.path());
    for (good, bad, said) in
        [("HEAD", "HEAD", "are the same commit"), (&commits[2][..], &commits[3][..], "touches component app's folder")]
    {
        let out = lab(dir.path(), &cache)
            .args(["bisect", "--component", "app", "--good", good, "--bad", bad, "--fresh"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(said), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!dir.path().join(".lab").exists() && !cache.join("bisect").exists(), "it made something first");
    }
}

#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries: bash .ci/run runs it"]
fn a_stopped_bisect_removes_its_clones_takes_its_half_made_lab_down_and_exits_130() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let commits = project(dir.path());
        let child = lab(dir.path(), &cache)
            .args(["bisect", "--component", "app", "--good", &commits[0], "--bad", &commits[2], "--fresh"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Stopped while the first step's build runs (the clones are there by then).
        let clones = cache.join("bisect");
        let start = Instant::now();
        let building = || {
            std::process::Command::new("pgrep")
                .args(["-f", "^sh -c sleep 120$"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        while !(clones.read_dir().is_ok_and(|mut d| d.next().is_some()) && building()) {
            assert!(start.elapsed() < Duration::from_secs(60), "bisect never reached its first build");
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = std::process::Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("lab's clones of the checkout are removed"), "{stderr}");
        assert!(stderr.contains("a fresh lab with app built from") && stderr.contains("taking it down"), "{stderr}");
        let left: Vec<_> = clones.read_dir().map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "clones left: {left:?}");
        assert!(!dir.path().join(".lab/bisecting").exists(), "the half-made lab's state is left");
        assert!(!building(), "the build is still running");
    }
}

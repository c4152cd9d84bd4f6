//! `lab bisect` and `lab replay` on a real local cluster (the local
//! provider, from the binaries `.ci/kube/build` makes, `LAB_KUBE_BIN`): a
//! component's real git history, built, loaded and run at each step; a
//! failed run's bundle replayed at its commit. Without the binaries the
//! tests fail; they never skip.

use std::path::{Path, PathBuf};

mod support;

use support::local::{ONE_CLUSTER, binaries, copy_manifests, down_on_drop, lab_in};
use support::output;

/// A component in a folder (`src/app`) of a larger git repository, for
/// `lab bisect` and `lab replay`: one commit per `run.sh` (what the app's
/// pod runs), and after the first one a commit that touches only another
/// folder; a scenario on the local provider builds it into
/// `lab-test-bisect/app` and runs it as a DaemonSet.
struct BisectFixture {
    dir: tempfile::TempDir,
    /// The commits that changed the app, oldest first.
    commits: Vec<String>,
    head_before: String,
}

impl BisectFixture {
    fn new(scripts: &[&str], fio: &str) -> BisectFixture {
        support::base_image();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let app = root.join("src/app");
        std::fs::create_dir_all(&app).unwrap();
        let git = |args: &[&str]| support::git(&root.join("src"), args);
        std::fs::write(
            app.join("build.sh"),
            format!(
                "set -eu\nout=$(mktemp -d)\ncp run.sh \"$out/run.sh\"\nprintf 'FROM {}\\nCOPY run.sh /run.sh\\n' > \"$out/Dockerfile\"\ndocker build -q -t \"$1\" \"$out\"\nrm -rf \"$out\"\n",
                support::BASE_IMAGE
            ),
        )
        .unwrap();
        git(&["init", "-q"]);
        let mut commits = Vec::new();
        for (i, script) in scripts.iter().enumerate() {
            std::fs::write(app.join("run.sh"), format!("{script}\nexec sleep 3600\n")).unwrap();
            git(&["add", "."]);
            git(&["commit", "-q", "-m", &format!("commit {}", i + 1)]);
            commits.push(git(&["rev-parse", "HEAD"]));
            if i == 0 {
                std::fs::write(root.join("src/NOTES"), "not the app\n").unwrap();
                git(&["add", "."]);
                git(&["commit", "-q", "-m", "notes, beside the app"]);
            }
        }
        std::fs::create_dir(root.join("stack")).unwrap();
        std::fs::write(
            root.join("stack/app.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: bisect}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: app, namespace: bisect}\nspec:\n  selector: {matchLabels: {app: app}}\n  updateStrategy: {type: OnDelete}\n  template:\n    metadata:\n      labels: {app: app}\n    spec:\n      terminationGracePeriodSeconds: 1\n      tolerations: [{operator: Exists}]\n      containers:\n        - name: app\n          image: lab-test-bisect/app:dev\n          imagePullPolicy: Never\n          command: [sh, /run.sh]\n",
        )
        .unwrap();
        std::fs::create_dir(root.join("features")).unwrap();
        std::fs::write(
            root.join("features/greeting.feature"),
            "Feature: the greeting\n  Scenario: the app greets\n    Then the container \"app\" of every pod of the DaemonSet \"bisect/app\" logs \"greeting: ok\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("lab.yaml"),
            format!("apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: bisect\ncluster:\n  provider: local\n  nodes:\n    - role: control-plane\ncomponents:\n  - name: app\n    source: src/app\n    build:\n      command: sh build.sh lab-test-bisect/app:{{tag}}\n    image: lab-test-bisect/app\nstack:\n  layers:\n    - manifests: stack\n  timeouts: {{ready: 2m}}\nfeatures: features\n{fio}"),
        )
        .unwrap();
        let head_before = git(&["rev-parse", "HEAD"]);
        BisectFixture { dir, commits, head_before }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `lab ARGS` in the fixture: success, stdout, stderr.
    fn lab(&self, binaries: &Path, args: &[&str]) -> (bool, String, String) {
        let out = lab_in(self.root(), binaries).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The folder of the (one) bisect's evidence.
    fn bisect_dir(&self) -> PathBuf {
        std::fs::read_dir(self.root().join("artifacts/bisect"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("-bisect")))
            .unwrap()
    }

    /// The bisect's `bisect.json`, and the user's repository checked as it was.
    fn summary(&self) -> serde_json::Value {
        let report = self.bisect_dir();
        let app = self.root().join("src/app");
        assert_eq!(support::git(&app, &["rev-parse", "HEAD"]), self.head_before);
        assert_eq!(support::git(&app, &["status", "--porcelain"]), "", "bisect changed the user's checkout");
        serde_json::from_str(&std::fs::read_to_string(report.join("bisect.json")).unwrap()).unwrap()
    }
}

/// The images the bisect tests built: their repository is the tests' own.
impl Drop for BisectFixture {
    fn drop(&mut self) {
        let listed = output("docker", &["images", "--format", "{{.Repository}}:{{.Tag}}", "lab-test-bisect/app"]);
        for image in listed.lines() {
            let _ = std::process::Command::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

/// A file a test made, removed even when it fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `lab bisect` on a real history: a component's git repository with five
/// commits, the third of which breaks what the feature checks (the line the
/// running pod prints). With `--fresh`, every step brings up a new lab with
/// its build; bisect names the third commit, and the user's repository is
/// left as it was.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn bisect_finds_the_commit_that_breaks_a_scenario() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let ok = "echo 'greeting: ok'";
    let broken = "echo 'greeting: broken'";
    let fixture =
        BisectFixture::new(&[ok, &format!("{ok} # 2"), broken, &format!("{broken} # 4"), &format!("{broken} # 5")], "");
    let root = fixture.root();
    let commits = &fixture.commits;
    let _down = down_on_drop(root, root.join("lab.yaml"));
    let lab = |args: &[&str]| fixture.lab(&binaries, args);
    let bisect = ["bisect", "--component", "app", "--good", &commits[0], "--bad", &commits[4], "--fresh"];

    let (ok, listed, said) = lab(&[&bisect[..], &["--dry-run"]].concat());
    assert!(ok, "{said}");
    // The commits after good up to bad that touch the app: not the one beside it.
    assert_eq!(listed.lines().count(), 4, "the commits after good up to bad:\n{listed}");
    assert!(!listed.contains("notes, beside the app"), "{listed}");
    assert!(said.contains("a fresh lab (down, up) with app"), "{said}");

    // No lab is up: --fresh brings one up per step (and leaves the last one up).
    let (ok, found, said) = lab(&bisect);
    assert!(ok, "bisect failed:\n{said}");
    // The last line says it (each step's scenarios print above it).
    assert_eq!(
        found.lines().last(),
        Some(format!("first bad commit: {} commit 3", commits[2]).as_str()),
        "{found}\n{said}"
    );
    assert!(found.contains("greeting: broken"), "the failing step's evidence is not shown:\n{found}");
    assert!(said.contains(&format!("{} commit 3: attempt 1: bad", &commits[2][..12])), "{said}");
    assert!(said.contains(&format!("{} commit 2: attempt 1: good", &commits[1][..12])), "{said}");
    let summary = fixture.summary();
    assert_eq!(summary["first_bad"], commits[2].as_str(), "{summary}");

    // A range that is not one: good after bad.
    let (ok, _, said) = lab(&["bisect", "--component", "app", "--good", &commits[4], "--bad", &commits[0]]);
    assert!(!ok && said.contains("is not an ancestor"), "{said}");
}

/// `lab bisect --fio` on a real history: from the third commit on, the app
/// keeps four busy loops spinning beside its work (as a poller that never
/// sleeps would), which slows a CPU-bound fio profile on this host. In a lab
/// kept up, each step runs the profile with the good build and the step's
/// deployed in turn, interleaved; bisect names the third commit.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn bisect_finds_the_commit_that_slows_a_profile() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let idle = "echo idle";
    let spinning = "for i in 1 2 3 4 5 6 7 8; do (while :; do :; done) & done";
    // Reads of a file in memory (tmpfs) by two jobs: fio wants both CPUs, and gets the
    // less of them the more the pod's loops take. The ramp covers the other build's
    // pods, which may still be stopping when the next run starts.
    let fio = "fio:\n  noiseThreshold: 0.15\n  profiles:\n    - {name: cached-reads, rw: randread, bs: 4k, numjobs: 2, size: 16M, runtime: 1, ramp_time: 1, direct: false, ioengine: psync}\n";
    let fixture = BisectFixture::new(
        &[idle, &format!("{idle} # 2"), spinning, &format!("{spinning} # 4"), &format!("{spinning} # 5")],
        fio,
    );
    let root = fixture.root();
    let commits = &fixture.commits;
    let _down = down_on_drop(root, root.join("lab.yaml"));
    let lab = |args: &[&str]| fixture.lab(&binaries, args);
    let target = std::path::PathBuf::from(format!("/dev/shm/lab-test-bisect-{}.data", std::process::id()));
    let _target = RemoveOnDrop(target.clone());
    let target = target.to_str().unwrap();
    let (ok, _, said) = lab(&["up"]);
    assert!(ok, "{said}");
    let range = ["bisect", "--component", "app", "--good", &commits[0], "--bad", &commits[4]];
    let limits = ["--min-pairs", "6", "--max-pairs", "24", "--budget", "360"];
    let bisect = [&range[..], &["--fio", "cached-reads", "--target", target], &limits[..]].concat();
    let (ok, found, said) = lab(&bisect);
    assert!(ok, "bisect failed:\n{said}");
    assert_eq!(
        found.lines().last(),
        Some(format!("first bad commit: {} commit 3", commits[2]).as_str()),
        "{found}\n{said}"
    );
    assert!(said.contains(&format!("{} commit 3: attempt 1: bad (read IOPS:", &commits[2][..12])), "{said}");
    assert!(said.contains(&format!("{} commit 2: attempt 1: good (read IOPS:", &commits[1][..12])), "{said}");
    let summary = fixture.summary();
    assert_eq!(summary["first_bad"], commits[2].as_str(), "{summary}");
    let step = summary["steps"].as_array().unwrap().iter().find(|s| s["commit"] == commits[2].as_str()).unwrap();
    assert_eq!(step["verdict"], "bad", "{step}");
    // Each step's pairs are kept: the slow step's IOPS below the good build's in most pairs.
    let kept = fixture.bisect_dir().join(format!("{}-1/comparison.json", &commits[2][..12]));
    let comparison: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    let pairs = comparison["pairs"].as_array().unwrap();
    let slower = pairs.iter().filter(|p| p["step"].as_f64() < p["good"].as_f64()).count();
    assert!(pairs.len() >= 6 && slower * 2 > pairs.len(), "{comparison}");

    // A profile the scenario lacks is refused before anything runs.
    let (ok, _, said) = lab(&[&range[..], &["--fio", "nope", "--target", target]].concat());
    assert!(!ok && said.contains("--fio nope") && said.contains("cached-reads"), "{said}");
}

/// `lab replay` of a failed run's bundle "on another machine": another copy
/// of the scenario, whose checkout of the component is at an older commit
/// with an uncommitted change. The dry run says what differs; the replay
/// builds the bundle's commit in lab's own clone and fails the same way,
/// with the bundle's selection; the other checkout is left as it was.
#[test]
#[ignore = "needs root, Docker and the Kubernetes binaries (LAB_KUBE_BIN): bash .ci/run runs it"]
fn replay_runs_a_failed_runs_bundle_at_its_commit() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let binaries = binaries();
    let fixture =
        BisectFixture::new(&["echo 'greeting: ok'", "echo 'greeting: ok' # 2", "echo 'greeting: broken'"], "");
    let root = fixture.root();
    let commits = &fixture.commits;
    let _down = down_on_drop(root, root.join("lab.yaml"));
    let (ok, _, said) = fixture.lab(&binaries, &["run", "-n", "greets"]);
    assert!(!ok, "the run at the broken commit passed:\n{said}");
    let bundle = said
        .lines()
        .find_map(|l| l.strip_prefix("a bundle of the failed run (`lab bundle`): "))
        .unwrap_or_else(|| panic!("no bundle named:\n{said}"))
        .to_string();

    // Elsewhere: the same scenario files, the component's repository cloned and at commit 1, changed.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path();
    let theirs = std::fs::read_to_string(root.join("lab.yaml")).unwrap();
    // A scenario of one's own differs (here by a comment): the bundle's is what runs.
    std::fs::write(other.join("lab.yaml"), format!("# my copy\n{theirs}")).unwrap();
    copy_manifests(&root.join("stack"), &other.join("stack"));
    copy_manifests(&root.join("features"), &other.join("features"));
    support::git(other, &["clone", "-q", root.join("src").to_str().unwrap(), "src"]);
    let app = other.join("src/app");
    support::git(&app, &["checkout", "-q", &commits[0]]);
    std::fs::write(app.join("run.sh"), "echo 'greeting: ok' # mine\nexec sleep 3600\n").unwrap();
    let scenario = other.join("lab.yaml");
    let scenario = scenario.to_str().unwrap();
    let _down_other = down_on_drop(other, other.join("lab.yaml"));

    let (ok, plan, said) = fixture.lab(&binaries, &["replay", &bundle, "--scenario", scenario, "--dry-run"]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "differs: component app: {} there, {} with an uncommitted change",
            &commits[2][..12],
            &commits[0][..12]
        )),
        "{said}"
    );
    assert!(said.contains(&format!("builds app: lab's clone of {} at {}", app.display(), commits[2])), "{said}");
    assert!(plan.contains("then `lab test` of the scenarios matching /greets/"), "{plan}");

    assert!(said.contains("-# my copy"), "the scenario's diff is shown: {said}");
    // Someone else's commit and scenario: off a terminal, only with --yes.
    let (ok, _, said) = fixture.lab(&binaries, &["replay", &bundle, "--scenario", scenario]);
    assert!(!ok && said.contains("give --yes"), "{said}");
    let (ok, out, said) = fixture.lab(&binaries, &["replay", &bundle, "--scenario", scenario, "--yes"]);
    assert!(!ok, "the replay passed, so it did not run the bundle's commit:\n{out}\n{said}");
    assert!(out.contains("greeting: broken"), "{out}\n{said}");
    // The failed replay's own bundle carries the scenario that ran: the bundle's, not the file here.
    let again = said
        .lines()
        .find_map(|l| l.strip_prefix("a bundle of the failed run (`lab bundle`): "))
        .unwrap_or_else(|| panic!("no bundle of the failed replay:\n{said}"));
    let listed = std::process::Command::new("tar")
        .args(["-xzOf", again, "--wildcards", "*/scenario/lab.yaml"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), theirs, "the replay's bundle holds another scenario");
    assert_eq!(support::git(&app, &["rev-parse", "HEAD"]), commits[0]);
    assert_eq!(support::git(&app, &["status", "--porcelain"]), "M app/run.sh", "replay changed the other checkout");

    // Not a bundle: said so, nothing runs.
    let (ok, _, said) = fixture.lab(&binaries, &["replay", scenario]);
    assert!(!ok && said.contains("is not a bundle tarball"), "{said}");
}

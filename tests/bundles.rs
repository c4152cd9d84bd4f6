//! What users share: `lab bundle` holds only what lab put there (a folder
//! that holds anything is refused; everything is the owner's only), and
//! `lab replay` of someone else's bundle shows what it would run that is not
//! the user's own (the scenario's diff, every build command, the commits
//! and diffs built) and runs nothing unless agreed to: off a terminal it
//! refuses without `--yes`, on one it asks (a pseudo-terminal the test
//! makes with `script`). A bundle's diff of a component in a subfolder
//! of a larger repository applies whole, or the replay fails naming it.
//! Real git repositories, real bundles; no cluster is needed, as nothing
//! gets past the agreement. Needs git and tar.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod support;

/// A repository `src` with a component in `src/app` (and a file beside it,
/// `src/NOTES`), a host scenario that builds it, and the app changed but
/// not committed.
fn project(root: &Path, build: &str) -> PathBuf {
    let app = root.join("src/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("run.sh"), "echo one\n").unwrap();
    std::fs::write(root.join("src/NOTES"), "beside the app\n").unwrap();
    support::git(&root.join("src"), &["init", "-q"]);
    support::git(&root.join("src"), &["add", "."]);
    support::git(&root.join("src"), &["commit", "-q", "-m", "one"]);
    std::fs::write(app.join("run.sh"), "echo two\n").unwrap();
    let scenario = root.join("lab.yaml");
    std::fs::write(
        &scenario,
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: shared\ncluster:\n  provider: host\n  nodes:\n    - role: worker\ncomponents:\n  - name: app\n    source: src/app\n    build:\n      command: {build}\n    image: lab-test-bundle/app\n"
        ),
    )
    .unwrap();
    scenario
}

fn lab(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out =
        Command::cargo_bin("lab").unwrap().current_dir(dir).env_remove("LAB_STATE_DIR").args(args).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!stderr.contains("panicked at"), "{stderr}");
    (out.status.success(), stdout, stderr)
}

/// `lab ARGS` on a terminal (a pseudo-terminal `script` makes), `answer`
/// typed at it: success and what the terminal showed.
fn lab_on_a_terminal(dir: &Path, args: &[&str], answer: &str) -> (bool, String) {
    use std::io::Write as _;
    let command: Vec<String> = std::iter::once(assert_cmd::cargo::cargo_bin("lab").display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect();
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command.join(" "), "/dev/null"])
        .current_dir(dir)
        .env_remove("LAB_STATE_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Their project's bundle, whose build command (`id > marker`) is not one
/// you would run unread, and yours: a clone of the same repository with your
/// own scenario, building with `your_build`.
struct Shared {
    marker: PathBuf,
    tarball: String,
    mine: PathBuf,
}

impl Shared {
    fn make(dir: &Path, bundle_options: &[&str], your_build: &str) -> Shared {
        let theirs = dir.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let marker = dir.join("ran-as-root");
        project(&theirs, &format!("id > {}", marker.display()));
        let mut args = vec!["bundle"];
        args.extend(bundle_options);
        args.extend(["--out", "b"]);
        let (ok, tarball, said) = lab(&theirs, &args);
        assert!(ok, "{said}");
        let mine = dir.join("mine");
        std::fs::create_dir(&mine).unwrap();
        support::git(&mine, &["clone", "-q", theirs.join("src").to_str().unwrap(), "src"]);
        let text = std::fs::read_to_string(theirs.join("lab.yaml")).unwrap();
        std::fs::write(mine.join("lab.yaml"), text.replace(&format!("id > {}", marker.display()), your_build)).unwrap();
        Shared { marker, tarball: tarball.trim().to_string(), mine }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_bundle_holds_only_what_lab_put_there_and_is_the_owner_s_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project(root, "sh build.sh lab-test-bundle/app:{tag}");

    // A folder that holds anything (here: a key, as `.lab/` would) is refused.
    std::fs::create_dir(root.join("full")).unwrap();
    std::fs::write(root.join("full/ca.key"), "-----BEGIN PRIVATE KEY-----").unwrap();
    let (ok, _, said) = lab(root, &["bundle", "--out", "full"]);
    assert!(!ok && said.contains("full exists and is not empty"), "{said}");
    let (ok, _, said) = lab(root, &["bundle", "--out", "."]);
    assert!(!ok && said.contains("exists and is not empty"), "{said}");
    let (ok, _, said) = lab(root, &["export", "logs", "full"]);
    assert!(!ok && said.contains("exists and is not empty"), "{said}");

    let (ok, tarball, said) = lab(root, &["bundle", "--diff", "--out", "shared-bundle"]);
    assert!(ok, "{said}");
    let tarball = PathBuf::from(tarball.trim());
    assert_eq!(mode(&tarball), 0o600);
    let folder = root.join("shared-bundle");
    assert_eq!(mode(&folder), 0o700);
    for entry in ["bundle.json", "scenario/lab.yaml", "diffs/app.diff"] {
        assert_eq!(mode(&folder.join(entry)), 0o600, "{entry}");
    }
    let listing = std::process::Command::new("tar").arg("-tzf").arg(&tarball).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(!listing.contains(".key") && !listing.contains(".lab/"), "{listing}");
}

#[test]
fn replaying_someone_else_s_bundle_shows_what_it_runs_and_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::make(dir.path(), &["--diff"], "sh build.sh lab-test-bundle/app:{tag}");
    let (marker, tarball, mine) = (&shared.marker, shared.tarball.as_str(), &shared.mine);
    let scenario = mine.join("lab.yaml");
    let scenario = scenario.to_str().unwrap();

    // --dry-run shows it all and runs nothing.
    let (ok, _, said) = lab(mine, &["replay", tarball, "--scenario", scenario, "--dry-run"]);
    assert!(ok, "{said}");
    assert!(said.contains("this bundle runs, as root, what is not your own"), "{said}");
    assert!(said.contains(&format!("+      command: id > {}", marker.display())), "the scenario's diff: {said}");
    assert!(said.contains(&format!("component app: build command `sh -c 'id > {}'`", marker.display())), "{said}");
    assert!(said.contains("code built from app: commit") && said.contains("with the bundle's diff"), "{said}");
    // Off a terminal, without --yes: refused; the diff of the subfolder applied and was proven first.
    let (ok, _, said) = lab(mine, &["replay", tarball, "--scenario", scenario]);
    assert!(!ok, "{said}");
    assert!(said.contains("no one is at a terminal to agree: read it, then give --yes"), "{said}");
    assert!(!marker.exists(), "the bundle's build command ran");
    assert!(!mine.join(".lab").exists(), "the refused replay made a state folder");
    // On a terminal it asks: any answer but yes runs nothing.
    let (ok, said) = lab_on_a_terminal(mine, &["replay", tarball, "--scenario", scenario], "n\n");
    assert!(!ok, "{said}");
    assert!(said.contains("Run it? [y/N]") && said.contains("replay: not run (answered `n`)"), "{said}");
    assert!(!marker.exists(), "the bundle's build command ran though the user answered no");

    // A diff that touches what is not in the component's folder does not apply: named.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = std::process::Command::new("tar").args(["-xzf", tarball, "-C"]).arg(&unpacked).status().unwrap();
    assert!(status.success());
    let bundle = unpacked.join("b");
    std::fs::write(
        bundle.join("diffs/app.diff"),
        "diff --git a/NOTES b/NOTES\n--- a/NOTES\n+++ b/NOTES\n@@ -1 +1 @@\n-beside the app\n+changed\n",
    )
    .unwrap();
    let (ok, _, said) = lab(mine, &["replay", bundle.to_str().unwrap(), "--scenario", scenario, "--yes"]);
    assert!(!ok, "{said}");
    assert!(said.contains("component app: the bundle's diff at"), "{said}");
    assert!(!marker.exists(), "the bundle's build command ran");

    // A scenario file outside the bundle is refused.
    let manifest = bundle.join("bundle.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"scenario/lab.yaml\"", "\"../../mine/lab.yaml\"")).unwrap();
    let (ok, _, said) = lab(mine, &["replay", bundle.to_str().unwrap(), "--scenario", scenario, "--dry-run"]);
    assert!(!ok && said.contains("is not a path inside the bundle"), "{said}");
}

/// On a terminal, answering yes runs the bundle's scenario: its build
/// command runs (and, making no image, fails the run).
#[test]
#[ignore = "needs Docker (the build asks it for the image): bash .ci/run runs it"]
fn answering_yes_on_a_terminal_runs_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    // Yours builds with another command, so the bundle's differs and is asked about.
    let Shared { marker, tarball, mine } = Shared::make(dir.path(), &[], "true");
    let scenario = mine.join("lab.yaml");
    let (ok, said) = lab_on_a_terminal(&mine, &["replay", &tarball, "--scenario", scenario.to_str().unwrap()], "y\n");
    assert!(!ok, "the bundle's build makes no image, so its run fails:\n{said}");
    assert!(said.contains("Run it? [y/N]"), "{said}");
    assert!(marker.exists(), "the user answered yes, yet the bundle's build command did not run:\n{said}");
}

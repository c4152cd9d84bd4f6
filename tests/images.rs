//! Building and loading images against the real Docker engine, and
//! containerd (Debian's binaries) inside kind-like node containers. Base
//! images are made with `docker import`; nothing is pulled. Every test
//! removes its containers, volumes and images, even when it fails.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

mod support;
use support::FakeCluster;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/fixtures/build")
}

/// `lab` run in `dir`, with its cache there too.
fn lab(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_CACHE_DIR", dir.join("cache")).env_remove("RUST_LOG");
    cmd
}

struct Run {
    ok: bool,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked:\n{stderr}");
    Run { ok: out.status.success(), stderr }
}

fn docker(args: &[&str]) -> String {
    let out = Process::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every tag of these repositories is removed now (a test starts from
/// nothing built) and again on drop.
struct Repositories(Vec<String>);

impl Repositories {
    fn clean(repos: Vec<String>) -> Repositories {
        let repositories = Repositories(repos);
        repositories.remove_all();
        repositories
    }

    fn remove_all(&self) {
        for repo in &self.0 {
            let out = Process::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}", repo]).output();
            if let Ok(out) = out {
                for image in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = Process::new("docker").args(["rmi", "-f", image]).output();
                }
            }
        }
    }
}

impl Drop for Repositories {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// The tag `lab` reported for an image in its progress lines.
fn tag_in(stderr: &str, image: &str) -> String {
    let at = stderr.find(&format!("{image}:lab-")).unwrap_or_else(|| panic!("no tag for {image} in:\n{stderr}"));
    let rest = &stderr[at + image.len() + 1..];
    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// A scenario in `dir` with one Dockerfile component built from `source`.
fn one_component(dir: &Path, name: &str, nodes: &str, source: &Path, build: &str, image: &str) -> PathBuf {
    let file = dir.join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: {name}\ncluster:\n  provider: kind\n  nodes:\n{nodes}components:\n  - name: app\n    source: {}\n    build: {build}\n    image: {image}\n",
            source.display()
        ),
    )
    .unwrap();
    file
}

const ONE_NODE: &str = "    - role: control-plane\n";

#[test]
fn overrides_are_built_into_images_and_the_checkouts_stay_byte_identical() {
    support::base_image();
    let _images = Repositories::clean(
        ["cargo-app", "go-app", "go-app-debug", "scripted"].iter().map(|r| format!("lab-test-fixture/{r}")).collect(),
    );
    let before = support::tree_listing(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let scenario = fixtures().join("lab.yaml");

    let first = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(first.ok, "{}", first.stderr);
    let cargo = format!("lab-test-fixture/cargo-app:{}", tag_in(&first.stderr, "lab-test-fixture/cargo-app"));
    let go = format!("lab-test-fixture/go-app:{}", tag_in(&first.stderr, "lab-test-fixture/go-app"));
    let go_debug = go.replace("go-app:", "go-app-debug:");
    let scripted = format!("lab-test-fixture/scripted:{}", tag_in(&first.stderr, "lab-test-fixture/scripted"));

    // The images carry the overridden manifests and the override sources.
    let manifest = docker(&["run", "--rm", "--network", "none", &cargo, "cat", "/app/Cargo.toml"]);
    assert!(manifest.contains("[patch.crates-io]\ngreeting = { path = \".lab-overrides/greeting\" }"), "{manifest}");
    let lib = docker(&["run", "--rm", "--network", "none", &cargo, "cat", "/app/.lab-overrides/greeting/src/lib.rs"]);
    assert!(lib.contains("hello from the local greeting"), "{lib}");
    let go_mod = docker(&["run", "--rm", "--network", "none", &go_debug, "cat", "/app/go.mod", "/app/greeting-arg"]);
    assert!(go_mod.contains("replace example.com/greeting => ./.lab-overrides/example_com_greeting"), "{go_mod}");
    assert!(go_mod.ends_with("local\n"), "the build arg reached the build: {go_mod}");
    docker(&["image", "inspect", &scripted]);

    // The user's checkouts are untouched; the copies live in the state directory.
    assert_eq!(support::tree_listing(&fixtures()), before, "a fixture checkout changed");
    assert!(dir.path().join(".lab/build-fixtures/build/cargo-app/src/.lab-overrides/greeting").is_dir());
    // The command build got its per-release cache directory.
    assert!(dir.path().join("cache/build/scripted/release-2.8").is_dir());

    // Unchanged inputs: nothing is rebuilt.
    let second = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(second.ok, "{}", second.stderr);
    for component in ["cargo-app", "go-app", "scripted"] {
        assert!(second.stderr.contains(&format!("build component {component}: cached: ")), "{}", second.stderr);
    }
    assert_eq!(tag_in(&second.stderr, "lab-test-fixture/go-app"), go.rsplit_once(':').unwrap().1);
}

#[test]
fn a_changed_input_gets_a_new_tag_and_only_that_component_is_built() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-retag/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("Dockerfile"), "FROM lab-test-busybox:2\nCOPY data /data\n").unwrap();
    std::fs::write(source.join("data"), "one").unwrap();
    let scenario =
        one_component(dir.path(), "retag", ONE_NODE, &source, "{dockerfile: Dockerfile}", "lab-test-retag/app");

    let first = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(first.ok && first.stderr.contains("built lab-test-retag/app:lab-"), "{}", first.stderr);
    std::fs::write(source.join("data"), "two").unwrap();
    let second = run(lab(dir.path()).args(["build", "--component", "app"]).arg(&scenario));
    assert!(second.ok && second.stderr.contains("built lab-test-retag/app:lab-"), "{}", second.stderr);
    assert_ne!(tag_in(&first.stderr, "lab-test-retag/app"), tag_in(&second.stderr, "lab-test-retag/app"));

    let unknown = run(lab(dir.path()).args(["build", "--component", "nope"]).arg(&scenario));
    assert!(!unknown.ok && unknown.stderr.contains("no component `nope`") && unknown.stderr.contains("it has: app"));
}

#[test]
fn build_failures_name_the_component_the_step_and_the_last_lines() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-broken/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("Dockerfile"), "FROM lab-test-busybox:2\nRUN echo compiling && exit 3\n").unwrap();
    let build = |how: &str| {
        let scenario = one_component(dir.path(), "broken", ONE_NODE, &source, how, "lab-test-broken/app");
        run(lab(dir.path()).arg("build").arg(&scenario))
    };

    let failed_step = build("{dockerfile: Dockerfile}");
    assert!(!failed_step.ok);
    for want in ["component app: the Docker build failed at Step 2/2 : RUN echo compiling && exit 3", "| compiling", "non-zero code: 3", "build.log"] {
        assert!(failed_step.stderr.contains(want), "lacks {want:?}:\n{}", failed_step.stderr);
    }

    let failed_command = build("{command: 'echo compiling; echo boom >&2; exit 4'}");
    assert!(!failed_command.ok);
    for want in ["component app: the build command failed", "exited with exit status: 4", "| boom", "build.log"] {
        assert!(failed_command.stderr.contains(want), "lacks {want:?}:\n{}", failed_command.stderr);
    }

    let produced_nothing = build("{command: 'true'}");
    assert!(!produced_nothing.ok);
    assert!(produced_nothing.stderr.contains("the build finished but Docker has no lab-test-broken/app:lab-"), "{}", produced_nothing.stderr);

    let no_dockerfile = build("{dockerfile: docker/Missing.Dockerfile}");
    assert!(!no_dockerfile.ok);
    assert!(no_dockerfile.stderr.contains("lab.yaml:12:25: components[0].build.dockerfile: no Dockerfile at"), "{}", no_dockerfile.stderr);

    let scenario = one_component(dir.path(), "broken", ONE_NODE, &source, "{dockerfile: Dockerfile}", "lab-test-broken/app");
    let no_daemon = run(lab(dir.path()).arg("build").arg(&scenario).env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    assert!(!no_daemon.ok);
    assert!(no_daemon.stderr.contains("component app: cannot reach the Docker daemon"), "{}", no_daemon.stderr);
}

//! Building and loading images against the real Docker engine, and
//! containerd (Debian's binaries) inside kind-like node containers. Base
//! images are made with `docker import`; nothing is pulled. Every test
//! removes its containers, volumes and images, even when it fails.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

mod support;

use support::FakeCluster;
use support::run;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/fixtures/build")
}

/// `lab` run in `dir`, with its cache there too.
/// `lab` in `dir`, with its caches and (for scenarios kept in this
/// repository, whose folder must stay as it is) its state there too.
fn lab(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_CACHE_DIR", dir.join("cache")).env("LAB_STATE_DIR", dir.join(".lab"));
    cmd.env_remove("RUST_LOG");
    cmd
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

/// A checkout `dir/src` holding `files` (name, content), Dockerfile among them.
fn checkout(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let source = dir.join("src");
    std::fs::create_dir(&source).unwrap();
    for (name, content) in files {
        std::fs::write(source.join(name), content).unwrap();
    }
    source
}

/// Random bytes, so no two builds share the layer by accident.
fn random(bytes: usize) -> Vec<u8> {
    use std::io::Read as _;
    let mut data = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut data).unwrap();
    data
}

const DATA_DOCKERFILE: &[u8] = b"FROM lab-test-busybox:2\nCOPY data /data\n";
const BIG_AND_SMALL_DOCKERFILE: &[u8] = b"FROM lab-test-busybox:2\nCOPY big /big\nCOPY small /small\n";

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

/// `cargo` in `dir`, failing the test with its output.
fn cargo_in(dir: &Path, args: &[&str]) {
    let out = Process::new("cargo").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Off a terminal a long step says every minute that it still runs, and
/// the next run of the same step says how long it took last time.
#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn a_long_build_reports_progress_off_a_terminal_and_its_last_duration() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-progress/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = checkout(dir.path(), &[("input.txt", b"one\n")]);
    let file = dir.path().join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: progress\ncluster:\n  provider: host\ncomponents:\n  - name: app\n    source: src\n    build:\n      command: sleep 62 && printf 'FROM {}\\n' | docker build -q -t lab-test-progress/app:{{tag}} -\n    image: lab-test-progress/app\n",
            support::BASE_IMAGE
        ),
    )
    .unwrap();
    let first = run(lab(dir.path()).arg("build").arg(&file));
    assert!(first.ok, "{}", first.stderr);
    // About a minute in (a loaded machine may wake the ticker a second late).
    assert!(first.stderr.contains("  … [2/2] build component app: running for 1m0"), "{}", first.stderr);
    std::fs::write(source.join("input.txt"), "two\n").unwrap();
    let second = run(lab(dir.path()).arg("build").arg(&file));
    assert!(second.ok, "{}", second.stderr);
    let line = second.stderr.lines().find(|l| l.contains("running for 1m0")).unwrap_or_default();
    assert!(line.contains("(took 1m") && line.contains("s last time)"), "{}", second.stderr);
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn a_lock_version_override_and_inputs_from_a_variable_reach_a_command_build() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-inputs/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    // A checkout whose lock holds an old itoa, as old locks hold an old `time`.
    let source = checkout(
        dir.path(),
        &[
            (
                "Cargo.toml",
                b"[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\n",
            ),
            ("lib.rs", b""),
        ],
    );
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\npath = \"lib.rs\"\n\n[dependencies]\nitoa = \"1\"\n",
    )
    .unwrap();
    cargo_in(&source, &["generate-lockfile", "--quiet"]);
    cargo_in(&source, &["update", "--quiet", "-p", "itoa", "--precise", "1.0.0"]);
    // lab's build scripts as an input, found through a variable.
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    let script = "set -eu\nout=$(mktemp -d)\ncp Cargo.lock \"$out/\"\nprintf 'FROM lab-test-busybox:2\\nCOPY Cargo.lock /Cargo.lock\\n' > \"$out/Dockerfile\"\ndocker build -q -t \"$1\" \"$out\"\nrm -rf \"$out\"\n";
    std::fs::write(scripts.join("build.sh"), script).unwrap();
    let before = support::tree_listing(&source);
    let file = dir.path().join("lab.yaml");
    std::fs::write(
        &file,
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: inputs\ncluster:\n  provider: host\ncomponents:\n  - name: app\n    source: src\n    inputs:\n      scripts: ${LAB_TEST_SCRIPTS}\n    overrides:\n      - {cargo: itoa, version: 1.0.11}\n    build:\n      command: sh \"$LAB_INPUT_SCRIPTS/build.sh\" lab-test-inputs/app:{tag}\n    image: lab-test-inputs/app\n",
    )
    .unwrap();

    let unset = run(lab(dir.path()).arg("build").arg(&file).env_remove("LAB_TEST_SCRIPTS"));
    assert!(!unset.ok, "{}", unset.stderr);
    assert!(
        unset.stderr.contains(
            "lab.yaml:11:16: components[0].inputs.scripts: `${LAB_TEST_SCRIPTS}` in `${LAB_TEST_SCRIPTS}` is not set"
        ),
        "{}",
        unset.stderr
    );

    let first = run(lab(dir.path()).arg("build").arg(&file).env("LAB_TEST_SCRIPTS", &scripts));
    assert!(first.ok, "{}", first.stderr);
    let image = format!("lab-test-inputs/app:{}", tag_in(&first.stderr, "lab-test-inputs/app"));
    let lock = docker(&["run", "--rm", "--network", "none", &image, "cat", "/Cargo.lock"]);
    assert!(lock.contains("name = \"itoa\"\nversion = \"1.0.11\""), "the copy's lock was not moved:\n{lock}");
    assert_eq!(support::tree_listing(&source), before, "the checkout changed");
    let checkout_lock = std::fs::read_to_string(source.join("Cargo.lock")).unwrap();
    assert!(checkout_lock.contains("name = \"itoa\"\nversion = \"1.0.0\""), "{checkout_lock}");

    // The input is part of the tag: a changed script is a new image.
    std::fs::write(scripts.join("build.sh"), format!("{script}# changed\n")).unwrap();
    let second = run(lab(dir.path()).arg("build").arg(&file).env("LAB_TEST_SCRIPTS", &scripts));
    assert!(second.ok && second.stderr.contains("built lab-test-inputs/app:lab-"), "{}", second.stderr);
    assert_ne!(tag_in(&second.stderr, "lab-test-inputs/app"), image.rsplit_once(':').unwrap().1);
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
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

/// Two labs side by side (their own states, one build cache, as two CI
/// jobs or a warm-up build beside a test) building the same component at
/// once take turns: the build runs once, and the second finds its image.
#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn two_labs_building_one_component_at_once_build_it_once() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-turns/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    checkout(dir.path(), &[("input.txt", b"one\n")]);
    let runs = dir.path().join("runs.txt");
    let file = dir.path().join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: turns\ncluster:\n  provider: host\ncomponents:\n  - name: app\n    source: src\n    build:\n      command: echo run >> {} && sleep 3 && printf 'FROM {}\\n' | docker build -q -t lab-test-turns/app:{{tag}} -\n    image: lab-test-turns/app\n",
            runs.display(),
            support::BASE_IMAGE
        ),
    )
    .unwrap();
    let spawn = |state: &str| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"));
        cmd.current_dir(dir.path())
            .env("LAB_CACHE_DIR", dir.path().join("cache"))
            .env("LAB_STATE_DIR", dir.path().join(state))
            .arg("build")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let first = spawn("first");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = spawn("second");
    let (first, second) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(first.status.success() && second.status.success(), "{}\n{}", said(&first), said(&second));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n", "{}\n{}", said(&first), said(&second));
    assert!(said(&second).contains("(built by another lab process meanwhile)"), "{}", said(&second));
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn a_changed_input_gets_a_new_tag_and_only_that_component_is_built() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-retag/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = checkout(dir.path(), &[("Dockerfile", DATA_DOCKERFILE), ("data", b"one")]);
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
#[ignore = "needs Docker: bash .ci/run runs it"]
fn build_failures_name_the_component_the_step_and_the_last_lines() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-broken/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = checkout(dir.path(), &[("Dockerfile", b"FROM lab-test-busybox:2\nRUN echo compiling && exit 3\n")]);
    let build = |how: &str| {
        let scenario = one_component(dir.path(), "broken", ONE_NODE, &source, how, "lab-test-broken/app");
        run(lab(dir.path()).arg("build").arg(&scenario))
    };

    let failed_step = build("{dockerfile: Dockerfile}");
    assert!(!failed_step.ok);
    for want in [
        "component app: the Docker build failed at Step 2/2 : RUN echo compiling && exit 3",
        "| compiling",
        "non-zero code: 3",
        "build.log",
    ] {
        assert!(failed_step.stderr.contains(want), "lacks {want:?}:\n{}", failed_step.stderr);
    }

    let failed_command = build("{command: 'echo compiling; echo boom >&2; exit 4'}");
    assert!(!failed_command.ok);
    for want in ["component app: the build command failed", "exited with exit status: 4", "| boom", "build.log"] {
        assert!(failed_command.stderr.contains(want), "lacks {want:?}:\n{}", failed_command.stderr);
    }

    let produced_nothing = build("{command: 'true'}");
    assert!(!produced_nothing.ok);
    assert!(
        produced_nothing.stderr.contains("the build finished but Docker has no lab-test-broken/app:lab-"),
        "{}",
        produced_nothing.stderr
    );

    let no_dockerfile = build("{dockerfile: docker/Missing.Dockerfile}");
    assert!(!no_dockerfile.ok);
    assert!(
        no_dockerfile.stderr.contains("lab.yaml:12:25: components[0].build.dockerfile: no Dockerfile at"),
        "{}",
        no_dockerfile.stderr
    );

    let scenario =
        one_component(dir.path(), "broken", ONE_NODE, &source, "{dockerfile: Dockerfile}", "lab-test-broken/app");
    let no_daemon =
        run(lab(dir.path()).arg("build").arg(&scenario).env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    assert!(!no_daemon.ok);
    assert!(no_daemon.stderr.contains("component app: cannot reach the Docker daemon"), "{}", no_daemon.stderr);
}

/// Node names as the scenario plans them: `lab-<name>-control-plane`, `-worker`, `-worker2`.
fn three_nodes(name: &str) -> (Vec<String>, &'static str) {
    let names = ["control-plane", "worker", "worker2"].iter().map(|r| format!("lab-{name}-{r}")).collect();
    (names, "    - role: control-plane\n    - role: worker\n      count: 2\n")
}

fn start_nodes(cluster: &str, names: &[String]) -> FakeCluster {
    let nodes: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), if n.ends_with("control-plane") { "control-plane" } else { "worker" }))
        .collect();
    FakeCluster::with_containerd(cluster, &nodes)
}

/// The names in a node's containerd `k8s.io` namespace.
fn node_images(node: &str) -> Vec<String> {
    docker(&["exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"]).lines().map(str::to_string).collect()
}

/// The bytes a load step reported for `node`, e.g. "lab-x-worker 2.1 MiB sent".
fn sent_to(stderr: &str, node: &str) -> Option<f64> {
    let at = stderr.rfind(&format!("{node} "))?;
    let rest = &stderr[at + node.len() + 1..];
    let mut words = rest.split_whitespace();
    let (number, unit, verb) = (words.next()?, words.next()?, words.next()?.trim_end_matches([',', ';']));
    if verb != "sent" {
        return None;
    }
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn load_streams_into_every_containerd_node_then_sends_nothing_then_only_the_changed_layer() {
    let (names, nodes) = three_nodes("loadtest");
    let _cluster = start_nodes("lab-loadtest", &names);
    let _images = Repositories::clean(vec!["lab-test-load/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let big = random(4 << 20);
    let source = checkout(dir.path(), &[("Dockerfile", BIG_AND_SMALL_DOCKERFILE), ("big", &big), ("small", b"one")]);
    let scenario =
        one_component(dir.path(), "loadtest", nodes, &source, "{dockerfile: Dockerfile}", "lab-test-load/app");
    let build_and_load = || {
        let built = run(lab(dir.path()).arg("build").arg(&scenario));
        assert!(built.ok, "{}", built.stderr);
        let loaded = run(lab(dir.path()).arg("load").arg(&scenario));
        assert!(loaded.ok, "{}", loaded.stderr);
        (tag_in(&built.stderr, "lab-test-load/app"), loaded.stderr)
    };

    // Cold: every node gets the whole image, and shows it.
    let (tag, cold) = build_and_load();
    for node in &names {
        assert!(
            node_images(node).contains(&format!("docker.io/lab-test-load/app:{tag}")),
            "{node}: {:?}",
            node_images(node)
        );
        let sent = sent_to(&cold, node).unwrap_or_else(|| panic!("no bytes for {node} in:\n{cold}"));
        assert!(sent > 4.0 * 1024.0 * 1024.0, "{node} got {sent} bytes of a 4 MiB+ image");
    }

    // Warm: every node has the image ID, nothing is sent.
    let (_, warm) = build_and_load();
    for node in &names {
        assert!(warm.contains(&format!("{node} had it")), "{warm}");
    }

    // A rebuild that changes only the top layer sends about that layer.
    std::fs::write(source.join("small"), "two").unwrap();
    let (new_tag, delta) = build_and_load();
    assert_ne!(tag, new_tag);
    for node in &names {
        let sent = sent_to(&delta, node).unwrap_or_else(|| panic!("no bytes for {node} in:\n{delta}"));
        assert!(sent < 64.0 * 1024.0, "{node} was sent {sent} bytes for a 3-byte change:\n{delta}");
        let images = node_images(node);
        assert!(images.contains(&format!("docker.io/lab-test-load/app:{new_tag}")), "{node}: {images:?}");
    }
    // The new image is whole: a container filesystem can be made from it.
    let unpacked = docker(&["exec", &names[1], "ctr", "-n", "k8s.io", "images", "check"]);
    assert!(unpacked.lines().filter(|l| l.contains(&new_tag)).all(|l| l.contains("complete")), "{unpacked}");
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn an_image_present_under_another_name_is_retagged_not_sent() {
    let (names, nodes) = three_nodes("retagtest");
    let _cluster = start_nodes("lab-retagtest", &names[..1]);
    let _images = Repositories::clean(vec!["lab-test-retagged/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = checkout(dir.path(), &[("Dockerfile", DATA_DOCKERFILE), ("data", b"x")]);
    let one_node = &nodes[..nodes.find("    - role: worker").unwrap()];
    let scenario =
        one_component(dir.path(), "retagtest", one_node, &source, "{dockerfile: Dockerfile}", "lab-test-retagged/app");
    let built = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(built.ok, "{}", built.stderr);
    let image = format!("lab-test-retagged/app:{}", tag_in(&built.stderr, "lab-test-retagged/app"));
    // The same image arrives under another name, as an earlier `kind load` would leave it.
    let status = Process::new("sh")
        .arg("-c")
        .arg(format!("docker tag {image} lab-test-retagged/app:other && docker save lab-test-retagged/app:other | docker exec -i {} ctr -n k8s.io images import -", names[0]))
        .status()
        .unwrap();
    assert!(status.success());

    let loaded = run(lab(dir.path()).arg("load").arg(&scenario));
    assert!(loaded.ok, "{}", loaded.stderr);
    assert!(loaded.stderr.contains(&format!("{} retagged", names[0])), "{}", loaded.stderr);
    assert!(node_images(&names[0]).contains(&format!("docker.io/{image}")));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Docker: bash .ci/run runs it"]
async fn a_node_that_dies_mid_import_is_named_and_not_reported_as_loaded() {
    use lab::docker::DockerExecShell;
    use lab::load::{LayerNames, Node, load_image};

    let (names, _) = three_nodes("dietest");
    let _cluster = start_nodes("lab-dietest", &names[..2]);
    let _images = Repositories::clean(vec!["lab-test-die/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM lab-test-busybox:2\nCOPY big /big\n").unwrap();
    std::fs::write(dir.path().join("big"), random(200 << 20)).unwrap();
    docker(&["build", "-q", "-t", "lab-test-die/app:1", &dir.path().display().to_string()]);

    let docker = lab::docker::connect().await.unwrap();
    let nodes: Vec<Node<'_>> =
        names[..2].iter().map(|n| Node { name: n.clone(), shell: Box::new(DockerExecShell::new(n.clone())) }).collect();
    let victim = names[1].clone();
    let killer = tokio::spawn(async move {
        // Kill once the import is under way: its ctr process is running.
        loop {
            let ps = Process::new("docker").args(["exec", &victim, "ps"]).output().unwrap();
            if String::from_utf8_lossy(&ps.stdout).contains("import") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Process::new("docker").args(["kill", &victim]).output().unwrap();
    });
    let mut layer_names = LayerNames::default();
    let result = load_image(&docker, "lab-test-die/app:1", &nodes, &mut layer_names).await;
    killer.await.unwrap();
    let err = format!("{:#}", result.expect_err("a load into a dead node succeeded"));
    assert!(err.contains(&format!("node {}", names[1])), "the dead node is not named: {err}");
    let loaded = err.split("loaded: ").nth(1).unwrap_or_default();
    assert!(!loaded.contains(&names[1]), "the dead node is reported as loaded: {err}");
    assert!(loaded.contains(&format!("{} ", names[0])), "the live node's load is not reported: {err}");
    assert!(node_images(&names[0]).contains(&"docker.io/lab-test-die/app:1".to_string()));
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn a_git_source_is_cloned_into_the_cache_with_submodules_and_built_at_its_ref() {
    support::base_image();
    let _images = Repositories::clean(vec!["lab-test-git/app".into()]);
    let dir = tempfile::tempdir().unwrap();
    let git = |cwd: &Path, args: &[&str]| {
        let out = Process::new("git")
            .current_dir(cwd)
            .args(["-c", "user.name=lab", "-c", "user.email=lab@example.com", "-c", "protocol.file.allow=always"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // A submodule, then the component's repository using it.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    git(&sub, &["init", "-q", "-b", "main"]);
    std::fs::write(sub.join("part"), "from the submodule").unwrap();
    git(&sub, &["add", "."]);
    git(&sub, &["commit", "-q", "-m", "part"]);
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("Dockerfile"), "FROM lab-test-busybox:2\nCOPY . /src\n").unwrap();
    git(&repo, &["submodule", "add", "-q", &format!("file://{}", sub.display()), "sub"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(&repo, &["tag", "v1"]);
    std::fs::write(repo.join("later"), "after v1").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "second"]);

    let scenario = dir.path().join("lab.yaml");
    std::fs::write(
        &scenario,
        format!("apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: gitsrc\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\ncomponents:\n  - name: app\n    source: {{git: 'file://{}', ref: v1}}\n    build: {{dockerfile: Dockerfile}}\n    image: lab-test-git/app\n", repo.display()),
    )
    .unwrap();
    let built = run(lab(dir.path())
        .arg("build")
        .arg(&scenario)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "protocol.file.allow")
        .env("GIT_CONFIG_VALUE_0", "always"));
    assert!(built.ok, "{}", built.stderr);
    let image = format!("lab-test-git/app:{}", tag_in(&built.stderr, "lab-test-git/app"));
    let listing = docker(&["run", "--rm", "--network", "none", &image, "sh", "-c", "cat /src/sub/part; ls /src"]);
    assert!(listing.starts_with("from the submodule"), "{listing}");
    assert!(!listing.contains("later"), "built the branch head, not the tag: {listing}");
    assert!(dir.path().join("cache/sources").read_dir().unwrap().count() == 1, "one clone in the cache");

    let bad_ref = std::fs::read_to_string(&scenario).unwrap().replace("ref: v1", "ref: v9");
    std::fs::write(&scenario, bad_ref).unwrap();
    let failed = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(!failed.ok);
    assert!(failed.stderr.contains("fetch file://") && failed.stderr.contains("v9"), "{}", failed.stderr);
}

/// Debian's docker-registry (the distribution registry) on 127.0.0.1, stopped on drop.
struct LocalRegistry {
    child: std::process::Child,
    _storage: tempfile::TempDir,
}

impl LocalRegistry {
    fn start(port: u16) -> LocalRegistry {
        let storage = tempfile::tempdir().unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        assert!(Path::new("/usr/bin/docker-registry").exists(), "apt-get install docker-registry (.ci/run does)");
        let child = Process::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let registry = LocalRegistry { child, _storage: storage };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 20, "the registry did not listen on 127.0.0.1:{port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn registry_mode_points_containerd_at_the_registry_and_pushes_only_changed_layers() {
    const PORT: u16 = 55001;
    let _registry = LocalRegistry::start(PORT);
    let (names, _) = three_nodes("regtest");
    let nodes: Vec<(&str, &str)> = names[..2].iter().map(|n| (n.as_str(), "worker")).collect();
    let _cluster = FakeCluster::with_containerd_on("lab-regtest", &nodes, "host");
    let _images = Repositories::clean(vec!["lab-test-reg/app".into(), format!("127.0.0.1:{PORT}/lab-test-reg/app")]);
    let dir = tempfile::tempdir().unwrap();
    let big = random(1 << 20);
    let source = checkout(dir.path(), &[("Dockerfile", BIG_AND_SMALL_DOCKERFILE), ("big", &big), ("small", b"one")]);
    let scenario = dir.path().join("lab.yaml");
    std::fs::write(
        &scenario,
        format!("apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: regtest\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\ncomponents:\n  - name: app\n    source: {}\n    build: {{dockerfile: Dockerfile}}\n    image: lab-test-reg/app\nimages:\n  load: registry\n  registry: {{address: '127.0.0.1:{PORT}', start: false}}\n", source.display()),
    )
    .unwrap();
    let plan = run(lab(dir.path()).args(["load", "--dry-run"]).arg(&scenario));
    assert!(plan.ok, "{}", plan.stderr);

    let build_and_push = || {
        let built = run(lab(dir.path()).arg("build").arg(&scenario));
        assert!(built.ok, "{}", built.stderr);
        let pushed = run(lab(dir.path()).arg("load").arg(&scenario));
        (tag_in(&built.stderr, "lab-test-reg/app"), pushed)
    };
    let (tag, first) = build_and_push();
    assert!(first.ok, "{}", first.stderr);
    assert!(first.stderr.contains("3 layer(s) pushed, 0 already there"), "{}", first.stderr);
    // The registry's name was for the push alone: Docker keeps the build under its own only.
    let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!tags.contains(&format!("127.0.0.1:{PORT}/")) && tags.contains("lab-test-reg/app:"), "{tags}");

    // Each node's containerd pulls through the hosts file lab wrote, as the kubelet would.
    let image = format!("127.0.0.1:{PORT}/lab-test-reg/app:{tag}");
    for node in &names[..2] {
        let hosts = docker(&["exec", node, "cat", &format!("/etc/containerd/certs.d/127.0.0.1:{PORT}/hosts.toml")]);
        assert!(hosts.contains(&format!("server = \"http://127.0.0.1:{PORT}\"")), "{hosts}");
        docker(&[
            "exec",
            node,
            "ctr",
            "-n",
            "k8s.io",
            "images",
            "pull",
            "--hosts-dir",
            "/etc/containerd/certs.d",
            &image,
        ]);
        assert!(node_images(node).contains(&image), "{node}: {:?}", node_images(node));
    }

    // A rebuild that changes the top layer pushes that layer alone.
    std::fs::write(source.join("small"), "two").unwrap();
    let (new_tag, second) = build_and_push();
    assert!(second.ok, "{}", second.stderr);
    assert_ne!(tag, new_tag);
    assert!(second.stderr.contains("1 layer(s) pushed, 2 already there"), "{}", second.stderr);
}

#[test]
#[ignore = "needs Docker: bash .ci/run runs it"]
fn the_image_preflight_names_missing_images_with_fixes_until_lab_load_puts_them_there() {
    let (names, _) = three_nodes("pretest");
    let _cluster = start_nodes("lab-pretest", &names[..2]);
    let _images = Repositories::clean(vec!["lab-test-pre/app".into(), "lab-test-pre/tool".into()]);
    let dir = tempfile::tempdir().unwrap();
    let source = checkout(dir.path(), &[("Dockerfile", DATA_DOCKERFILE), ("data", b"x")]);
    // A tool image the tests would use, present in Docker but on no node (upstream's alpine-sh case).
    docker(&["tag", "lab-test-busybox:2", "lab-test-pre/tool:1"]);
    let scenario = dir.path().join("lab.yaml");
    let write = |preload: &str| {
        std::fs::write(
            &scenario,
            format!("apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: pretest\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\ncomponents:\n  - name: app\n    source: {}\n    build: {{dockerfile: Dockerfile}}\n    image: lab-test-pre/app\nimages:\n  preload: [{preload}]\n", source.display()),
        )
        .unwrap();
    };
    write("'lab-test-pre/tool:1', 'lab-test-pre/absent:1'");
    let images = |extra: &[&str]| {
        let out = lab(dir.path()).arg("images").args(extra).arg(&scenario).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, report, _) = images(&["--offline"]);
    assert!(!ok, "missing images passed the preflight:\n{report}");
    let both = format!("missing on {}, {}; not checked for pulling (--offline)", names[0], names[1]);
    assert!(report.contains("✗ lab-test-pre/app:lab-") && report.contains(&both), "{report}");
    assert!(report.contains("(component app)") && report.contains("→ `lab build`, then `lab load`"), "{report}");
    assert!(report.contains("✗ lab-test-pre/tool:1 (images.preload)") && report.contains("→ `lab load`"), "{report}");
    assert!(report.contains("→ `docker pull lab-test-pre/absent:1`"), "{report}");
    // Online, Docker asks the registry, which does not have them (or cannot be reached here).
    let (_, report, _) = images(&[]);
    assert!(report.contains("not pullable: "), "{report}");
    // Loading what was never built says so, and what to do.
    let unbuilt = run(lab(dir.path()).arg("load").arg(&scenario));
    assert!(!unbuilt.ok);
    assert!(unbuilt.stderr.contains("component app: Docker has no image lab-test-pre/app:lab-"), "{}", unbuilt.stderr);
    assert!(unbuilt.stderr.contains("build it first (`lab build`)"), "{}", unbuilt.stderr);

    write("'lab-test-pre/tool:1'");
    let built = run(lab(dir.path()).arg("build").arg(&scenario));
    assert!(built.ok, "{}", built.stderr);
    let loaded = run(lab(dir.path()).arg("load").arg(&scenario));
    assert!(loaded.ok, "{}", loaded.stderr);
    assert!(
        loaded.stderr.contains("load the preloaded images into the nodes: lab-test-pre/tool:1:"),
        "{}",
        loaded.stderr
    );
    let (ok, report, stderr) = images(&["--offline"]);
    assert!(ok, "{report}{stderr}");
    assert!(report.contains("lab-test-pre/tool:1 (images.preload): on every node"), "{report}");
    assert!(report.contains("(component app): on every node"), "{report}");
}

//! Against the real Docker engine: containers carrying kind's labels are found
//! as a lab's nodes, and commands run in them through the node `Shell`.
//! Each test removes its containers, even when it fails.

use lab::docker::{self, DockerExecShell};
use lab::plan::{Action, Target};
use lab::prepare::undo::Recorder;
use lab::prepare::{UndoLog, cpu, hugepages, module, propagation};
use lab::shell::{Cmd, Shell};

mod support;
use support::FakeCluster;

#[tokio::test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
async fn kind_labelled_containers_are_the_cluster_nodes() {
    let _fake = FakeCluster::start(
        "lab-dtest-a",
        &[
            ("lab-dtest-a-control-plane", "control-plane"),
            ("lab-dtest-a-worker", "worker"),
            ("lab-dtest-a-worker2", "worker"),
        ],
    );
    let _other = FakeCluster::start("lab-dtest-other", &[("lab-dtest-other-worker", "worker")]);

    let docker = docker::connect().await.unwrap();
    let nodes = docker::node_containers(&docker, "lab-dtest-a").await.unwrap();
    let got: Vec<(&str, &str, &str)> =
        nodes.iter().map(|n| (n.name.as_str(), n.role.as_str(), n.state.as_str())).collect();
    assert_eq!(
        got,
        [
            ("lab-dtest-a-control-plane", "control-plane", "running"),
            ("lab-dtest-a-worker", "worker", "running"),
            ("lab-dtest-a-worker2", "worker", "running"),
        ]
    );
}

#[test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
fn lab_status_lists_the_nodes_of_a_kind_scenario() {
    let _fake = FakeCluster::start(
        "lab-dtest-b",
        &[("lab-dtest-b-control-plane", "control-plane"), ("lab-dtest-b-worker", "worker")],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: dtest-b\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\n";
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();

    let out = assert_cmd::Command::cargo_bin("lab").unwrap().current_dir(dir.path()).arg("status").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("lab-dtest-b-control-plane  control-plane  running"), "{text}");
    assert!(text.contains("lab-dtest-b-worker         worker         running"), "{text}");

    // `lab up` refuses to touch a cluster that is already there, before it
    // runs kind (a stand-in that only answers `kind version`).
    let bin = tempfile::tempdir().unwrap();
    let fake_kind = bin.path().join("kind");
    std::fs::write(&fake_kind, "#!/bin/sh\n[ \"$1\" = version ] && echo kind v0.0.0-stand-in && exit 0\necho \"must not run: kind $*\" >&2\nexit 99\n").unwrap();
    std::fs::set_permissions(&fake_kind, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let out = assert_cmd::Command::cargo_bin("lab")
        .unwrap()
        .current_dir(dir.path())
        .env("PATH", path)
        .arg("up")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lab-dtest-b is already up"), "{stderr}");
    assert!(!stderr.contains("must not run"), "{stderr}");
    assert!(!dir.path().join(".lab").exists(), "a refused `lab up` wrote state");
}

#[tokio::test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
async fn node_shell_returns_output_and_status_and_names_the_node_on_failure() {
    let _fake = FakeCluster::start("lab-dtest-c", &[("lab-dtest-c-worker", "worker")]);
    let shell = DockerExecShell::new("lab-dtest-c-worker");

    let out = shell.run(&Cmd::sh("echo to-stdout; echo to-stderr >&2").env("GREETING", "hi")).await.unwrap();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.status), ("to-stdout\n", "to-stderr\n", 0));

    let env = shell.run(&Cmd::sh("echo $GREETING").env("GREETING", "hello node")).await.unwrap();
    assert_eq!(env.stdout, "hello node\n");

    let fed = shell.exec(&Cmd::new("cat"), Some(b"through stdin")).await.unwrap();
    assert_eq!(fed.stdout, "through stdin");

    let failed = shell.run(&Cmd::sh("echo no such pool >&2; exit 7")).await.unwrap_err();
    let text = failed.to_string();
    assert!(text.starts_with("node lab-dtest-c-worker: `docker exec lab-dtest-c-worker sh -c 'echo no such pool >&2; exit 7'` exited with status 7"), "{text}");
    assert!(text.contains("| no such pool"), "{text}");
    assert_eq!(failed.output().map(|o| o.status), Some(7));
}

#[tokio::test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
async fn a_missing_node_is_a_clear_error() {
    let shell = DockerExecShell::new("lab-dtest-no-such-node");
    let err = shell.run(&Cmd::new("true")).await.unwrap_err().to_string();
    assert!(
        err.starts_with("node lab-dtest-no-such-node: could not run `docker exec lab-dtest-no-such-node true`"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("no such container"), "{err}");
}

#[tokio::test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
async fn preparation_runs_inside_node_containers_and_failures_name_the_node() {
    let _fake = FakeCluster::start("lab-dtest-p", &[("lab-dtest-p-worker", "worker")]);
    let shell = DockerExecShell::new("lab-dtest-p-worker");

    // Docker makes a container's / private; lab makes it shared, once,
    // recording what it was, and `lab down`'s step makes it private again.
    let dir = tempfile::tempdir().unwrap();
    let undo = UndoLog::new(dir.path().join("changes.json"));
    let record = Recorder { log: &undo, on: Target::Node("lab-dtest-p-worker".into()) };
    let first = propagation::make_rshared(&shell, &record).await.unwrap();
    assert_eq!(first, "made / rshared");
    assert_eq!(propagation::make_rshared(&shell, &record).await.unwrap(), "/ is already shared");
    let mountinfo = || async { shell.run(&Cmd::new("cat").arg("/proc/self/mountinfo")).await.unwrap().stdout };
    assert_eq!(propagation::root_is_shared(&mountinfo().await), Some(true));
    let restore = undo.restore_steps(&undo.entries().unwrap(), true);
    assert_eq!(restore.len(), 1, "one record for / and its submounts");
    for step in &restore {
        let Action::Run { cmd, .. } = &step.action else { panic!("{} is not a command", step.title) };
        shell.run(cmd).await.unwrap();
    }
    assert_eq!(propagation::root_is_shared(&mountinfo().await), Some(false), "/ is still shared after the undo");

    // The node shares the host's kernel: it sees the host's modules and pool.
    assert_eq!(module::verify(&shell, &["loop".into()]).await.unwrap(), "sees loop");
    let err = module::verify(&shell, &["loop".into(), "nbd".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "node lab-dtest-p-worker does not see module(s) nbd in /sys/module");
    let host = hugepages::read(&lab::shell::LocalShell).await.unwrap();
    assert_eq!(hugepages::read(&shell).await.unwrap(), host);
    let err = hugepages::verify(&shell, host.free + 1).await.unwrap_err().to_string();
    assert!(err.starts_with("node lab-dtest-p-worker sees "), "{err}");

    assert!(cpu::preflight(&shell, &[0], "0").await.unwrap().contains("core list 0 fits"));
    let err = cpu::preflight(&shell, &[1, 4095], "1,4095").await.unwrap_err().to_string();
    assert!(err.starts_with("node lab-dtest-p-worker: io-engine's core list 1,4095 needs core(s) 4095"), "{err}");
    assert!(err.contains("EAL: invalid core list"), "{err}");
}

#[test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
fn lab_prepare_on_a_kind_scenario_works_inside_the_nodes() {
    let _fake = FakeCluster::start(
        "lab-dtest-q",
        &[
            ("lab-dtest-q-control-plane", "control-plane"),
            ("lab-dtest-q-worker", "worker"),
            ("lab-dtest-q-worker2", "worker"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario = "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: dtest-q\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\n      count: 2\n      modules: [loop]\n";
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();
    let prepare =
        || assert_cmd::Command::cargo_bin("lab").unwrap().current_dir(dir.path()).arg("prepare").output().unwrap();

    let out = prepare();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    for line in [
        "load kernel modules loop on host: loop already loaded",
        "remount /sys read-write on lab-dtest-q-worker (",
        "make / rshared on lab-dtest-q-worker: made / rshared",
        "check lab-dtest-q-worker2 sees modules loop: sees loop",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    let log = std::fs::read_to_string(dir.path().join(".lab/dtest-q/lab.log")).unwrap();
    assert!(
        log.contains("$ docker exec lab-dtest-q-worker2 mount --make-rshared /  # on node lab-dtest-q-worker2"),
        "{log}"
    );

    // Idempotent: the second run changes nothing and says so.
    let again = String::from_utf8(prepare().stderr).unwrap();
    assert!(again.contains("make / rshared on lab-dtest-q-worker: / is already shared"), "{again}");
}

#[test]
#[ignore = "needs root and Docker: bash .ci/run runs it"]
fn lab_prepare_on_a_kind_lab_that_is_not_up_changes_nothing_on_the_host() {
    // Puts the pool back should preparation reach the host after all.
    let saved = support::HostState::save();
    let free: u64 =
        std::fs::read_to_string(support::NR_HUGEPAGES.replace("nr_", "free_")).unwrap().trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: dtest-r\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\n      hugepages2Mi: {}\n",
        free + 8
    );
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();
    let out = assert_cmd::Command::cargo_bin("lab").unwrap().current_dir(dir.path()).arg("prepare").output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("find the lab's nodes: node(s) lab-dtest-r-control-plane, lab-dtest-r-worker not found"),
        "{stderr}"
    );
    assert!(!stderr.contains("hugepages on host"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(support::NR_HUGEPAGES).unwrap().trim(),
        saved.pages.to_string(),
        "the host's hugepages changed"
    );
}

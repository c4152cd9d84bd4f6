//! `vagrant validate` on the repository's Vagrantfile with the node list `lab`
//! generates (Debian's vagrant; no VM is booted).

use std::path::Path;
use std::process::Command as Process;

#[test]
#[ignore = "needs vagrant: bash .ci/run runs it"]
fn vagrantfile_validates_with_a_generated_node_list() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The files `lab up` writes, from the same library code.
    let scenario = lab::scenario::Scenario::load(&repo.join("scenarios/vagrant.yaml")).unwrap();
    let state = scenario.state_dir().unwrap();
    let vagrant = lab::provider::Vagrant::new(&scenario, &state, "0123456789ab");
    let lab_dir = work.path().join("vm");
    std::fs::create_dir_all(&lab_dir).unwrap();
    std::fs::write(lab_dir.join("Vagrantfile"), lab::provider::vagrant::VAGRANTFILE).unwrap();
    std::fs::write(lab_dir.join("nodes.json"), serde_json::to_string(&vagrant.node_list()).unwrap()).unwrap();
    std::fs::write(lab_dir.join("provision.sh"), "#!/bin/sh\n").unwrap();

    let out = Process::new("vagrant")
        .arg("validate")
        .env("VAGRANT_CWD", &lab_dir)
        .env("VAGRANT_HOME", work.path().join("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant is not installed: apt-get install vagrant (.ci/run does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "vagrant validate failed:\n{text}");
    assert!(text.contains("Vagrantfile validated successfully"), "{text}");
}

#[test]
#[ignore = "needs vagrant: bash .ci/run runs it"]
fn vagrantfile_without_a_node_list_says_how_to_get_one() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(repo.join("Vagrantfile"), work.path().join("Vagrantfile")).unwrap();
    let out = Process::new("vagrant")
        .arg("validate")
        .env("VAGRANT_CWD", work.path())
        .env("VAGRANT_HOME", work.path().join("vagrant-home"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant is not installed: apt-get install vagrant (.ci/run does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "validated without a node list:\n{text}");
    assert!(text.contains("run `lab up SCENARIO`"), "{text}");
}

/// Vagrant looks for a Vagrantfile in the parent folders when the one it is
/// pointed at is missing. A decoy Vagrantfile above the lab's state proves
/// that `lab down` never lets it: without lab's own Vagrantfile, vagrant is not run.
#[test]
#[ignore = "needs vagrant: bash .ci/run runs it"]
fn down_never_runs_vagrant_without_labs_vagrantfile() {
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("project");
    let state = project.join(".lab/vdecoy");
    std::fs::create_dir_all(&state).unwrap();
    let mark = work.path().join("decoy-loaded");
    std::fs::write(
        project.join("Vagrantfile"),
        "File.write(ENV.fetch('DECOY_MARK'), 'loaded')\nVagrant.configure('2') { |c| }\n",
    )
    .unwrap();
    std::fs::write(
        project.join("lab.yaml"),
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata: {name: vdecoy}\ncluster:\n  provider: vagrant\n  nodes:\n    - role: control-plane\n",
    )
    .unwrap();
    let vagrant_env = |cmd: &mut Process| {
        cmd.env("DECOY_MARK", &mark)
            .env("VAGRANT_HOME", work.path().join("vagrant-home"))
            .env("VAGRANT_CHECKPOINT_DISABLE", "1");
    };

    let mut down = Process::new(env!("CARGO_BIN_EXE_lab"));
    down.current_dir(&project).arg("down");
    vagrant_env(&mut down);
    let out = down.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(!mark.exists(), "lab down ran vagrant, which loaded the decoy Vagrantfile above the state:\n{text}");

    // The decoy is real: vagrant itself, pointed at the state folder, loads it.
    std::fs::create_dir_all(&state).unwrap();
    let mut status = Process::new("vagrant");
    status.arg("status").env("VAGRANT_CWD", &state);
    vagrant_env(&mut status);
    status.output().expect("vagrant is not installed: apt-get install vagrant (.ci/run does)");
    assert!(mark.exists(), "vagrant did not search the parent folders, so this test proves nothing");
}

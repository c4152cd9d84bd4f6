//! `vagrant validate` on the repository's Vagrantfile with the node list `lab`
//! generates (Debian's vagrant; no VM is booted).

use std::path::Path;
use std::process::Command as Process;

#[test]
fn vagrantfile_validates_with_a_generated_node_list() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The files `lab up` writes, from the same library code.
    let scenario = lab::scenario::Scenario::load(&repo.join("scenarios/vagrant.yaml")).unwrap();
    let state = scenario.state_dir().unwrap();
    let vagrant = lab::provider::Vagrant::new(&scenario, &state);
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

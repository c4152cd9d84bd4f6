//! Real kind clusters: the kind binary `.ci/kind/build` makes, nodes from the
//! image `.ci/kind/node-image` assembles offline (`.ci/run` makes both; a
//! test fails, naming them, when either is missing). `scenarios/kind-csi.yaml`
//! runs whole: preparation (hugepages on the host, labels, allocatable
//! hugepages, /sys read-write, / rshared), the hostpath CSI stack built from
//! source and streamed into both nodes, `features/csi`, `lab down`. Registry
//! mode then loads the same components through lab's registry container.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

mod support;

use support::run;

/// The node image `scenarios/kind-csi.yaml` names.
const NODE_IMAGE: &str = "lab.local/kind-node:v1.36.3";

/// One kind cluster at a time: they share the host's hugepages.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn require_kind() {
    let kind = Process::new("kind").arg("version").output();
    assert!(
        kind.as_ref().is_ok_and(|out| out.status.success()),
        "kind is not on PATH: `bash .ci/kind/build` builds it (.ci/run does and puts it on PATH)"
    );
    let image = Process::new("docker").args(["image", "inspect", NODE_IMAGE]).output().unwrap();
    assert!(
        image.status.success(),
        "Docker has no {NODE_IMAGE}: `bash .ci/kind/node-image` assembles it (.ci/run does)"
    );
}

/// `lab` in `dir`, with its state in `state`.
fn lab(dir: &Path, state: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lab").unwrap();
    cmd.current_dir(dir).env("LAB_STATE_DIR", state);
    cmd
}

/// `lab down` even when an assertion fails half-way.
fn down_on_drop<'a>(dir: &'a Path, state: &'a Path, scenario: &'a Path) -> support::OnDrop<'a> {
    support::on_drop(move || {
        let _ = lab(dir, state).arg("down").arg(scenario).output();
    })
}

fn node_containers(cluster: &str) -> Vec<String> {
    let out = Process::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("label=io.x-k8s.kind.cluster={cluster}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

fn crictl_images(node: &str) -> String {
    let out = Process::new("docker").args(["exec", node, "crictl", "images"]).output().unwrap();
    assert!(out.status.success(), "crictl images on {node}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hugepages() -> String {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap()
}

const NODES: [&str; 2] = ["lab-kind-csi-control-plane", "lab-kind-csi-worker"];
const COMPONENTS: [&str; 3] = ["lab-local/csi-hostpath-plugin", "lab-local/csi-provisioner", "lab-local/fio"];

#[test]
#[ignore = "needs root, Docker, kind and its node image: bash .ci/run runs it"]
fn kind_csi_scenario_runs_whole_on_real_kind() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    require_kind();
    let root = repo_root();
    let scenario = root.join("scenarios/kind-csi.yaml");
    let state = tempfile::tempdir().unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    let pages_before = hugepages();
    let _results = support::Results::of("kind-csi");

    let doctor = run(lab(&root, state.path()).arg("doctor").arg(&scenario));
    for check in ["✓ kind ", "✓ privileged nodes ", "✓ kind node image "] {
        assert!(doctor.stdout.lines().any(|l| l.starts_with(check)), "{check}:\n{}", doctor.stdout);
    }

    let _down = down_on_drop(&root, state.path(), &scenario);
    let up = run(lab(&root, state.path()).arg("up").arg("--artifacts").arg(artifacts.path().join("up")).arg(&scenario));
    assert!(up.ok, "lab up failed:\n{}", up.stderr);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let kubeconfig = state.path().join("kind-csi/kubeconfig");
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is readable by others ({mode:o})", kubeconfig.display());
    }
    assert!(up.stderr.contains("create kind cluster lab-kind-csi"), "{}", up.stderr);
    assert_eq!(node_containers("lab-kind-csi").len(), 2, "kind made other nodes than the scenario's two");

    // The components are in both nodes' containerd, where the kubelet finds
    // them; a second load sends nothing.
    for node in NODES {
        let images = crictl_images(node);
        for component in COMPONENTS {
            assert!(images.contains(&format!("docker.io/{component} ")), "{node} lacks {component}:\n{images}");
        }
    }
    let reload = run(lab(&root, state.path()).arg("load").arg(&scenario));
    assert!(reload.ok && reload.stderr.matches(" had it").count() == 6, "{}", reload.stderr);

    // A second preparation finds everything in place: the host holds both
    // nodes' 64 pages, and each kind node's kubelet offers the host's 128.
    let again = run(lab(&root, state.path()).arg("prepare").arg(&scenario));
    assert!(again.ok, "{}", again.stderr);
    for note in [
        "/ is already shared",
        "already has 1 label(s)",
        "reserve 128 2 MiB hugepages on host: already 128 pages",
        "allocatable already 128 pages",
    ] {
        assert!(again.stderr.contains(note), "missing {note:?}:\n{}", again.stderr);
    }

    let tested = run(lab(&root, state.path())
        .args(["test", "--junit"])
        .arg(artifacts.path().join("junit.xml"))
        .arg("--artifacts")
        .arg(artifacts.path().join("failed"))
        .arg(&scenario));
    assert!(tested.ok, "features/csi failed on kind:\n{}\n{}", tested.stdout, tested.stderr);
    assert!(tested.stdout.contains("7 scenarios (7 passed)"), "{}", tested.stdout);
    let junit = std::fs::read_to_string(artifacts.path().join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\""), "{junit}");

    // `lab export logs` on kind: each node's kubelet and containerd journals
    // (through the node's own journalctl), its kernel log, every pod's logs.
    let logs = artifacts.path().join("logs");
    let export = run(lab(&root, state.path()).args(["export", "logs"]).arg(&logs).arg("--scenario").arg(&scenario));
    assert!(export.ok, "{}", export.stderr);
    assert_eq!(export.stdout.trim(), logs.display().to_string());
    for node in NODES {
        let kubelet = std::fs::read_to_string(logs.join("nodes").join(node).join("kubelet.log")).unwrap();
        assert!(!kubelet.starts_with("(`") && kubelet.lines().count() > 10, "{node}'s kubelet log:\n{kubelet}");
        let containerd = std::fs::read_to_string(logs.join("nodes").join(node).join("containerd.log")).unwrap();
        assert!(!containerd.starts_with("(`") && containerd.contains("containerd"), "{node}:\n{containerd}");
    }
    assert!(logs.join("namespaces/kube-system/pods.json").is_file());

    let down = run(lab(&root, state.path()).arg("down").arg(&scenario));
    assert!(down.ok, "{}", down.stderr);
    assert!(node_containers("lab-kind-csi").is_empty(), "lab down left nodes");
    assert!(!state.path().join("kind-csi").exists(), "lab down left its state");
    assert_eq!(hugepages(), pages_before, "lab down did not restore the host's hugepages");
}

#[test]
#[ignore = "needs root, Docker, kind and its node image: bash .ci/run runs it"]
fn registry_mode_on_real_kind_pulls_the_components_through_labs_registry() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    require_kind();
    support::registry_image();
    let root = repo_root();
    // kind-csi.yaml under another name, loading through a registry lab starts
    // on kind's network from Debian's docker-registry.
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("scenarios/kind-csi.yaml"))
        .unwrap()
        .replace("name: kind-csi", "name: kind-reg")
        .replace("../", &format!("{}/", root.display()));
    let registry = format!(
        "images:\n  load: registry\n  registry: {{address: 'localhost:5057', image: {}}}\n",
        support::REGISTRY_IMAGE
    );
    let scenario = dir.path().join("lab.yaml");
    std::fs::write(&scenario, format!("{text}{registry}")).unwrap();

    let _down = down_on_drop(dir.path(), state.path(), &scenario);
    let up =
        run(lab(dir.path(), state.path()).arg("up").arg("--artifacts").arg(dir.path().join("failed")).arg(&scenario));
    assert!(up.ok, "lab up (registry mode) failed:\n{}", up.stderr);
    assert!(up.stderr.contains("layer(s) pushed"), "{}", up.stderr);
    // The registry's names were for the push alone: Docker keeps none of them.
    let tags = Process::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}"]).output().unwrap();
    let tags = String::from_utf8_lossy(&tags.stdout).into_owned();
    assert!(!tags.contains("localhost:5057/"), "lab load left registry-named tags in Docker:\n{tags}");
    // The stack became Ready on images the nodes pulled from the registry:
    // the worker, where the plugin runs (the control plane is tainted), has
    // them under the registry's name; no node has one streamed.
    let worker = crictl_images("lab-kind-reg-worker");
    assert!(worker.contains("localhost:5057/lab-local/csi-hostpath-plugin "), "{worker}");
    for node in ["lab-kind-reg-control-plane", "lab-kind-reg-worker"] {
        let images = crictl_images(node);
        assert!(!images.contains("docker.io/lab-local/"), "{node} got a streamed image:\n{images}");
    }
    // The suite's pods (fio's among them) pull lab's builds the same way.
    let tested = run(lab(dir.path(), state.path()).arg("test").arg(&scenario));
    assert!(tested.ok, "features/csi failed in registry mode:\n{}\n{}", tested.stdout, tested.stderr);
    assert!(tested.stdout.contains("7 scenarios (7 passed)"), "{}", tested.stdout);
    let down = run(lab(dir.path(), state.path()).arg("down").arg(&scenario));
    assert!(down.ok, "{}", down.stderr);
    assert!(node_containers("lab-kind-reg").is_empty(), "lab down left nodes");
    let registry = Process::new("docker").args(["ps", "-a", "-q", "--filter", "name=lab-kind-reg-registry"]).output();
    assert!(registry.unwrap().stdout.is_empty(), "lab down left its registry container");
}

/// The Mayastor stack on a real kind cluster: pools Online (lab waits for
/// them), then a PVC of the lab's StorageClass gets Bound. Needs what this
/// machine lacks: Mayastor's images from the internet, io-engine's 2 GiB of
/// hugepages and nvme_tcp.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Mayastor's images from the internet, 2 GiB hugepages and nvme_tcp: cargo test -p lab --test e2e -- --ignored beyond_ci_"]
async fn beyond_ci_mayastor_stack_deploys_pools_online_and_a_pvc_binds() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{Api, PostParams};

    let dir = tempfile::tempdir().unwrap();
    let manifests = repo_root().join("manifests/mayastor");
    let scenario = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: e2e-stack\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\n      labels: {{openebs.io/engine: mayastor}}\n      hugepages2Mi: 1024\n      ioEngineCoreList: \"1\"\n      pool: {{size: 1GiB}}\nstack:\n  layers:\n    - manifests: {}\n    - manifests: {}\nfeatures: {}\nfio:\n  profiles:\n    - {{name: pvc-randread-4k, rw: randread, bs: 4k, iodepth: 16, size: 256M, runtime: 10, ramp_time: 2}}\n  results: results\n",
        repo_root().join("manifests/mayastor-base").display(),
        manifests.display(),
        repo_root().join("features/mayastor").display()
    );
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();
    let lab = || {
        let mut cmd = Command::cargo_bin("lab").unwrap();
        cmd.current_dir(dir.path());
        cmd
    };
    let scenario = dir.path().join("lab.yaml");
    let state = dir.path().join(".lab");
    let _down = down_on_drop(dir.path(), &state, &scenario);
    lab().arg("up").assert().success();

    let client = lab::provider::kube_client(dir.path().join(".lab/e2e-stack/kubeconfig"), None).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "e2e"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "mayastor-single-replica",
                 "resources": {"requests": {"storage": "64Mi"}}}
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let phase = claims.get("e2e").await.unwrap().status.and_then(|s| s.phase).unwrap_or_default();
        if phase == "Bound" {
            break;
        }
        assert!(started.elapsed().as_secs() < 180, "the PVC is still {phase}");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    // The Mayastor features, for real: nodes, quickstart, performance.
    let tested = lab().args(["test", "--junit", "junit.xml", "--html", "report.html"]).output().unwrap();
    let text = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(tested.status.success(), "{text}");
    assert!(std::fs::read_to_string(dir.path().join("junit.xml")).unwrap().contains("failures=\"0\""));

    // `lab down` removes the claim (and its volume) before the pools and the stack.
    lab().arg("down").assert().success();
}

//! The whole flow with the real kind binary: opt in with `LAB_E2E=1` on a
//! machine with kind and Docker (CI here has no kind, see the README).
//! Preparation runs for real too: hugepages on the host (restored by
//! `lab down`), a module check, labels through the API, the kubelet's
//! allocatable hugepages. A component built `FROM scratch` (nothing to pull)
//! is built and loaded into the real kind nodes.

use assert_cmd::Command;

const SCENARIO: &str = "apiVersion: lab/v1alpha1
kind: Scenario
metadata:
  name: e2e
cluster:
  provider: kind
  nodes:
    - role: control-plane
    - role: worker
      pool: {size: 64MiB}
      labels: {lab.test/tier: fast}
      modules: [overlay]
      hugepages2Mi: 16
components:
  - name: app
    source: app
    build: {dockerfile: Dockerfile}
    image: lab-e2e/app
";

/// Deletes the cluster and the built image even when an assertion fails half-way.
struct Down<'a>(&'a std::path::Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::cargo_bin("lab").unwrap().current_dir(self.0).arg("down").output();
        let _ = std::process::Command::new("sh")
            .args(["-c", "docker images -q lab-e2e/app | sort -u | xargs -r docker rmi -f"])
            .output();
    }
}

#[test]
fn kind_cluster_up_status_down() {
    if std::env::var("LAB_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set LAB_E2E=1 where kind and Docker exist to create a real kind cluster");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SCENARIO).unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\nCOPY data /data\n").unwrap();
    std::fs::write(dir.path().join("app/data"), "e2e").unwrap();
    let lab = || {
        let mut cmd = Command::cargo_bin("lab").unwrap();
        cmd.current_dir(dir.path());
        cmd
    };
    let _down = Down(dir.path());
    let pages = || std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap();
    let pages_before = pages();

    lab().arg("up").assert().success();
    // Everything is in place: a second preparation only confirms it.
    let again = lab().arg("prepare").output().unwrap();
    let again_text = String::from_utf8(again.stderr).unwrap();
    assert!(again.status.success(), "{again_text}");
    for note in ["unchanged", "/ is already shared", "already has 1 label(s)", "allocatable already"] {
        assert!(again_text.contains(note), "missing {note:?}:\n{again_text}");
    }
    assert!(dir.path().join(".lab/e2e/kubeconfig").exists(), "no kubeconfig written");
    let status = String::from_utf8(lab().arg("status").output().unwrap().stdout).unwrap();
    assert!(status.contains("lab-e2e-control-plane") && status.contains("lab-e2e-worker"), "{status}");
    assert!(status.matches("running").count() == 2, "{status}");

    // The component is in every node's containerd, where the kubelet finds it; a second load sends nothing.
    for node in ["lab-e2e-control-plane", "lab-e2e-worker"] {
        let out = std::process::Command::new("docker").args(["exec", node, "crictl", "images"]).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("docker.io/lab-e2e/app"), "{node} lacks the image");
    }
    let reload = lab().arg("load").output().unwrap();
    let reload_text = String::from_utf8(reload.stderr).unwrap();
    assert!(reload.status.success() && reload_text.matches(" had it").count() == 2, "{reload_text}");

    lab().arg("down").assert().success();
    let status = String::from_utf8(lab().arg("status").output().unwrap().stdout).unwrap();
    assert!(status.contains("not up"), "{status}");
    assert!(!dir.path().join(".lab/e2e").exists(), "state left behind");
    assert_eq!(pages(), pages_before, "lab down did not restore the host's hugepages");
}

/// The Mayastor stack on a real kind cluster: pools Online (lab waits for
/// them), then a PVC of the lab's StorageClass gets Bound. Needs a machine
/// that can pull the stack's images, 2 GiB of hugepages and nvme_tcp.
#[tokio::test(flavor = "multi_thread")]
async fn mayastor_stack_deploys_pools_online_and_a_pvc_binds() {
    if std::env::var("LAB_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set LAB_E2E=1 where kind, Docker and internet access exist");
        return;
    }
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{Api, PostParams};

    let dir = tempfile::tempdir().unwrap();
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("manifests/mayastor");
    let scenario = format!(
        "apiVersion: lab/v1alpha1\nkind: Scenario\nmetadata:\n  name: e2e-stack\ncluster:\n  provider: kind\n  nodes:\n    - role: control-plane\n    - role: worker\n      labels: {{openebs.io/engine: mayastor}}\n      hugepages2Mi: 1024\n      ioEngineCoreList: \"1\"\n      pool: {{size: 1GiB}}\nstack:\n  layers:\n    - manifests: {}\nfeatures: {}\nfio:\n  profiles:\n    - {{name: pvc-randread-4k, rw: randread, bs: 4k, iodepth: 16, size: 256M, runtime: 10, ramp_time: 2}}\n  results: results\n",
        manifests.display(),
        manifests.parent().unwrap().parent().unwrap().join("features/mayastor").display()
    );
    std::fs::write(dir.path().join("lab.yaml"), scenario).unwrap();
    let lab = || {
        let mut cmd = Command::cargo_bin("lab").unwrap();
        cmd.current_dir(dir.path());
        cmd
    };
    let _down = Down(dir.path());
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

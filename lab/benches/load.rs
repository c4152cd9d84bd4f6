//! Image loading against kind's algorithm, in one run on this machine, as
//! ratios (these machines are noisy; absolute times mean little).
//!
//! Baseline, as `kind load docker-image` does it: one `docker save` to a
//! file, then `docker exec -i NODE ctr -n k8s.io images import --all-platforms
//! --digests -` per node, in parallel. Against it, `lab`'s streamed load
//! (`lab::load::load_image`), on the same ~200 MB image and 3 node containers
//! running Debian's containerd:
//!   cold:    fresh nodes            target ≤ 1.0× baseline, ≤ 1.3× one node
//!   rebuild: one small layer changed target ≤ 0.3× baseline, bytes ≈ that layer
//!   warm:    unchanged image         target ≤ 2 s, nothing sent
//!
//! Then the same image on a real kind cluster (1 control plane + 1 worker
//! from lab's offline node image): the kind binary's own `kind load
//! docker-image` against `lab`'s load, on the same nodes, cold and after the
//! rebuild (each image removed from the nodes, `ctr images rm --sync`,
//! between the two loaders).
//!
//! Run: `cargo bench --bench load` (needs Docker, busybox-static, containerd,
//! and for the real-kind part kind on PATH and lab.local/kind-node:v1.36.3:
//! `.ci/kind/build`, `.ci/kind/node-image`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use lab::docker::DockerExecShell;
use lab::load::{LayerNames, Node, Outcome, human_bytes, load_image};
use support::FakeCluster;

const IMAGE: &str = "lab-bench-load/app";
const BIG_MIB: usize = 200;

fn docker(args: &[&str]) {
    let out = Process::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn nodes(prefix: &str, count: usize) -> FakeCluster {
    let names: Vec<String> = (0..count).map(|i| format!("lab-bench-{prefix}-{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "worker")).collect();
    FakeCluster::with_containerd(&format!("lab-bench-{prefix}"), &pairs)
}

/// kind's `load docker-image`: save to a file, then import it on every node in parallel.
fn kind_load(image: &str, cluster: &FakeCluster, scratch: &Path) -> Duration {
    let started = Instant::now();
    let tar = scratch.join("image.tar");
    docker(&["save", "-o", &tar.display().to_string(), image]);
    let imports: Vec<_> = cluster
        .containers
        .iter()
        .map(|node| {
            let file = std::fs::File::open(&tar).unwrap();
            Process::new("docker")
                .args([
                    "exec",
                    "-i",
                    node,
                    "ctr",
                    "--namespace=k8s.io",
                    "images",
                    "import",
                    "--all-platforms",
                    "--digests",
                    "-",
                ])
                .stdin(file)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut import in imports {
        assert!(import.wait().unwrap().success(), "kind-style import failed");
    }
    let took = started.elapsed();
    std::fs::remove_file(tar).unwrap();
    took
}

/// `lab`'s load; returns the time and the bytes sent to each node.
fn lab_load(
    runtime: &tokio::runtime::Runtime,
    image: &str,
    containers: &[String],
    names: &mut LayerNames,
) -> (Duration, Vec<u64>) {
    runtime.block_on(async {
        let docker = lab::docker::connect().await.unwrap();
        let nodes: Vec<Node<'_>> = containers
            .iter()
            .map(|n| Node { name: n.clone(), shell: Box::new(DockerExecShell::new(n.clone())) })
            .collect();
        let started = Instant::now();
        let outcomes = load_image(&docker, image, &nodes, names).await.unwrap();
        let took = started.elapsed();
        let sent = outcomes.values().map(|o| if let Outcome::Sent(b) = o { *b } else { 0 }).collect();
        (took, sent)
    })
}

const KIND_CLUSTER: &str = "lab-bench-kind";
const NODE_IMAGE: &str = "lab.local/kind-node:v1.36.3";

/// A real kind cluster, deleted on drop.
struct RealKind {
    nodes: Vec<String>,
}

impl RealKind {
    fn create(scratch: &Path) -> RealKind {
        let image = Process::new("docker").args(["image", "inspect", NODE_IMAGE]).output().unwrap();
        assert!(
            image.status.success(),
            "Docker has no {NODE_IMAGE}: run `bash .ci/kind/node-image` (and `.ci/kind/build`)"
        );
        let indent = |patch: &str| patch.lines().map(|l| format!("  {l}\n")).collect::<String>();
        let config = format!(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  image: {NODE_IMAGE}\n- role: worker\n  image: {NODE_IMAGE}\nkubeadmConfigPatches:\n- |\n{}containerdConfigPatches:\n- |\n{}",
            indent(lab::provider::kind::KUBELET_ON_CGROUP_V1),
            indent(lab::provider::kind::CONTAINERD_WITHOUT_SYS_RESOURCE)
        );
        let file = scratch.join("kind.yaml");
        std::fs::write(&file, config).unwrap();
        let kubeconfig = scratch.join("kubeconfig");
        let cluster =
            RealKind { nodes: vec![format!("{KIND_CLUSTER}-control-plane"), format!("{KIND_CLUSTER}-worker")] };
        let out = Process::new("kind")
            .args(["create", "cluster", "--name", KIND_CLUSTER, "--config"])
            .arg(&file)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .expect("kind is not on PATH: `bash .ci/kind/build` builds it");
        assert!(out.status.success(), "kind create cluster: {}", String::from_utf8_lossy(&out.stderr));
        cluster
    }

    /// The image gone from every node, with its unshared layers: its name,
    /// the `import-<date>@sha256:…` names kind's `--digests` import adds and
    /// the `sha256:<ID>` name containerd's CRI adds.
    fn forget(&self, image: &str) {
        let id = Process::new("docker").args(["image", "inspect", "-f", "{{.Id}}", image]).output().unwrap();
        let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
        for node in &self.nodes {
            let script = format!(
                "ctr -n k8s.io images rm --sync docker.io/{image} {id} $(ctr -n k8s.io images ls -q | grep '^import-')"
            );
            docker(&["exec", node, "sh", "-c", &script]);
        }
    }
}

impl Drop for RealKind {
    fn drop(&mut self) {
        let _ = Process::new("kind").args(["delete", "cluster", "--name", KIND_CLUSTER]).output();
    }
}

/// The kind binary's own load into the real cluster.
fn kind_binary_load(image: &str) -> Duration {
    let started = Instant::now();
    let out = Process::new("kind").args(["load", "docker-image", image, "--name", KIND_CLUSTER]).output().unwrap();
    assert!(out.status.success(), "kind load docker-image: {}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

fn build(dir: &Path, tag: &str) {
    docker(&["build", "-q", "-t", &format!("{IMAGE}:{tag}"), &dir.display().to_string()]);
}

fn ratio(name: &str, value: f64, target: &str) {
    println!("{name:<44} {value:>6.2}   (target {target})");
}

fn main() {
    support::base_image();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let context = scratch.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM lab-test-busybox:2\nCOPY big /big\nCOPY small /small\n").unwrap();
    let status = Process::new("dd")
        .args([
            "if=/dev/urandom",
            &format!("of={}", context.join("big").display()),
            "bs=1M",
            &format!("count={BIG_MIB}"),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(context.join("small"), "version one").unwrap();
    build(&context, "v1");
    let _cleanup = support::Images(vec![format!("{IMAGE}:v1"), format!("{IMAGE}:v2")]);
    let mut names = LayerNames::default();

    println!("image {IMAGE}: {BIG_MIB} MiB layer + busybox base + a small top layer; 3 containerd nodes");
    let kind_nodes = nodes("kind", 3);
    let lab_nodes = nodes("lab", 3);
    let single = nodes("single", 1);

    let kind_cold = kind_load(&format!("{IMAGE}:v1"), &kind_nodes, scratch.path());
    let (lab_cold, cold_sent) = lab_load(&runtime, &format!("{IMAGE}:v1"), &lab_nodes.containers, &mut names);
    let (one_node, _) = lab_load(&runtime, &format!("{IMAGE}:v1"), &single.containers, &mut names);
    drop(single);
    let kind_single = nodes("kind-single", 1);
    let kind_one_node = kind_load(&format!("{IMAGE}:v1"), &kind_single, scratch.path());
    drop(kind_single);

    std::fs::write(context.join("small"), "version two").unwrap();
    build(&context, "v2");
    let kind_rebuild = kind_load(&format!("{IMAGE}:v2"), &kind_nodes, scratch.path());
    let (lab_rebuild, rebuild_sent) = lab_load(&runtime, &format!("{IMAGE}:v2"), &lab_nodes.containers, &mut names);
    let (lab_warm, warm_sent) = lab_load(&runtime, &format!("{IMAGE}:v2"), &lab_nodes.containers, &mut names);

    let secs = |d: Duration| d.as_secs_f64();
    println!();
    println!(
        "times (s): kind cold {:.2}, kind one node {:.2}, lab cold {:.2}, lab one node {:.2}, kind rebuild {:.2}, lab rebuild {:.2}, lab warm {:.2}",
        secs(kind_cold),
        secs(kind_one_node),
        secs(lab_cold),
        secs(one_node),
        secs(kind_rebuild),
        secs(lab_rebuild),
        secs(lab_warm)
    );
    let show = |sent: &[u64]| sent.iter().map(|b| human_bytes(*b)).collect::<Vec<_>>().join(", ");
    println!(
        "bytes sent per node: cold [{}], rebuild [{}], warm [{}]",
        show(&cold_sent),
        show(&rebuild_sent),
        show(&warm_sent)
    );
    println!();
    ratio("cold: lab / kind", secs(lab_cold) / secs(kind_cold), "≤ 1.0");
    ratio("cold: lab 3 nodes / lab 1 node", secs(lab_cold) / secs(one_node), "≤ 1.3");
    ratio("  for scale, kind 3 nodes / kind 1 node", secs(kind_cold) / secs(kind_one_node), "none");
    ratio("rebuild: lab / kind (same rebuilt image)", secs(lab_rebuild) / secs(kind_rebuild), "≤ 0.3");
    ratio("rebuild: lab / kind cold", secs(lab_rebuild) / secs(kind_cold), "≤ 0.3");
    ratio("warm: lab seconds", secs(lab_warm), "≤ 2 s, nothing sent");
    drop((kind_nodes, lab_nodes));

    println!();
    println!("real kind ({KIND_CLUSTER}: 1 control plane + 1 worker from {NODE_IMAGE}), same image, same nodes");
    let real = RealKind::create(scratch.path());
    let mut names = LayerNames::default();
    let v1 = format!("{IMAGE}:v1");
    let v2 = format!("{IMAGE}:v2");
    let kind_cold = kind_binary_load(&v1);
    real.forget(&v1);
    let (lab_cold, cold_sent) = lab_load(&runtime, &v1, &real.nodes, &mut names);
    let kind_rebuild = kind_binary_load(&v2);
    real.forget(&v2);
    let (lab_rebuild, rebuild_sent) = lab_load(&runtime, &v2, &real.nodes, &mut names);
    println!(
        "times (s): kind load docker-image cold {:.2}, lab cold {:.2}, kind load docker-image rebuild {:.2}, lab rebuild {:.2}; lab sent [{}] cold, [{}] after the rebuild",
        secs(kind_cold),
        secs(lab_cold),
        secs(kind_rebuild),
        secs(lab_rebuild),
        show(&cold_sent),
        show(&rebuild_sent)
    );
    ratio("real kind, cold: lab / kind load docker-image", secs(lab_cold) / secs(kind_cold), "≤ 1.0");
    ratio("real kind, rebuild: lab / kind load docker-image", secs(lab_rebuild) / secs(kind_rebuild), "≤ 0.3");
    drop(real);
}

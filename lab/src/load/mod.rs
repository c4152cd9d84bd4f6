//! Loading built images into the nodes' containerd, as `kind load` does but
//! streamed, concurrent, and sending each node only what it lacks: a node
//! that has the image ID is skipped, one that has it under another name is
//! retagged, the rest get the layers missing from their content store.

pub mod preflight;
pub mod registry;
pub mod stream;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures_util::future::join_all;
use indicatif::ProgressBar;

use crate::build::Build;
use crate::plan::{Context, Detail, Target, View, Work};
use crate::shell::Cmd;
pub use stream::LayerNames;
use stream::{ImageFacts, Receiver};

/// Kubernetes' images live in containerd's `k8s.io` namespace.
const NAMESPACE: &str = "k8s.io";

fn ctr() -> Cmd {
    Cmd::new("ctr").arg("-n").arg(NAMESPACE)
}

/// The import a node runs, reading an OCI archive on stdin.
pub fn import_command() -> Cmd {
    ctr().args(["images", "import", "-"])
}

/// The name containerd and the kubelet use for a Docker reference:
/// `busybox:1` is `docker.io/library/busybox:1`.
pub fn containerd_ref(reference: &str) -> String {
    let (first, rest) = reference.split_once('/').unwrap_or(("", reference));
    if first.is_empty() {
        return format!("docker.io/library/{rest}");
    }
    if first.contains('.') || first.contains(':') || first == "localhost" {
        reference.to_string()
    } else {
        format!("docker.io/{reference}")
    }
}

/// What a node's containerd holds: image names → manifest digests, and blobs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub images: BTreeMap<String, String>,
    pub blobs: HashSet<String>,
}

const INVENTORY_SEPARATOR: &str = "--- lab: blobs ---";

/// One command lists both, so each node costs one round trip.
pub fn inventory_command() -> Cmd {
    Cmd::sh(format!("ctr -n {NAMESPACE} images ls && echo '{INVENTORY_SEPARATOR}' && ctr -n {NAMESPACE} content ls -q"))
}

pub fn parse_inventory(output: &str) -> Inventory {
    let (images, blobs) = output.split_once(INVENTORY_SEPARATOR).unwrap_or((output, ""));
    let images = images
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, _kind, digest) = (words.next()?, words.next()?, words.next()?);
            Some((name.to_string(), digest.to_string()))
        })
        .collect();
    let blobs = blobs.lines().map(str::trim).filter(|l| l.starts_with("sha256:")).map(str::to_string).collect();
    Inventory { images, blobs }
}

/// What a node needs for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The name already points at the image ID.
    Nothing,
    /// The image ID is there under another name: tag it.
    Retag { from: String },
    /// Send what is missing.
    Import,
}

/// Decide from the inventory. The CRI plugin names every image by its ID
/// (`sha256:<config digest>`), which is how the ID is found without crictl.
pub fn decide(inventory: &Inventory, name: &str, id: &str) -> Need {
    let Some(id_manifest) = inventory.images.get(id) else { return Need::Import };
    if inventory.images.get(name) == Some(id_manifest) {
        return Need::Nothing;
    }
    let from = inventory
        .images
        .iter()
        .find(|(other, digest)| *digest == id_manifest && !other.starts_with("sha256:"))
        .map(|(other, _)| other.clone())
        .unwrap_or_else(|| id.to_string());
    Need::Retag { from }
}

/// Images to put into the nodes: a component's, or ones the scenario preloads
/// from the local Docker (images the stack or tests use that nodes cannot pull).
#[derive(Debug)]
pub enum ImageSource {
    Built(Arc<Build>),
    Preloaded(Vec<String>),
}

impl ImageSource {
    /// The Docker references, tags included.
    pub fn refs(&self) -> anyhow::Result<Vec<String>> {
        match self {
            ImageSource::Built(build) => build.refs(),
            ImageSource::Preloaded(refs) => Ok(refs.clone()),
        }
    }

    /// As a plan shows them, without fixing a tag before its build.
    pub fn refs_for_plan(&self) -> Vec<String> {
        match self {
            ImageSource::Built(build) => build.refs_for_plan(),
            ImageSource::Preloaded(refs) => refs.clone(),
        }
    }

    /// For messages: "component io-engine", "preloaded images".
    pub fn label(&self) -> String {
        match self {
            ImageSource::Built(build) => format!("component {}", build.name()),
            ImageSource::Preloaded(_) => "preloaded images".into(),
        }
    }

    /// What to do when Docker lacks one of them.
    fn fix(&self, reference: &str) -> String {
        match self {
            ImageSource::Built(_) => "build it first (`lab build`)".into(),
            ImageSource::Preloaded(_) => {
                format!("pull it where a registry is reachable (`docker pull {reference}`), or `docker load` it")
            }
        }
    }
}

/// What `--dry-run` shows for loading images.
pub fn details(images: &ImageSource) -> Vec<Detail> {
    let refs = images.refs_for_plan().join(", ");
    vec![
        Detail::Note(format!("images: {refs}")),
        Detail::Run { cmd: inventory_command(), when: Some("on every node: what it already has") },
        Detail::Run {
            cmd: ctr().args(["images", "tag", "--force", "<name with the same ID>", "<image>"]),
            when: Some("where the ID is there under another name"),
        },
        Detail::Note(format!(
            "docker save <image> → OCI layout with only the missing layers → `{}` on every other node at once",
            import_command()
        )),
    ]
}

/// A node to load into: its name and a shell on it.
pub use crate::plan::Node;

#[async_trait::async_trait(?Send)]
impl Work for ImageSource {
    fn describe(&self, view: &View<'_>) -> String {
        view.details(&Target::Host, &details(self))
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let nodes = ctx.running_nodes().await?;
        Ok(Some(load(self, &nodes, ctx.spinner).await?))
    }
}

/// What happened on one node for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Present,
    Retagged,
    Sent(u64),
}

/// Load images into every node; returns the line for the step.
pub async fn load(images: &ImageSource, nodes: &[Node<'_>], spinner: Option<&ProgressBar>) -> anyhow::Result<String> {
    let label = images.label();
    if nodes.is_empty() {
        bail!("{label}: there are no running nodes to load into; is the lab up (`lab status`)?");
    }
    let docker = crate::docker::connect().await.with_context(|| label.clone())?;
    let mut names = LayerNames::load(crate::state::cache_root().join("docker-layer-digests.json"));
    let mut lines = Vec::new();
    for reference in images.refs()? {
        if let Some(spinner) = spinner {
            spinner.set_message(format!("loading {reference}"));
        }
        let outcomes = match load_image(&docker, &reference, nodes, &mut names).await {
            Err(e) if e.is::<NotInDocker>() => bail!("{label}: {e}: {}", images.fix(&reference)),
            other => other.with_context(|| format!("{label}: loading {reference}"))?,
        };
        lines.push(format!("{reference}: {}", describe(&outcomes)));
    }
    names.save();
    Ok(lines.join("; "))
}

fn describe(outcomes: &BTreeMap<String, Outcome>) -> String {
    let parts: Vec<String> = outcomes
        .iter()
        .map(|(node, outcome)| match outcome {
            Outcome::Present => format!("{node} had it"),
            Outcome::Retagged => format!("{node} retagged"),
            Outcome::Sent(bytes) => format!("{node} {} sent", human_bytes(*bytes)),
        })
        .collect();
    parts.join(", ")
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The local Docker lacks an image (the caller knows the fix).
#[derive(Debug, thiserror::Error)]
#[error("Docker has no image {0}")]
pub struct NotInDocker(String);

/// Docker's facts about an image.
pub async fn image_facts(docker: &bollard::Docker, reference: &str) -> anyhow::Result<ImageFacts> {
    let inspect = match docker.inspect_image(reference).await {
        Ok(inspect) => inspect,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            return Err(NotInDocker(reference.to_string()).into());
        }
        Err(e) => return Err(e).with_context(|| format!("inspecting {reference}")),
    };
    Ok(ImageFacts {
        containerd_ref: containerd_ref(reference),
        id: inspect.id.unwrap_or_default(),
        diff_ids: inspect.root_fs.and_then(|r| r.layers).unwrap_or_default(),
        architecture: inspect.architecture.unwrap_or_else(|| "amd64".into()),
        os: inspect.os.unwrap_or_else(|| "linux".into()),
    })
}

pub(crate) async fn inventory(node: &Node<'_>) -> anyhow::Result<Inventory> {
    let output = node.shell.run(&inventory_command()).await?;
    Ok(parse_inventory(&output.stdout))
}

/// One image into every node: inventory, then retag or stream, then verify.
pub async fn load_image(
    docker: &bollard::Docker,
    reference: &str,
    nodes: &[Node<'_>],
    names: &mut LayerNames,
) -> anyhow::Result<BTreeMap<String, Outcome>> {
    let image = image_facts(docker, reference).await?;
    let inventories = join_all(nodes.iter().map(inventory)).await;
    let mut outcomes = BTreeMap::new();
    let mut failures = Vec::new();
    let mut to_import = Vec::new();
    for (node, inventory) in nodes.iter().zip(inventories) {
        let inventory = match inventory {
            Ok(inventory) => inventory,
            Err(e) => {
                failures.push(format!("{e:#}"));
                continue;
            }
        };
        match decide(&inventory, &image.containerd_ref, &image.id) {
            Need::Nothing => {
                outcomes.insert(node.name.clone(), Outcome::Present);
            }
            Need::Retag { from } => {
                let tag = ctr().args(["images", "tag", "--force", &from, &image.containerd_ref]);
                match node.shell.run(&tag).await {
                    Ok(_) => {
                        outcomes.insert(node.name.clone(), Outcome::Retagged);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            Need::Import => to_import.push((node, inventory.blobs)),
        }
    }
    if !to_import.is_empty() {
        let mut receivers = Vec::new();
        let mut imports = Vec::new();
        for (node, has) in to_import {
            // Up to 32 MiB in flight per node: a node that pauses briefly does
            // not hold the others back, and memory stays bounded.
            let (tx, rx) = tokio::sync::mpsc::channel(32);
            receivers.push(Receiver { node: node.name.clone(), has, tx });
            imports.push(async move { (node, node.shell.exec_streamed(&import_command(), rx).await) });
        }
        let export = docker.export_image(reference);
        let (sent, results) = tokio::join!(stream::fan_out(export, &image, receivers, names), join_all(imports));
        // An import that failed says why better than the stream that lost its reader.
        let mut import_failed = false;
        for (node, result) in results {
            match result {
                Ok(output) if output.success() => {
                    let bytes = sent.as_ref().ok().and_then(|s| s.get(&node.name).copied().flatten()).unwrap_or(0);
                    outcomes.insert(node.name.clone(), Outcome::Sent(bytes));
                }
                Ok(output) => {
                    import_failed = true;
                    failures.push(
                        crate::shell::RunError::Failed {
                            place: node.shell.place(),
                            command: node.shell.display(&import_command()),
                            output,
                        }
                        .to_string(),
                    );
                }
                Err(e) => {
                    import_failed = true;
                    failures.push(e.to_string());
                }
            }
        }
        if let Err(e) = sent
            && !import_failed
        {
            return Err(e);
        }
    }
    // Trust nothing reported: each node that changed must now show the name at the ID.
    let changed: Vec<&Node<'_>> =
        nodes.iter().filter(|n| matches!(outcomes.get(&n.name), Some(o) if *o != Outcome::Present)).collect();
    let checks = join_all(changed.iter().map(|n| inventory(n))).await;
    for (node, check) in changed.into_iter().zip(checks) {
        let fine = matches!(&check, Ok(inv) if decide(inv, &image.containerd_ref, &image.id) == Need::Nothing);
        if !fine {
            outcomes.remove(&node.name);
            failures.push(format!(
                "node {}: after the load, containerd does not show {} as {}{}",
                node.name,
                image.containerd_ref,
                image.id,
                check.err().map(|e| format!(" ({e:#})")).unwrap_or_default()
            ));
        }
    }
    if !failures.is_empty() {
        let done = if outcomes.is_empty() { "none".to_string() } else { describe(&outcomes) };
        bail!("{}\nloaded: {done}", failures.join("\n"));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_named_as_containerd_names_them() {
        let cases = [
            ("busybox:1", "docker.io/library/busybox:1"),
            ("openebs/mayastor-io-engine:lab-1", "docker.io/openebs/mayastor-io-engine:lab-1"),
            ("localhost:5001/app:t", "localhost:5001/app:t"),
            ("ghcr.io/x/y:t", "ghcr.io/x/y:t"),
        ];
        for (docker, containerd) in cases {
            assert_eq!(containerd_ref(docker), containerd);
        }
    }

    const LISTING: &str = "REF                          TYPE                                                 DIGEST   SIZE    PLATFORMS   LABELS
docker.io/library/app:old    application/vnd.oci.image.manifest.v1+json sha256:m1 1.9 MiB linux/amd64 io.cri-containerd.image=managed
sha256:id1                   application/vnd.oci.image.manifest.v1+json sha256:m1 1.9 MiB linux/amd64 io.cri-containerd.image=managed
docker.io/library/app:new    application/vnd.oci.image.manifest.v1+json sha256:m2 1.9 MiB linux/amd64 io.cri-containerd.image=managed
--- lab: blobs ---
sha256:m1
sha256:l1
";

    #[test]
    fn the_inventory_reads_names_digests_and_blobs() {
        let inventory = parse_inventory(LISTING);
        assert_eq!(inventory.images["docker.io/library/app:old"], "sha256:m1");
        assert_eq!(inventory.images.len(), 3);
        assert_eq!(inventory.blobs, ["sha256:m1".to_string(), "sha256:l1".to_string()].into());
    }

    #[test]
    fn a_node_with_the_id_is_skipped_or_retagged_and_others_import() {
        let inventory = parse_inventory(LISTING);
        assert_eq!(decide(&inventory, "docker.io/library/app:old", "sha256:id1"), Need::Nothing);
        assert_eq!(
            decide(&inventory, "docker.io/library/app:lab-2", "sha256:id1"),
            Need::Retag { from: "docker.io/library/app:old".into() }
        );
        // The name exists but points at another image: the ID decides.
        assert_eq!(decide(&inventory, "docker.io/library/app:new", "sha256:id2"), Need::Import);
        assert_eq!(decide(&Inventory::default(), "docker.io/library/app:new", "sha256:id1"), Need::Import);
    }
}

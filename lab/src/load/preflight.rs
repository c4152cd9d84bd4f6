//! Image preflight: every image the lab will reference is either on every
//! node already or pullable, checked before anything is deployed, so a pod
//! never sits in ImagePullBackOff for an image nobody can fetch. Missing ones
//! are listed with what to do.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use super::{Inventory, containerd_ref, inventory};
use crate::plan::{Context, Node, View, Work};

/// Where an image the lab references comes from, which decides the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built by lab from a component.
    Component(String),
    /// Listed under `images.preload`.
    Preload,
    /// Referenced by the deployed stack: the containers that run it.
    Stack(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The name as the nodes will ask for it (after tag rewriting).
    pub reference: String,
    pub origin: Origin,
    /// Whether the local Docker has it (under this name, or before a registry prefix).
    pub in_docker: bool,
    /// Every container that runs it says `imagePullPolicy: Never`: no registry is asked.
    pub never_pulled: bool,
}

/// An image of the stack that lab does not build, with the containers that run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackImage {
    pub reference: String,
    pub users: Vec<String>,
    pub never_pulled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    OnEveryNode,
    /// Not on every node, but the registry answers for it: the kubelet will pull it.
    Pullable,
    Missing {
        nodes: Vec<String>,
        why: String,
        fix: String,
    },
}

/// Judge one image from the nodes' inventories and the registry's answer
/// (`None` when offline).
pub fn judge(
    wanted: &Wanted,
    inventories: &BTreeMap<String, Inventory>,
    pullable: Option<Result<(), String>>,
) -> Verdict {
    let name = containerd_ref(&wanted.reference);
    let without: Vec<String> =
        inventories.iter().filter(|(_, inv)| !inv.images.contains_key(&name)).map(|(node, _)| node.clone()).collect();
    if without.is_empty() {
        return Verdict::OnEveryNode;
    }
    let why = match pullable {
        Some(Ok(())) => return Verdict::Pullable,
        Some(Err(e)) => format!("not pullable: {e}"),
        None if wanted.never_pulled => "never pulled (imagePullPolicy: Never)".to_string(),
        None => "not checked for pulling (--offline)".to_string(),
    };
    let fix = match (&wanted.origin, wanted.in_docker) {
        (Origin::Component(_), true) => "`lab load`".to_string(),
        (Origin::Component(_), false) => "`lab build`, then `lab load`".to_string(),
        (Origin::Preload, true) => "`lab load`".to_string(),
        (Origin::Preload, false) => format!(
            "`docker pull {}` where a registry is reachable (or `docker load` it), then `lab load`",
            wanted.reference
        ),
        (Origin::Stack(_), true) => format!("add `{}` to `images.preload`, then `lab load`", wanted.reference),
        (Origin::Stack(_), false) => format!(
            "`docker pull {}` (or `docker load` it), add it to `images.preload`, then `lab load`",
            wanted.reference
        ),
    };
    Verdict::Missing { nodes: without, why, fix }
}

/// Fails unless every image the lab references is on every node or pullable.
#[derive(Debug)]
pub struct ImagePreflight {
    pub builds: Vec<std::sync::Arc<crate::build::Build>>,
    pub registry: Option<std::sync::Arc<super::registry::Registry>>,
    pub preload: Vec<String>,
    /// The stack's images other than lab's builds.
    pub stack: Vec<StackImage>,
}

#[async_trait::async_trait(?Send)]
impl Work for ImagePreflight {
    fn describe(&self, _view: &View<'_>) -> String {
        "checks each image is on every node (ctr images ls) or pullable (Docker asks its registry); `lab images` shows the same".to_string()
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let docker = crate::docker::connect().await?;
        let wanted = wanted(&docker, &self.builds, self.registry.as_deref(), &self.preload, &self.stack).await?;
        let nodes = ctx.running_nodes().await?;
        let verdicts = check(&docker, &wanted, &nodes, false).await?;
        let missing = verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Missing { .. })).count();
        if missing > 0 {
            anyhow::bail!(
                "{missing} image(s) the lab references cannot reach the nodes:\n{}",
                render(&verdicts).trim_end()
            );
        }
        Ok(Some(format!("all {} image(s) on every node or pullable", verdicts.len())))
    }
}

/// Every image the lab references: the components' (as the nodes will name
/// them, through the registry in registry mode), the preloaded ones, and the
/// rest of what the stack's workloads run (`stack`, after tag rewriting).
pub async fn wanted(
    docker: &bollard::Docker,
    builds: &[std::sync::Arc<crate::build::Build>],
    registry: Option<&super::registry::Registry>,
    preload: &[String],
    stack: &[StackImage],
) -> anyhow::Result<Vec<Wanted>> {
    let mut out = Vec::new();
    for build in builds {
        for reference in build.refs()? {
            let in_docker = crate::build::missing_images(docker, std::slice::from_ref(&reference)).await?.is_empty();
            let reference = registry.map(|r| r.name_of(&reference)).unwrap_or(reference);
            let origin = Origin::Component(build.name().to_string());
            out.push(Wanted { reference, origin, in_docker, never_pulled: false });
        }
    }
    for reference in preload {
        let in_docker = crate::build::missing_images(docker, std::slice::from_ref(reference)).await?.is_empty();
        out.push(Wanted { reference: reference.clone(), origin: Origin::Preload, in_docker, never_pulled: false });
    }
    for image in stack {
        let known = out.iter().any(|w| containerd_ref(&w.reference) == containerd_ref(&image.reference));
        if !known {
            let in_docker =
                crate::build::missing_images(docker, std::slice::from_ref(&image.reference)).await?.is_empty();
            out.push(Wanted {
                reference: image.reference.clone(),
                origin: Origin::Stack(image.users.clone()),
                in_docker,
                never_pulled: image.never_pulled,
            });
        }
    }
    Ok(out)
}

/// Check every wanted image against every node and, unless offline, the registry.
pub async fn check(
    docker: &bollard::Docker,
    wanted: &[Wanted],
    nodes: &[Node<'_>],
    offline: bool,
) -> anyhow::Result<Vec<(Wanted, Verdict)>> {
    let found = join_all(nodes.iter().map(inventory)).await;
    let mut inventories = BTreeMap::new();
    for (node, inventory) in nodes.iter().zip(found) {
        inventories.insert(node.name.clone(), inventory?);
    }
    let mut verdicts = Vec::new();
    for item in wanted {
        let on_every_node = judge(item, &inventories, None) == Verdict::OnEveryNode;
        let pullable = if on_every_node || offline || item.never_pulled {
            None
        } else {
            // The daemon asks the registry for the manifest, with its own proxy and credentials.
            Some(docker.inspect_registry_image(&item.reference, None).await.map(drop).map_err(|e| short(&e)))
        };
        verdicts.push((item.clone(), judge(item, &inventories, pullable)));
    }
    Ok(verdicts)
}

fn short(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The report: one line per image; missing ones with nodes, reason and fix.
pub fn render(verdicts: &[(Wanted, Verdict)]) -> String {
    let mut out = String::new();
    for (wanted, verdict) in verdicts {
        let from = match &wanted.origin {
            Origin::Component(name) => format!("component {name}"),
            Origin::Preload => "images.preload".into(),
            Origin::Stack(users) => users.join("; "),
        };
        match verdict {
            Verdict::OnEveryNode => out.push_str(&format!("✓ {} ({from}): on every node\n", wanted.reference)),
            Verdict::Pullable => out.push_str(&format!("✓ {} ({from}): pullable\n", wanted.reference)),
            Verdict::Missing { nodes, why, fix } => out.push_str(&format!(
                "✗ {} ({from}): missing on {}; {why}\n    → {fix}\n",
                wanted.reference,
                nodes.join(", ")
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventories(with: &[(&str, &[&str])]) -> BTreeMap<String, Inventory> {
        with.iter()
            .map(|(node, images)| {
                let images = images.iter().map(|i| (i.to_string(), "sha256:m".to_string())).collect();
                (node.to_string(), Inventory { images, ..Inventory::default() })
            })
            .collect()
    }

    #[test]
    fn an_image_on_every_node_or_pullable_passes_and_others_get_their_fix() {
        let nodes = inventories(&[("w1", &["docker.io/library/alpine-sh:4.1.0"]), ("w2", &[])]);
        let wanted =
            |origin, in_docker| Wanted { reference: "alpine-sh:4.1.0".into(), origin, in_docker, never_pulled: false };
        let everywhere = inventories(&[("w1", &["docker.io/library/alpine-sh:4.1.0"])]);
        assert_eq!(judge(&wanted(Origin::Stack(vec![]), false), &everywhere, None), Verdict::OnEveryNode);
        assert_eq!(judge(&wanted(Origin::Stack(vec![]), false), &nodes, Some(Ok(()))), Verdict::Pullable);
        let Verdict::Missing { nodes: without, why, fix } =
            judge(&wanted(Origin::Stack(vec![]), true), &nodes, Some(Err("no such host".into())))
        else {
            panic!("judged present");
        };
        assert_eq!(without, ["w2"]);
        assert_eq!(why, "not pullable: no such host");
        assert_eq!(fix, "add `alpine-sh:4.1.0` to `images.preload`, then `lab load`");
        // Nothing asks a registry for an image no pod may pull.
        let never = Wanted { never_pulled: true, ..wanted(Origin::Stack(vec!["container c of Pod p".into()]), false) };
        let Verdict::Missing { why, .. } = judge(&never, &nodes, None) else { panic!("judged present") };
        assert_eq!(why, "never pulled (imagePullPolicy: Never)");
        let Verdict::Missing { fix, why, .. } = judge(&wanted(Origin::Component("x".into()), false), &nodes, None)
        else {
            panic!("judged present");
        };
        assert_eq!(
            (fix.as_str(), why.as_str()),
            ("`lab build`, then `lab load`", "not checked for pulling (--offline)")
        );
    }
}

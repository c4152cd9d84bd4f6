//! Registry mode, kind's local-registry recipe: a registry (started by lab
//! or named by the user) that images are pushed to, so a rebuilt image only
//! moves its changed layers; the nodes' containerd is pointed at it with a
//! `certs.d` hosts file, and the cluster advertises it (KEP-1755).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bollard::query_parameters::{PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt as _;
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

use crate::build::Build;
use crate::plan::{Context, Step, Target, View, Work};
use crate::scenario::{RegistryOptions, Scenario};
use crate::shell::{Cmd, quote};

/// Where containerd looks for per-registry hosts files (`config_path`).
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";

/// The containerd setting that makes the CRI plugin read [`CERTS_DIR`]; kind
/// applies it to every node's config at creation.
pub const CONTAINERD_PATCH: &str =
    "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";

/// The network kind puts its nodes on.
const KIND_NETWORK: &str = "kind";

#[derive(Clone, Debug)]
pub struct Registry {
    /// `host:port` for pushes and in image names.
    pub address: String,
    /// The URL the nodes pull from.
    pub endpoint: String,
    /// The container lab starts, with its image; `None` for a registry the user runs.
    pub container: Option<(String, String)>,
}

impl Registry {
    /// The scenario's registry, when it loads through one.
    pub fn of(scenario: &Scenario) -> Option<Registry> {
        if scenario.images.load != crate::scenario::LoadMode::Registry {
            return None;
        }
        let options = scenario.images.registry.clone().unwrap_or_default();
        Some(Registry::new(&scenario.cluster_name(), &options))
    }

    pub fn new(cluster: &str, options: &RegistryOptions) -> Registry {
        let container = options.start.then(|| (format!("{cluster}-registry"), options.image.clone()));
        let endpoint = match (&options.endpoint, &container) {
            (Some(endpoint), _) => endpoint.clone(),
            // On kind's network the nodes reach the container by name, on the registry's own port.
            (None, Some((name, _))) => format!("http://{name}:5000"),
            (None, None) => format!("http://{}", options.address),
        };
        Registry { address: options.address.clone(), endpoint, container }
    }

    /// `localhost:5001/openebs/io-engine:lab-…` for `openebs/io-engine:lab-…`.
    pub fn name_of(&self, reference: &str) -> String {
        format!("{}/{reference}", self.address)
    }

    fn port(&self) -> &str {
        self.address.rsplit_once(':').map(|(_, port)| port).unwrap_or("5001")
    }

    /// Start the registry container unless it runs; pushes reach it on 127.0.0.1 only.
    pub fn start_step(&self) -> Option<Step> {
        let (name, image) = self.container.as_ref()?;
        let (name_q, image_q) = (quote(name), quote(image));
        let script = format!(
            "docker inspect --type container {name_q} >/dev/null 2>&1 || docker run -d --restart=always --name {name_q} -p 127.0.0.1:{}:5000 {image_q}",
            self.port()
        );
        Some(Step::run(format!("start registry {name} on 127.0.0.1:{}", self.port()), Target::Host, Cmd::sh(script)))
    }

    /// Put the registry container on kind's network, where the nodes are.
    pub fn connect_step(&self) -> Option<Step> {
        let (name, _) = self.container.as_ref()?;
        let name_q = quote(name);
        let script = format!(
            "docker inspect -f '{{{{json .NetworkSettings.Networks}}}}' {name_q} | grep -q '\"{KIND_NETWORK}\"' || docker network connect {KIND_NETWORK} {name_q}"
        );
        Some(Step::run(format!("connect registry {name} to the {KIND_NETWORK} network"), Target::Host, Cmd::sh(script)))
    }

    pub fn stop_step(&self) -> Option<Step> {
        let (name, _) = self.container.as_ref()?;
        let script = format!("docker rm -f {} >/dev/null 2>&1 || true", quote(name));
        Some(Step::run(format!("remove registry {name}"), Target::Host, Cmd::sh(script)))
    }

    /// The containerd hosts file that sends pulls of `address` to the endpoint.
    pub fn hosts_toml(&self) -> String {
        format!(
            "server = \"{endpoint}\"\n\n[host.\"{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            endpoint = self.endpoint
        )
    }

    /// Write the hosts file on a node (idempotent), recording what the file
    /// held first: `lab down` puts it back on a node that outlives the lab.
    pub fn node_step(&self, node: &str) -> Step {
        Step::work(
            format!("point {node}'s containerd at registry {}", self.address),
            PointNode {
                node: node.into(),
                path: format!("{CERTS_DIR}/{}/hosts.toml", self.address),
                text: self.hosts_toml(),
            },
        )
    }

    /// The KEP-1755 ConfigMap that tells tools (Tilt, Skaffold) where to push.
    pub fn hosting_config_map(&self) -> ConfigMap {
        let hosting =
            format!("host: \"{}\"\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n", self.address);
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("local-registry-hosting".into()),
                namespace: Some("kube-public".into()),
                labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".into(), "lab".into())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("localRegistryHosting.v1".into(), hosting)])),
            ..Default::default()
        }
    }

    /// A step that pushes a component's images here.
    pub fn push_step(self: &Arc<Registry>, build: &Arc<Build>) -> Step {
        Step::work(
            format!("push component {} to registry {}", build.name(), self.address),
            Push { build: build.clone(), registry: self.clone() },
        )
    }
}

/// A node's containerd pointed at the registry through its hosts file.
#[derive(Debug)]
struct PointNode {
    node: String,
    path: String,
    text: String,
}

#[async_trait::async_trait(?Send)]
impl Work for PointNode {
    fn describe(&self, view: &View<'_>) -> String {
        let dir = self.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        let cmd =
            Cmd::sh(format!("mkdir -p {} && printf '%s' {} > {}", quote(dir), quote(&self.text), quote(&self.path)));
        format!(
            "$ {}\n     (what {} held is recorded first; `lab down` puts it back)",
            view.command(&Target::Node(self.node.clone()), &cmd),
            self.path
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let on = Target::Node(self.node.clone());
        let shell = ctx.shell(&on);
        let log = crate::prepare::UndoLog::new(ctx.state.changes());
        let record = crate::prepare::undo::Recorder { log: &log, on };
        let changed = crate::prepare::write_if_different(&shell, &self.path, &self.text, &record).await?;
        Ok(Some(if changed { format!("wrote {}", self.path) } else { format!("{} already says so", self.path) }))
    }
}

/// Push a component's images to the lab's registry.
#[derive(Debug)]
struct Push {
    build: Arc<Build>,
    registry: Arc<Registry>,
}

#[async_trait::async_trait(?Send)]
impl Work for Push {
    fn describe(&self, _view: &View<'_>) -> String {
        let lines: Vec<String> = self
            .build
            .refs_for_plan()
            .iter()
            .map(|image| {
                let target = quote(&self.registry.name_of(image));
                format!("$ docker tag {} {target} && docker push {target}", quote(image))
            })
            .collect();
        lines.join("\n     ")
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        Ok(Some(push(&self.build, &self.registry, ctx.spinner).await?))
    }
}

/// Push a component's images to the registry; the registry keeps the layers
/// it has, so only changed ones move.
pub async fn push(build: &Build, registry: &Registry, spinner: Option<&ProgressBar>) -> anyhow::Result<String> {
    let docker = crate::docker::connect().await.with_context(|| format!("component {}", build.name()))?;
    let mut lines = Vec::new();
    for reference in build.refs()? {
        if crate::build::missing_images(&docker, std::slice::from_ref(&reference)).await?.len() == 1 {
            bail!("component {}: Docker has no image {reference}: build it first (`lab build`)", build.name());
        }
        let target = registry.name_of(&reference);
        let (repo, tag) = target.rsplit_once(':').unwrap_or((&target, "latest"));
        docker
            .tag_image(&reference, Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()))
            .await
            .with_context(|| format!("tagging {reference} as {target}"))?;
        let mut stream = docker.push_image(repo, Some(PushImageOptionsBuilder::new().tag(tag).build()), None);
        let (mut pushed, mut present) = (0, 0);
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("component {}: pushing {target}", build.name()))?;
            if let Some(detail) = info.error_detail {
                bail!(
                    "component {}: pushing {target} failed: {}; is the registry at {} running?",
                    build.name(),
                    detail.message.unwrap_or_default(),
                    registry.address
                );
            }
            match info.status.as_deref() {
                Some("Pushed") => pushed += 1,
                Some("Layer already exists") => present += 1,
                Some(status) => {
                    if let Some(spinner) = spinner {
                        spinner.set_message(format!("pushing {target}: {status}"));
                    }
                }
                None => {}
            }
        }
        // The registry's name was needed for the push alone: untag it, so
        // Docker keeps lab's build under its own name only.
        docker
            .remove_image(&target, Some(RemoveImageOptionsBuilder::new().noprune(true).build()), None)
            .await
            .with_context(|| format!("untagging {target} after the push"))?;
        lines.push(format!("{target}: {pushed} layer(s) pushed, {present} already there"));
    }
    Ok(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_registry_is_reached_by_name_on_kinds_network_and_a_named_one_at_its_address() {
        let started = Registry::new("lab-q", &RegistryOptions::default());
        assert_eq!(started.endpoint, "http://lab-q-registry:5000");
        assert_eq!(started.name_of("openebs/x:lab-1"), "localhost:5001/openebs/x:lab-1");
        assert!(started.hosts_toml().contains("[host.\"http://lab-q-registry:5000\"]"));
        let named = Registry::new(
            "lab-q",
            &RegistryOptions { address: "127.0.0.1:5002".into(), start: false, ..RegistryOptions::default() },
        );
        assert_eq!(named.endpoint, "http://127.0.0.1:5002");
        assert!(named.start_step().is_none() && named.stop_step().is_none());
    }

    #[test]
    fn the_hosting_config_map_is_a_valid_kubernetes_object() {
        let registry = Registry::new("lab-q", &RegistryOptions::default());
        let json = serde_json::to_value(registry.hosting_config_map()).unwrap();
        // Round trip through the typed API: nothing lab writes is dropped.
        let back: ConfigMap = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), json);
        assert_eq!(json["metadata"]["namespace"], "kube-public");
        assert!(json["data"]["localRegistryHosting.v1"].as_str().unwrap().starts_with("host: \"localhost:5001\""));
    }
}

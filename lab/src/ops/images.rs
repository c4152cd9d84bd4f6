//! `lab build` and `lab load`: components built from their checkouts and
//! loaded into the nodes, and the report of which image each node holds.

use super::deploy::registry_hosting_object;
use crate::load::registry::Registry;
use crate::plan::{self, Action, Plan, Step};
use crate::{Lab, build, docker, load, stack};

impl Lab {
    /// `lab build`: every component, or the one named.
    pub fn build_plan(&self, component: Option<&str>) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, component)?;
        let mut steps = vec![self.make_state_dir()];
        steps.extend(plan::in_phase(build::steps(&builds), plan::Phase::Build));
        Ok(Plan { title: format!("lab build: {}", self.describe()), steps })
    }

    /// `lab load`: the images already built, into the nodes that are up.
    pub fn load_plan(&self, component: Option<&str>) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, component)?;
        if !self.provider.capabilities().cluster {
            anyhow::bail!(
                "scenario {} runs on the host alone: there are no nodes to load images into",
                self.scenario.name()
            );
        }
        let names = self.scenario.planned_nodes().into_iter().map(|n| n.name).collect();
        let mut steps = vec![Step::new("find the lab's nodes", Action::ExpectNodes { names })];
        steps.extend(Registry::of(&self.scenario).as_ref().and_then(Registry::start_step));
        steps.extend(self.load_steps(&builds, false));
        Ok(Plan { title: format!("lab load: {}", self.describe()), steps })
    }

    /// Every image the lab references must reach the nodes before anything is deployed.
    pub(crate) fn preflight_step(
        &self,
        builds: &[std::sync::Arc<build::Build>],
        stack: &[stack::manifest::Object],
    ) -> Option<Step> {
        let stack = self.stack_images(builds, stack);
        // A stack without images (RBAC, classes, config) asks nothing of the nodes.
        let nothing = builds.is_empty() && self.scenario.images.preload.is_empty() && stack.is_empty();
        if nothing || !self.provider.capabilities().cluster {
            return None;
        }
        Some(Step::work(
            "check every image the lab references reaches the nodes",
            load::preflight::ImagePreflight {
                builds: builds.to_vec(),
                registry: Registry::of(&self.scenario).map(std::sync::Arc::new),
                preload: self.scenario.images.preload.clone(),
                stack,
            },
        ))
    }

    /// The images the stack runs that lab does not build, with their containers.
    pub(crate) fn stack_images(
        &self,
        builds: &[std::sync::Arc<build::Build>],
        stack: &[stack::manifest::Object],
    ) -> Vec<load::preflight::StackImage> {
        let built: Vec<String> = builds.iter().flat_map(|b| b.component.image.names()).collect();
        let mut out: Vec<load::preflight::StackImage> = Vec::new();
        for used in stack::image::uses(stack) {
            if built.iter().any(|b| stack::image::repository(b) == stack::image::repository(&used.image)) {
                continue;
            }
            match out.iter_mut().find(|i| i.reference == used.image) {
                Some(image) => {
                    image.users.push(used.user);
                    image.never_pulled &= used.never_pulled;
                }
                None => out.push(load::preflight::StackImage {
                    reference: used.image,
                    users: vec![used.user],
                    never_pulled: used.never_pulled,
                }),
            }
        }
        out
    }

    /// `lab images`: where each referenced image stands, and what to do about missing ones.
    pub async fn image_report(
        &self,
        offline: bool,
    ) -> anyhow::Result<Vec<(load::preflight::Wanted, load::preflight::Verdict)>> {
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let docker = docker::connect().await?;
        let registry = Registry::of(&self.scenario);
        let stack_objects = match &self.scenario.stack {
            Some(_) => self.load_stack()?,
            None => Vec::new(),
        };
        let stack_images = self.stack_images(&builds, &stack_objects);
        let wanted =
            load::preflight::wanted(&docker, &builds, registry.as_ref(), &self.scenario.images.preload, &stack_images)
                .await?;
        let log = self.state.log();
        let nodes = plan::running_nodes(self.provider.as_ref(), &log).await?;
        if nodes.is_empty() {
            anyhow::bail!(
                "{} has no running nodes: `lab up` first (`lab status` shows them)",
                self.scenario.cluster_name()
            );
        }
        load::preflight::check(&docker, &wanted, &nodes, offline).await
    }

    /// On the host alone, Docker already has what was built. Through a
    /// registry: the nodes are pointed at it, then the images are pushed; a
    /// new cluster also advertises it (`advertise`).
    pub(crate) fn load_steps(&self, builds: &[std::sync::Arc<build::Build>], advertise: bool) -> Vec<Step> {
        if !self.provider.capabilities().cluster {
            return Vec::new();
        }
        // Preloaded images keep their own names, so they are always streamed.
        let preload = (!self.scenario.images.preload.is_empty()).then(|| {
            let images = load::ImageSource::Preloaded(self.scenario.images.preload.clone());
            Step::work("load the preloaded images into the nodes", images)
        });
        let Some(registry) = Registry::of(&self.scenario) else {
            let mut steps: Vec<Step> = builds
                .iter()
                .map(|b| {
                    let images = load::ImageSource::Built(b.clone());
                    Step::work(format!("load component {} into the nodes", b.name()), images)
                })
                .collect();
            steps.extend(preload);
            return steps;
        };
        let mut steps = Vec::new();
        steps.extend(preload);
        if self.provider.capabilities().on_kind_network {
            steps.extend(registry.connect_step());
        }
        steps.extend(self.scenario.planned_nodes().iter().map(|n| registry.node_step(&n.name)));
        // Applied, refused or adopted, and torn down, as the stack's own objects are.
        if advertise {
            steps.push(Step::work(
                "advertise the registry (ConfigMap kube-public/local-registry-hosting)",
                stack::apply::Apply {
                    objects: vec![registry_hosting_object(&registry)],
                    images: std::sync::Arc::new(stack::ImageMap { builds: Vec::new(), registry: None }),
                    establish_within: None,
                    server_dry_run: false,
                    ownership: self.ownership.clone(),
                },
            ));
        }
        let registry = std::sync::Arc::new(registry);
        steps.extend(builds.iter().map(|b| registry.push_step(b)));
        steps
    }
}

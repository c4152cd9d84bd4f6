//! `lab`: a disposable Kubernetes storage test lab with one command.
//!
//! Commands (`commands/`) are thin: they open a [`Lab`], ask it for a
//! [`plan::Plan`] and print or execute it.

pub mod build;
pub mod cli;
pub mod commands;
pub mod docker;
pub mod doctor;
pub mod load;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod provider;
pub mod scenario;
pub mod shell;
pub mod stack;
pub mod state;

use std::path::PathBuf;

use load::registry::Registry;
use plan::{Action, Plan, Step};
use provider::Provider;
use scenario::Scenario;
use state::StateDir;

/// A scenario with its state directory and provider: everything a command needs.
pub struct Lab {
    pub scenario: Scenario,
    pub state: StateDir,
    pub provider: Box<dyn Provider>,
}

impl Lab {
    /// Load and check the scenario (the default one when none is named).
    pub fn open(path: Option<PathBuf>) -> anyhow::Result<Lab> {
        let path = path.unwrap_or_else(scenario::default_path);
        let scenario = Scenario::load(&path)?;
        let state = StateDir::new(scenario.name());
        let provider = provider::for_scenario(&scenario, &state);
        Ok(Lab { scenario, state, provider })
    }

    fn describe(&self) -> String {
        let nodes = self.scenario.planned_nodes().len();
        format!(
            "scenario {} ({}, {nodes} node{})",
            self.scenario.name(),
            self.scenario.cluster.provider,
            if nodes == 1 { "" } else { "s" }
        )
    }

    fn make_state_dir(&self) -> Step {
        let dir = self.state.dir().to_path_buf();
        Step::new(format!("create state directory {}", dir.display()), Action::MakeDir { path: dir })
    }

    /// The state directory first, where every later step may write; the
    /// host's kernel before the cluster, so kubelets start with its pages.
    /// Images are built before the cluster exists, so a broken build leaves
    /// nothing behind; they are loaded once the nodes are ready.
    pub fn up_plan(&self) -> anyhow::Result<Plan> {
        let preparation = prepare::plan(&self.scenario);
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let registry = Registry::of(&self.scenario);
        let mut steps = vec![self.make_state_dir()];
        steps.extend(build::steps(&builds));
        steps.extend(registry.as_ref().and_then(Registry::start_step));
        steps.extend(preparation.before_cluster);
        steps.extend(self.provider.up_steps());
        steps.extend(preparation.on_nodes);
        steps.extend(self.load_steps(&builds, true));
        steps.extend(self.preflight_step(&builds));
        Ok(Plan { title: format!("lab up: {}", self.describe()), steps })
    }

    /// `lab build`: every component, or the one named.
    pub fn build_plan(&self, component: Option<&str>) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, component)?;
        let mut steps = vec![self.make_state_dir()];
        steps.extend(build::steps(&builds));
        Ok(Plan { title: format!("lab build: {}", self.describe()), steps })
    }

    /// `lab load`: the images already built, into the nodes that are up.
    pub fn load_plan(&self, component: Option<&str>) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, component)?;
        if self.scenario.cluster.provider == scenario::ProviderKind::Host {
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
    fn preflight_step(&self, builds: &[std::sync::Arc<build::Build>]) -> Option<Step> {
        let nothing = builds.is_empty() && self.scenario.images.preload.is_empty();
        if nothing || self.scenario.cluster.provider == scenario::ProviderKind::Host {
            return None;
        }
        Some(Step::new(
            "check every image the lab references reaches the nodes",
            Action::ImagePreflight {
                builds: builds.to_vec(),
                registry: Registry::of(&self.scenario).map(std::sync::Arc::new),
                preload: self.scenario.images.preload.clone(),
            },
        ))
    }

    /// `lab images`: where each referenced image stands, and what to do about missing ones.
    pub async fn image_report(
        &self,
        offline: bool,
    ) -> anyhow::Result<Vec<(load::preflight::Wanted, load::preflight::Verdict)>> {
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let docker = docker::connect().await?;
        let registry = Registry::of(&self.scenario);
        let wanted =
            load::preflight::wanted(&docker, &builds, registry.as_ref(), &self.scenario.images.preload).await?;
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
    fn load_steps(&self, builds: &[std::sync::Arc<build::Build>], advertise: bool) -> Vec<Step> {
        if self.scenario.cluster.provider == scenario::ProviderKind::Host {
            return Vec::new();
        }
        // Preloaded images keep their own names, so they are always streamed.
        let preload = (!self.scenario.images.preload.is_empty()).then(|| {
            let images = load::ImageSource::Preloaded(self.scenario.images.preload.clone());
            Step::new("load the preloaded images into the nodes", Action::Load(std::sync::Arc::new(images)))
        });
        let Some(registry) = Registry::of(&self.scenario) else {
            let mut steps: Vec<Step> = builds
                .iter()
                .map(|b| {
                    let images = std::sync::Arc::new(load::ImageSource::Built(b.clone()));
                    Step::new(format!("load component {} into the nodes", b.name()), Action::Load(images))
                })
                .collect();
            steps.extend(preload);
            return steps;
        };
        let mut steps = Vec::new();
        steps.extend(preload);
        if self.scenario.cluster.provider == scenario::ProviderKind::Kind {
            steps.extend(registry.connect_step());
        }
        steps.extend(self.scenario.planned_nodes().iter().map(|n| registry.node_step(&n.name)));
        if advertise {
            steps.push(registry.hosting_step());
        }
        let registry = std::sync::Arc::new(registry);
        steps.extend(builds.iter().map(|b| {
            Step::new(
                format!("push component {} to registry {}", b.name(), registry.address),
                Action::Push { build: b.clone(), registry: registry.clone() },
            )
        }));
        steps
    }

    /// Preparation alone, on a cluster that is already up: its nodes are
    /// found first, so a lab that is not up changes nothing on the host.
    pub fn prepare_plan(&self) -> Plan {
        let preparation = prepare::plan(&self.scenario);
        let mut steps = vec![self.make_state_dir()];
        if !preparation.on_nodes.is_empty() {
            let names = self.scenario.planned_nodes().into_iter().map(|n| n.name).collect();
            steps.push(Step::new("find the lab's nodes", Action::ExpectNodes { names }));
        }
        steps.extend(preparation.before_cluster);
        steps.extend(preparation.on_nodes);
        Plan { title: format!("lab prepare: {}", self.describe()), steps }
    }

    /// Recorded host changes are undone after the cluster is gone (its pods no
    /// longer hold hugepages); the state directory goes last, as it holds the
    /// kubeconfig and the record the steps before use.
    pub fn down_plan(&self) -> anyhow::Result<Plan> {
        let dir = self.state.dir().to_path_buf();
        let mut steps = self.provider.down_steps();
        steps.extend(Registry::of(&self.scenario).as_ref().and_then(Registry::stop_step));
        steps.extend(prepare::restore_steps(&self.undo_log(), self.scenario.cluster.provider)?);
        steps.push(Step::new(format!("remove state directory {}", dir.display()), Action::RemoveDir { path: dir }));
        Ok(Plan { title: format!("lab down: {}", self.describe()), steps })
    }

    pub fn undo_log(&self) -> prepare::UndoLog {
        prepare::UndoLog::new(self.state.changes())
    }
}

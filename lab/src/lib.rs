//! `lab`: a disposable Kubernetes storage test lab with one command.
//!
//! Commands (`commands/`) are thin: they open a [`Lab`], ask it for a
//! [`plan::Plan`] and print or execute it.

pub mod artifacts;
pub mod bisect;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod clones;
pub mod commands;
pub mod device;
pub mod docker;
pub mod doctor;
pub mod export;
pub mod findings;
pub mod fio;
pub mod load;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod provider;
pub mod replay;
pub mod scenario;
pub mod shell;
pub mod stack;
pub mod state;
pub mod suite;
pub mod wait;

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
    /// Which cluster objects this lab may take over and delete.
    pub ownership: std::sync::Arc<stack::ownership::Ownership>,
}

impl Lab {
    /// Load and check the scenario (the default one when none is named).
    pub fn open(path: Option<PathBuf>) -> anyhow::Result<Lab> {
        let path = path.unwrap_or_else(scenario::default_path);
        let scenario = Scenario::load(&path)?;
        let state = scenario.state_dir()?;
        Ok(Lab::with_state(scenario, state))
    }

    /// The lab of a scenario at a given state folder: where an index record
    /// says (`lab list`), or with a scenario changed in memory (`lab bisect`).
    pub fn with_state(scenario: Scenario, state: StateDir) -> Lab {
        let instance = state.instance().unwrap_or_else(state::new_instance_id);
        let provider = provider::for_scenario(&scenario, &state, &instance);
        let ownership = std::sync::Arc::new(stack::ownership::Ownership {
            lab: scenario.name().to_string(),
            instance,
            adopt: false,
            delete_adopted: false,
            only_recorded: false,
            record: state.created_objects(),
        });
        Lab { scenario, state, provider, ownership }
    }

    /// Hold this lab for the life of the process (one lab process per lab):
    /// refused, naming the holder, while another `lab` process holds it.
    /// A lab made by `up`, `run` or `prepare` is listed in this machine's
    /// index of labs (`lab list`) from then until its state folder is removed.
    pub fn hold(&self, command: &str) -> anyhow::Result<state::Held> {
        let held = self.state.hold(command, &self.ownership.instance)?;
        // Listed from the commands that make a lab (`bisect --fresh` does), not from a `lab build`
        // (whose state is only a build folder). The index serves `lab list`
        // only: a folder it cannot write never stops a lab.
        if matches!(command, "up" | "run" | "prepare" | "bisect") {
            let provider = self.scenario.cluster.provider.to_string();
            if let Err(e) = state::index::register(&self.state, self.scenario.name(), &provider, &self.scenario.source)
            {
                tracing::warn!("lab list will not show this lab: {e:#}");
            }
        }
        Ok(held)
    }

    /// Whether the state records what an earlier run made: host or node
    /// changes, cluster objects, or a kubeconfig of a cluster lab created.
    pub fn has_records(&self) -> bool {
        let non_empty = |path: std::path::PathBuf| std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let changes = self.undo_log().entries().map(|e| !e.is_empty()).unwrap_or(true);
        changes || non_empty(self.state.created_objects()) || non_empty(self.state.kubeconfig())
    }

    /// What only this machine can tell, checked before a command changes
    /// anything: hugepages for this host's kernel must fit in its memory.
    pub async fn check_machine(&self) -> anyhow::Result<()> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        // Pages already free (another lab's, say) cost nothing more; the rest
        // must fit in what the host has available, less a margin for its processes.
        let free_pages: u64 = std::fs::read_to_string(prepare::hugepages::FREE_HUGEPAGES)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if let Some(total) = prepare::hugepages::mem_total_kib(&meminfo) {
            let margin = prepare::hugepages::memory_margin_kib(total);
            let room = prepare::hugepages::meminfo_kib(&meminfo, "MemAvailable:")
                .map(|available| available.saturating_sub(margin).saturating_add(free_pages * 2048));
            self.scenario.check_host_memory(total, room, margin)?;
        }
        self.check_pool_devices().await
    }

    /// Pool devices in this host's `/dev` (kind, local, host nodes share
    /// it): each a loop device of this lab, or an allowed host disk that
    /// holds nothing, probed before a command changes anything.
    pub async fn check_pool_devices(&self) -> anyhow::Result<()> {
        stack::pool::check_devices_here(&self.scenario, &self.state).await
    }

    fn with_ownership(mut self, change: impl FnOnce(&mut stack::ownership::Ownership)) -> Lab {
        change(std::sync::Arc::make_mut(&mut self.ownership));
        self
    }

    /// Take over stack objects already in the cluster (`--adopt`) instead of refusing.
    pub fn adopting(self, adopt: bool) -> Lab {
        self.with_ownership(|o| o.adopt = adopt)
    }

    /// Delete adopted objects too (`lab down --delete-adopted`).
    pub fn deleting_adopted(self, delete: bool) -> Lab {
        self.with_ownership(|o| o.delete_adopted = delete)
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
        let preparation = self.provider.preparation(&self.scenario.planned_nodes());
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let registry = Registry::of(&self.scenario);
        let mut steps = vec![self.make_state_dir()];
        steps.extend(plan::in_phase(build::steps(&builds), plan::Phase::Build));
        steps.extend(plan::in_phase(registry.as_ref().and_then(Registry::start_step), plan::Phase::Load));
        steps.extend(plan::in_phase(preparation.before_cluster, plan::Phase::Cluster));
        steps.extend(plan::in_phase(self.provider.up_steps(), plan::Phase::Cluster));
        let stack_objects = match &self.scenario.stack {
            Some(_) => self.load_stack()?,
            None => Vec::new(),
        };
        // A cluster that was there before `lab up` may already run the stack:
        // that is found out before lab changes anything on it.
        if self.provider.capabilities().predates_lab && !stack_objects.is_empty() {
            let mut objects = stack_objects.clone();
            objects.extend(stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &stack_objects)?);
            steps.push(Step::work(
                "check that the stack's objects in the cluster, if any, are lab's",
                stack::ownership::CheckOwnership { objects, ownership: (*self.ownership).clone() },
            ));
        }
        steps.extend(plan::in_phase(preparation.on_nodes, plan::Phase::Cluster));
        steps.extend(plan::in_phase(self.load_steps(&builds, true), plan::Phase::Load));
        steps.extend(plan::in_phase(self.preflight_step(&builds, &stack_objects), plan::Phase::Load));
        if !stack_objects.is_empty() {
            steps.extend(self.deploy_steps(stack_objects)?);
        }
        Ok(Plan { title: format!("lab up: {}", self.describe()), steps })
    }

    /// `lab deploy`: the stack in apply order (CRDs established first), its
    /// workloads ready, then a DiskPool per io-engine node, Online.
    /// Images are checked on the nodes first: a component changed since its
    /// last `lab build`/`lab load` is named before anything is applied.
    pub fn deploy_plan(&self) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let objects = self.load_stack()?;
        let mut steps = plan::in_phase(self.preflight_step(&builds, &objects), plan::Phase::Load);
        steps.extend(self.deploy_steps(objects)?);
        Ok(Plan { title: format!("lab deploy: {}", self.describe()), steps })
    }

    /// `lab deploy --server-dry-run`: the API server checks every object of
    /// the stack as it would apply it (`dryRun=All`) and stores none, except
    /// the CRDs and namespaces the others need, which are applied for real.
    pub fn server_dry_run_plan(&self) -> anyhow::Result<Plan> {
        let objects = self.load_stack()?;
        let images = std::sync::Arc::new(self.image_map()?);
        let mut groups = stack::order::apply_order(&objects);
        let pools = stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects)?;
        if !pools.is_empty() {
            groups.push((stack::order::Phase::CustomResources, pools));
        }
        let steps = groups
            .into_iter()
            .map(|(phase, group)| {
                let real = matches!(phase, stack::order::Phase::Crds | stack::order::Phase::Namespaces);
                let establish_within = (phase == stack::order::Phase::Crds).then(|| std::time::Duration::from_secs(60));
                let title = if real {
                    format!("apply {} ({})", phase.title(), group.len())
                } else {
                    format!("check {} ({}) with the API server, storing nothing", phase.title(), group.len())
                };
                Step::work(
                    title,
                    stack::apply::Apply {
                        objects: group,
                        images: images.clone(),
                        establish_within,
                        server_dry_run: !real,
                        ownership: self.ownership.clone(),
                    },
                )
            })
            .collect();
        Ok(Plan { title: format!("lab deploy --server-dry-run: {}", self.describe()), steps })
    }

    /// The stack's objects, checked, with their kubelet paths pointed at the
    /// cluster's kubelet root (lab's local cluster keeps its own).
    fn load_stack(&self) -> anyhow::Result<Vec<stack::manifest::Object>> {
        let mut objects = stack::load(&self.scenario)?;
        if let Some(root) = self.provider.capabilities().kubelet_root {
            stack::rewrite_path_root(&mut objects, provider::local::USUAL_KUBELET_ROOT, &root);
        }
        stack::pool::point_at_pool_folder(&self.scenario, &self.provider.capabilities(), &self.state, &mut objects);
        Ok(objects)
    }

    fn image_map(&self) -> anyhow::Result<stack::ImageMap> {
        stack::ImageMap::of(&self.scenario, &self.state)
    }

    fn deploy_steps(&self, objects: Vec<stack::manifest::Object>) -> anyhow::Result<Vec<Step>> {
        let timeouts = self.scenario.stack.as_ref().map(|s| s.timeouts.clone()).unwrap_or_default();
        let seconds = |text: &str| std::time::Duration::from_secs(scenario::parse_duration_secs(text).unwrap_or(60));
        let images = std::sync::Arc::new(self.image_map()?);
        let mut steps = Vec::new();
        for (phase, group) in stack::order::apply_order(&objects) {
            let establish_within = (phase == stack::order::Phase::Crds).then(|| seconds(&timeouts.crds));
            steps.push(
                Step::work(
                    format!("apply {} ({})", phase.title(), group.len()),
                    stack::apply::Apply {
                        objects: group,
                        images: images.clone(),
                        establish_within,
                        server_dry_run: false,
                        ownership: self.ownership.clone(),
                    },
                )
                .in_phase(plan::Phase::Rollout),
            );
        }
        // Kubernetes rolls an OnDelete DaemonSet (io-engine) only as its pods are deleted: lab does that.
        let on_delete = stack::rollout::on_delete_daemon_sets(&objects);
        if !on_delete.is_empty() {
            steps.push(
                Step::work(
                    format!(
                        "roll {} OnDelete DaemonSet(s) to their newest template, one node at a time",
                        on_delete.len()
                    ),
                    stack::rollout::RollOnDelete { daemon_sets: on_delete, timeout: seconds(&timeouts.ready) },
                )
                .in_phase(plan::Phase::Rollout),
            );
        }
        steps.push(
            Step::work(
                "wait until the stack's workloads are ready",
                stack::ready::WaitReady { objects: objects.clone(), timeout: seconds(&timeouts.ready) },
            )
            .in_phase(plan::Phase::Ready),
        );
        let pools = stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects)?;
        if !pools.is_empty() {
            steps.extend(plan::in_phase(
                stack::pool::backing_file_steps(&self.scenario, &self.provider.capabilities(), &self.state),
                plan::Phase::Rollout,
            ));
            steps.push(Step::work(
                format!("create {} DiskPool(s)", pools.len()),
                stack::apply::Apply {
                    objects: pools.clone(),
                    images: images.clone(),
                    establish_within: None,
                    server_dry_run: false,
                    ownership: self.ownership.clone(),
                },
            ));
            steps.push(
                Step::work(
                    "wait until the pools are Online",
                    stack::pool::WaitPools { pools: pools.clone(), timeout: seconds(&timeouts.pools) },
                )
                .in_phase(plan::Phase::Ready),
            );
        }
        // Pods Ready is not a control plane that serves: a claim made now could meet a 503.
        if stack::mayastor::serves_rest(&objects) {
            steps.push(
                Step::work(
                    "wait until Mayastor's control plane serves",
                    stack::mayastor::WaitControlPlane {
                        pools: pools.iter().map(|p| p.name().to_string()).collect(),
                        timeout: seconds(&timeouts.pools),
                    },
                )
                .in_phase(plan::Phase::Ready),
            );
        }
        Ok(steps)
    }

    /// The stack comes off before the cluster, in the order its finalizers
    /// need: volume users, claims, pools, the stack in reverse, CRDs last.
    fn teardown_steps(&self, ownership: &std::sync::Arc<stack::ownership::Ownership>) -> anyhow::Result<Vec<Step>> {
        let Some(spec) = &self.scenario.stack else { return Ok(Vec::new()) };
        if !self.provider.capabilities().cluster {
            return Ok(Vec::new());
        }
        // A stack that no longer reads (its files moved) must not keep the cluster alive.
        let objects = match self.load_stack() {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!("the stack cannot be read, so it is not removed object by object: {e:#}");
                return Ok(Vec::new());
            }
        };
        let timeout =
            std::time::Duration::from_secs(scenario::parse_duration_secs(&spec.timeouts.teardown).unwrap_or(300));
        let mut steps = vec![Step::work(
            "remove the workloads lab's scenarios left on the lab's volumes, then their claims",
            stack::teardown::RemoveVolumes {
                classes: stack::teardown::storage_classes(&objects),
                lab: ownership.lab.clone(),
                instance: ownership.instance.clone(),
                timeout,
            },
        )];
        let pools =
            stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects).unwrap_or_default();
        if !pools.is_empty() {
            steps.push(Step::work(
                format!("remove {} DiskPool(s)", pools.len()),
                stack::teardown::Delete { objects: pools, timeout, ownership: ownership.clone() },
            ));
        }
        for (phase, group) in stack::order::apply_order(&objects).into_iter().rev() {
            steps.push(Step::work(
                format!("remove {} ({})", phase.title(), group.len()),
                stack::teardown::Delete { objects: group, timeout, ownership: ownership.clone() },
            ));
        }
        Ok(steps)
    }

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
    fn preflight_step(
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
    fn stack_images(
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
    fn load_steps(&self, builds: &[std::sync::Arc<build::Build>], advertise: bool) -> Vec<Step> {
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

    /// Preparation alone, on a cluster that is already up: its nodes are
    /// found first, so a lab that is not up changes nothing on the host.
    pub fn prepare_plan(&self) -> Plan {
        let preparation = self.provider.preparation(&self.scenario.planned_nodes());
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
        self.down_plan_owning(&self.ownership)
    }

    /// After a failed `lab up`: the same as `lab down`, but of the cluster's
    /// objects only those this run recorded as created.
    pub fn cleanup_plan(&self) -> anyhow::Result<Plan> {
        let mut ownership = (*self.ownership).clone();
        ownership.only_recorded = true;
        self.down_plan_owning(&std::sync::Arc::new(ownership))
    }

    fn down_plan_owning(&self, ownership: &std::sync::Arc<stack::ownership::Ownership>) -> anyhow::Result<Plan> {
        let dir = self.state.dir().to_path_buf();
        let mut steps = self.teardown_steps(ownership)?;
        let test_devices = suite::loop_device::devices_dir(&self.state);
        steps.push(Step::run(
            format!("detach the test loop devices recorded in {}", self.state.dir().join("test-devices").display()),
            plan::Target::Host,
            shell::Cmd::sh(suite::loop_device::detach_recorded_script(&test_devices)),
        ));
        if let Some(registry) = Registry::of(&self.scenario)
            && self.provider.capabilities().cluster
        {
            steps.push(Step::work(
                "remove the registry's advertisement (ConfigMap kube-public/local-registry-hosting)",
                stack::teardown::Delete {
                    objects: vec![registry_hosting_object(&registry)],
                    timeout: std::time::Duration::from_secs(60),
                    ownership: ownership.clone(),
                },
            ));
        }
        steps.extend(self.provider.down_steps());
        steps.extend(Registry::of(&self.scenario).as_ref().and_then(Registry::stop_step));
        steps.extend(prepare::restore_steps(&self.undo_log(), self.provider.capabilities().nodes_outlive_lab)?);
        // Kept when a step before failed: its records let `lab down` finish the rest.
        steps.push(
            Step::new(format!("remove state directory {}", dir.display()), Action::RemoveDir { path: dir })
                .only_after_success(),
        );
        let steps = plan::in_phase(steps, plan::Phase::Teardown);
        Ok(Plan { title: format!("lab down: {}", self.describe()), steps })
    }

    pub fn undo_log(&self) -> prepare::UndoLog {
        prepare::UndoLog::new(self.state.changes())
    }
}

impl Lab {
    /// What of this lab can be found without its state directory: its nodes
    /// (containers or VMs by labels), processes whose command line names the
    /// state directory, a state directory left in the working directory by an
    /// older `lab`, and cluster namespaces and CRDs carrying its mark.
    pub async fn traces(&self) -> Vec<String> {
        let mut found = Vec::new();
        if matches!(self.provider.exists().await, Ok(true)) {
            found.push(format!("the nodes of {} are up (`lab status` lists them)", self.scenario.cluster_name()));
        }
        found.extend(self.provider.leftovers());
        let state = self.state.absolute().display().to_string();
        for pid in processes_naming(&state) {
            found.push(format!("process {pid} runs with {state} in its command line"));
        }
        let old = std::env::current_dir().unwrap_or_default().join(".lab").join(self.scenario.name());
        if old != self.state.absolute() && old.is_dir() {
            found.push(format!(
                "a state directory {} in the working directory (lab now keeps it beside the scenario: move it to {})",
                old.display(),
                state
            ));
        }
        if self.provider.capabilities().predates_lab
            && let Ok(client) = self.provider.client().await
        {
            found.extend(stack::ownership::marked_cluster_objects(&client, self.scenario.name()).await);
        }
        found
    }
}

/// The registry's KEP-1755 ConfigMap as a stack object lab applies and removes by its marks.
fn registry_hosting_object(registry: &Registry) -> stack::manifest::Object {
    let value = serde_json::to_value(registry.hosting_config_map()).expect("a ConfigMap of strings always serializes");
    stack::manifest::Object { file: "generated".into(), line: 0, value }
}

/// Processes (by pid) whose command line contains `text`.
fn processes_naming(text: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let own = std::process::id();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(text))
        })
        .collect()
}

//! `lab up` and `lab prepare`: the machine checked, then the plan that builds,
//! makes the cluster, prepares its nodes, loads the images and deploys the stack.

use crate::load::registry::Registry;
use crate::plan::{self, Action, Plan, Step};
use crate::{Lab, build, prepare, stack};

impl Lab {
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

    pub(crate) fn make_state_dir(&self) -> Step {
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
}

//! `lab down`: the stack removed, the cluster deleted, the host restored, from
//! the lab's records; and what a lab left that its records do not name.

use super::deploy::registry_hosting_object;
use crate::load::registry::Registry;
use crate::plan::{self, Action, Plan, Step};
use crate::{Lab, prepare, stack, suite};

impl Lab {
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

    pub(crate) fn down_plan_owning(
        &self,
        ownership: &std::sync::Arc<stack::ownership::Ownership>,
    ) -> anyhow::Result<Plan> {
        let dir = self.state.dir().to_path_buf();
        let mut steps = self.teardown_steps(ownership)?;
        let test_devices = suite::loop_device::devices_dir(&self.state);
        steps.push(Step::run(
            format!("detach the test loop devices recorded in {}", self.state.dir().join("test-devices").display()),
            plan::Target::Host,
            suite::loop_device::detach_recorded(&test_devices),
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

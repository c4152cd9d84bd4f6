//! `lab`: a disposable Kubernetes storage test lab with one command.
//!
//! Commands (`commands/`) are thin: they open a [`Lab`], ask it for a
//! [`plan::Plan`] (made in `ops/`: up, deploy, images, down) and print or
//! execute it. This file holds the `Lab` itself: its scenario, state,
//! provider and ownership, and the lock one command holds on it.

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
pub mod ops;
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

    pub fn undo_log(&self) -> prepare::UndoLog {
        prepare::UndoLog::new(self.state.changes())
    }
}

impl Lab {}

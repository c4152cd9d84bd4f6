//! `lab`: a disposable Kubernetes storage test lab with one command.
//!
//! Commands (`commands/`) are thin: they open a [`Lab`], ask it for a
//! [`plan::Plan`] and print or execute it.

pub mod cli;
pub mod commands;
pub mod docker;
pub mod doctor;
pub mod plan;
pub mod progress;
pub mod provider;
pub mod scenario;
pub mod shell;
pub mod state;

use std::path::PathBuf;

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

    /// The state directory first, where every later step may write.
    pub fn up_plan(&self) -> Plan {
        let dir = self.state.dir().to_path_buf();
        let mut steps =
            vec![Step::new(format!("create state directory {}", dir.display()), Action::MakeDir { path: dir })];
        steps.extend(self.provider.up_steps());
        Plan { title: format!("lab up: {}", self.describe()), steps }
    }

    /// The state directory last: it holds the kubeconfig the steps before use.
    pub fn down_plan(&self) -> Plan {
        let dir = self.state.dir().to_path_buf();
        let mut steps = self.provider.down_steps();
        steps.push(Step::new(format!("remove state directory {}", dir.display()), Action::RemoveDir { path: dir }));
        Plan { title: format!("lab down: {}", self.describe()), steps }
    }
}

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

use plan::Plan;
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

    pub fn up_plan(&self) -> Plan {
        Plan { title: format!("lab up: {}", self.describe()), steps: self.provider.up_steps() }
    }

    pub fn down_plan(&self) -> Plan {
        Plan { title: format!("lab down: {}", self.describe()), steps: self.provider.down_steps() }
    }
}

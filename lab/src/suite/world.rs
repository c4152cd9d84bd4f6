//! The World each Gherkin scenario gets: the lab it runs against, what its
//! steps made (loop devices, namespaces), and the fio results so far.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::fio::{JobResult, Verdict};
use crate::scenario::Scenario;
use crate::state::StateDir;

/// What every scenario of a run shares: set once before the run starts.
#[derive(Debug)]
pub struct Context {
    pub scenario: Scenario,
    pub state: StateDir,
    /// `results/` root (history files live under `<root>/<scenario>/`).
    pub results: std::path::PathBuf,
    /// Labels this run's records in the history (time and git commit).
    pub label: String,
    /// Verdicts and threshold checks, for the reports.
    pub checks: Mutex<Vec<Check>>,
}

/// One measured check, as the reports show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub scenario: String,
    pub profile: String,
    pub text: String,
    pub passed: bool,
    pub verdict: Option<Verdict>,
}

static CONTEXT: OnceLock<Arc<Context>> = OnceLock::new();

/// Install the run's context; `lab test` does this before the first scenario.
pub fn install(context: Context) -> Arc<Context> {
    let context = Arc::new(context);
    // One run per process: a second install keeps the first.
    CONTEXT.get_or_init(|| context.clone()).clone()
}

#[derive(Debug, cucumber::World)]
#[world(init = Self::new)]
pub struct LabWorld {
    pub ctx: Arc<Context>,
    /// The Gherkin scenario's name, for records and reports.
    pub name: String,
    pub loop_device: Option<super::steps::host::LoopDevice>,
    /// Where fio runs: a file on the loop device's filesystem, or the device.
    pub fio_target: Option<String>,
    /// Results per profile, this scenario's runs only.
    pub runs: BTreeMap<String, Vec<JobResult>>,
    /// The profile the last `When I run fio …` used.
    pub last_profile: Option<String>,
}

impl LabWorld {
    fn new() -> anyhow::Result<Self> {
        let ctx = CONTEXT.get().cloned().ok_or_else(|| anyhow::anyhow!("the lab test context is not installed"))?;
        Ok(LabWorld {
            ctx,
            name: String::new(),
            loop_device: None,
            fio_target: None,
            runs: BTreeMap::new(),
            last_profile: None,
        })
    }
}

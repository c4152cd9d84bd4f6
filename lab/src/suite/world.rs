//! The World each Gherkin scenario gets: the lab it runs against, what its
//! steps made (loop devices, namespaces), and the fio results so far.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use crate::fio::Judged;
use crate::fio::{JobResult, Verdict};
use crate::scenario::Scenario;
use crate::state::StateDir;

/// What every scenario of a run shares: set once before the run starts.
pub struct Context {
    /// Nodes and their shells.
    pub provider: Arc<dyn crate::provider::Provider>,
    /// The cluster's API, when the lab has one (the host alone has none).
    pub client: Option<kube::Client>,
    /// Keep a failed scenario's namespace for a look (`--keep-on-failure`).
    pub keep_on_failure: bool,
    pub scenario: Scenario,
    pub state: StateDir,
    /// `results/` root (history files live under `<root>/<scenario>/`).
    pub results: std::path::PathBuf,
    /// Labels this run's records in the history (time and git commit).
    pub label: String,
    /// Verdicts and threshold checks, for the reports.
    pub checks: Mutex<Vec<Check>>,
    /// This run's artifacts folder (made at the first failure).
    pub artifacts: std::path::PathBuf,
    /// Where the stack's pods run, for their logs on a failure.
    pub stack_namespaces: Vec<String>,
    /// A check that cannot be judged fails (`--strict`, or `fio.strict`).
    pub strict: bool,
}

/// One measured check, as the reports show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub scenario: String,
    /// The feature file and line of its scenario: two scenarios may share a name.
    pub feature: String,
    pub line: usize,
    /// The Gherkin step that made it, as written.
    pub step: String,
    pub profile: String,
    pub text: String,
    pub result: Judged,
    pub verdict: Option<Verdict>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("scenario", &self.scenario.name()).field("label", &self.label).finish()
    }
}

impl Context {
    /// The API client, or an error saying this lab has none.
    pub fn client(&self) -> Result<kube::Client, String> {
        self.client.clone().ok_or_else(|| {
            format!("scenario {} has no Kubernetes API (is the lab up? `lab status`)", self.scenario.name())
        })
    }
}

/// A VolumeSnapshot a scenario took: of which claim, and the pattern
/// (seed, the target's size) the claim held then, if one was written.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub claim: String,
    pub pattern: Option<(u64, u64)>,
    /// The claims restored from it, which go before it does.
    pub restored: Vec<String>,
}

/// A volume as the userspace steps know it: where its nexus is served, its
/// size, and the seed of the last pattern written to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub uuid: String,
    pub uri: String,
    pub size: u64,
    pub seed: Option<u64>,
}

static CONTEXT: Mutex<Option<Arc<Context>>> = Mutex::new(None);

/// Install the run's context; `lab test` does this before the first
/// scenario. A later run in the same process (`lab bisect`'s steps, each
/// with its own cluster and artifacts) replaces it.
pub fn install(context: Context) -> Arc<Context> {
    let context = Arc::new(context);
    *CONTEXT.lock().unwrap_or_else(|e| e.into_inner()) = Some(context.clone());
    context
}

#[derive(Debug, cucumber::World)]
#[world(init = Self::new)]
pub struct LabWorld {
    pub ctx: Arc<Context>,
    /// The Gherkin scenario's name, for records and reports.
    pub name: String,
    /// The scenario's feature file and line, as cucumber reports them.
    pub feature: String,
    pub line: usize,
    pub loop_device: Option<super::loop_device::LoopDevice>,
    /// What the loop device is compared with, run interleaved with it.
    pub baseline_device: Option<super::loop_device::LoopDevice>,
    /// The interleaved comparison so far, with its profile: later checks go on from it.
    pub comparison: Option<(String, crate::fio::interleave::Comparison)>,
    /// Results per profile, this scenario's runs only.
    pub runs: BTreeMap<String, Vec<JobResult>>,
    /// The profile the last `When I run fio …` used.
    pub last_profile: Option<String>,
    /// The namespace this scenario's objects live in, made on first use.
    pub namespace: Option<String>,
    /// The io-engine restarted by a fault step: its node and old pod.
    pub restarted: Option<(String, String)>,
    /// The node whose io-engine a fault step took off, and its node label's value, put back after the scenario.
    pub engine_off: Option<(String, String)>,
    /// The size of the verifiable pattern a pod wrote, in MiB.
    pub pattern_mib: Option<u64>,
    /// The claim written with the pattern (`a volume written with a verifiable pattern`), and readers so far.
    pub survivor: Option<(String, usize)>,
    /// The PV each claim was bound to when a step deleted it.
    pub deleted_claims: BTreeMap<String, String>,
    /// The Mayastor replicas of each claim's volume, as a step saw them Online.
    pub mayastor_replicas: BTreeMap<String, Vec<String>>,
    /// Volumes published for the userspace initiator, by claim.
    pub published: BTreeMap<String, Published>,
    /// Mayastor nodes this scenario cordoned, uncordoned after it.
    pub cordoned: Vec<String>,
    /// Mayastor pools this scenario made through the REST API (node, pool), deleted after it.
    pub made_pools: Vec<(String, String)>,
    /// VolumeSnapshots this scenario took, by name.
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Mayastor node labels this scenario put on (node, key), removed after it.
    pub node_labels: Vec<(String, String)>,
}

impl LabWorld {
    fn new() -> anyhow::Result<Self> {
        let ctx = CONTEXT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the lab test context is not installed"))?;
        Ok(LabWorld {
            ctx,
            name: String::new(),
            feature: String::new(),
            line: 0,
            loop_device: None,
            baseline_device: None,
            comparison: None,
            runs: BTreeMap::new(),
            last_profile: None,
            namespace: None,
            restarted: None,
            engine_off: None,
            pattern_mib: None,
            survivor: None,
            deleted_claims: BTreeMap::new(),
            mayastor_replicas: BTreeMap::new(),
            published: BTreeMap::new(),
            cordoned: Vec::new(),
            made_pools: Vec::new(),
            node_labels: Vec::new(),
            snapshots: BTreeMap::new(),
        })
    }
}

//! `lab bisect`: the first commit of a component at which a test selection
//! fails, or a fio profile got slower than at the good commit, in a lab kept
//! up across the steps (or a fresh one per step). Each step checks the
//! commit out in lab's own clone of the checkout (`git clone --shared`: the
//! user's repository is only read), builds that component, loads and
//! redeploys it, and judges it. A step that cannot build, or cannot be
//! judged, or gives different answers on retries, is skipped as `git bisect
//! skip` does.
//!
//! The fio criterion runs the profile with the good build and the step's
//! build deployed in turn, interleaved (`fio::interleave`: A B, B A, …), so
//! a machine whose speed drifts slows neither side: a regression beyond the
//! scenario's noise threshold is bad, a settled "no regression" is good,
//! and a comparison that does not settle is not judged (skipped).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use serde_json::json;

use crate::Lab;
use crate::clones::git;
use crate::fio::interleave::{self, Arm, Arms, PairLines, Sampling};
use crate::fio::{Job, JobResult, Judged, Metric};
use crate::plan::{execute, execute_through};
use crate::progress::Progress;
use crate::scenario::Source;
use crate::shell::{LocalShell, Shell};

/// What to search: the component, the range, the criterion, the retries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub component: String,
    pub good: String,
    pub bad: String,
    /// The test selection (when `fio` is not given): `lab test -t`.
    pub tags: Option<String>,
    /// The test selection: `lab test -n`.
    pub name: Option<String>,
    /// Judge by a fio profile against the good build instead of a test selection.
    pub fio: Option<FioCriterion>,
    /// A new lab for every step (`lab down`, then `lab up` with the step's build).
    pub fresh: bool,
    pub retries: u32,
    pub dry_run: bool,
}

/// A step is bad when `profile` on `target` is slower (in `metric`, beyond
/// the scenario's `fio.noiseThreshold`) with its build than with the good one.
#[derive(Debug, Clone)]
pub struct FioCriterion {
    pub profile: String,
    /// The file or block device fio works on.
    pub target: String,
    /// The node whose shell runs fio; this host when `None`.
    pub node: Option<String>,
    /// Default: the profile's read or write IOPS.
    pub metric: Option<String>,
    pub sampling: Sampling,
    /// `--overwrite`: a writing profile may overwrite a target that holds something.
    pub overwrite: bool,
}

impl FioCriterion {
    /// The profile and metric, checked before anything runs.
    fn resolve(&self, lab: &Lab) -> anyhow::Result<(Job, Metric)> {
        let scenario = &lab.scenario;
        let job = scenario.fio_profile(&self.profile).map_err(|e| anyhow::anyhow!("--fio {}: {e}", self.profile))?;
        job.check().map_err(|e| anyhow::anyhow!("fio profile {}: {e}", job.name))?;
        Job::check_target(&self.target).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
        if let Some(node) = &self.node
            && !scenario.planned_nodes().iter().any(|n| &n.name == node)
        {
            let nodes: Vec<String> = scenario.planned_nodes().into_iter().map(|n| n.name).collect();
            bail!("--node {node}: lab {} has no such node; it has: {}", scenario.name(), nodes.join(", "));
        }
        self.sampling.check()?;
        let metric = match &self.metric {
            Some(text) => Metric::parse(text).map_err(|e| anyhow::anyhow!("--metric {e}"))?,
            None => Metric::headline(job),
        };
        Ok((job.clone(), metric))
    }

    fn describe(&self, metric: Metric) -> String {
        format!(
            "fio profile {} on {}{} against the good build, interleaved, until {} is settled ({}–{} pairs, at most {} s)",
            self.profile,
            self.target,
            self.node.as_deref().map(|n| format!(" on node {n}")).unwrap_or_default(),
            metric.name(),
            self.sampling.min_pairs,
            self.sampling.max_pairs,
            self.sampling.budget.as_secs()
        )
    }
}

/// What the search found: the first bad commit, or the commits it is among.
#[derive(Debug)]
pub struct Outcome {
    /// `(commit, subject)`, oldest first: one when found.
    pub candidates: Vec<(String, String)>,
    /// Where every step's report, artifacts and `bisect.json` are.
    pub evidence: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Good,
    Bad,
    Skip,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skipped",
        }
    }
}

/// The next commit to try between the last good (`lo`) and the first known
/// bad (`hi`), skipping those that could not be judged: the middle one.
fn next_probe(lo: Option<usize>, hi: usize, skipped: &[usize]) -> Option<usize> {
    let start = lo.map_or(0, |l| l + 1);
    let open: Vec<usize> = (start..hi).filter(|i| !skipped.contains(i)).collect();
    open.get(open.len() / 2).copied().filter(|_| !open.is_empty())
}

/// How many scenarios the cucumber JSON report ran, and how many failed.
fn scenarios_in(report: &Path) -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string(report) else { return (0, 0) };
    let Ok(features) = serde_json::from_str::<serde_json::Value>(&text) else { return (0, 0) };
    let mut ran = 0;
    let mut failed = 0;
    for element in
        features.as_array().into_iter().flatten().flat_map(|f| f["elements"].as_array().into_iter().flatten())
    {
        ran += 1;
        let steps = element["steps"].as_array().into_iter().flatten();
        if steps.into_iter().any(|s| s["result"]["status"] != "passed") {
            failed += 1;
        }
    }
    (ran, failed)
}

/// What the lab runs while bisect works, for a bisect stopped by a signal
/// to say (and, with `--fresh`, whether a lab is being made).
#[derive(Debug, Default)]
pub struct Status(std::sync::Mutex<Option<(String, bool)>>);

impl Status {
    fn set(&self, what: String, half_made_fresh_lab: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((what, half_made_fresh_lab));
    }

    /// What the lab runs now (`None`: no step has touched it), and whether
    /// it is a `--fresh` lab not yet up (to be taken down).
    pub fn now(&self) -> Option<(String, bool)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Bisect<'a> {
    lab: &'a Lab,
    status: &'a Status,
    args: &'a Options,
    /// lab's clone for the step's commit, and (fio criterion) one at the good commit.
    clone: PathBuf,
    good_clone: PathBuf,
    /// The fio criterion's profile and metric, resolved.
    fio: Option<(Job, Metric)>,
    out: PathBuf,
    progress: &'a Progress,
    steps: Vec<serde_json::Value>,
    /// This process's hold on the lab (`--fresh` takes it anew after each `down`).
    held: std::sync::Mutex<Option<crate::state::Held>>,
}

impl Bisect<'_> {
    /// The lab with the component built from `checkout` (one of lab's clones).
    fn lab_at(&self, checkout: &Path) -> Lab {
        let mut scenario = self.lab.scenario.clone();
        if let Some(c) = scenario.components.iter_mut().find(|c| c.name == self.args.component) {
            c.source = Source::Path(checkout.display().to_string());
        }
        Lab::with_state(scenario, self.lab.state.clone())
    }

    /// Build, load and deploy the component from `lab`'s checkout.
    async fn deploy(&self, lab: &Lab) -> anyhow::Result<()> {
        let component = Some(self.args.component.as_str());
        for plan in [lab.build_plan(component), lab.load_plan(component), lab.deploy_plan()] {
            execute(&plan?, lab.provider.as_ref(), self.progress, &lab.state).await?;
        }
        Ok(())
    }

    /// `--fresh`: the lab as it was is taken down, and a new one brought up
    /// with `lab`'s build; a failed `up` removes what it made, as `lab up` does.
    async fn fresh(&self, lab: &Lab) -> anyhow::Result<()> {
        if lab.has_records() || lab.provider.exists().await? {
            let down = lab.down_plan()?;
            execute_through(&down, lab.provider.as_ref(), self.progress, &lab.state).await?;
        }
        if !lab.state.absolute().join("lock").exists() {
            // `down` removed the state folder with the lock this process held: hold the new one.
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            *held = None;
            *held = Some(lab.hold("bisect")?);
        }
        let up = lab.up_plan()?;
        if let Err(e) = execute(&up, lab.provider.as_ref(), self.progress, &lab.state).await {
            if let Ok(cleanup) = lab.cleanup_plan() {
                let _ = execute_through(&cleanup, lab.provider.as_ref(), self.progress, &lab.state).await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// One attempt at a commit: its build in the lab, then the criterion.
    async fn attempt(&self, commit: &str, dir: &Path) -> (Verdict, String) {
        let lab = self.lab_at(&self.clone);
        let component = &self.args.component;
        let short = &commit[..12.min(commit.len())];
        if self.args.fresh {
            self.status.set(format!("a fresh lab with {component} built from {short} was being made"), true);
        } else {
            self.status.set(
                format!(
                    "{component} built from {short} was being deployed: the lab runs it, or in part the build before"
                ),
                false,
            );
        }
        let ready = if self.args.fresh { self.fresh(&lab).await } else { self.deploy(&lab).await };
        if ready.is_ok() {
            self.status.set(format!("the lab runs {component} built from {short}"), false);
        }
        if let Err(e) = ready {
            let how = if self.args.fresh { "bring up a fresh lab with it" } else { "build, load or deploy it" };
            return (Verdict::Skip, format!("{commit}: could not {how}: {e:#}"));
        }
        match (&self.args.fio, &self.fio) {
            (Some(criterion), Some((job, metric))) => self.compare(&lab, criterion, job, *metric, dir).await,
            _ => self.selection(&lab, dir).await,
        }
    }

    /// The test selection on the step's build.
    async fn selection(&self, lab: &Lab, dir: &Path) -> (Verdict, String) {
        let report = dir.join("cucumber.json");
        let options = crate::suite::TestOptions {
            tags: self.args.tags.clone(),
            name: self.args.name.clone(),
            json: Some(report.clone()),
            artifacts: Some(dir.join("artifacts")),
            ..Default::default()
        };
        match crate::suite::run(&lab.scenario, &lab.state, &options).await {
            Err(e) => (Verdict::Skip, format!("the selection could not run: {e:#}")),
            Ok(passed) => match scenarios_in(&report) {
                (0, _) => (Verdict::Skip, "the selection ran no scenario".into()),
                (ran, 0) if passed => (Verdict::Good, format!("{ran} scenario(s) passed")),
                (ran, 0) => (Verdict::Skip, format!("the run failed, but none of its {ran} scenario(s) did")),
                (ran, failed) => (Verdict::Bad, format!("{failed} of {ran} scenario(s) failed")),
            },
        }
    }

    /// The fio criterion: the good build and the step's deployed in turn,
    /// the profile run on each, interleaved until the verdict settles.
    async fn compare(
        &self,
        lab: &Lab,
        criterion: &FioCriterion,
        job: &Job,
        metric: Metric,
        dir: &Path,
    ) -> (Verdict, String) {
        let good = self.lab_at(&self.good_clone);
        let built = match good.build_plan(Some(self.args.component.as_str())) {
            Ok(plan) => execute(&plan, good.provider.as_ref(), self.progress, &good.state).await,
            Err(e) => Err(e),
        };
        if let Err(e) = built {
            return (Verdict::Skip, format!("the good build could not be built: {e:#}"));
        }
        let shell: Box<dyn Shell> = match &criterion.node {
            Some(node) => lab.provider.node_shell(node),
            None => Box::new(LocalShell),
        };
        let mut arms = BuildArms {
            bisect: self,
            labs: [&good, lab],
            // `attempt` deployed the step's build.
            deployed: Some(Arm::Candidate),
            job,
            shell: shell.as_ref(),
            target: &criterion.target,
            writes: crate::fio::target::Writes::of(&lab.state, criterion.overwrite),
            dir,
            shown: PairLines::new(metric),
        };
        let threshold = lab.scenario.fio.noise_threshold;
        let comparison = match interleave::compare(&mut arms, metric, threshold, criterion.sampling, None).await {
            Ok(comparison) => comparison,
            Err(e) => return (Verdict::Skip, format!("the comparison could not run: {e:#}")),
        };
        let pairs: Vec<_> = comparison
            .pairs
            .iter()
            .map(|(good, step)| json!({"good": metric.of(good), "step": metric.of(step)}))
            .collect();
        let record = json!({"metric": metric.name(), "verdict": comparison.verdict.to_string(),
            "stopped": comparison.stopped_because(), "pairs": pairs});
        let _ = std::fs::write(dir.join("comparison.json"), serde_json::to_string_pretty(&record).unwrap_or_default());
        let evidence = format!("{} ({})", comparison.verdict, comparison.stopped_because());
        match comparison.judge(metric, &comparison.verdict) {
            Judged::Failed => (Verdict::Bad, evidence),
            Judged::Passed => (Verdict::Good, evidence),
            Judged::NotJudged(reason) => (Verdict::Skip, format!("not judged: {reason}; {evidence}")),
        }
    }

    /// A commit judged: up to 1 + retries attempts; attempts that disagree make it flaky, skipped.
    async fn judge(&mut self, commit: &str, subject: &str) -> anyhow::Result<Verdict> {
        git(&self.clone, &["checkout", "--force", "--quiet", commit])?;
        git(&self.clone, &["clean", "-fdxq"])?;
        let mut seen = Vec::new();
        for attempt in 0..=self.args.retries {
            let dir = self.out.join(format!("{}-{}", &commit[..12], attempt + 1));
            std::fs::create_dir_all(&dir)?;
            let (verdict, evidence) = self.attempt(commit, &dir).await;
            eprintln!("bisect: {} {subject}: attempt {}: {} ({evidence})", &commit[..12], attempt + 1, verdict.word());
            seen.push((verdict, evidence));
            if verdict != Verdict::Bad {
                break;
            }
        }
        let verdicts: Vec<Verdict> = seen.iter().map(|(v, _)| *v).collect();
        let verdict = if verdicts.contains(&Verdict::Skip) {
            Verdict::Skip
        } else if verdicts.contains(&Verdict::Good) && verdicts.contains(&Verdict::Bad) {
            eprintln!("bisect: {} is flaky (bad, then good): skipped", &commit[..12]);
            Verdict::Skip
        } else {
            verdicts[0]
        };
        self.steps.push(json!({"commit": commit, "subject": subject, "verdict": verdict.word(),
            "attempts": seen.iter().map(|(v, e)| json!({"verdict": v.word(), "evidence": e})).collect::<Vec<_>>()}));
        Ok(verdict)
    }
}

/// The good build and the step's, each deployed when its turn comes.
struct BuildArms<'a> {
    bisect: &'a Bisect<'a>,
    /// `[good, step]`: the labs whose component is built from each clone.
    labs: [&'a Lab; 2],
    deployed: Option<Arm>,
    job: &'a Job,
    shell: &'a dyn Shell,
    target: &'a str,
    writes: crate::fio::target::Writes,
    dir: &'a Path,
    shown: PairLines,
}

#[async_trait(?Send)]
impl Arms for BuildArms<'_> {
    async fn run(&mut self, arm: Arm, pair: usize) -> anyhow::Result<JobResult> {
        let (lab, side) = match arm {
            Arm::Baseline => (self.labs[0], "good"),
            Arm::Candidate => (self.labs[1], "step"),
        };
        if self.deployed != Some(arm) {
            // Built already: this loads and rolls out the other build's images.
            self.deployed = None;
            let component = &self.bisect.args.component;
            self.bisect.status.set(format!("the {side} build of {component} was being deployed"), false);
            self.bisect.deploy(lab).await.with_context(|| format!("deploying the {side} build"))?;
            self.bisect.status.set(format!("the lab runs the {side} build of {component}"), false);
            self.deployed = Some(arm);
        }
        let raw = self.dir.join("fio").join(format!("{}-{}-{side}.json", self.job.name, pair + 1));
        let report = crate::fio::run(self.shell, self.job, self.target, &raw, &self.writes).await?;
        let result = report.jobs.into_iter().next().context("fio reported no job")?;
        self.shown.show(arm, pair, &result);
        Ok(result)
    }
}

/// Search `lab`'s component history (see the module); with `dry_run`, the
/// commits between good and bad are the candidates and nothing runs.
/// `status` follows what the lab runs, for a caller that stops the search.
pub async fn run(lab: &Lab, args: &Options, progress: &Progress, status: &Status) -> anyhow::Result<Outcome> {
    let component = lab
        .scenario
        .components
        .iter()
        .find(|c| c.name == args.component)
        .with_context(|| format!("scenario {} has no component `{}`", lab.scenario.name(), args.component))?;
    let Source::Path(path) = &component.source else {
        bail!("component {} is built from a git URL; bisect needs a local checkout (`source: PATH`)", args.component);
    };
    let checkout = lab.scenario.path_of(path);
    let good = git(&checkout, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.good)])
        .with_context(|| format!("--good {} is not a commit of {}", args.good, checkout.display()))?;
    let bad = git(&checkout, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.bad)])
        .with_context(|| format!("--bad {} is not a commit of {}", args.bad, checkout.display()))?;
    if git(&checkout, &["merge-base", "--is-ancestor", &good, &bad]).is_err() {
        bail!("--good {} is not an ancestor of --bad {}: nothing lies between them to bisect", args.good, args.bad);
    }
    // Only the commits that touch the component's folder (all of them when it is the repository's root).
    let listed = git(&checkout, &["rev-list", "--reverse", "--ancestry-path", &format!("{good}..{bad}"), "--", "."])?;
    let commits: Vec<String> = listed.lines().map(str::to_string).collect();
    // Refused before the lock, the clones or a build: there is no step to take.
    if good == bad {
        bail!(
            "--good {} and --bad {} are the same commit ({}): nothing lies between them to bisect",
            args.good,
            args.bad,
            &good[..12]
        );
    }
    if commits.is_empty() {
        bail!(
            "no commit after --good {} up to --bad {} touches component {}'s folder {}: nothing to bisect",
            args.good,
            args.bad,
            args.component,
            checkout.display()
        );
    }
    let subject = |c: &str| git(&checkout, &["log", "-1", "--format=%s", c]).unwrap_or_default();
    let fio = args.fio.as_ref().map(|c| c.resolve(lab)).transpose()?;
    let steps_needed = (commits.len() as f64).log2().ceil() as usize;
    let judged_by = match (&args.fio, &fio) {
        (Some(criterion), Some((_, metric))) => criterion.describe(*metric),
        _ => args
            .name
            .as_deref()
            .map(|n| format!("scenarios matching /{n}/"))
            .or(args.tags.clone())
            .unwrap_or("every scenario".into()),
    };
    eprintln!(
        "bisect: {} commit(s) after {} up to {}, about {steps_needed} step(s), each: {} {}, {judged_by}",
        commits.len(),
        &good[..12],
        &bad[..12],
        if args.fresh { "a fresh lab (down, up) with" } else { "build, load, deploy" },
        args.component,
    );
    if args.dry_run {
        let candidates = commits.iter().map(|c| (c.clone(), subject(c))).collect();
        return Ok(Outcome { candidates, evidence: None });
    }
    if !args.fresh && !lab.provider.exists().await? {
        bail!(
            "lab {} is not up: `lab up` first (bisect keeps it up across the steps and leaves it up), or give --fresh",
            lab.scenario.name()
        );
    }
    // A writing profile's target on this host (or on a node of the lab that is
    // up) is checked before the lock: fio must not overwrite what no one handed it.
    if let (Some(criterion), Some((job, _))) = (&args.fio, &fio) {
        let writes = crate::fio::target::Writes::of(&lab.state, criterion.overwrite);
        match &criterion.node {
            None => drop(crate::fio::target::check(&LocalShell, job, &criterion.target, &writes).await?),
            Some(node) if !args.fresh => drop(
                crate::fio::target::check(lab.provider.node_shell(node).as_ref(), job, &criterion.target, &writes)
                    .await?,
            ),
            Some(_) => {}
        }
    }
    let held = lab.hold("bisect")?;
    let stamped = crate::artifacts::default_dir(&lab.scenario);
    let out = stamped.with_file_name(format!("{}-bisect", stamped.file_name().unwrap_or_default().to_string_lossy()));
    // Outside the state folder, which a fresh lab's `down` removes; this
    // process's own folder, removed when it ends.
    let clones = crate::clones::Clones::make(lab.scenario.name(), "bisect")?;
    let clone = clones.clone_of(&checkout, &args.component)?;
    let good_clone = clones.clone_of(&checkout, &format!("{}-good", args.component))?;
    git(&good_clone, &["checkout", "--force", "--quiet", &good])?;
    let mut bisect = Bisect {
        lab,
        status,
        args,
        clone,
        good_clone,
        fio,
        out: out.clone(),
        progress,
        steps: Vec::new(),
        held: Some(held).into(),
    };
    let (mut lo, mut hi) = (None::<usize>, commits.len() - 1);
    let mut skipped = Vec::new();
    while let Some(probe) = next_probe(lo, hi, &skipped) {
        match bisect.judge(&commits[probe], &subject(&commits[probe])).await? {
            Verdict::Good => lo = Some(probe),
            Verdict::Bad => hi = probe,
            Verdict::Skip => skipped.push(probe),
        }
    }
    let start = lo.map_or(0, |l| l + 1);
    let candidates: Vec<&String> = (start..=hi).map(|i| &commits[i]).collect();
    let found = candidates.len() == 1;
    let summary = json!({
        "component": args.component, "good": good, "bad": bad,
        "first_bad": found.then(|| candidates[0]),
        "candidates": candidates, "steps": bisect.steps,
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bisect.json"), serde_json::to_string_pretty(&summary)?)?;
    eprintln!("bisect: every step's log, report and artifacts: {}", out.display());
    if !bisect.steps.is_empty() {
        eprintln!(
            "bisect: the lab now runs a build of {} that bisect made; `lab build`, `lab load`, `lab deploy` put your checkout's back",
            args.component,
        );
    }
    let candidates = candidates.into_iter().map(|c| (c.clone(), subject(c))).collect();
    Ok(Outcome { candidates, evidence: Some(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_halve_the_range_and_step_around_skipped_commits() {
        // commits 0..=4, 4 known bad, nothing known good: the middle of 0..4.
        assert_eq!(next_probe(None, 4, &[]), Some(2));
        assert_eq!(next_probe(Some(2), 4, &[]), Some(3));
        assert_eq!(next_probe(Some(2), 3, &[]), None);
        assert_eq!(next_probe(None, 4, &[2]), Some(1));
        assert_eq!(next_probe(Some(0), 4, &[1, 2, 3]), None);
    }
}

//! fio steps: run a profile of the scenario several times (each result is
//! on disk and in the history before any check reads it), then check
//! thresholds and regressions against the stored history or a baseline.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::super::world::{Check, Context, Judged, LabWorld};
use crate::fio::history::{Baseline, Fingerprint, History, Record};
use crate::fio::interleave::{self, Arm, Arms, Sampling};
use crate::fio::stats::mean;
use crate::fio::{self, Job, JobResult, Metric, MetricKind, Outcome};
use crate::shell::{LocalShell, Shell};

#[when(regex = r#"^I run the fio profile "([^"]+)" (\d+) times?$"#)]
async fn run_profile(world: &mut LabWorld, profile: String, times: usize) -> Result<(), String> {
    let (target, device) = host_target(world)?;
    run_profile_on(world, &profile, times, &LocalShell, &target, &device).await
}

/// The scenario's loop device as fio's target and as the history's device.
fn host_target(world: &LabWorld) -> Result<(String, String), String> {
    let device =
        world.loop_device.as_ref().ok_or("nothing to run fio on yet: start with `Given a 256 MiB loop device …`")?;
    Ok((device.fio_target(), device.fingerprint()))
}

/// Run a profile `times` times on `shell` against `target`, each result in
/// the history (and its raw output on disk) before anything reads it.
pub async fn run_profile_on(
    world: &mut LabWorld,
    profile: &str,
    times: usize,
    shell: &dyn Shell,
    target: &str,
    device: &str,
) -> Result<(), String> {
    if times == 0 {
        return Err(format!("running profile {profile} 0 times measures nothing: say 1 time or more"));
    }
    let ctx = world.ctx.clone();
    let job = profile_named(&ctx, profile)?;
    for _ in 0..times {
        let result = run_once(&ctx, &job, shell, target, device).await?;
        world.runs.entry(job.name.clone()).or_default().push(result);
    }
    world.last_profile = Some(job.name);
    Ok(())
}

fn profile_named(ctx: &Context, profile: &str) -> Result<Job, String> {
    ctx.scenario.fio_profile(profile).cloned()
}

/// One run: fio's raw output on disk, then the record in the history, before anything reads it.
async fn run_once(
    ctx: &Context,
    job: &Job,
    shell: &dyn Shell,
    target: &str,
    device: &str,
) -> Result<JobResult, String> {
    // Numbered across the whole `lab test`, so no run's raw output overwrites another's.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let raw = ctx.results.join(ctx.scenario.name()).join("raw").join(format!("{}-{}-{n}.json", job.name, ctx.label));
    let writes = fio::target::Writes::of(&ctx.state, false);
    let report = fio::run(shell, job, target, &raw, &writes).await.map_err(|e| format!("{e:#}"))?;
    let result = report.jobs.into_iter().next().ok_or("fio reported no job")?;
    let env = Fingerprint::here(device, &report.fio_version);
    let record = Record::now(ctx.scenario.name(), &job.name, &ctx.label, result.clone(), env);
    History::new(&ctx.results, ctx.scenario.name(), &job.name).append(&record).map_err(|e| format!("{e:#}"))?;
    Ok(result)
}

/// The loop devices of a scenario as the two arms of an interleaved comparison.
struct LoopArms<'a> {
    ctx: &'a Context,
    job: &'a Job,
    /// (target, fingerprint device) of each arm.
    baseline: (String, String),
    candidate: (String, String),
}

#[async_trait(?Send)]
impl Arms for LoopArms<'_> {
    async fn run(&mut self, arm: Arm, _pair: usize) -> anyhow::Result<JobResult> {
        let (target, device) = if arm == Arm::Baseline { &self.baseline } else { &self.candidate };
        run_once(self.ctx, self.job, &LocalShell, target, device).await.map_err(anyhow::Error::msg)
    }
}

#[when(regex = r#"^I compare the fio profile "([^"]+)" with the baseline, interleaved$"#)]
async fn compare_with_baseline(world: &mut LabWorld, profile: String) -> Result<(), String> {
    let job = profile_named(&world.ctx, &profile)?;
    let threshold = world.ctx.scenario.fio.noise_threshold;
    world.comparison = None;
    // The first pairs only: each check then goes on until its own question is settled.
    let first = Sampling { max_pairs: Sampling::default().min_pairs, ..Sampling::default() };
    settle(world, &job, Metric::headline(&job), threshold, first).await?;
    world.last_profile = Some(job.name);
    Ok(())
}

/// Go on with the scenario's interleaved comparison of `job` until `metric`
/// against `threshold` is settled (or the pair or time budget runs out).
async fn settle(
    world: &mut LabWorld,
    job: &Job,
    metric: Metric,
    threshold: f64,
    sampling: Sampling,
) -> Result<(), String> {
    let candidate = host_target(world)?;
    let baseline = world
        .baseline_device
        .as_ref()
        .ok_or("no baseline to compare with: add `Given a 256 MiB loop device as the baseline`")?;
    let baseline = (baseline.fio_target(), format!("{} baseline", baseline.fingerprint()));
    let ctx = world.ctx.clone();
    let mut arms = LoopArms { ctx: &ctx, job, baseline, candidate };
    let earlier = world.comparison.take().filter(|(p, _)| *p == job.name).map(|(_, c)| c);
    let before = earlier.as_ref().map_or(0, |c| c.pairs.len());
    let comparison =
        interleave::compare(&mut arms, metric, threshold, sampling, earlier).await.map_err(|e| format!("{e:#}"))?;
    // The candidate's runs are this scenario's runs of the profile: floors apply to them too.
    let runs = world.runs.entry(job.name.clone()).or_default();
    runs.extend(comparison.pairs[before..].iter().map(|(_, candidate)| candidate.clone()));
    world.comparison = Some((job.name.clone(), comparison));
    Ok(())
}

/// This scenario's values of a metric for the last profile run.
fn samples(world: &LabWorld, metric: Metric) -> Result<(String, Vec<f64>), String> {
    let profile = world.last_profile.clone().ok_or("no fio run yet: `When I run the fio profile … N times` first")?;
    let values: Vec<f64> = world.runs.get(&profile).into_iter().flatten().filter_map(|r| metric.of(r)).collect();
    if values.is_empty() {
        return Err(format!(
            "profile {profile} did not measure {} (a read-only job has no write side; gtod_reduce has no latency)",
            metric.name()
        ));
    }
    Ok((profile, values))
}

/// A threshold in the metric's own unit: IOPS, bytes/s, microseconds.
fn in_base_unit(metric: Metric, value: f64, unit: &str) -> Result<f64, String> {
    let factor = match (metric.kind, unit) {
        (MetricKind::Iops, "" | "IOPS") => 1.0,
        (MetricKind::Bandwidth, "B/s") => 1.0,
        (MetricKind::Bandwidth, "KiB/s") => 1024.0,
        (MetricKind::Bandwidth, "MiB/s") => 1024.0 * 1024.0,
        (MetricKind::Bandwidth, "GiB/s") => 1024.0 * 1024.0 * 1024.0,
        (MetricKind::Iops | MetricKind::Bandwidth, other) => {
            return Err(format!("unit `{other}` does not fit {}", metric.name()));
        }
        (_, "ns") => 0.001,
        (_, "us" | "µs") => 1.0,
        (_, "ms") => 1000.0,
        (_, "s") => 1_000_000.0,
        (_, other) => return Err(format!("latency unit `{other}`: use ns, us, ms or s")),
    };
    Ok(value * factor)
}

/// Record a check for the reports and end its step: a failure fails it; a
/// check that could not be judged passes the step, marked as not judged,
/// unless the run is strict, where it fails.
fn conclude(
    world: &LabWorld,
    step: &Step,
    profile: &str,
    text: String,
    result: Judged,
    verdict: Option<fio::Verdict>,
) -> Result<(), String> {
    let (result, outcome) = match result {
        Judged::NotJudged(reason) if world.ctx.strict => {
            let said = format!("not judged, and the run is strict: {reason}");
            (Judged::Failed, Err(said))
        }
        Judged::Failed => (Judged::Failed, Err(text.clone())),
        other => (other, Ok(())),
    };
    if let Ok(mut checks) = world.ctx.checks.lock() {
        checks.push(Check {
            scenario: world.name.clone(),
            feature: world.feature.clone(),
            line: world.line,
            step: format!("{}{}", step.keyword, step.value),
            profile: profile.into(),
            text,
            result,
            verdict,
        });
    }
    outcome
}

fn threshold(
    world: &mut LabWorld,
    step: &Step,
    metric: &str,
    value: f64,
    unit: &str,
    at_least: bool,
) -> Result<(), String> {
    let metric = Metric::parse(metric)?;
    let (profile, values) = samples(world, metric)?;
    let limit = in_base_unit(metric, value, unit)?;
    let got = mean(&values);
    let passed = if at_least { got >= limit } else { got < limit };
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    let text = format!(
        "{} is {} (mean of {} run(s) of {profile}); expected {} {value}{unit}",
        metric.name(),
        show(metric, got),
        values.len(),
        if at_least { "at least" } else { "below" }
    );
    let result = if passed { Judged::Passed } else { Judged::Failed };
    conclude(world, step, &profile, text, result, None)
}

fn show(metric: Metric, value: f64) -> String {
    match metric.kind {
        MetricKind::Iops => format!("{value:.0}"),
        MetricKind::Bandwidth => format!("{:.1} MiB/s", value / (1024.0 * 1024.0)),
        _ if value >= 1000.0 => format!("{:.2} ms", value / 1000.0),
        _ => format!("{value:.1} us"),
    }
}

#[then(regex = r"^(.+) is at least ([0-9.]+)\s*(\S*)$")]
fn is_at_least(world: &mut LabWorld, step: &Step, metric: String, value: f64, unit: String) -> Result<(), String> {
    threshold(world, step, &metric, value, &unit, true)
}

#[then(regex = r"^(.+) is below ([0-9.]+)\s*(\S*)$")]
fn is_below(world: &mut LabWorld, step: &Step, metric: String, value: f64, unit: String) -> Result<(), String> {
    threshold(world, step, &metric, value, &unit, false)
}

/// Compare this run's samples with earlier comparable ones (or a labelled
/// baseline). Too little history to decide is "not judged", never a pass.
fn regression(world: &mut LabWorld, step: &Step, metric: &str, baseline_label: Option<&str>) -> Result<(), String> {
    let metric = Metric::parse(metric)?;
    let (profile, current) = samples(world, metric)?;
    let ctx = world.ctx.clone();
    let history = History::new(&ctx.results, ctx.scenario.name(), &profile);
    let records = history.records().map_err(|e| format!("{e:#}"))?;
    let this_env = crate::fio::history::session_env(&records, &ctx.label);
    let baseline = Baseline::from_history(&records, &this_env, &ctx.label, baseline_label, metric);
    // Bandwidth is judged in MiB/s, so the verdict reads like the thresholds.
    let (scale, name) = match metric.kind {
        MetricKind::Bandwidth => (1.0 / (1024.0 * 1024.0), format!("{} (MiB/s)", metric.name())),
        _ if metric.better() == fio::Better::Lower => (1.0, format!("{} (us)", metric.name())),
        _ => (1.0, metric.name()),
    };
    let current: Vec<f64> = current.iter().map(|x| x * scale).collect();
    let verdict = baseline.judge(&name, metric.better(), &current, ctx.scenario.fio.noise_threshold, scale);
    let text = match verdict.outcome {
        // A history starts somewhere: this session's runs are now part of it.
        Outcome::TooFewSamples => format!("{verdict}; this session's runs are in {}", history.path().display()),
        _ => verdict.to_string(),
    };
    let result = Judged::of(&verdict, metric.better());
    conclude(world, step, &profile, text, result, Some(verdict))
}

#[then(regex = r"^(.+) has not regressed against the history$")]
fn not_regressed(world: &mut LabWorld, step: &Step, metric: String) -> Result<(), String> {
    regression(world, step, &metric, None)
}

#[then(regex = r#"^(.+) has not regressed against the baseline "([^"]+)"$"#)]
fn not_regressed_against(world: &mut LabWorld, step: &Step, metric: String, label: String) -> Result<(), String> {
    regression(world, step, &metric, Some(&label))
}

/// Judge the interleaved comparison on `metric`: a failure only when the
/// whole interval of the change is beyond `threshold` in the bad direction;
/// a comparison that did not settle within its budget is not judged.
async fn against_baseline(
    world: &mut LabWorld,
    step: &Step,
    metric: &str,
    threshold: f64,
    what: &str,
) -> Result<(), String> {
    let metric = Metric::parse(metric)?;
    let profile = world
        .comparison
        .as_ref()
        .map(|(p, _)| p.clone())
        .ok_or("no comparison yet: `When I compare the fio profile \"…\" with the baseline, interleaved` first")?;
    let job = profile_named(&world.ctx, &profile)?;
    settle(world, &job, metric, threshold, Sampling::default()).await?;
    let (_, comparison) = world.comparison.as_ref().ok_or("the comparison was lost")?;
    let verdict = comparison
        .verdict_for(metric, threshold)
        .ok_or_else(|| format!("profile {profile} did not measure {}", metric.name()))?;
    let text = format!("{verdict} [{what}; {}]", comparison.stopped_because());
    let result = comparison.judge(metric, &verdict);
    conclude(world, step, &profile, text, result, Some(verdict))
}

#[then(regex = r"^(.+) has not regressed against the baseline$")]
async fn not_regressed_against_baseline(world: &mut LabWorld, step: &Step, metric: String) -> Result<(), String> {
    let threshold = world.ctx.scenario.fio.noise_threshold;
    against_baseline(world, step, &metric, threshold, "interleaved with the baseline").await
}

#[then(regex = r"^(.+) is (at least|at most) (\d+)% of the baseline's$")]
async fn share_of_baseline(
    world: &mut LabWorld,
    step: &Step,
    metric: String,
    bound: String,
    percent: u32,
) -> Result<(), String> {
    let better = Metric::parse(&metric)?.better();
    // A floor for what is better higher (IOPS, bandwidth), a ceiling for latency.
    let threshold = match (bound.as_str(), better) {
        ("at least", fio::Better::Higher) if percent <= 100 => 1.0 - f64::from(percent) / 100.0,
        ("at most", fio::Better::Lower) if percent >= 100 => f64::from(percent) / 100.0 - 1.0,
        ("at least", fio::Better::Higher) => {
            return Err(format!("{metric}: at least {percent}% is above the baseline; say 100% or less"));
        }
        ("at most", fio::Better::Lower) => {
            return Err(format!("{metric}: at most {percent}% is below the baseline; say 100% or more"));
        }
        ("at least", _) => return Err(format!("{metric} is better lower: say `is at most N% of the baseline's`")),
        _ => return Err(format!("{metric} is better higher: say `is at least N% of the baseline's`")),
    };
    against_baseline(world, step, &metric, threshold, &format!("{bound} {percent}% of the baseline's")).await
}

#[when(regex = r#"^I run the fio profile "([^"]+)" (\d+) times? on node "([^"]+)" against "([^"]+)"$"#)]
async fn run_profile_on_node(
    world: &mut LabWorld,
    profile: String,
    times: usize,
    node: String,
    target: String,
) -> Result<(), String> {
    let shell = world.ctx.provider.node_shell(&node);
    run_profile_on(world, &profile, times, shell.as_ref(), &target, &format!("{target} on {node}")).await
}

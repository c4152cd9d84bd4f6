//! fio steps: run a profile of the scenario several times (each result is
//! on disk and in the history before any check reads it), then check
//! thresholds and regressions against the stored history or a baseline.

use cucumber::{then, when};

use super::super::world::{Check, LabWorld};
use crate::fio::history::{Fingerprint, History, Record};
use crate::fio::{self, Metric, MetricKind, Outcome};
use crate::shell::LocalShell;

#[when(regex = r#"^I run the fio profile "([^"]+)" (\d+) times?$"#)]
async fn run_profile(world: &mut LabWorld, profile: String, times: usize) -> Result<(), String> {
    let target =
        world.fio_target.clone().ok_or("nothing to run fio on yet: start with `Given a 256 MiB loop device …`")?;
    let device = device_of(world);
    run_profile_on(world, &profile, times, &LocalShell, &target, &device).await
}

/// Run a profile `times` times on `shell` against `target`, each result in
/// the history (and its raw output on disk) before anything reads it.
pub async fn run_profile_on(
    world: &mut LabWorld,
    profile: &str,
    times: usize,
    shell: &dyn crate::shell::Shell,
    target: &str,
    device: &str,
) -> Result<(), String> {
    let profile = profile.to_string();
    let ctx = world.ctx.clone();
    let job = ctx.scenario.fio.profiles.iter().find(|j| j.name == profile).cloned().ok_or_else(|| {
        let known: Vec<&str> = ctx.scenario.fio.profiles.iter().map(|j| j.name.as_str()).collect();
        format!("no fio profile `{profile}` in {}; it has: {}", ctx.scenario.source.display(), known.join(", "))
    })?;
    let history = History::new(&ctx.results, ctx.scenario.name(), &profile);
    for i in 0..times {
        let raw = ctx.results.join(ctx.scenario.name()).join("raw").join(format!("{profile}-{}-{i}.json", ctx.label));
        let report = fio::run(shell, &job, target, &raw).await.map_err(|e| format!("{e:#}"))?;
        let result = report.jobs.into_iter().next().ok_or("fio reported no job")?;
        let record = Record {
            time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            scenario: ctx.scenario.name().to_string(),
            profile: profile.clone(),
            label: ctx.label.clone(),
            result: result.clone(),
            env: Fingerprint::here(device, &report.fio_version),
        };
        history.append(&record).map_err(|e| format!("{e:#}"))?;
        world.runs.entry(profile.clone()).or_default().push(result);
    }
    world.last_profile = Some(profile);
    Ok(())
}

/// The device behind the target, for the fingerprint (files on a fresh loop device differ only by name).
fn device_of(world: &LabWorld) -> String {
    world
        .loop_device
        .as_ref()
        .map(|d| format!("loop ({})", if d.mount.is_some() { "filesystem" } else { "raw" }))
        .unwrap_or_default()
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

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn record(world: &LabWorld, profile: &str, text: String, passed: bool, verdict: Option<fio::Verdict>) {
    if let Ok(mut checks) = world.ctx.checks.lock() {
        checks.push(Check { scenario: world.name.clone(), profile: profile.into(), text, passed, verdict });
    }
}

fn threshold(world: &mut LabWorld, metric: &str, value: f64, unit: &str, at_least: bool) -> Result<(), String> {
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
    record(world, &profile, text.clone(), passed, None);
    if passed { Ok(()) } else { Err(text) }
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
fn is_at_least(world: &mut LabWorld, metric: String, value: f64, unit: String) -> Result<(), String> {
    threshold(world, &metric, value, &unit, true)
}

#[then(regex = r"^(.+) is below ([0-9.]+)\s*(\S*)$")]
fn is_below(world: &mut LabWorld, metric: String, value: f64, unit: String) -> Result<(), String> {
    threshold(world, &metric, value, &unit, false)
}

/// Compare this run's samples with earlier comparable ones (or a labelled baseline).
fn regression(world: &mut LabWorld, metric: &str, baseline_label: Option<&str>) -> Result<(), String> {
    let metric = Metric::parse(metric)?;
    let (profile, current) = samples(world, metric)?;
    let ctx = world.ctx.clone();
    let history = History::new(&ctx.results, ctx.scenario.name(), &profile);
    let records = history.records().map_err(|e| format!("{e:#}"))?;
    let this_env = records.iter().rev().find(|r| r.label == ctx.label).map(|r| r.env.clone()).unwrap_or_default();
    let baseline: Vec<f64> = records
        .iter()
        .filter(|r| r.label != ctx.label && r.env.comparable(&this_env))
        .filter(|r| baseline_label.is_none_or(|l| r.label == l))
        .filter_map(|r| metric.of(&r.result))
        .collect();
    // The most recent comparable runs: old history describes an older device state.
    let baseline = &baseline[baseline.len().saturating_sub(20)..];
    // Bandwidth is judged in MiB/s, so the verdict reads like the thresholds.
    let (scale, name) = match metric.kind {
        MetricKind::Bandwidth => (1.0 / (1024.0 * 1024.0), format!("{} (MiB/s)", metric.name())),
        _ if metric.better() == fio::Better::Lower => (1.0, format!("{} (us)", metric.name())),
        _ => (1.0, metric.name()),
    };
    let scaled = |xs: &[f64]| xs.iter().map(|x| x * scale).collect::<Vec<f64>>();
    let verdict = fio::stats::compare(
        &name,
        metric.better(),
        &scaled(baseline),
        &scaled(&current),
        ctx.scenario.fio.noise_threshold,
    );
    if verdict.outcome == Outcome::TooFewSamples && baseline_label.is_none() {
        let text = format!(
            "{}: no baseline yet ({} comparable earlier run(s) in {}); this run's {} result(s) start one",
            metric.name(),
            baseline.len(),
            history.path().display(),
            current.len()
        );
        record(world, &profile, text, true, Some(verdict));
        return Ok(());
    }
    let passed = !matches!(verdict.outcome, Outcome::Regression | Outcome::TooFewSamples);
    let text = verdict.to_string();
    record(world, &profile, text.clone(), passed, Some(verdict));
    if passed { Ok(()) } else { Err(text) }
}

#[then(regex = r"^(.+) has not regressed against the history$")]
fn not_regressed(world: &mut LabWorld, metric: String) -> Result<(), String> {
    regression(world, &metric, None)
}

#[then(regex = r#"^(.+) has not regressed against the baseline "([^"]+)"$"#)]
fn not_regressed_against(world: &mut LabWorld, metric: String, label: String) -> Result<(), String> {
    regression(world, &metric, Some(&label))
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

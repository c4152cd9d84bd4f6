//! `lab fio`: one profile on this host, recorded, then judged — against the
//! history (N runs), or against another target run interleaved with it
//! (`--against`), the comparison that holds up on a machine whose speed
//! drifts.

use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;

use crate::Lab;
use crate::cli::FioArgs;
use crate::fio::history::{Baseline, Fingerprint, History, Record, Shifts};
use crate::fio::interleave::{self, Arm, Arms, PairLines, Sampling};
use crate::fio::{self, Job, JobResult, Judged, Metric, Verdict};
use crate::shell::LocalShell;

/// The metrics every verdict lists, when the job measured them.
fn reported() -> impl Iterator<Item = Metric> {
    ["read IOPS", "write IOPS", "p99 read latency", "p99 write latency"]
        .into_iter()
        .map(|m| Metric::parse(m).expect("a known metric"))
}

/// A label names raw output files under `results/`: it must be a plain file name.
fn check_label(label: &str) -> anyhow::Result<()> {
    let plain = !label.is_empty()
        && !label.starts_with(['.', '-'])
        && label.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !plain {
        anyhow::bail!(
            "--label `{}`: it becomes part of file names under the results folder, so use letters, digits, '.', '_' and '-', not starting with '.' or '-'",
            label.escape_debug()
        );
    }
    Ok(())
}

pub async fn run(args: FioArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario.clone())?;
    let scenario = &lab.scenario;
    let job = scenario.fio_profile(&args.profile).map_err(anyhow::Error::msg)?;
    // Checked before fio runs or anything is recorded.
    if args.repeat == 0 && args.against.is_none() {
        anyhow::bail!("--repeat 0 runs nothing, so nothing could be judged: give 2 or more");
    }
    for target in std::iter::once(&args.target).chain(args.against.as_ref()) {
        Job::check_target(target).map_err(|e| anyhow::anyhow!("--target/--against: {e}"))?;
    }
    if let Some(label) = &args.label {
        check_label(label)?;
    }
    let metric = match &args.metric {
        Some(text) => Metric::parse(text).map_err(|e| anyhow::anyhow!("--metric {e}"))?,
        None => Metric::headline(job),
    };
    let sampling =
        Sampling { min_pairs: args.min_pairs, max_pairs: args.max_pairs, budget: Duration::from_secs(args.budget) };
    if args.against.is_some() {
        sampling.check()?;
    }
    let run = Runs {
        job,
        label: args.label.clone().unwrap_or_else(crate::suite::run_label),
        history: History::new(&scenario.path_of(&scenario.fio.results), scenario.name(), &job.name),
        scenario: scenario.name().to_string(),
        writes: fio::target::Writes::of(&lab.state, args.overwrite),
    };
    // Every target is checked before the first run: a refusal records nothing.
    for target in std::iter::once(&args.target).chain(args.against.as_ref()) {
        fio::target::check(&LocalShell, job, target, &run.writes).await?;
    }
    let threshold = scenario.fio.noise_threshold;
    let (verdicts, shifts) = match &args.against {
        Some(baseline) => (against(&run, &args, baseline, metric, threshold, sampling).await?, Vec::new()),
        None => against_history(&run, &args, threshold).await?,
    };
    let strict = args.strict || scenario.fio.strict;
    let (mut failed, mut unjudged) = (0, 0);
    for (verdict, judged) in &verdicts {
        println!("{}: {verdict}", judged.label());
        match judged {
            Judged::Failed => failed += 1,
            Judged::NotJudged(reason) => {
                unjudged += 1;
                println!("  not judged: {reason}");
            }
            Judged::Passed => {}
        }
    }
    for shift in shifts {
        println!("{shift}");
    }
    println!("history: {}", run.history.path().display());
    if unjudged > 0 && strict {
        eprintln!("{unjudged} check(s) not judged, and the run is strict (--strict or fio.strict): that fails it");
    }
    Ok(if failed > 0 || (unjudged > 0 && strict) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs of one profile, each recorded in the history as it finishes.
struct Runs<'a> {
    job: &'a Job,
    label: String,
    history: History,
    scenario: String,
    writes: fio::target::Writes,
}

impl Runs<'_> {
    async fn once(&self, target: &str, tag: &str) -> anyhow::Result<Record> {
        let raw =
            self.history.path().with_file_name("raw").join(format!("{}-{}-{tag}.json", self.job.name, self.label));
        let report = fio::run(&LocalShell, self.job, target, &raw, &self.writes).await?;
        let Some(result) = report.jobs.into_iter().next() else { anyhow::bail!("fio reported no job") };
        let env = Fingerprint::here(target, &report.fio_version);
        let record = Record::now(&self.scenario, &self.job.name, &self.label, result, env);
        self.history.append(&record)?;
        Ok(record)
    }
}

/// N runs on the target, judged against earlier comparable sessions (or a
/// label's runs); and the history's change points.
async fn against_history(
    run: &Runs<'_>,
    args: &FioArgs,
    threshold: f64,
) -> anyhow::Result<(Vec<(Verdict, Judged)>, Vec<String>)> {
    let earlier = run.history.records()?;
    let mut current = Vec::new();
    for i in 0..args.repeat {
        let record = run.once(&args.target, &i.to_string()).await?;
        eprintln!("run {}/{}: {}", i + 1, args.repeat, summary(&record.result));
        current.push(record);
    }
    let env = current.first().map(|r| r.env.clone()).unwrap_or_default();
    let mut verdicts = Vec::new();
    for metric in reported() {
        let now: Vec<f64> = current.iter().filter_map(|r| metric.of(&r.result)).collect();
        if now.is_empty() {
            continue;
        }
        let baseline = Baseline::from_history(&earlier, &env, &run.label, args.baseline.as_deref(), metric);
        let verdict = baseline.judge(&metric.name(), metric.better(), &now, threshold, 1.0);
        let judged = Judged::of(&verdict, metric.better());
        verdicts.push((verdict, judged));
    }
    // The whole history, this session included: where did it shift?
    let records = run.history.records()?;
    let shifts = reported().flat_map(|m| Shifts::find(&records, &env, m).lines()).collect();
    Ok((verdicts, shifts))
}

/// The profile on `args.target` (candidate) and on `baseline`, interleaved until settled.
async fn against(
    run: &Runs<'_>,
    args: &FioArgs,
    baseline: &str,
    metric: Metric,
    threshold: f64,
    sampling: Sampling,
) -> anyhow::Result<Vec<(Verdict, Judged)>> {
    eprintln!(
        "comparing {} on {} with {baseline}, interleaved, until {} is settled ({}–{} pairs, at most {} s)",
        run.job.name,
        args.target,
        metric.name(),
        sampling.min_pairs,
        sampling.max_pairs,
        sampling.budget.as_secs()
    );
    let mut arms = TargetArms { run, baseline, candidate: &args.target, shown: PairLines::new(metric) };
    let comparison = interleave::compare(&mut arms, metric, threshold, sampling, None).await?;
    eprintln!("{}", comparison.stopped_because());
    let mut verdicts = vec![(comparison.verdict.clone(), comparison.judge(metric, &comparison.verdict))];
    for other in reported().filter(|m| *m != metric) {
        if let Some(verdict) = comparison.verdict_for(other, threshold) {
            let result = comparison.judge(other, &verdict);
            verdicts.push((verdict, result));
        }
    }
    Ok(verdicts)
}

struct TargetArms<'a> {
    run: &'a Runs<'a>,
    baseline: &'a str,
    candidate: &'a str,
    shown: PairLines,
}

#[async_trait(?Send)]
impl Arms for TargetArms<'_> {
    async fn run(&mut self, arm: Arm, pair: usize) -> anyhow::Result<JobResult> {
        let (target, tag) = match arm {
            Arm::Baseline => (self.baseline, format!("{pair}-baseline")),
            Arm::Candidate => (self.candidate, format!("{pair}")),
        };
        let result = self.run.once(target, &tag).await?.result;
        self.shown.show(arm, pair, &result);
        Ok(result)
    }
}

fn summary(result: &JobResult) -> String {
    let side = |name: &str, d: &Option<fio::Direction>| {
        d.as_ref().map(|d| {
            format!(
                "{name} {:.0} IOPS, {:.1} MiB/s, p99 {}",
                d.iops,
                d.bw_bytes / (1024.0 * 1024.0),
                d.clat_p99_us.map(|p| format!("{p:.0} us")).unwrap_or_else(|| "n/a".into())
            )
        })
    };
    [side("read", &result.read), side("write", &result.write)].into_iter().flatten().collect::<Vec<_>>().join("; ")
}

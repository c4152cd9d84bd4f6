//! `lab fio`: one profile, N runs on this host, recorded, then judged
//! against the history — the same machinery as the fio steps, by hand.

use std::process::ExitCode;

use crate::Lab;
use crate::cli::FioArgs;
use crate::fio::history::{Fingerprint, History, Record};
use crate::fio::{self, Metric, Outcome};
use crate::shell::LocalShell;

pub async fn run(args: FioArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let scenario = &lab.scenario;
    let Some(job) = scenario.fio.profiles.iter().find(|j| j.name == args.profile) else {
        let known: Vec<&str> = scenario.fio.profiles.iter().map(|j| j.name.as_str()).collect();
        anyhow::bail!(
            "no fio profile `{}` in {}; it has: {}",
            args.profile,
            scenario.source.display(),
            known.join(", ")
        );
    };
    let label = args.label.unwrap_or_else(crate::suite::run_label);
    let results = scenario.path_of(&scenario.fio.results);
    let history = History::new(&results, scenario.name(), &job.name);
    let earlier = history.records()?;
    let mut current = Vec::new();
    for i in 0..args.repeat {
        let raw = results.join(scenario.name()).join("raw").join(format!("{}-{label}-{i}.json", job.name));
        let report = fio::run(&LocalShell, job, &args.target, &raw).await?;
        let Some(result) = report.jobs.into_iter().next() else { anyhow::bail!("fio reported no job") };
        let record = Record {
            time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            scenario: scenario.name().to_string(),
            profile: job.name.clone(),
            label: label.clone(),
            result,
            env: Fingerprint::here(&args.target, &report.fio_version),
        };
        history.append(&record)?;
        eprintln!("run {}/{}: {}", i + 1, args.repeat, summary(&record));
        current.push(record);
    }
    let env = current.first().map(|r| r.env.clone()).unwrap_or_default();
    let mut regressed = false;
    for metric in ["read IOPS", "write IOPS", "p99 read latency", "p99 write latency"] {
        let metric = Metric::parse(metric).map_err(anyhow::Error::msg)?;
        let now: Vec<f64> = current.iter().filter_map(|r| metric.of(&r.result)).collect();
        if now.is_empty() {
            continue;
        }
        let before: Vec<f64> = earlier
            .iter()
            .filter(|r| r.env.comparable(&env) && args.baseline.as_ref().is_none_or(|b| &r.label == b))
            .filter_map(|r| metric.of(&r.result))
            .collect();
        let before = &before[before.len().saturating_sub(20)..];
        let verdict = fio::stats::compare(&metric.name(), metric.better(), before, &now, scenario.fio.noise_threshold);
        regressed |= verdict.outcome == Outcome::Regression;
        println!("{verdict}");
    }
    println!("history: {}", history.path().display());
    Ok(if regressed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn summary(record: &Record) -> String {
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
    [side("read", &record.result.read), side("write", &record.result.write)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
}

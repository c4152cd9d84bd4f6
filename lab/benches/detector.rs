//! How good is the regression detector? On a real loop device (direct I/O,
//! so the page cache does not hide the device), run K checks of an unchanged
//! job and K checks of the same job slowed by 10 % (fio's `rate_iops` at 90 %
//! of the baseline run just before), and print the false-alarm rate, the
//! detection rate and how long one check took.
//!
//! LAB_DETECTOR_DESIGN picks the check:
//! - `pairs` (default), `lab fio --against`'s: baseline and candidate runs
//!   interleaved (A B, B A, …) until the verdict is settled, 10 to 40 pairs,
//!   at most 5 minutes;
//! - `sessions`, the history check of `lab test`: a session of 3 runs against
//!   the last 10 sessions (10 seeded first; each unchanged session then joins
//!   the history, as it would in use);
//! - `blocks`: N baseline runs, then N candidate runs, Welch's t-test.
//!
//! `cargo bench --bench detector` (root: it makes a loop device, and removes
//! it and its file afterwards). LAB_DETECTOR_TRIALS (K, default 20),
//! LAB_DETECTOR_REPEATS (N for blocks, default 10), LAB_DETECTOR_RUNTIME (s,
//! default 1).

use std::path::PathBuf;
use std::process::Command as Process;
use std::time::Instant;

use async_trait::async_trait;
use lab::fio::interleave::{self, Arm, Arms, Sampling};
use lab::fio::{self, Job, JobResult, Metric, Outcome, Verdict};
use lab::shell::LocalShell;

/// The noise threshold the checks use (`lab test`'s default).
const THRESHOLD: f64 = 0.05;
/// The sessions design: `lab test`'s history window, and a feature's 3 runs.
const SESSIONS: usize = lab::fio::history::SESSIONS_COMPARED;
const SESSION_RUNS: usize = 3;

struct LoopDevice {
    device: String,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    fn new(size_mib: u64) -> LoopDevice {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let file = dir.path().join("backing.img");
        let status = Process::new("truncate").arg("-s").arg(format!("{size_mib}M")).arg(&file).status().unwrap();
        assert!(status.success());
        // Filled, so reads hit the device rather than holes.
        let status = Process::new("dd")
            .args([
                "if=/dev/zero",
                &format!("of={}", file.display()),
                "bs=1M",
                &format!("count={size_mib}"),
                "conv=fsync",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let out = Process::new("losetup").args(["--find", "--show", "--direct-io=on"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        LoopDevice { device: String::from_utf8_lossy(&out.stdout).trim().to_string(), _dir: dir }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Process::new("losetup").args(["-d", &self.device]).status();
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The two arms on one device: the candidate is the same job, or the job
/// capped at 90 % of the baseline's last measured rate.
struct DetectorArms<'a> {
    job: &'a Job,
    device: &'a str,
    scratch: PathBuf,
    slowed: bool,
    last_baseline: Option<f64>,
    metric: Metric,
}

#[async_trait(?Send)]
impl Arms for DetectorArms<'_> {
    async fn run(&mut self, arm: Arm, pair: usize) -> anyhow::Result<JobResult> {
        let mut job = self.job.clone();
        if arm == Arm::Candidate && self.slowed {
            // The first candidate runs after a baseline (pairs start A B), so the rate is known.
            let rate = self.last_baseline.expect("pair 0 runs the baseline first");
            job.rate_iops = Some((rate * 0.9).round() as u64);
        }
        let raw = self.scratch.join(format!("{arm:?}-{pair}.json"));
        // Its own loop device, read only: the record of files fio made stays empty.
        let writes = fio::target::Writes { overwrite: false, record: self.scratch.join("fio-files.txt") };
        let report = fio::run(&LocalShell, &job, self.device, &raw, &writes).await?;
        let result = report.jobs.into_iter().next().ok_or_else(|| anyhow::anyhow!("fio reported no job"))?;
        if arm == Arm::Baseline {
            self.last_baseline = self.metric.of(&result);
        }
        Ok(result)
    }
}

struct Check {
    verdict: Verdict,
    seconds: f64,
    note: String,
}

fn main() {
    let trials = env("LAB_DETECTOR_TRIALS", 20) as usize;
    let repeats = env("LAB_DETECTOR_REPEATS", 10) as usize;
    let runtime = env("LAB_DETECTOR_RUNTIME", 1) as u32;
    let design = std::env::var("LAB_DETECTOR_DESIGN").unwrap_or_else(|_| "pairs".into());
    assert!(
        ["pairs", "sessions", "blocks"].contains(&design.as_str()),
        "LAB_DETECTOR_DESIGN: pairs, sessions or blocks"
    );
    let device = LoopDevice::new(256);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let metric = Metric::parse("read IOPS").unwrap();
    let mut job = Job::new("detector-randread-4k", "randread", "4k", "256M", runtime);
    job.iodepth = 16;

    let run_n = |job: &Job, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let raw = scratch.path().join(format!("{}-{i}.json", job.name));
                let writes = fio::target::Writes { overwrite: false, record: scratch.path().join("fio-files.txt") };
                let report = tokio.block_on(fio::run(&LocalShell, job, &device.device, &raw, &writes)).unwrap();
                metric.of(&report.jobs[0]).unwrap()
            })
            .collect()
    };
    let capped = |rate: f64| Job { rate_iops: Some((rate * 0.9).round() as u64), ..job.clone() };
    let mean = lab::fio::stats::mean;
    let mut history: Vec<Vec<f64>> = Vec::new();
    if design == "sessions" {
        history = (0..SESSIONS).map(|_| run_n(&job, SESSION_RUNS)).collect();
    }
    // One check: is the candidate (the job, or the job slowed by 10 %) a regression?
    let mut check = |slowed: bool| -> Check {
        let started = Instant::now();
        if design == "sessions" {
            let recent = &history[history.len() - SESSIONS..];
            let means: Vec<f64> = recent.iter().map(|s| mean(s)).collect();
            let candidate = if slowed { capped(mean(&recent[SESSIONS - 1])) } else { job.clone() };
            let current = run_n(&candidate, SESSION_RUNS);
            let verdict = fio::stats::compare_sessions(&metric.name(), metric.better(), &means, &current, THRESHOLD);
            if !slowed {
                history.push(current);
            }
            return Check { verdict, seconds: started.elapsed().as_secs_f64(), note: String::new() };
        }
        if design == "blocks" {
            let baseline = run_n(&job, repeats);
            let candidate = if slowed { capped(mean(&baseline)) } else { job.clone() };
            let current = run_n(&candidate, repeats);
            let verdict = fio::stats::compare(&metric.name(), metric.better(), &baseline, &current, THRESHOLD);
            return Check { verdict, seconds: started.elapsed().as_secs_f64(), note: String::new() };
        }
        let mut arms = DetectorArms {
            job: &job,
            device: &device.device,
            scratch: scratch.path().to_path_buf(),
            slowed,
            last_baseline: None,
            metric,
        };
        let c = tokio.block_on(interleave::compare(&mut arms, metric, THRESHOLD, Sampling::default(), None)).unwrap();
        Check {
            verdict: c.verdict.clone(),
            seconds: started.elapsed().as_secs_f64(),
            note: format!("  [{}]", c.stopped_because()),
        }
    };

    let described = match design.as_str() {
        "blocks" => format!("{repeats} runs, then {repeats} candidate runs (Welch)"),
        "sessions" => format!("a session of {SESSION_RUNS} runs against the last {SESSIONS} sessions"),
        _ => {
            let s = Sampling::default();
            format!(
                "interleaved pairs until settled ({}–{} pairs, ≤{} s)",
                s.min_pairs,
                s.max_pairs,
                s.budget.as_secs()
            )
        }
    };
    println!(
        "detector check: {described}; 4k randread qd16, {runtime}s runs, on {} (direct I/O); noise threshold {:.0}%",
        device.device,
        THRESHOLD * 100.0
    );
    let started = Instant::now();
    let (mut false_alarms, mut detected) = (0, 0);
    let mut seconds = Vec::new();
    // What the cap really took off: a device that dips below it loses more.
    let mut injected = Vec::new();
    for trial in 0..trials {
        let unchanged = check(false);
        let slowed = check(true);
        false_alarms += usize::from(unchanged.verdict.outcome == Outcome::Regression);
        detected += usize::from(slowed.verdict.outcome == Outcome::Regression);
        println!("trial {:>2}: unchanged → {}{}", trial + 1, unchanged.verdict, unchanged.note);
        println!("          slowed → {}{}", slowed.verdict, slowed.note);
        seconds.extend([unchanged.seconds, slowed.seconds]);
        injected.push(slowed.verdict.change);
    }
    let average_check = mean(&seconds);
    let longest = seconds.iter().cloned().fold(0.0, f64::max);
    println!();
    println!(
        "false alarms: {false_alarms}/{trials} = {:.1}%   (target ≤ 5%)",
        100.0 * false_alarms as f64 / trials as f64
    );
    println!(
        "detections:   {detected}/{trials} = {:.1}%   (target ≥ 95%); the slowed runs measured {:+.1}% on average",
        100.0 * detected as f64 / trials as f64,
        100.0 * mean(&injected)
    );
    println!(
        "one check:    {average_check:.0} s on average, {longest:.0} s at most   (target ≤ 300 s); all trials {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

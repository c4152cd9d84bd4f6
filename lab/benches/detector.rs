//! How good is the regression detector? On a real loop device (direct I/O,
//! so the page cache does not hide the device), run K checks of an unchanged
//! job and K checks of the same job slowed by 10 % (fio's `rate_iops` at 90 %
//! of the rate just measured), each check N runs against N baseline runs,
//! and print the false-alarm rate and the detection rate.
//!
//! `cargo bench --bench detector` (root: it makes a loop device, and removes
//! it and its file afterwards). LAB_DETECTOR_TRIALS (K, default 20),
//! LAB_DETECTOR_REPEATS (N, default 10), LAB_DETECTOR_RUNTIME (s, default 1).

use std::process::Command as Process;
use std::time::Instant;

use lab::fio::{self, Job, Metric, Outcome};
use lab::shell::LocalShell;

/// The noise threshold the checks use (`lab test`'s default).
const THRESHOLD: f64 = 0.05;

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

fn main() {
    let trials = env("LAB_DETECTOR_TRIALS", 20) as usize;
    let repeats = env("LAB_DETECTOR_REPEATS", 10) as usize;
    let runtime = env("LAB_DETECTOR_RUNTIME", 1) as u32;
    let device = LoopDevice::new(256);
    let runtime_rt = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let metric = Metric::parse("read IOPS").unwrap();
    let mut job = Job::new("detector-randread-4k", "randread", "4k", "256M", runtime);
    job.iodepth = 16;

    let run_n = |job: &Job, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let raw = scratch.path().join(format!("{}-{i}.json", job.name));
                let report = runtime_rt.block_on(fio::run(&LocalShell, job, &device.device, &raw)).unwrap();
                metric.of(&report.jobs[0]).unwrap()
            })
            .collect()
    };

    println!(
        "detector check: {repeats} runs against {repeats} baseline runs of 4k randread qd16, {runtime}s each, on {} (direct I/O); noise threshold {:.0}%",
        device.device,
        THRESHOLD * 100.0
    );
    let started = Instant::now();
    let (mut false_alarms, mut detected) = (0, 0);
    let mut check_seconds = Vec::new();
    for trial in 0..trials {
        // Unchanged: both sides the same job.
        let check = Instant::now();
        let baseline = run_n(&job, repeats);
        let current = run_n(&job, repeats);
        let verdict = fio::stats::compare(&metric.name(), metric.better(), &baseline, &current, THRESHOLD);
        check_seconds.push(check.elapsed().as_secs_f64());
        if verdict.outcome == Outcome::Regression {
            false_alarms += 1;
        }
        // Slowed by 10 %: capped at 90 % of what the baseline just measured.
        let baseline = run_n(&job, repeats);
        let mean = baseline.iter().sum::<f64>() / baseline.len() as f64;
        let mut slow = job.clone();
        slow.rate_iops = Some((mean * 0.9).round() as u64);
        let current = run_n(&slow, repeats);
        let slowed = fio::stats::compare(&metric.name(), metric.better(), &baseline, &current, THRESHOLD);
        if slowed.outcome == Outcome::Regression {
            detected += 1;
        }
        println!("trial {:>2}: unchanged → {verdict}\n          slowed → {slowed}", trial + 1);
    }
    let check = check_seconds.iter().sum::<f64>() / check_seconds.len().max(1) as f64;
    println!();
    println!(
        "false alarms: {false_alarms}/{trials} = {:.1}%   (target ≤ 5%)",
        100.0 * false_alarms as f64 / trials as f64
    );
    println!("detections:   {detected}/{trials} = {:.1}%   (target ≥ 95%)", 100.0 * detected as f64 / trials as f64);
    println!("one check:    {check:.1} s   (target ≤ 300 s); all trials {:.0} s", started.elapsed().as_secs_f64());
}

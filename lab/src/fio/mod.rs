//! fio: a typed job, run somewhere (host, node, pod), its output kept on
//! disk before it is read, metrics picked by name, and regressions decided
//! with statistics.

pub mod changepoint;
pub mod history;
pub mod interleave;
pub mod job;
pub mod parse;
pub mod stats;
pub mod target;

use std::path::Path;

use anyhow::Context as _;

use crate::shell::{Cmd, Shell};
pub use job::Job;
pub use parse::{Direction, JobResult, Report};
pub use stats::{Better, Outcome, Verdict};

/// A metric a check can name: "read IOPS", "p99 write latency", …
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub write: bool,
    pub kind: MetricKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Iops,
    /// Bytes per second.
    Bandwidth,
    /// Completion latency, microseconds.
    MeanLatency,
    P50,
    P99,
    P999,
}

impl Metric {
    /// Read the words a feature uses: `read IOPS`, `write bandwidth`,
    /// `p99 read latency`, `p99.9 write latency`, `mean read latency`.
    pub fn parse(text: &str) -> Result<Metric, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        let write = match (words.iter().any(|w| w == "read"), words.iter().any(|w| w == "write")) {
            (true, false) => false,
            (false, true) => true,
            _ => return Err(format!("`{text}`: say `read` or `write`")),
        };
        let has = |w: &str| words.iter().any(|x| x == w);
        let kind = if has("iops") {
            MetricKind::Iops
        } else if has("bandwidth") {
            MetricKind::Bandwidth
        } else if has("latency") {
            match words.first().map(String::as_str) {
                Some("mean") => MetricKind::MeanLatency,
                Some("p50") => MetricKind::P50,
                Some("p99") => MetricKind::P99,
                Some("p99.9") => MetricKind::P999,
                _ => return Err(format!("`{text}`: latency is `mean`, `p50`, `p99` or `p99.9`")),
            }
        } else {
            return Err(format!("`{text}`: name IOPS, bandwidth or a latency (e.g. `p99 read latency`)"));
        };
        Ok(Metric { write, kind })
    }

    /// What a check of `job` is about when nobody says: its IOPS, the
    /// write side for a job that only writes.
    pub fn headline(job: &Job) -> Metric {
        let writes_only = matches!(job.rw.as_str(), "write" | "randwrite" | "trim" | "randtrim" | "trimwrite");
        Metric { write: writes_only, kind: MetricKind::Iops }
    }

    pub fn better(self) -> Better {
        match self.kind {
            MetricKind::Iops | MetricKind::Bandwidth => Better::Higher,
            _ => Better::Lower,
        }
    }

    /// The value in a result; `None` when fio did not measure it.
    pub fn of(self, result: &JobResult) -> Option<f64> {
        let d = if self.write { result.write.as_ref()? } else { result.read.as_ref()? };
        match self.kind {
            MetricKind::Iops => Some(d.iops),
            MetricKind::Bandwidth => Some(d.bw_bytes),
            MetricKind::MeanLatency => d.clat_mean_us,
            MetricKind::P50 => d.clat_p50_us,
            MetricKind::P99 => d.clat_p99_us,
            MetricKind::P999 => d.clat_p999_us,
        }
    }

    pub fn name(self) -> String {
        let side = if self.write { "write" } else { "read" };
        match self.kind {
            MetricKind::Iops => format!("{side} IOPS"),
            MetricKind::Bandwidth => format!("{side} bandwidth"),
            MetricKind::MeanLatency => format!("mean {side} latency"),
            MetricKind::P50 => format!("p50 {side} latency"),
            MetricKind::P99 => format!("p99 {side} latency"),
            MetricKind::P999 => format!("p99.9 {side} latency"),
        }
    }
}

/// How a check ended: it passed, it failed, or the data could not decide
/// it, which is never reported as passed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "snake_case")]
pub enum Judged {
    Passed,
    Failed,
    /// Not judged, and why ("2 earlier sessions, 3 needed").
    NotJudged(String),
}

impl Judged {
    /// A verdict's answer to "has it regressed?": too few samples cannot
    /// say, nor can an interval wide enough to reach past the threshold on
    /// the worse side (more runs could still make it a regression).
    pub fn of(verdict: &Verdict, better: Better) -> Judged {
        match verdict.outcome {
            Outcome::Regression => Judged::Failed,
            Outcome::TooFewSamples => Judged::NotJudged(verdict.to_string()),
            Outcome::Improvement | Outcome::NoChange if verdict.settled(better) => Judged::Passed,
            Outcome::Improvement | Outcome::NoChange => Judged::NotJudged(format!(
                "{}: unsettled, the 95 % interval {:+.1} % … {:+.1} % reaches past the {:.0} % threshold; more runs are needed",
                verdict.metric,
                verdict.ci.0 * 100.0,
                verdict.ci.1 * 100.0,
                verdict.threshold * 100.0
            )),
        }
    }

    /// `✓ passed`, `✗ failed`, `? not judged`.
    pub fn label(&self) -> &'static str {
        match self {
            Judged::Passed => "✓ passed",
            Judged::Failed => "✗ failed",
            Judged::NotJudged(_) => "? not judged",
        }
    }
}

/// Run a job on `shell` against `filename`. fio's whole output is written to
/// `raw` before it is parsed, so a result that cannot be read is not lost.
/// A writing job first passes [`target::check`] (see there); a file it made is recorded.
pub async fn run(
    shell: &dyn Shell,
    job: &Job,
    filename: &str,
    raw: &Path,
    writes: &target::Writes,
) -> anyhow::Result<Report> {
    job.check().map_err(anyhow::Error::msg)?;
    Job::check_target(filename).map_err(|e| anyhow::anyhow!(e))?;
    let before = target::check(shell, job, filename, writes).await?;
    let report = run_job_file(shell, &job.name, &job.job_file(filename), raw).await;
    if let Some(before) = &before {
        // Recorded even when the run failed: fio may have laid the file out first.
        target::remember_made(shell, before, writes).await?;
    }
    let (report, stderr) = report?;
    // A run that did no I/O (or did not report it) is a failure of that run,
    // never a sample: compared, a zero only ever makes "too few samples".
    // fio says why on stderr (a mounted device: it aborts with status 0).
    let said = fio_said(&stderr);
    let why = if said.is_empty() { String::new() } else { format!("; fio said: {said}") };
    let headline = Metric::headline(job);
    match report.jobs.first().map(|r| headline.of(r)) {
        Some(Some(value)) if value > 0.0 => Ok(report),
        Some(Some(_)) => anyhow::bail!(
            "{}: fio job {} measured 0 {}{why} (raw output in {}): a run that did no I/O cannot be judged",
            shell.place(),
            job.name,
            headline.name(),
            raw.display()
        ),
        _ => anyhow::bail!(
            "{}: fio job {} reported no {}{why} (raw output in {})",
            shell.place(),
            job.name,
            headline.name(),
            raw.display()
        ),
    }
}

/// The first lines fio wrote to stderr, joined: its own words for what went wrong.
fn fio_said(stderr: &str) -> String {
    stderr.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join("; ")
}

/// Write a verifiable pattern over `size_mib` MiB of `filename`
/// (`verify=crc32c`, `do_verify=0`), or with `verify_only` read it back and
/// check every block's header and checksum without writing. A block that
/// was never written, or changed since, fails the check.
pub async fn pattern(
    shell: &dyn Shell,
    filename: &str,
    size_mib: u64,
    verify_only: bool,
    raw: &Path,
) -> anyhow::Result<Report> {
    let name = if verify_only { "verify-pattern" } else { "write-pattern" };
    let (report, _) = run_job_file(shell, name, &pattern_job_file(filename, size_mib, verify_only), raw).await?;
    // fio with verify_only reports the blocks it checked as reads: none checked is no verdict.
    let checked: u64 = report
        .jobs
        .iter()
        .filter_map(|j| if verify_only { j.read.as_ref() } else { j.write.as_ref() })
        .map(|d| d.io_bytes)
        .sum();
    let wanted = size_mib * 1024 * 1024;
    if checked < wanted {
        anyhow::bail!(
            "{}: fio job {name} covered {checked} of {wanted} bytes; raw output in {}",
            shell.place(),
            raw.display()
        );
    }
    Ok(report)
}

fn pattern_job_file(filename: &str, size_mib: u64, verify_only: bool) -> String {
    // The same job both times: fio regenerates the pattern from it to compare.
    let mut file = format!(
        "[global]\nfilename={filename}\nioengine=psync\ndirect=1\nbs=64k\nsize={size_mib}M\n\n[pattern]\nrw=write\nverify=crc32c\nverify_fatal=1\nverify_state_save=0\n"
    );
    // Writing skips the read-back (`do_verify=0`); `verify_only` reads and checks without writing.
    file.push_str(if verify_only { "verify_only=1\n" } else { "do_verify=0\n" });
    file
}

/// Run a job file (on stdin: the same on the host, in a node or in a pod),
/// fio's output written to `raw` before it is read; the report, and what
/// fio wrote to stderr.
async fn run_job_file(shell: &dyn Shell, name: &str, job_file: &str, raw: &Path) -> anyhow::Result<(Report, String)> {
    let cmd = Cmd::new("fio").args(["--output-format=json", "-"]);
    let output = shell.exec(&cmd, Some(job_file.as_bytes())).await?;
    if let Some(dir) = raw.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(raw, format!("{}{}", output.stdout, output.stderr))
        .with_context(|| format!("cannot write {}", raw.display()))?;
    let parsed = parse::parse(&output.stdout);
    let job_failed = parsed.as_ref().is_ok_and(|r| r.jobs.iter().any(|j| j.error != 0));
    if !output.success() || job_failed {
        // fio's own words: the notes in its JSON, then the first lines it
        // wrote to stderr (where a failed verify says which block and why).
        let mut said: Vec<&str> =
            parsed.as_ref().map(|r| r.notes.iter().map(String::as_str).collect()).unwrap_or_default();
        let stderr = fio_said(&output.stderr);
        said.extend((!stderr.is_empty()).then_some(stderr.as_str()));
        let notes = said.join("; ");
        anyhow::bail!(
            "{}: fio job {} failed (exit {}){}; raw output in {}",
            shell.place(),
            name,
            output.status,
            if notes.is_empty() { String::new() } else { format!(": {notes}") },
            raw.display()
        );
    }
    let report = parsed.map_err(|e| anyhow::anyhow!("{} ({}; raw output in {})", e, shell.place(), raw.display()))?;
    Ok((report, output.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_named_as_features_say_them() {
        let m = Metric::parse("p99 write latency").unwrap();
        assert_eq!((m.write, m.kind, m.better()), (true, MetricKind::P99, Better::Lower));
        assert_eq!(m.name(), "p99 write latency");
        assert_eq!(Metric::parse("read IOPS").unwrap().kind, MetricKind::Iops);
        assert_eq!(Metric::parse("p99.9 read latency").unwrap().kind, MetricKind::P999);
        assert!(Metric::parse("IOPS").unwrap_err().contains("say `read` or `write`"));
        assert!(Metric::parse("p42 read latency").unwrap_err().contains("`p99.9`"));
    }

    #[tokio::test]
    async fn a_real_fio_run_on_the_host_is_kept_raw_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        let mut job = Job::new("quick", "randread", "4k", "8M", 1);
        job.direct = false;
        job.ioengine = "psync".into();
        let raw = dir.path().join("raw/quick.json");
        let writes = target::Writes { overwrite: false, record: dir.path().join("fio-files.txt") };
        let report = run(&crate::shell::LocalShell, &job, &file.display().to_string(), &raw, &writes).await.unwrap();
        let iops = Metric::parse("read IOPS").unwrap().of(&report.jobs[0]).unwrap();
        assert!(iops > 0.0);
        assert!(Metric::parse("p99 read latency").unwrap().of(&report.jobs[0]).is_some());
        assert!(std::fs::read_to_string(&raw).unwrap().contains("\"fio version\""));

        let mut broken = job.clone();
        broken.name = "fails".into();
        let err = run(&crate::shell::LocalShell, &broken, "/proc/version", &dir.path().join("raw/fails.json"), &writes)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("host: fio job fails failed"), "{err}");
    }

    /// The pattern fio writes verifies; one changed byte, or a file that was
    /// never written, fails with fio's own words. On disk, not tmpfs, which
    /// refuses direct I/O.
    #[tokio::test]
    #[ignore = "needs fio: bash .ci/run runs it"]
    async fn a_written_pattern_verifies_and_a_changed_byte_does_not() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target");
        std::fs::create_dir_all(&target).unwrap();
        let dir = tempfile::tempdir_in(target).unwrap();
        let file = dir.path().join("pattern");
        let name = file.display().to_string();
        let raw = |n: &str| dir.path().join(format!("raw/{n}.json"));
        let shell = crate::shell::LocalShell;
        pattern(&shell, &name, 4, false, &raw("write")).await.unwrap();
        let report = pattern(&shell, &name, 4, true, &raw("verify")).await.unwrap();
        assert_eq!(report.jobs[0].read.as_ref().unwrap().io_bytes, 4 << 20);

        let mut data = std::fs::read(&file).unwrap();
        data[70_000] ^= 0xff;
        std::fs::write(&file, &data).unwrap();
        let err = pattern(&shell, &name, 4, true, &raw("changed")).await.unwrap_err().to_string();
        assert!(err.contains("fio job verify-pattern failed") && err.contains("verify failed"), "{err}");

        std::fs::remove_file(&file).unwrap();
        let err = pattern(&shell, &name, 4, true, &raw("missing")).await.unwrap_err().to_string();
        assert!(err.contains("bad magic header"), "{err}");
    }
}

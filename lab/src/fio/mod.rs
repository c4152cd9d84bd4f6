//! fio: a typed job, run somewhere (host, node, pod), its output kept on
//! disk before it is read, metrics picked by name, and regressions decided
//! with statistics.

pub mod changepoint;
pub mod history;
pub mod interleave;
pub mod job;
pub mod parse;
pub mod stats;

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

/// Run a job on `shell` against `filename`. fio's whole output is written to
/// `raw` before it is parsed, so a result that cannot be read is not lost.
pub async fn run(shell: &dyn Shell, job: &Job, filename: &str, raw: &Path) -> anyhow::Result<Report> {
    job.check().map_err(anyhow::Error::msg)?;
    let job_file = job.job_file(filename);
    // The job file goes in on stdin: it works the same on the host, in a node or in a pod.
    let cmd = Cmd::new("fio").args(["--output-format=json", "-"]);
    let output = shell.exec(&cmd, Some(job_file.as_bytes())).await?;
    if let Some(dir) = raw.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(raw, format!("{}{}", output.stdout, output.stderr))
        .with_context(|| format!("cannot write {}", raw.display()))?;
    let report = parse::parse(&output.stdout)
        .map_err(|e| anyhow::anyhow!("{} ({}; raw output in {})", e, shell.place(), raw.display()))?;
    if !output.success() || report.jobs.iter().any(|j| j.error != 0) {
        let notes = report.notes.join("; ");
        anyhow::bail!(
            "{}: fio job {} failed (exit {}){}; raw output in {}",
            shell.place(),
            job.name,
            output.status,
            if notes.is_empty() { String::new() } else { format!(": {notes}") },
            raw.display()
        );
    }
    Ok(report)
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
        let report = run(&crate::shell::LocalShell, &job, &file.display().to_string(), &raw).await.unwrap();
        let iops = Metric::parse("read IOPS").unwrap().of(&report.jobs[0]).unwrap();
        assert!(iops > 0.0);
        assert!(Metric::parse("p99 read latency").unwrap().of(&report.jobs[0]).is_some());
        assert!(std::fs::read_to_string(&raw).unwrap().contains("\"fio version\""));

        let mut broken = job.clone();
        broken.name = "fails".into();
        let err = run(&crate::shell::LocalShell, &broken, "/proc/version", &dir.path().join("raw/fails.json"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("host: fio job fails failed"), "{err}");
    }
}

//! Results kept for comparison: `results/<scenario>/<profile>.jsonl`, one
//! line per run, appended (never rewritten), each with the environment it
//! ran in, so a baseline is only compared with runs that are comparable.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::parse::JobResult;

/// Where and with what a run happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub kernel: String,
    pub cpu: String,
    pub device: String,
    pub fio: String,
    pub lab: String,
    pub git_commit: String,
}

impl Fingerprint {
    /// This machine's, for `device` (the file or device fio used).
    pub fn here(device: &str, fio_version: &str) -> Fingerprint {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_default();
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Fingerprint {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            device: device.to_string(),
            fio: fio_version.to_string(),
            lab: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: commit,
        }
    }

    /// Whether two runs can be compared: same kernel, CPU, device and fio.
    pub fn comparable(&self, other: &Fingerprint) -> bool {
        (&self.kernel, &self.cpu, &self.device, &self.fio) == (&other.kernel, &other.cpu, &other.device, &other.fio)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the epoch.
    pub time: u64,
    pub scenario: String,
    pub profile: String,
    /// Runs of one check share a label (e.g. the git commit, or "baseline").
    pub label: String,
    pub result: JobResult,
    pub env: Fingerprint,
}

pub struct History {
    path: PathBuf,
}

impl History {
    pub fn new(root: &Path, scenario: &str, profile: &str) -> History {
        History { path: root.join(scenario).join(format!("{profile}.jsonl")) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record; the file only ever grows.
    pub fn append(&self, record: &Record) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let line = serde_json::to_string(record)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        writeln!(file, "{line}").with_context(|| format!("cannot append to {}", self.path.display()))?;
        Ok(())
    }

    /// Every record, oldest first; a damaged line is an error naming it.
    pub fn records(&self) -> anyhow::Result<Vec<Record>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{}:{}: not a result record", self.path.display(), i + 1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_and_read_back_and_damage_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path(), "host-perf", "randread-4k");
        let record = |label: &str| Record {
            time: 1,
            scenario: "host-perf".into(),
            profile: "randread-4k".into(),
            label: label.into(),
            result: JobResult { name: "randread-4k".into(), ..JobResult::default() },
            env: Fingerprint::here("/dev/loop0", "fio-3.33"),
        };
        history.append(&record("a")).unwrap();
        history.append(&record("b")).unwrap();
        let labels: Vec<String> = history.records().unwrap().into_iter().map(|r| r.label).collect();
        assert_eq!(labels, ["a", "b"]);
        assert!(history.path().ends_with("host-perf/randread-4k.jsonl"));
        let here = Fingerprint::here("/dev/loop0", "fio-3.33");
        assert!(here.comparable(&Fingerprint { git_commit: "other".into(), ..here.clone() }));
        assert!(!here.comparable(&Fingerprint { device: "/dev/loop1".into(), ..here.clone() }));

        std::fs::write(history.path(), "{\"broken\n").unwrap();
        let err = format!("{:#}", history.records().unwrap_err());
        assert!(err.contains("randread-4k.jsonl:1: not a result record"), "{err}");
    }
}

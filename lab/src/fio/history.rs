//! Results kept for comparison: `results/<scenario>/<profile>.jsonl`, one
//! line per run, appended (never rewritten), each with the environment it
//! ran in, so a baseline is only compared with runs that are comparable.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::Metric;
use super::changepoint::{self, ChangePoint};
use super::parse::JobResult;
use super::stats::{self, Better, Verdict, mean};

/// Where and with what a run happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub kernel: String,
    pub cpu: String,
    pub device: String,
    /// The filesystem fio's target lives on (`xfs`, `ext4`, `raw` for a
    /// block device); empty where it cannot be told (a pod's path).
    #[serde(default)]
    pub filesystem: String,
    pub fio: String,
    pub lab: String,
    pub git_commit: String,
}

/// The checkout's commit (`git rev-parse --short HEAD`), empty outside one;
/// asked once per process, not on every fio run.
pub fn git_commit() -> &'static str {
    static COMMIT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COMMIT.get_or_init(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    })
}

/// The environment a session (`label`) last ran in; the default when it has no run.
pub fn session_env(records: &[Record], label: &str) -> Fingerprint {
    records.iter().rev().find(|r| r.label == label).map(|r| r.env.clone()).unwrap_or_default()
}

impl Fingerprint {
    /// This machine's, for `device` (the file or device fio used).
    pub fn here(device: &str, fio_version: &str) -> Fingerprint {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_default();
        Fingerprint {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            device: device.to_string(),
            filesystem: filesystem_of(device),
            fio: fio_version.to_string(),
            lab: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit().to_string(),
        }
    }

    /// Whether two runs can be compared: same kernel, CPU, device, filesystem and fio.
    pub fn comparable(&self, other: &Fingerprint) -> bool {
        (&self.kernel, &self.cpu, &self.device, &self.filesystem, &self.fio)
            == (&other.kernel, &other.cpu, &other.device, &other.filesystem, &other.fio)
    }
}

/// The filesystem a path on this host lives on: the type of the deepest
/// mount holding it, `raw` for a block device, empty for what is not a path here.
pub fn filesystem_of(target: &str) -> String {
    let path = std::path::Path::new(target);
    if !path.is_absolute() {
        return String::new();
    }
    if std::fs::metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type())) {
        return "raw".into();
    }
    // fio may create the file: its folder decides.
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(std::path::Path::new("/"));
    let Ok(resolved) = existing.canonicalize() else { return String::new() };
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            Some((point.replace("\\040", " "), kind.to_string()))
        })
        .filter(|(point, _)| resolved.starts_with(point))
        .max_by_key(|(point, _)| point.len())
        .map(|(_, kind)| kind)
        .unwrap_or_default()
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

impl Record {
    /// A run finished just now.
    pub fn now(scenario: &str, profile: &str, label: &str, result: JobResult, env: Fingerprint) -> Record {
        Record {
            time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            scenario: scenario.to_string(),
            profile: profile.to_string(),
            label: label.to_string(),
            result,
            env,
        }
    }
}

/// The most recent sessions a run is judged against: older ones describe an older machine.
pub const SESSIONS_COMPARED: usize = 10;

/// What a run is judged against in the history.
#[derive(Debug, PartialEq)]
pub enum Baseline {
    /// Each earlier comparable session's values (one label each), oldest first.
    Sessions(Vec<Vec<f64>>),
    /// The runs of one named label: one session, so only its own spread is known.
    Label(Vec<f64>),
}

impl Baseline {
    /// From `records`, the runs comparable with `env` other than this session's.
    pub fn from_history(
        records: &[Record],
        env: &Fingerprint,
        this_label: &str,
        label: Option<&str>,
        metric: Metric,
    ) -> Baseline {
        let earlier = records.iter().filter(|r| r.label != this_label && r.env.comparable(env));
        if let Some(label) = label {
            return Baseline::Label(
                earlier.filter(|r| r.label == label).filter_map(|r| metric.of(&r.result)).collect(),
            );
        }
        let sessions = sessions(earlier, metric);
        let recent = sessions.len().saturating_sub(SESSIONS_COMPARED);
        Baseline::Sessions(sessions.into_iter().skip(recent).map(|(_, values)| values).collect())
    }

    /// The verdict on `current`, every baseline value multiplied by `scale` (the unit `current` is in).
    pub fn judge(&self, metric: &str, better: Better, current: &[f64], threshold: f64, scale: f64) -> Verdict {
        match self {
            Baseline::Sessions(sessions) => {
                let means: Vec<f64> = sessions.iter().map(|s| mean(s) * scale).collect();
                stats::compare_sessions(metric, better, &means, current, threshold)
            }
            Baseline::Label(runs) => {
                let runs: Vec<f64> = runs.iter().map(|x| x * scale).collect();
                stats::compare(metric, better, &runs, current, threshold)
            }
        }
    }
}

/// Runs grouped by session (label) with their values of `metric`, in the
/// order of each session's first run.
pub fn sessions<'a>(records: impl IntoIterator<Item = &'a Record>, metric: Metric) -> Vec<(&'a str, Vec<f64>)> {
    let mut sessions: Vec<(&str, Vec<f64>)> = Vec::new();
    for record in records {
        let Some(value) = metric.of(&record.result) else { continue };
        match sessions.iter_mut().find(|(l, _)| *l == record.label) {
            Some((_, values)) => values.push(value),
            None => sessions.push((&record.label, vec![value])),
        }
    }
    sessions
}

/// Where a metric shifted over a history's sessions.
pub struct Shifts {
    pub metric: String,
    pub sessions: usize,
    /// Each change point with the label of the first session after it.
    pub points: Vec<(String, ChangePoint)>,
}

impl Shifts {
    /// Over the sessions comparable with `env`, one mean each.
    pub fn find(records: &[Record], env: &Fingerprint, metric: Metric) -> Shifts {
        let sessions = sessions(records.iter().filter(|r| r.env.comparable(env)), metric);
        let means: Vec<f64> = sessions.iter().map(|(_, v)| mean(v)).collect();
        let points =
            changepoint::change_points(&means).into_iter().map(|c| (sessions[c.index].0.to_string(), c)).collect();
        Shifts { metric: metric.name(), sessions: sessions.len(), points }
    }

    /// One line each: "read IOPS shifted at session L (7 of 12): 91234 → 80321 (-12.0%, p=0.0005)".
    pub fn lines(&self) -> Vec<String> {
        self.points
            .iter()
            .map(|(label, c)| {
                format!(
                    "{} shifted at session {label} ({} of {}): {} → {} ({:+.1}%, p={:.4})",
                    self.metric,
                    c.index + 1,
                    self.sessions,
                    stats::round(c.before),
                    stats::round(c.after),
                    c.change * 100.0,
                    c.p_value
                )
            })
            .collect()
    }
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
        assert!(!here.comparable(&Fingerprint { filesystem: "ext4".into(), ..here.clone() }), "xfs is not ext4");
        assert_eq!(filesystem_of("/proc/self/status"), "proc");
        assert_eq!(filesystem_of("loop (xfs)"), "", "not a path on this host");

        std::fs::write(history.path(), "{\"broken\n").unwrap();
        let err = format!("{:#}", history.records().unwrap_err());
        assert!(err.contains("randread-4k.jsonl:1: not a result record"), "{err}");
    }

    #[test]
    fn the_baseline_is_earlier_comparable_sessions_or_one_label() {
        let env = Fingerprint::here("/dev/loop0", "fio-3.33");
        let elsewhere = Fingerprint { device: "/dev/loop1".into(), ..env.clone() };
        let run = |label: &str, iops: f64, env: &Fingerprint| Record {
            time: 1,
            scenario: "s".into(),
            profile: "p".into(),
            label: label.into(),
            result: JobResult {
                read: Some(super::super::Direction { iops, ..Default::default() }),
                ..JobResult::default()
            },
            env: env.clone(),
        };
        let mut records = vec![run("a", 10.0, &env), run("b", 20.0, &env), run("a", 12.0, &env)];
        records.push(run("other-device", 99.0, &elsewhere));
        records.push(run("now", 5.0, &env));
        let iops = Metric::parse("read IOPS").unwrap();
        let sessions = Baseline::from_history(&records, &env, "now", None, iops);
        assert_eq!(sessions, Baseline::Sessions(vec![vec![10.0, 12.0], vec![20.0]]));
        assert_eq!(Baseline::from_history(&records, &env, "now", Some("b"), iops), Baseline::Label(vec![20.0]));
        // Only the most recent sessions count.
        let many: Vec<Record> = (0..15).map(|i| run(&format!("s{i}"), i as f64, &env)).collect();
        let Baseline::Sessions(recent) = Baseline::from_history(&many, &env, "now", None, iops) else { panic!() };
        assert_eq!(recent.len(), SESSIONS_COMPARED);
        assert_eq!(recent[0], [5.0]);
        // Scaled into the current values' unit before judging.
        let v = sessions.judge("read IOPS", Better::Higher, &[0.011], 0.05, 0.001);
        assert_eq!(v.outcome, stats::Outcome::TooFewSamples, "two sessions are not enough: {v}");
        assert!((v.baseline_mean - 0.0155).abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn shifts_are_found_between_sessions_and_named_by_the_session_after() {
        let env = Fingerprint::here("/dev/loop0", "fio-3.33");
        let run = |label: String, iops: f64| Record {
            time: 1,
            scenario: "s".into(),
            profile: "p".into(),
            label,
            result: JobResult {
                read: Some(super::super::Direction { iops, ..Default::default() }),
                ..JobResult::default()
            },
            env: env.clone(),
        };
        // Twenty sessions of three runs; from the eleventh on, 15 % slower.
        // (A permutation test cannot reach p < 0.001 with much fewer.)
        let records: Vec<Record> = (0..20)
            .flat_map(|s| {
                let level = if s < 10 { 1000.0 } else { 850.0 };
                (0..3).map(move |r| (s, level * (1.0 + 0.01 * ((s + r) % 3) as f64)))
            })
            .map(|(s, iops)| run(format!("s{s}"), iops))
            .collect();
        let shifts = Shifts::find(&records, &env, Metric::parse("read IOPS").unwrap());
        assert_eq!((shifts.sessions, shifts.points.len()), (20, 1));
        let line = &shifts.lines()[0];
        assert!(line.starts_with("read IOPS shifted at session s10 (11 of 20): 1010 → 858 (-15.0%, p=0.000"), "{line}");
        // Twelve sessions (six either side) with the same shift: too few to be sure.
        let short = Shifts::find(&records[12..48], &env, Metric::parse("read IOPS").unwrap());
        assert_eq!((short.sessions, short.points.len()), (12, 0));
        // Another device's runs are another history.
        let elsewhere = Fingerprint { device: "/dev/loop1".into(), ..env };
        assert_eq!(Shifts::find(&records, &elsewhere, Metric::parse("read IOPS").unwrap()).sessions, 0);
    }
}

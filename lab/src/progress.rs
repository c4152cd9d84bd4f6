//! User-facing progress: one ✓/✗ line per step, a spinner while it runs
//! (with how long the same step took last time, where lab knows it); when
//! stderr is not a terminal, a plain line every minute of a long step.
//! Diagnostic logs go through `tracing` instead (`-v`).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The parts of an edit-to-verdict cycle that a run's time is told by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The components' images built (or found cached).
    Build,
    /// The cluster made (or its nodes found) and its nodes prepared.
    Cluster,
    /// The images put into the nodes, and checked there.
    Load,
    /// The stack's objects applied, OnDelete pods replaced.
    Rollout,
    /// Waiting until the stack's workloads are ready and its pools Online.
    Ready,
    /// The Gherkin features run.
    Features,
    /// The stack and the cluster removed, the host restored.
    Teardown,
}

impl Phase {
    pub const ALL: [Phase; 7] =
        [Phase::Build, Phase::Cluster, Phase::Load, Phase::Rollout, Phase::Ready, Phase::Features, Phase::Teardown];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Cluster => "cluster",
            Phase::Load => "load",
            Phase::Rollout => "rollout",
            Phase::Ready => "ready",
            Phase::Features => "features",
            Phase::Teardown => "teardown",
        }
    }
}

pub struct Progress {
    quiet: bool,
    /// Seconds spent per phase in this process (`None`: steps of no phase).
    spent: std::sync::Mutex<BTreeMap<Option<Phase>, f64>>,
}

/// A running step's display: the spinner, and the plain ticker off a terminal.
pub struct Running {
    pub spinner: Option<ProgressBar>,
    ticker: Option<Arc<AtomicBool>>,
}

/// Where each step's last duration is kept, by its title.
fn durations_file() -> PathBuf {
    crate::state::cache_root().join("step-durations.json")
}

fn durations() -> BTreeMap<String, f64> {
    std::fs::read_to_string(durations_file()).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// `8m13s`, `42s`.
pub fn short(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{s}s") }
}

/// What lab knows of a step's length: its last run's, when it took a while.
pub fn last_time(title: &str) -> Option<f64> {
    durations().get(title).copied().filter(|s| *s >= 10.0)
}

fn remember(title: &str, took: Duration) {
    if took < Duration::from_secs(1) {
        return;
    }
    let mut all = durations();
    all.insert(title.to_string(), took.as_secs_f64());
    let path = durations_file();
    let temporary = path.with_extension(format!("json.{}", std::process::id()));
    let written = std::fs::create_dir_all(path.parent().unwrap_or(&path))
        .and_then(|()| std::fs::write(&temporary, serde_json::to_string(&all).unwrap_or_default()))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = written {
        tracing::debug!("cannot keep step durations in {}: {e}", path.display());
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress { quiet, spent: Default::default() }
    }

    /// A spinner for a running step, hidden when quiet; off a terminal, a
    /// line every minute instead. `title` names the step across runs.
    pub fn start(&self, label: &str, title: &str) -> Running {
        if self.quiet {
            return Running { spinner: None, ticker: None };
        }
        let last = last_time(title);
        let message = match last {
            Some(s) => format!("{label} (took {} last time)", short(s)),
            None => label.to_string(),
        };
        let spinner = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.set_message(message.clone());
        spinner.enable_steady_tick(Duration::from_millis(120));
        let ticker = (!std::io::stderr().is_terminal()).then(|| {
            let done = Arc::new(AtomicBool::new(false));
            let stop = done.clone();
            let started = Instant::now();
            std::thread::spawn(move || {
                let mut next = Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    if started.elapsed() >= next && !stop.load(Ordering::Relaxed) {
                        eprintln!("  … {message}: running for {}", short(started.elapsed().as_secs_f64()));
                        next += Duration::from_secs(60);
                    }
                }
            });
            done
        });
        Running { spinner: Some(spinner), ticker }
    }

    /// The step's line: its mark, what it found or changed (`note`), how long it took.
    pub fn finish(&self, running: Running, title: &str, label: &str, note: Option<&str>, ok: bool, took: Duration) {
        if let Some(ticker) = running.ticker {
            ticker.store(true, Ordering::Relaxed);
        }
        if let Some(spinner) = running.spinner {
            spinner.finish_and_clear();
        }
        if ok {
            remember(title, took);
        }
        if !self.quiet {
            let mark = if ok { "✓" } else { "✗" };
            let note = note.map(|n| format!(": {n}")).unwrap_or_default();
            eprintln!("{mark} {label}{note} ({:.1}s)", took.as_secs_f64());
        }
    }

    /// Count `took` in a phase of this run's account.
    pub fn count(&self, phase: Option<Phase>, took: Duration) {
        if let Ok(mut spent) = self.spent.lock() {
            *spent.entry(phase).or_default() += took.as_secs_f64();
        }
    }

    /// Where this run's time went, by phase, in cycle order (steps of no
    /// phase as "other").
    pub fn account(&self) -> Vec<(&'static str, f64)> {
        let spent = self.spent.lock().map(|s| s.clone()).unwrap_or_default();
        let mut out: Vec<(&'static str, f64)> =
            Phase::ALL.iter().filter_map(|p| spent.get(&Some(*p)).map(|s| (p.name(), *s))).collect();
        if let Some(other) = spent.get(&None) {
            out.push(("other", *other));
        }
        out
    }

    /// `where the time went: build 1m55s · load 13s · … (2m44s in all)`,
    /// once a run has spent time in more than one phase.
    pub fn account_line(&self) -> Option<String> {
        let account = self.account();
        if account.iter().filter(|(name, _)| *name != "other").count() < 2 {
            return None;
        }
        let total: f64 = account.iter().map(|(_, s)| s).sum();
        let parts: Vec<String> = account.iter().map(|(name, s)| format!("{name} {}", short(*s))).collect();
        Some(format!("where the time went: {} ({} in all)", parts.join(" · "), short(total)))
    }

    /// A line of its own, e.g. a step that was skipped.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_names_each_phase_in_cycle_order_once_there_are_two() {
        let progress = Progress::new(true);
        progress.count(Some(Phase::Load), Duration::from_secs(13));
        assert_eq!(progress.account_line(), None, "one phase is no account");
        progress.count(Some(Phase::Build), Duration::from_secs(115));
        progress.count(None, Duration::from_secs(1));
        progress.count(Some(Phase::Build), Duration::from_secs(1));
        assert_eq!(
            progress.account_line().unwrap(),
            "where the time went: build 1m56s · load 13s · other 1s (2m10s in all)"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(short(493.1), "8m13s");
        assert_eq!(short(42.4), "42s");
        assert_eq!(short(60.0), "1m00s");
    }
}

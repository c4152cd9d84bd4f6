//! User-facing progress: one ✓/✗ line per step, a spinner while it runs.
//! Diagnostic logs go through `tracing` instead (`-v`).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress { quiet }
    }

    /// A spinner for a running step; hidden when quiet or not on a terminal.
    pub fn start(&self, label: &str) -> Option<ProgressBar> {
        if self.quiet {
            return None;
        }
        let spinner = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.set_message(label.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        Some(spinner)
    }

    /// The step's line: its mark, what it found or changed (`note`), how long it took.
    pub fn finish(&self, spinner: Option<ProgressBar>, label: &str, note: Option<&str>, ok: bool, took: Duration) {
        if let Some(spinner) = spinner {
            spinner.finish_and_clear();
        }
        if !self.quiet {
            let mark = if ok { "✓" } else { "✗" };
            let note = note.map(|n| format!(": {n}")).unwrap_or_default();
            eprintln!("{mark} {label}{note} ({:.1}s)", took.as_secs_f64());
        }
    }

    /// A line of its own, e.g. a step that was skipped.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

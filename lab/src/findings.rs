//! What `lab doctor` finds on this machine: each prerequisite's finding,
//! the machine it reads (a seam: tests describe any machine by files), and
//! the tools scenarios run. Providers and the doctor both make findings.

use std::path::Path;
use std::time::Duration;

use crate::shell::{Cmd, LocalShell, Shell};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Not as it should be, but `lab` or the user can carry on.
    Warn,
    /// A required prerequisite is missing: the scenario cannot run.
    Missing,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub check: String,
    pub level: Level,
    pub detail: String,
    pub fix: String,
}

impl Finding {
    pub fn ok(check: &str, detail: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Ok, detail: detail.into(), fix: String::new() }
    }
    pub fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Warn, detail: detail.into(), fix: fix.into() }
    }
    pub fn missing(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { check: check.into(), level: Level::Missing, detail: detail.into(), fix: fix.into() }
    }
}

/// What the doctor reads of the machine; a seam so tests can describe any machine.
pub struct Machine<'a> {
    /// Root under which `/proc` and `/sys` are read (`/` for the real machine).
    pub root: &'a Path,
    pub shell: &'a dyn Shell,
}

impl Machine<'_> {
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    pub fn read_number(&self, path: &str) -> Option<u64> {
        self.read(path)?.trim().parse().ok()
    }

    pub fn has(&self, path: &str) -> bool {
        self.root.join(path.trim_start_matches('/')).exists()
    }

    /// First line of a tool's version output, or None when it is not installed.
    pub async fn version(&self, cmd: Cmd) -> Option<String> {
        let output = tokio::time::timeout(Duration::from_secs(20), self.shell.exec(&cmd, None)).await.ok()?.ok()?;
        let text = if output.stdout.trim().is_empty() { output.stderr } else { output.stdout };
        Some(text.lines().next().unwrap_or("").trim().to_string()).filter(|_| output.status == 0)
    }
}

/// A program a scenario runs on this machine: how to ask its version, and
/// how to get it when it is not there.
pub struct Tool {
    pub name: &'static str,
    pub version: &'static [&'static str],
    pub required: bool,
    pub why: &'static str,
    pub install: &'static str,
}

/// Whether `tool` answers on this machine, with its version.
pub async fn tool_finding(machine: &Machine<'_>, tool: Tool) -> Finding {
    match machine.version(Cmd::new(tool.name).args(tool.version.iter().copied())).await {
        Some(version) => Finding::ok(tool.name, version),
        None if tool.required => Finding::missing(tool.name, format!("not found on PATH ({})", tool.why), tool.install),
        None => Finding::warn(tool.name, format!("not found on PATH ({})", tool.why), tool.install),
    }
}

/// This machine.
pub fn this_machine() -> Machine<'static> {
    Machine { root: Path::new("/"), shell: &LocalShell }
}

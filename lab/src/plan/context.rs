//! What a step gets while it runs: the cluster, the lab's state directory,
//! shells that log every command, and the spinner for progress.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::cluster::{Cluster, Node, Target, shell_for};
use crate::shell::{Cmd, Output, RunError, Shell};
use crate::state::StateDir;

pub struct Context<'a> {
    pub cluster: &'a dyn Cluster,
    pub state: &'a StateDir,
    pub spinner: Option<&'a indicatif::ProgressBar>,
    pub log: PathBuf,
}

impl Context<'_> {
    /// A shell on `on` whose commands and output go to the lab log.
    pub fn shell(&self, on: &Target) -> LoggedShell<'_> {
        LoggedShell::new(self.cluster, on, &self.log)
    }

    /// The nodes that are up, each with a logged shell.
    pub async fn running_nodes(&self) -> anyhow::Result<Vec<Node<'_>>> {
        running_nodes(self.cluster, &self.log).await
    }

    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        self.cluster.client().await
    }

    /// A client, if the cluster's API server answers: a teardown of a lab
    /// whose cluster never came up (or is gone) has nothing to remove.
    pub async fn reachable_client(&self) -> Option<kube::Client> {
        let client = self.cluster.client().await.ok()?;
        client.apiserver_version().await.ok()?;
        Some(client)
    }

    /// A client for removing the cluster's workloads, or why there is none
    /// (no API server answers, or the node agent is gone).
    pub async fn teardown_client(&self) -> Result<kube::Client, String> {
        if let Some(why) = self.cluster.why_workloads_cannot_go() {
            return Err(why);
        }
        self.reachable_client().await.ok_or_else(|| "no API server answers".to_string())
    }

    /// Append a line to the lab log.
    pub fn note(&self, text: &str) {
        append_log(&self.log, text);
    }
}

/// The nodes that are up, each with a shell that logs to `log`.
pub async fn running_nodes<'a>(cluster: &'a dyn Cluster, log: &'a Path) -> anyhow::Result<Vec<Node<'a>>> {
    Ok(cluster
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.state == "running" || n.state == "Ready")
        .map(|n| Node { shell: Box::new(LoggedShell::new(cluster, &Target::Node(n.name.clone()), log)), name: n.name })
        .collect())
}

/// The shell for a target, with every command and its output appended to the lab log.
pub struct LoggedShell<'a> {
    inner: Box<dyn Shell>,
    log: &'a Path,
}

impl<'a> LoggedShell<'a> {
    pub fn new(cluster: &dyn Cluster, on: &Target, log: &'a Path) -> LoggedShell<'a> {
        LoggedShell { inner: shell_for(cluster, on), log }
    }

    /// Append what a command printed (or why it could not run) to the log.
    /// A secret's output is withheld from the log, and from the error when it fails.
    fn logged(&self, cmd: &Cmd, result: Result<Output, RunError>) -> Result<Output, RunError> {
        let result = match result {
            Ok(output) if cmd.secret_output && !output.success() => Ok(withheld(output)),
            Err(RunError::Failed { place, command, output }) if cmd.secret_output => {
                Err(RunError::Failed { place, command, output: withheld(output) })
            }
            other => other,
        };
        match &result {
            Ok(output) if cmd.secret_output => {
                append_log(self.log, &format!("(output withheld: it carries a secret)\nexit {}", output.status))
            }
            Ok(output) => append_log(self.log, &format!("{}{}exit {}", output.stdout, output.stderr, output.status)),
            Err(e) => append_log(self.log, &e.to_string()),
        }
        result
    }
}

#[async_trait::async_trait]
impl Shell for LoggedShell<'_> {
    fn place(&self) -> String {
        self.inner.place()
    }
    fn display(&self, cmd: &Cmd) -> String {
        self.inner.display(cmd)
    }
    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        append_log(self.log, &format!("$ {}  # on {}", self.inner.display(cmd), self.inner.place()));
        self.logged(cmd, self.inner.exec(cmd, stdin).await)
    }
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        append_log(self.log, &format!("$ {}  # on {}, input streamed", self.inner.display(cmd), self.inner.place()));
        self.logged(cmd, self.inner.exec_streamed(cmd, input).await)
    }
}

/// A failed secret command's output, replaced by a note: stdout and stderr
/// alike, as either may echo the secret.
fn withheld(output: Output) -> Output {
    Output { status: output.status, stdout: "(output withheld: it carries a secret)".into(), stderr: String::new() }
}

/// The log is only written once the state directory exists: `lab plan` and
/// a `down` after the directory is gone leave no stray files.
fn append_log(log: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    if log.parent().is_some_and(Path::is_dir)
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(log)
    {
        let _ = writeln!(file, "{text}");
    }
}

//! The Docker engine: finding node containers by label and running commands
//! in them (`docker exec` through the API).

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::shell::{Cmd, Output, RunError, Shell, quote};

/// kind's container labels: the cluster a node belongs to, and its role.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// Connect to the local daemon and agree on an API version (Debian's 20.10
/// daemon speaks 1.41, older than the client's default).
pub async fn connect() -> anyhow::Result<Docker> {
    let hint =
        "is the Docker daemon running? Start it with `systemctl start docker` (or `dockerd &`), and check DOCKER_HOST";
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| anyhow::anyhow!("cannot reach the Docker daemon: {e}; {hint}"))?;
    docker.negotiate_version().await.map_err(|e| anyhow::anyhow!("cannot reach the Docker daemon: {e}; {hint}"))
}

/// A container that is a node of some cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContainer {
    pub name: String,
    pub role: String,
    pub state: String,
}

/// The containers labelled as nodes of `cluster`, sorted by name.
pub async fn node_containers(docker: &Docker, cluster: &str) -> anyhow::Result<Vec<NodeContainer>> {
    let filters: HashMap<&str, Vec<String>> = HashMap::from([("label", vec![format!("{CLUSTER_LABEL}={cluster}")])]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| anyhow::anyhow!("listing containers labelled {CLUSTER_LABEL}={cluster}: {e}"))?;
    let mut nodes: Vec<NodeContainer> = containers
        .into_iter()
        .map(|c| NodeContainer {
            name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_string(),
            role: c.labels.and_then(|mut l| l.remove(ROLE_LABEL)).unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// Runs commands in a container, as `docker exec` does. Connects on first use.
pub struct DockerExecShell {
    container: String,
    docker: OnceCell<Docker>,
}

impl DockerExecShell {
    pub fn new(container: impl Into<String>) -> Self {
        DockerExecShell { container: container.into(), docker: OnceCell::new() }
    }

    fn fail(&self, cmd: &Cmd, reason: impl ToString) -> RunError {
        RunError::Spawn { place: self.place(), command: self.display(cmd), reason: reason.to_string() }
    }
}

#[async_trait]
impl Shell for DockerExecShell {
    fn place(&self) -> String {
        format!("node {}", self.container)
    }

    fn display(&self, cmd: &Cmd) -> String {
        let env: String = cmd.env.iter().map(|(k, v)| format!(" -e {}", quote(&format!("{k}={v}")))).collect();
        let argv: Vec<String> = cmd.argv().iter().map(|w| quote(w)).collect();
        format!("docker exec{env} {} {}", quote(&self.container), argv.join(" "))
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        let input = stdin.map(|data| {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(bytes::Bytes::copy_from_slice(data));
            rx
        });
        self.exec_with(cmd, input).await
    }

    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        self.exec_with(cmd, Some(input)).await
    }
}

impl DockerExecShell {
    /// `docker exec`, with stdin streamed from `input` while output is read,
    /// so neither side stalls on a full pipe.
    async fn exec_with(
        &self,
        cmd: &Cmd,
        input: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    ) -> Result<Output, RunError> {
        tracing::debug!(node = %self.container, command = %cmd, "docker exec");
        let docker = self.docker.get_or_try_init(connect).await.map_err(|e| self.fail(cmd, e))?;
        let options = CreateExecOptions {
            attach_stdin: Some(input.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            env: Some(cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(cmd.argv()),
            ..Default::default()
        };
        let exec = docker.create_exec(&self.container, options).await.map_err(|e| self.fail(cmd, e))?;
        let started = docker.start_exec(&exec.id, None).await.map_err(|e| self.fail(cmd, e))?;
        let StartExecResults::Attached { mut output, input: mut stdin } = started else {
            return Err(self.fail(cmd, "exec started detached"));
        };
        let writer = async move {
            let Some(mut input) = input else { return Ok(()) };
            while let Some(chunk) = input.recv().await {
                stdin.write_all(&chunk).await?;
            }
            stdin.shutdown().await
        };
        let reader = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| self.fail(cmd, e))? {
                    bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
            Ok::<_, RunError>((stdout, stderr))
        };
        // When the command ends (or its node dies) the writer may be stuck on
        // a connection nobody reads: stop feeding it then.
        tokio::pin!(writer, reader);
        let (written, read) = tokio::select! {
            read = &mut reader => (None, read),
            written = &mut writer => (Some(written), reader.await),
        };
        let (stdout, stderr) = read?;
        let inspect = docker.inspect_exec(&exec.id).await.map_err(|e| self.fail(cmd, e))?;
        let output = Output {
            status: inspect.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        // A command may exit without reading all its input; that is only an
        // error if it also failed, and then its status and output say why.
        if let Some(Err(e)) = written
            && output.success()
        {
            tracing::debug!(node = %self.container, "stdin closed early: {e}");
        }
        Ok(output)
    }
}

//! Commands on a VM: ssh as root with the settings `vagrant ssh-config` wrote.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::shell::{Cmd, LocalShell, Output, RunError, Shell};

/// Runs commands on a VM as root over ssh, with the settings `vagrant
/// ssh-config` wrote when the VMs booted (one ssh per command, no Vagrant
/// start-up each time).
pub struct VagrantShell {
    pub(super) node: String,
    pub(super) ssh_config: PathBuf,
}

impl VagrantShell {
    /// Refuse to run without lab's ssh settings: they exist once the VMs boot.
    fn guard(&self, cmd: &Cmd) -> Result<(), RunError> {
        if self.ssh_config.is_file() {
            return Ok(());
        }
        Err(RunError::Spawn {
            place: self.place(),
            command: self.display(cmd),
            reason: format!(
                "lab's ssh settings {} are missing (`lab up` writes them once the VMs boot)",
                self.ssh_config.display()
            ),
        })
    }

    fn host_command(&self, cmd: &Cmd) -> Cmd {
        Cmd::new("ssh").arg("-F").arg(self.ssh_config.display().to_string()).arg(&self.node).arg(format!("sudo {cmd}"))
    }

    /// A spawn failure is reported where the command was meant to run.
    fn on_node(&self, cmd: &Cmd, e: RunError) -> RunError {
        match e {
            RunError::Spawn { reason, .. } => {
                RunError::Spawn { place: self.place(), command: self.display(cmd), reason }
            }
            other => other,
        }
    }
}

#[async_trait]
impl Shell for VagrantShell {
    fn place(&self) -> String {
        format!("node {}", self.node)
    }

    fn display(&self, cmd: &Cmd) -> String {
        self.host_command(cmd).to_string()
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        self.guard(cmd)?;
        LocalShell.exec(&self.host_command(cmd), stdin).await.map_err(|e| self.on_node(cmd, e))
    }

    /// Image imports stream through ssh instead of gathering in memory.
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        self.guard(cmd)?;
        LocalShell.exec_streamed(&self.host_command(cmd), input).await.map_err(|e| self.on_node(cmd, e))
    }
}

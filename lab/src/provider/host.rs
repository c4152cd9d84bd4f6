//! The host alone: the local machine is the only node, with no Kubernetes.

use async_trait::async_trait;

use super::{NodeStatus, Provider};
use crate::plan::{Action, Step};
use crate::shell::{Cmd, LocalShell, Shell};
use crate::state::StateDir;

pub struct Host {
    state: StateDir,
}

impl Host {
    pub fn new(state: &StateDir) -> Host {
        Host { state: state.clone() }
    }
}

#[async_trait]
impl Provider for Host {
    fn up_steps(&self) -> Vec<Step> {
        vec![Step::new(
            format!("create state directory {}", self.state.dir().display()),
            Action::MakeDir { path: self.state.dir().to_path_buf() },
        )]
    }

    fn down_steps(&self) -> Vec<Step> {
        vec![Step::new(
            format!("remove state directory {}", self.state.dir().display()),
            Action::RemoveDir { path: self.state.dir().to_path_buf() },
        )]
    }

    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        Ok(vec![NodeStatus { name: "host".into(), role: "host".into(), state: "running".into() }])
    }

    fn node_shell(&self, _node: &str) -> Box<dyn Shell> {
        Box::new(LocalShell)
    }

    fn interactive_shell(&self, _node: &str) -> Cmd {
        Cmd::new(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()))
    }
}

//! What a step needs to describe itself for `lab plan`.

use super::cluster::{Cluster, Target, shell_for};
use super::detail::Detail;
use crate::shell::Cmd;

pub struct View<'a> {
    pub cluster: &'a dyn Cluster,
    /// Print generated files in full (`lab plan --files`).
    pub show_files: bool,
}

impl View<'_> {
    /// A command as it would be typed to run it on `on`.
    pub fn command(&self, on: &Target, cmd: &Cmd) -> String {
        shell_for(self.cluster, on).display(cmd)
    }

    /// Details, one per line, commands as they would run on `on`.
    pub fn details(&self, on: &Target, details: &[Detail]) -> String {
        let lines: Vec<String> = details
            .iter()
            .map(|detail| match detail {
                Detail::Run { cmd, when: None } => format!("$ {}", self.command(on, cmd)),
                Detail::Run { cmd, when: Some(when) } => format!("$ {}  # {when}", self.command(on, cmd)),
                Detail::Api(text) => format!("api: {text}"),
                Detail::Note(text) => text.clone(),
            })
            .collect();
        lines.join("\n     ")
    }
}

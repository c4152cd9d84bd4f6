//! A plan as text, for `lab plan`, `--dry-run` and the state directory's plan.txt.

use std::fmt::Write as _;

use super::cluster::Cluster;
use super::step::{Action, Plan};
use super::view::View;
use crate::shell::quote;

impl Plan {
    /// Numbered steps, each with the pasteable command it runs. With
    /// `show_files`, generated files are printed in full.
    pub fn render(&self, cluster: &dyn Cluster, show_files: bool) -> String {
        let view = View { cluster, show_files };
        let count = self.steps.len();
        let mut out = format!("{} ({count} step{})\n", self.title, if count == 1 { "" } else { "s" });
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {}", i + 1, step.title);
            let detail = match &step.action {
                Action::Run { on, cmd } => format!("$ {}", view.command(on, cmd)),
                Action::Pipe { from, to } => {
                    format!("$ {} | {}", view.command(&from.0, &from.1), view.command(&to.0, &to.1))
                }
                // Unindented, so the here-document can be pasted as it is.
                Action::WriteFile { path, contents, secret } if show_files => {
                    let path = quote(&path.display().to_string());
                    let umask = if *secret { "(umask 077; " } else { "" };
                    let close = if *secret { "\n)" } else { "" };
                    format!("$ {umask}cat > {path} <<'EOF'\n{contents}EOF{close}")
                }
                Action::WriteFile { path, contents, secret } => {
                    format!(
                        "writes {}{} ({} lines; `lab plan --files` shows it)",
                        path.display(),
                        if *secret { ", mode 0600" } else { "" },
                        contents.lines().count()
                    )
                }
                Action::MakeDir { path } => format!("$ mkdir -p {}", quote(&path.display().to_string())),
                Action::RemoveDir { path } => format!("$ rm -rf {}", quote(&path.display().to_string())),
                Action::ExpectNodes { names } if names.is_empty() => "lists the cluster's nodes".to_string(),
                Action::ExpectNodes { names } => format!("expects nodes: {}", names.join(", ")),
                Action::Work(work) => work.describe(&view),
            };
            let _ = writeln!(out, "     {detail}");
        }
        out
    }
}

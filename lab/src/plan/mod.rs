//! The plan core: the ordered, named steps a command will take. Built before
//! anything is touched, printed by `lab plan` and `--dry-run`, executed by
//! [`execute`].
//!
//! Layering: commands → [`crate::Lab`] → domains (provider, prepare, build,
//! load, stack, suite, fio) → this plan core → shell, docker, wait, progress,
//! state. The core knows commands, files and nodes; a domain's own steps are
//! [`Work`] it describes and runs itself, so the core never names a domain
//! (`tests/layering.rs` keeps the import graph free of circles).

mod cluster;
mod context;
mod detail;
mod execute;
mod render;
mod step;
mod view;

pub use cluster::{Cluster, Node, NodeStatus, Target, shell_for};
pub use context::{Context, LoggedShell, running_nodes};
pub use detail::Detail;
pub use execute::{execute, execute_through};
pub use step::{Action, Phase, Plan, Step, Work, in_phase};
pub use view::View;

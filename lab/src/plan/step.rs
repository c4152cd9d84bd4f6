//! Steps and plans. The core's own actions run commands and write files; a
//! domain's steps are [`Work`]: the domain says how they look and what they do.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::cluster::Target;
use super::context::Context;
use super::view::View;
pub use crate::progress::Phase;
use crate::shell::Cmd;

#[derive(Clone, Debug)]
pub enum Action {
    /// Run a command; fails on a non-zero exit.
    Run {
        on: Target,
        cmd: Cmd,
    },
    /// Run `from`, then `to` with `from`'s output on its stdin (`from | to`).
    Pipe {
        from: (Target, Cmd),
        to: (Target, Cmd),
    },
    /// Write a file `lab` generated (kind config, node list).
    WriteFile {
        path: PathBuf,
        contents: String,
        /// Mode 0600 from birth (kubeconfigs, keys); else 0644.
        secret: bool,
    },
    MakeDir {
        path: PathBuf,
    },
    RemoveDir {
        path: PathBuf,
    },
    /// Find the nodes through the provider (labels, API) and require these names.
    ExpectNodes {
        names: Vec<String>,
    },
    /// A domain's step: prepare a node, build, load, apply, wait, delete.
    Work(Arc<dyn Work>),
}

/// A domain's own step. Its future need not be `Send`: plans run on the
/// command's own task, and the waits' async closures are not `Send`.
#[async_trait(?Send)]
pub trait Work: Send + Sync + std::fmt::Debug {
    /// What `lab plan` prints under the step's title.
    fn describe(&self, view: &View<'_>) -> String;
    /// Do it; the note, if any, says what was found or changed.
    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>>;
}

#[derive(Clone, Debug)]
pub struct Step {
    pub title: String,
    pub action: Action,
    /// Run only when every step before it passed ([`execute_through`] skips it
    /// otherwise): removing the state folder would lose the records a retry needs.
    ///
    /// [`execute_through`]: super::execute_through
    pub only_after_success: bool,
    /// Where its time counts in `lab`'s account of a run (build, load, …).
    pub phase: Option<Phase>,
}

/// These steps, their time counted in `phase`.
pub fn in_phase(steps: impl IntoIterator<Item = Step>, phase: Phase) -> Vec<Step> {
    steps.into_iter().map(|s| s.in_phase(phase)).collect()
}

impl Step {
    pub fn new(title: impl Into<String>, action: Action) -> Step {
        Step { title: title.into(), action, only_after_success: false, phase: None }
    }

    /// See [`Step::phase`].
    pub fn in_phase(mut self, phase: Phase) -> Step {
        self.phase = Some(phase);
        self
    }

    /// See [`Step::only_after_success`].
    pub fn only_after_success(mut self) -> Step {
        self.only_after_success = true;
        self
    }

    pub fn run(title: impl Into<String>, on: Target, cmd: Cmd) -> Step {
        Step::new(title, Action::Run { on, cmd })
    }

    pub fn work(title: impl Into<String>, work: impl Work + 'static) -> Step {
        Step::new(title, Action::Work(Arc::new(work)))
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub title: String,
    pub steps: Vec<Step>,
}

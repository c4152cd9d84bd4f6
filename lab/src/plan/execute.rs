//! Running a plan: its steps in order, one progress line each.

use std::time::Instant;

use anyhow::Context as _;

use super::cluster::Cluster;
use super::context::Context;
use super::step::{Action, Plan, Step};
use crate::progress::Progress;
use crate::shell::Shell as _;
use crate::state::StateDir;

/// Run the steps in order; stop at the first failure. Command output goes to
/// the state directory's log (if the directory exists); steps that change a
/// host or node record it in the state directory's undo log.
pub async fn execute(plan: &Plan, cluster: &dyn Cluster, progress: &Progress, state: &StateDir) -> anyhow::Result<()> {
    for (i, step) in plan.steps.iter().enumerate() {
        run_shown(step, &label(plan, i), cluster, progress, state)
            .await
            .with_context(|| format!("step {} of {} failed: {}", i + 1, plan.steps.len(), step.title))?;
    }
    Ok(())
}

/// Run every step even when some fail (teardown: each step removes what it
/// can, so one failure must not leave the rest in place). Steps marked
/// [`Step::only_after_success`] are skipped after a failure. The error lists
/// every failed step.
pub async fn execute_through(
    plan: &Plan,
    cluster: &dyn Cluster,
    progress: &Progress,
    state: &StateDir,
) -> anyhow::Result<()> {
    let mut failures: Vec<String> = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let label = label(plan, i);
        if step.only_after_success && !failures.is_empty() {
            progress.line(&format!("- {label}: skipped, as {} step(s) before it failed", failures.len()));
            continue;
        }
        if let Err(e) = run_shown(step, &label, cluster, progress, state).await {
            failures.push(format!("step {} of {} ({}): {e:#}", i + 1, plan.steps.len(), step.title));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{} of {} steps failed:\n- {}", failures.len(), plan.steps.len(), failures.join("\n- "))
}

/// `[3/12] title`: how a step is shown.
fn label(plan: &Plan, i: usize) -> String {
    format!("[{}/{}] {}", i + 1, plan.steps.len(), plan.steps[i].title)
}

/// Run one step under its progress line: a spinner, then ✓ or ✗ with its note and time.
async fn run_shown(
    step: &Step,
    label: &str,
    cluster: &dyn Cluster,
    progress: &Progress,
    state: &StateDir,
) -> anyhow::Result<()> {
    let running = progress.start(label, &step.title);
    let started = Instant::now();
    let ctx = Context { cluster, state, spinner: running.spinner.as_ref(), log: state.log() };
    let result = run_step(step, &ctx).await;
    let note = result.as_ref().ok().and_then(Option::as_deref);
    progress.finish(running, &step.title, label, note, result.is_ok(), started.elapsed());
    progress.count(step.phase, started.elapsed());
    result.map(|_| ())
}

/// Run one step; some steps say what they found or changed.
async fn run_step(step: &Step, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
    match &step.action {
        Action::Run { on, cmd } => {
            ctx.shell(on).run(cmd).await?;
        }
        Action::Pipe { from, to } => {
            let output = ctx.shell(&from.0).run(&from.1).await?;
            ctx.shell(&to.0).run_with_input(&to.1, Some(output.stdout.as_bytes())).await?;
        }
        Action::WriteFile { path, contents, secret } => {
            crate::state::write_new(path, contents, if *secret { 0o600 } else { 0o644 })?;
        }
        Action::MakeDir { path } => {
            std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        }
        Action::RemoveDir { path } => {
            crate::state::remove_state_dir(path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Action::ExpectNodes { names } => {
            let found: Vec<String> = ctx.cluster.nodes().await?.into_iter().map(|n| n.name).collect();
            let missing: Vec<&String> = names.iter().filter(|n| !found.contains(n)).collect();
            if !missing.is_empty() {
                anyhow::bail!(
                    "node(s) {} not found; the provider lists: {}",
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    if found.is_empty() { "none".to_string() } else { found.join(", ") }
                );
            }
        }
        Action::Work(work) => {
            let note = work.run(ctx).await?;
            if let Some(note) = &note {
                ctx.note(&format!("# {}: {note}", step.title));
            }
            return Ok(note);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::plan::{NodeStatus, Target};
    use crate::shell::{Cmd, Output, RunError, Shell};

    /// Records what ran where; `fails` makes a command containing it exit 1.
    #[derive(Clone, Default)]
    struct Journal(Arc<Mutex<Vec<String>>>);

    struct FakeNodeShell {
        node: String,
        journal: Journal,
        fails: &'static str,
    }

    #[async_trait]
    impl Shell for FakeNodeShell {
        fn place(&self) -> String {
            format!("node {}", self.node)
        }
        fn display(&self, cmd: &Cmd) -> String {
            format!("fake-exec {} {cmd}", self.node)
        }
        async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
            let input = stdin.map(|s| format!(" <<< {}", String::from_utf8_lossy(s))).unwrap_or_default();
            self.journal.0.lock().unwrap().push(format!("{}: {cmd}{input}", self.node));
            let failed = !self.fails.is_empty() && cmd.to_string().contains(self.fails);
            Ok(Output { status: i64::from(failed), stdout: format!("out of {}", cmd.program), stderr: String::new() })
        }
    }

    struct FakeCluster {
        journal: Journal,
        nodes: Vec<&'static str>,
        fails: &'static str,
    }

    #[async_trait]
    impl Cluster for FakeCluster {
        async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
            Ok(self
                .nodes
                .iter()
                .map(|n| NodeStatus { name: n.to_string(), role: "worker".into(), state: "running".into() })
                .collect())
        }
        fn node_shell(&self, node: &str) -> Box<dyn Shell> {
            Box::new(FakeNodeShell { node: node.into(), journal: self.journal.clone(), fails: self.fails })
        }
    }

    fn plan() -> Plan {
        let node = |n: &str| Target::Node(n.into());
        Plan {
            title: "test".into(),
            steps: vec![
                Step::new("find nodes", Action::ExpectNodes { names: vec!["a".into(), "b".into()] }),
                Step::run("first", node("a"), Cmd::new("one")),
                Step::new(
                    "pipe",
                    Action::Pipe { from: (node("a"), Cmd::new("token")), to: (node("b"), Cmd::new("join")) },
                ),
                Step::run("last", node("b"), Cmd::new("three")),
            ],
        }
    }

    #[tokio::test]
    async fn steps_run_in_order_on_their_nodes_and_pipes_feed_stdin() {
        let journal = Journal::default();
        let provider = FakeCluster { journal: journal.clone(), nodes: vec!["a", "b"], fails: "" };
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        execute(&plan(), &provider, &Progress::new(true), &state).await.unwrap();
        assert_eq!(*journal.0.lock().unwrap(), ["a: one", "a: token", "b: join <<< out of token", "b: three"]);
        let logged = std::fs::read_to_string(state.log()).unwrap();
        assert!(logged.contains("$ fake-exec a one  # on node a\nout of oneexit 0"), "{logged}");
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_plan_and_names_step_node_and_command() {
        let journal = Journal::default();
        let provider = FakeCluster { journal: journal.clone(), nodes: vec!["a", "b"], fails: "token" };
        let dir = tempfile::tempdir().unwrap();
        let err = execute(&plan(), &provider, &Progress::new(true), &StateDir::at(dir.path())).await.unwrap_err();
        assert_eq!(*journal.0.lock().unwrap(), ["a: one", "a: token"], "steps after the failure ran");
        let text = format!("{err:#}");
        assert!(
            text.starts_with("step 3 of 4 failed: pipe: node a: `fake-exec a token` exited with status 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_secret_output_reaches_the_next_command_but_never_the_log() {
        let journal = Journal::default();
        let provider = FakeCluster { journal: journal.clone(), nodes: vec!["a", "b"], fails: "" };
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let node = |n: &str| Target::Node(n.into());
        let plan = Plan {
            title: "join".into(),
            steps: vec![Step::new(
                "join",
                Action::Pipe {
                    from: (node("a"), Cmd::new("token").secret_output()),
                    to: (node("b"), Cmd::new("join")),
                },
            )],
        };
        execute(&plan, &provider, &Progress::new(true), &state).await.unwrap();
        assert_eq!(*journal.0.lock().unwrap(), ["a: token", "b: join <<< out of token"]);
        let logged = std::fs::read_to_string(state.log()).unwrap();
        assert!(!logged.contains("out of token"), "{logged}");
        assert!(logged.contains("(output withheld: it carries a secret)"), "{logged}");
    }

    #[tokio::test]
    async fn a_teardown_runs_past_failures_lists_them_all_and_keeps_its_record() {
        let journal = Journal::default();
        let provider = FakeCluster { journal: journal.clone(), nodes: vec!["a", "b"], fails: "token" };
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join("state"));
        std::fs::create_dir_all(state.dir()).unwrap();
        let mut plan = plan();
        plan.steps.push(Step::run("fails too", Target::Node("a".into()), Cmd::new("token-again")));
        plan.steps.push(Step::new("remove state", Action::RemoveDir { path: state.absolute() }).only_after_success());
        let err = execute_through(&plan, &provider, &Progress::new(true), &state).await.unwrap_err();
        assert_eq!(
            *journal.0.lock().unwrap(),
            ["a: one", "a: token", "b: three", "a: token-again"],
            "every step ran but the pipe's second half"
        );
        let text = format!("{err:#}");
        assert!(text.starts_with("2 of 6 steps failed:\n- step 3 of 6 (pipe)"), "{text}");
        assert!(text.contains("- step 5 of 6 (fails too)"), "{text}");
        assert!(state.exists(), "the state folder stays when a step before failed");
    }

    #[tokio::test]
    async fn missing_nodes_are_named_with_what_the_provider_has() {
        let provider = FakeCluster { journal: Journal::default(), nodes: vec!["a"], fails: "" };
        let dir = tempfile::tempdir().unwrap();
        let err = execute(&plan(), &provider, &Progress::new(true), &StateDir::at(dir.path())).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "step 1 of 4 failed: find nodes: node(s) b not found; the provider lists: a");
    }
}

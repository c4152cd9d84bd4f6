//! A plan: the ordered, named steps a command will take. Built before anything
//! is touched, printed by `lab plan` and `--dry-run`, executed by `execute`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::build::Build;
use crate::load::ImageSource;
use crate::load::registry::Registry;
use crate::prepare::{Detail, Task, UndoLog};
use crate::progress::Progress;
use crate::provider::Provider;
use crate::shell::{Cmd, LocalShell, Output, RunError, Shell};
use crate::state::StateDir;
use k8s_openapi::api::core::v1::ConfigMap;

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Host,
    Node(String),
}

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
    /// Bring a node (or the host) to a state, checking first and verifying after.
    Prepare(Task),
    /// Build a component's images, unless Docker has them at their content tag.
    Build(Arc<Build>),
    /// Put images into every node, sending only what is missing.
    Load(Arc<ImageSource>),
    /// Push a component's images to the lab's registry.
    Push {
        build: Arc<Build>,
        registry: Arc<Registry>,
    },
    /// Server-side apply of a ConfigMap (field manager `lab`).
    ApplyConfigMap(Box<ConfigMap>),
    /// Server-side apply objects (images pointed at lab's builds); for CRDs,
    /// wait until they are Established.
    Apply {
        objects: Vec<crate::stack::manifest::Object>,
        images: Arc<crate::stack::ImageMap>,
        establish_within: Option<std::time::Duration>,
    },
    /// Wait until the workloads among these objects are ready.
    WaitReady {
        objects: Vec<crate::stack::manifest::Object>,
        timeout: std::time::Duration,
    },
    /// Wait until these DiskPools are Online.
    WaitPools {
        pools: Vec<crate::stack::manifest::Object>,
        timeout: std::time::Duration,
    },
    /// Remove the workloads using these storage classes' claims, then the
    /// claims, until their volumes are gone.
    RemoveVolumes {
        classes: Vec<String>,
        timeout: std::time::Duration,
    },
    /// Delete objects and wait until they are gone.
    Delete {
        objects: Vec<crate::stack::manifest::Object>,
        timeout: std::time::Duration,
    },
    /// Fail unless every image the lab references is on every node or pullable.
    ImagePreflight {
        builds: Vec<Arc<Build>>,
        registry: Option<Arc<Registry>>,
        preload: Vec<String>,
        /// The stack's images other than lab's builds.
        stack: Vec<String>,
    },
}

#[derive(Clone, Debug)]
pub struct Step {
    pub title: String,
    pub action: Action,
}

impl Step {
    pub fn new(title: impl Into<String>, action: Action) -> Step {
        Step { title: title.into(), action }
    }

    pub fn run(title: impl Into<String>, on: Target, cmd: Cmd) -> Step {
        Step::new(title, Action::Run { on, cmd })
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub title: String,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan as text: numbered steps, each with the pasteable command it runs.
    /// With `show_files`, generated files are printed in full.
    pub fn render(&self, provider: &dyn Provider, show_files: bool) -> String {
        let count = self.steps.len();
        let mut out = format!("{} ({count} step{})\n", self.title, if count == 1 { "" } else { "s" });
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {}", i + 1, step.title);
            let detail = match &step.action {
                Action::Run { on, cmd } => format!("$ {}", display_command(provider, on, cmd)),
                Action::Pipe { from, to } => {
                    format!(
                        "$ {} | {}",
                        display_command(provider, &from.0, &from.1),
                        display_command(provider, &to.0, &to.1)
                    )
                }
                // Unindented, so the here-document can be pasted as it is.
                Action::WriteFile { path, contents } if show_files => {
                    format!("$ cat > {} <<'EOF'\n{}EOF", crate::shell::quote(&path.display().to_string()), contents)
                }
                Action::WriteFile { path, contents } => {
                    format!(
                        "writes {} ({} lines; `lab plan --files` shows it)",
                        path.display(),
                        contents.lines().count()
                    )
                }
                Action::MakeDir { path } => format!("$ mkdir -p {}", crate::shell::quote(&path.display().to_string())),
                Action::RemoveDir { path } => format!("$ rm -rf {}", crate::shell::quote(&path.display().to_string())),
                Action::ExpectNodes { names } if names.is_empty() => "lists the cluster's nodes".to_string(),
                Action::ExpectNodes { names } => format!("expects nodes: {}", names.join(", ")),
                Action::Prepare(task) => render_details(provider, &task.target(), &task.details()),
                Action::Build(build) => render_details(provider, &Target::Host, &build.details()),
                Action::Load(images) => render_details(provider, &Target::Host, &crate::load::details(images)),
                Action::Push { build, registry } => {
                    let lines: Vec<String> = build
                        .refs_for_plan()
                        .iter()
                        .map(|image| {
                            let target = crate::shell::quote(&registry.name_of(image));
                            format!("$ docker tag {} {target} && docker push {target}", crate::shell::quote(image))
                        })
                        .collect();
                    lines.join("\n     ")
                }
                Action::Apply { objects, images, establish_within } => {
                    let mut objects = objects.clone();
                    crate::stack::image::rewrite(&mut objects, &images.replacements_for_plan());
                    let mut lines: Vec<String> = Vec::new();
                    for object in &objects {
                        let at = if object.line == 0 { "generated".to_string() } else { object.location() };
                        lines.push(format!("{}  ({at})", object.describe()));
                        for image in crate::stack::image::images(std::slice::from_ref(object)) {
                            lines.push(format!("  image {image}"));
                        }
                    }
                    lines.push(format!("api: server-side apply, field manager {}", crate::stack::apply::FIELD_MANAGER));
                    if let Some(within) = establish_within {
                        lines.push(format!("waits until Established (at most {}s)", within.as_secs()));
                    }
                    lines.join("\n     ")
                }
                Action::WaitReady { objects, timeout } => {
                    let names: Vec<String> = objects
                        .iter()
                        .filter(|o| matches!(o.kind(), "Deployment" | "DaemonSet" | "StatefulSet"))
                        .map(|o| o.describe())
                        .collect();
                    format!("at most {}s for: {}", timeout.as_secs(), names.join(", "))
                }
                Action::WaitPools { pools, timeout } => {
                    let names: Vec<String> = pools.iter().map(|o| o.describe()).collect();
                    format!("pool_status Online within {}s: {}", timeout.as_secs(), names.join(", "))
                }
                Action::RemoveVolumes { classes, timeout } => format!(
                    "api: the pods (by their controllers) using claims of {}, then the claims; waits for the volumes (at most {}s each)",
                    classes.join(", "),
                    timeout.as_secs()
                ),
                Action::Delete { objects, timeout } => {
                    let names: Vec<String> = objects.iter().map(|o| o.describe()).collect();
                    format!("api: delete {}; waits until gone (at most {}s)", names.join(", "), timeout.as_secs())
                }
                Action::ImagePreflight { .. } => {
                    "checks each image is on every node (ctr images ls) or pullable (Docker asks its registry); `lab images` shows the same".to_string()
                }
                Action::ApplyConfigMap(map) => format!(
                    "api: server-side apply ConfigMap {}/{} (field manager lab)",
                    map.metadata.namespace.as_deref().unwrap_or("default"),
                    map.metadata.name.as_deref().unwrap_or_default()
                ),
            };
            let _ = writeln!(out, "     {detail}");
        }
        out
    }
}

/// A task's details, one per line, commands as they would run on `target`.
fn render_details(provider: &dyn Provider, target: &Target, details: &[Detail]) -> String {
    let lines: Vec<String> = details
        .iter()
        .map(|detail| match detail {
            Detail::Run { cmd, when: None } => format!("$ {}", display_command(provider, target, cmd)),
            Detail::Run { cmd, when: Some(when) } => format!("$ {}  # {when}", display_command(provider, target, cmd)),
            Detail::Api(text) => format!("api: {text}"),
            Detail::Note(text) => text.clone(),
        })
        .collect();
    lines.join("\n     ")
}

fn display_command(provider: &dyn Provider, on: &Target, cmd: &Cmd) -> String {
    shell_for(provider, on).display(cmd)
}

fn shell_for(provider: &dyn Provider, on: &Target) -> Box<dyn Shell> {
    match on {
        Target::Host => Box::new(LocalShell),
        Target::Node(node) => provider.node_shell(node),
    }
}

/// Run the steps in order, one progress line each; stop at the first failure.
/// Command output goes to the state directory's log (if the directory
/// exists), host and node changes to its undo log.
pub async fn execute(
    plan: &Plan,
    provider: &dyn Provider,
    progress: &Progress,
    state: &StateDir,
) -> anyhow::Result<()> {
    let log = state.log();
    let undo = UndoLog::new(state.changes());
    for (i, step) in plan.steps.iter().enumerate() {
        let label = format!("[{}/{}] {}", i + 1, plan.steps.len(), step.title);
        let spinner = progress.start(&label);
        let started = Instant::now();
        let result = run_step(step, provider, &log, &undo, spinner.as_ref()).await;
        let note = result.as_ref().ok().and_then(Option::as_deref);
        progress.finish(spinner, &label, note, result.is_ok(), started.elapsed());
        result.with_context(|| format!("step {} of {} failed: {}", i + 1, plan.steps.len(), step.title))?;
    }
    Ok(())
}

/// Run one step; some steps say what they found or changed.
async fn run_step(
    step: &Step,
    provider: &dyn Provider,
    log: &Path,
    undo: &UndoLog,
    spinner: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Option<String>> {
    match &step.action {
        Action::Run { on, cmd } => {
            LoggedShell::new(provider, on, log).run(cmd).await?;
        }
        Action::Pipe { from, to } => {
            let output = LoggedShell::new(provider, &from.0, log).run(&from.1).await?;
            LoggedShell::new(provider, &to.0, log).run_with_input(&to.1, Some(output.stdout.as_bytes())).await?;
        }
        Action::WriteFile { path, contents } => {
            std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Action::MakeDir { path } => {
            std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
        }
        Action::RemoveDir { path } => match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        },
        Action::ExpectNodes { names } => {
            let found: Vec<String> = provider.nodes().await?.into_iter().map(|n| n.name).collect();
            let missing: Vec<&String> = names.iter().filter(|n| !found.contains(n)).collect();
            if !missing.is_empty() {
                anyhow::bail!(
                    "node(s) {} not found; the provider lists: {}",
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    if found.is_empty() { "none".to_string() } else { found.join(", ") }
                );
            }
        }
        Action::Prepare(task) => {
            let shell = LoggedShell::new(provider, &task.target(), log);
            let note = task.run(provider, &shell, undo).await?;
            append_log(log, &format!("# {}: {note}", step.title));
            return Ok(Some(note));
        }
        Action::Build(build) => {
            let note = build.run(spinner).await?;
            append_log(log, &format!("# {}: {note}", step.title));
            return Ok(Some(note));
        }
        Action::Load(images) => {
            let nodes = running_nodes(provider, log).await?;
            let note = crate::load::load(images, &nodes, spinner).await?;
            append_log(log, &format!("# {}: {note}", step.title));
            return Ok(Some(note));
        }
        Action::Push { build, registry } => {
            let note = crate::load::registry::push(build, registry, spinner).await?;
            append_log(log, &format!("# {}: {note}", step.title));
            return Ok(Some(note));
        }
        Action::ApplyConfigMap(map) => {
            crate::load::registry::apply_config_map(provider.client().await?, map).await?;
        }
        Action::Apply { objects, images, establish_within } => {
            let mut objects = objects.clone();
            let replaced = crate::stack::image::rewrite(&mut objects, &images.replacements()?);
            let client = provider.client().await?;
            crate::stack::apply::apply(&client, &objects, &mut crate::stack::apply::Kinds::default()).await?;
            if let Some(within) = establish_within {
                let names: Vec<String> = objects.iter().map(|o| o.name().to_string()).collect();
                crate::stack::apply::wait_established(&client, &names, *within, std::time::Duration::from_millis(500))
                    .await?;
            }
            let images = if replaced > 0 { format!(", {replaced} image(s) from lab's builds") } else { String::new() };
            return Ok(Some(format!("{} object(s) applied{images}", objects.len())));
        }
        Action::WaitReady { objects, timeout } => {
            let client = provider.client().await?;
            let note = crate::stack::ready::wait(&client, objects, *timeout, std::time::Duration::from_secs(2)).await?;
            return Ok(Some(note));
        }
        Action::WaitPools { pools, timeout } => {
            let client = provider.client().await?;
            let note =
                crate::stack::pool::wait_online(&client, pools, *timeout, std::time::Duration::from_secs(2)).await?;
            return Ok(Some(note));
        }
        Action::RemoveVolumes { classes, timeout } => {
            let Some(client) = reachable(provider).await else {
                return Ok(Some("no API server answers; skipped".into()));
            };
            let poll = std::time::Duration::from_secs(2);
            return Ok(Some(crate::stack::teardown::remove_volumes(&client, classes, *timeout, poll).await?));
        }
        Action::Delete { objects, timeout } => {
            let Some(client) = reachable(provider).await else {
                return Ok(Some("no API server answers; skipped".into()));
            };
            let poll = std::time::Duration::from_secs(2);
            return Ok(Some(crate::stack::teardown::delete_and_wait(&client, objects, *timeout, poll).await?));
        }
        Action::ImagePreflight { builds, registry, preload, stack } => {
            use crate::load::preflight;
            let docker = crate::docker::connect().await?;
            let wanted = preflight::wanted(&docker, builds, registry.as_deref(), preload, stack).await?;
            let nodes = running_nodes(provider, log).await?;
            let verdicts = preflight::check(&docker, &wanted, &nodes, false).await?;
            let missing = verdicts.iter().filter(|(_, v)| matches!(v, preflight::Verdict::Missing { .. })).count();
            if missing > 0 {
                anyhow::bail!(
                    "{missing} image(s) the lab references cannot reach the nodes:\n{}",
                    preflight::render(&verdicts).trim_end()
                );
            }
            return Ok(Some(format!("all {} image(s) on every node or pullable", verdicts.len())));
        }
    }
    Ok(None)
}

/// A client, if the cluster's API server answers: a teardown of a lab whose
/// cluster never came up (or is gone) has nothing to remove.
async fn reachable(provider: &dyn Provider) -> Option<kube::Client> {
    let client = provider.client().await.ok()?;
    client.apiserver_version().await.ok()?;
    Some(client)
}

/// The nodes that are up, each with a logged shell.
pub async fn running_nodes<'a>(
    provider: &'a dyn Provider,
    log: &'a Path,
) -> anyhow::Result<Vec<crate::load::Node<'a>>> {
    Ok(provider
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.state == "running" || n.state == "Ready")
        .map(|n| crate::load::Node {
            shell: Box::new(LoggedShell::new(provider, &Target::Node(n.name.clone()), log)),
            name: n.name,
        })
        .collect())
}

/// The shell for a target, with every command and its output appended to the lab log.
struct LoggedShell<'a> {
    inner: Box<dyn Shell>,
    log: &'a Path,
}

impl<'a> LoggedShell<'a> {
    fn new(provider: &dyn Provider, on: &Target, log: &'a Path) -> LoggedShell<'a> {
        LoggedShell { inner: shell_for(provider, on), log }
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
        self.logged(self.inner.exec(cmd, stdin).await)
    }
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        append_log(self.log, &format!("$ {}  # on {}, input streamed", self.inner.display(cmd), self.inner.place()));
        self.logged(self.inner.exec_streamed(cmd, input).await)
    }
}

impl LoggedShell<'_> {
    /// Append what a command printed (or why it could not run) to the log.
    fn logged(&self, result: Result<Output, RunError>) -> Result<Output, RunError> {
        match &result {
            Ok(output) => append_log(self.log, &format!("{}{}exit {}", output.stdout, output.stderr, output.status)),
            Err(e) => append_log(self.log, &e.to_string()),
        }
        result
    }
}

fn append_log(log: &Path, text: &str) {
    if log.parent().is_some_and(Path::is_dir)
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = writeln!(file, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::provider::NodeStatus;

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

    struct FakeProvider {
        journal: Journal,
        nodes: Vec<&'static str>,
        fails: &'static str,
    }

    #[async_trait]
    impl Provider for FakeProvider {
        fn up_steps(&self) -> Vec<Step> {
            Vec::new()
        }
        fn down_steps(&self) -> Vec<Step> {
            Vec::new()
        }
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
        fn interactive_shell(&self, node: &str) -> Cmd {
            Cmd::new("fake-shell").arg(node)
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
        let provider = FakeProvider { journal: journal.clone(), nodes: vec!["a", "b"], fails: "" };
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
        let provider = FakeProvider { journal: journal.clone(), nodes: vec!["a", "b"], fails: "token" };
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
    async fn missing_nodes_are_named_with_what_the_provider_has() {
        let provider = FakeProvider { journal: Journal::default(), nodes: vec!["a"], fails: "" };
        let dir = tempfile::tempdir().unwrap();
        let err = execute(&plan(), &provider, &Progress::new(true), &StateDir::at(dir.path())).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "step 1 of 4 failed: find nodes: node(s) b not found; the provider lists: a");
    }
}

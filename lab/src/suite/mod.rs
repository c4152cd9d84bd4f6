//! `lab test`: the scenario's Gherkin features run with the cucumber crate,
//! embedded in `lab`'s own command line. Unknown or skipped steps fail.
//! Reports: cucumber's terminal output, JUnit XML, cucumber JSON, a table
//! of every measured check, and an HTML report with SVG plots.

pub mod cleanup;
pub mod loop_device;
pub mod report;
pub mod steps;
pub mod world;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use cucumber::{World as _, WriterExt as _, writer};

use crate::scenario::Scenario;
use crate::state::StateDir;
pub use world::{Check, Context, LabWorld};

/// What `lab test` was asked for, cucumber's options among them.
#[derive(Debug, Default)]
pub struct TestOptions {
    pub tags: Option<String>,
    pub name: Option<String>,
    pub fail_fast: bool,
    pub concurrency: Option<usize>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub keep_on_failure: bool,
    /// The folder for this run's failure artifacts (default: `artifacts/<lab>/<time>/` beside the scenario).
    pub artifacts: Option<PathBuf>,
    /// A check that cannot be judged fails (also `fio.strict` in the scenario).
    pub strict: bool,
}

/// Where a report goes; nowhere when not asked for.
fn output(path: &Option<PathBuf>) -> anyhow::Result<Box<dyn std::io::Write>> {
    Ok(match path {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?)
        }
        None => Box::new(std::io::sink()),
    })
}

/// The namespaces the stack's objects live in, whose pods' logs a failure collects.
fn stack_namespaces(scenario: &Scenario) -> Vec<String> {
    let Ok(objects) = crate::stack::load(scenario) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for namespace in objects.iter().filter_map(|o| o.namespace()) {
        if !out.iter().any(|n| n == namespace) {
            out.push(namespace.to_string());
        }
    }
    out
}

/// A label for this run's records: when, and at which commit.
pub fn run_label() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match crate::fio::history::git_commit() {
        "" => secs.to_string(),
        commit => format!("{secs}-{commit}"),
    }
}

/// Run the features; `Ok(true)` when every scenario passed.
pub async fn run(scenario: &Scenario, state: &StateDir, options: &TestOptions) -> anyhow::Result<bool> {
    let features = scenario.feature_paths();
    if features.is_empty() {
        anyhow::bail!("{} names no `features:` to run", scenario.source.display());
    }
    // Checked before anything runs: a bad expression must not start a suite.
    let tags = match &options.tags {
        Some(expr) => Some(
            expr.parse::<cucumber::gherkin::tagexpr::TagOperation>()
                .map_err(|e| anyhow::anyhow!("tag expression `{expr}`: {e}"))?,
        ),
        None => None,
    };
    let name = match &options.name {
        Some(re) => Some(regex::Regex::new(re).map_err(|e| anyhow::anyhow!("name filter `{re}`: {e}"))?),
        None => None,
    };
    // The host alone has no API; a cluster that is not up is said so by the first step that needs it.
    let provider: std::sync::Arc<dyn crate::provider::Provider> =
        std::sync::Arc::from(crate::provider::for_scenario(scenario, state, &state.instance().unwrap_or_default()));
    let client = provider.client().await.ok();
    let ctx = world::install(Context {
        provider,
        client,
        keep_on_failure: options.keep_on_failure,
        scenario: scenario.clone(),
        state: state.clone(),
        results: scenario.path_of(&scenario.fio.results),
        label: run_label(),
        checks: Default::default(),
        artifacts: options.artifacts.clone().unwrap_or_else(|| crate::artifacts::default_dir(scenario)),
        stack_namespaces: stack_namespaces(scenario),
        strict: options.strict || scenario.fio.strict,
    });

    let runner = cucumber::runner::basic::Cli {
        concurrency: options.concurrency,
        fail_fast: options.fail_fast,
        ..Default::default()
    };
    let cli = cucumber::cli::Opts {
        re_filter: name,
        tags_filter: tags,
        parser: Default::default(),
        runner,
        writer: Default::default(),
        custom: cucumber::cli::Empty,
    };
    let writer = writer::Basic::raw(std::io::stdout(), writer::Coloring::Auto, 0)
        .summarized()
        .tee::<LabWorld, _>(writer::JUnit::for_tee(output(&options.junit)?, 0))
        .tee::<LabWorld, _>(writer::Json::for_tee(output(&options.json)?))
        .normalized();
    let finished = LabWorld::cucumber::<&str>()
        .with_parser(Several::default())
        .with_writer(writer)
        .fail_on_skipped()
        .before(|feature, _, scenario, world| {
            world.name = scenario.name.clone();
            world.feature = feature.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            world.line = scenario.position.line;
            Box::pin(async {})
        })
        .after(|_, _, _, finished, world| {
            let failed = matches!(finished, cucumber::event::ScenarioFinished::StepFailed(..));
            Box::pin(async move {
                if let Some(world) = world {
                    cleanup::after_scenario(world, failed).await;
                }
            })
        })
        .with_cli(cli)
        .run(features.clone())
        .await;
    let failed = cucumber::writer::Stats::execution_has_failed(&finished);
    let steps = {
        use cucumber::writer::Stats as _;
        finished.passed_steps() + finished.failed_steps() + finished.skipped_steps()
    };
    // The report files are complete once their writers are gone.
    drop(finished);
    if steps == 0 && !failed {
        let filter = match (&options.tags, &options.name) {
            (Some(tags), _) => format!("the tag expression `{tags}`"),
            (_, Some(name)) => format!("the name filter `{name}`"),
            _ => "no filter (is there a .feature file with a scenario?)".to_string(),
        };
        let features: Vec<_> = features.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("no scenario ran: none in {} matches {filter}", features.join(", "));
    }
    // Only a run with a failure collected anything (a named --artifacts folder may exist already).
    if failed && ctx.artifacts.is_dir() {
        match cleanup::bundle(&ctx) {
            Ok(tarball) => eprintln!(
                "artifacts of the failed scenarios: {} (all in one file: {})",
                ctx.artifacts.display(),
                tarball.display()
            ),
            Err(e) => eprintln!("artifacts are in {}, but bundling them failed: {e:#}", ctx.artifacts.display()),
        }
    }

    let checks = ctx.checks.lock().map(|c| c.clone()).unwrap_or_default();
    if !checks.is_empty() {
        print!("{}", report::table(&checks));
    }
    if let Some(path) = &options.junit {
        let xml = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        std::fs::write(path, report::mark_unjudged_junit(&xml, &checks))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &options.json {
        let json = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let marked = report::mark_unjudged_json(&json, &checks).with_context(|| format!("{}", path.display()))?;
        std::fs::write(path, marked).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &options.html {
        let html = report::html(&ctx, &checks)?;
        std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let _ = std::io::stdout().flush();
    Ok(!failed)
}

/// Cucumber's own parser over each of the scenario's feature paths, in order.
#[derive(Clone, Debug, Default)]
struct Several(cucumber::parser::Basic);

impl cucumber::Parser<Vec<std::path::PathBuf>> for Several {
    type Cli = cucumber::parser::basic::Cli;
    type Output = futures_util::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<cucumber::gherkin::Feature>>>;

    fn parse(self, input: Vec<std::path::PathBuf>, cli: Self::Cli) -> Self::Output {
        use futures_util::{FutureExt as _, StreamExt as _};
        let mut features = Vec::new();
        for path in input {
            // The basic parser reads its files at once: its stream is always ready.
            let mut parsed = self.0.clone().parse(path, cli.clone());
            while let Some(Some(feature)) = parsed.next().now_or_never() {
                features.push(feature);
            }
        }
        futures_util::stream::iter(features)
    }
}

#[cfg(test)]
mod tests {
    use cucumber::World as _;

    use super::*;

    /// Every step of every shipped feature has exactly one definition, so no
    /// scenario can fail as "skipped" for want of one, on any lab.
    #[test]
    fn every_shipped_step_has_exactly_one_definition() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("features");
        let steps = LabWorld::collection();
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "feature") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 4, "{files:?}");
        let mut undefined = Vec::new();
        for file in files {
            let feature =
                cucumber::gherkin::Feature::parse_path(&file, cucumber::gherkin::GherkinEnv::default()).unwrap();
            let scenarios = feature.scenarios.iter().chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
            let background = feature.background.iter().flat_map(|b| b.steps.iter());
            for step in background.chain(scenarios.flat_map(|s| s.steps.iter())) {
                match steps.find(step) {
                    Ok(Some(_)) => {}
                    Ok(None) => undefined.push(format!("{}: {} {}", file.display(), step.keyword, step.value)),
                    Err(e) => undefined.push(format!("{}: {} is ambiguous: {e:?}", file.display(), step.value)),
                }
            }
        }
        assert!(undefined.is_empty(), "steps without exactly one definition:\n{}", undefined.join("\n"));
    }
}

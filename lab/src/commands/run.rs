//! `lab run`: up, test, down — the whole job for CI in one command, holding
//! the lab throughout.

use std::process::ExitCode;

use crate::Lab;
use crate::cli::{ChangeArgs, TestArgs, UpArgs};
use crate::progress::Progress;

pub async fn run(args: TestArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario.clone())?;
    run_lab(lab, &args, progress).await
}

/// Up, test, down of `lab` (`lab run`, and `lab replay` of a bundle's scenario).
pub async fn run_lab(lab: Lab, args: &TestArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let up = UpArgs {
        change: ChangeArgs {
            scenario: crate::cli::ScenarioArg { scenario: args.scenario.scenario.clone() },
            dry_run: false,
        },
        keep_on_failure: args.keep_on_failure,
        adopt: args.adopt,
        artifacts: args.artifacts.clone(),
    };
    let lab = lab.adopting(args.adopt);
    let (plan, held) = super::up::check_and_hold(&lab, "run").await?;
    // `lab up` cleans up after itself when it fails (unless told to keep).
    super::up::bring_up(&lab, &held, plan, &up, progress).await?;
    let options = args.options();
    let started = std::time::Instant::now();
    let tested = tokio::select! {
        tested = crate::suite::run(&lab.scenario, &lab.state, &options) => tested,
        why = super::interrupted() => return Err(super::stopped(&lab, why, "lab run")),
    };
    progress.count(Some(crate::plan::Phase::Features), started.elapsed());
    let passed = matches!(tested, Ok(true));
    if !passed {
        // What another contributor needs to replay the failure, made while the lab still runs.
        let out = args
            .artifacts
            .as_ref()
            .map(|a| a.with_file_name(format!("{}-bundle", a.file_name().unwrap_or_default().to_string_lossy())));
        let selection = crate::bundle::Selection { tags: args.tags.clone(), name: args.name.clone() };
        match crate::bundle::make(&lab, false, out, args.artifacts.as_deref(), &selection).await {
            Ok(tarball) => eprintln!("a bundle of the failed run (`lab bundle`): {}", tarball.display()),
            Err(e) => eprintln!("bundling the failed run failed: {e:#}"),
        }
    }
    if !passed && args.keep_on_failure {
        eprintln!("keeping the lab (--keep-on-failure); `lab down` removes it");
    } else {
        let down = lab.down_plan()?;
        crate::plan::execute_through(&down, lab.provider.as_ref(), progress, &lab.state).await?;
    }
    // Beside the run's artifacts folder: `artifacts/<lab>/`, or the parent of `--artifacts DIR`.
    let default_artifacts = crate::artifacts::default_dir(&lab.scenario);
    let artifacts = args.artifacts.as_deref().unwrap_or(&default_artifacts);
    super::account(progress, "run", artifacts.parent());
    match tested {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        Err(e) => Err(e),
    }
}

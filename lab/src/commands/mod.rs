//! One module per subcommand; each turns arguments into library calls.

pub mod build;
pub mod doctor;
pub mod down;
pub mod fio;
pub mod plan;
pub mod prepare;
pub mod run;
pub mod shell;
pub mod status;
pub mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = crate::progress::Progress::new(cli.quiet);
    match cli.command {
        Command::Up(args) => up::run(args, &progress).await,
        Command::Prepare(args) => prepare::run(args, &progress).await,
        Command::Build(args) => build::build(args, &progress).await,
        Command::Load(args) => build::load(args, &progress).await,
        Command::Images(args) => build::images(args).await,
        Command::Test(args) => {
            let lab = crate::Lab::open(args.scenario.scenario.clone())?;
            let _held = lab.hold("test")?;
            let passed = crate::suite::run(&lab.scenario, &lab.state, &args.options()).await?;
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Run(args) => run::run(args, &progress).await,
        Command::Fio(args) => fio::run(args).await,
        Command::Deploy(args) => {
            let lab = crate::Lab::open(args.change.scenario.scenario)?.adopting(args.adopt);
            let plan = if args.server_dry_run { lab.server_dry_run_plan()? } else { lab.deploy_plan()? };
            run_or_show(&lab, &plan, args.change.dry_run, &progress, "deploy").await
        }
        Command::Down(args) => down::run(args, &progress).await,
        Command::Status(args) => status::run(args).await,
        Command::Plan(args) => plan::run(args),
        Command::Doctor(args) => doctor::run(args).await,
        Command::Shell(args) => shell::run(args).await,
    }
}

/// With `--dry-run`, print the plan and say so: the command then changes nothing.
fn shown(lab: &crate::Lab, plan: &crate::plan::Plan, dry_run: bool) -> bool {
    if dry_run {
        print!("{}", plan.render(lab.provider.as_ref(), false));
    }
    dry_run
}

/// Print the plan (`--dry-run`) or execute it, holding the lab (`command` names the holder).
async fn run_or_show(
    lab: &crate::Lab,
    plan: &crate::plan::Plan,
    dry_run: bool,
    progress: &crate::progress::Progress,
    command: &str,
) -> anyhow::Result<ExitCode> {
    if shown(lab, plan, dry_run) {
        return Ok(ExitCode::SUCCESS);
    }
    let _held = lab.hold(command)?;
    crate::plan::execute(plan, lab.provider.as_ref(), progress, &lab.state).await?;
    Ok(ExitCode::SUCCESS)
}

/// After a failed `lab up` or `lab prepare`: the lab's log and plan copied
/// into the artifacts folder (`--artifacts DIR`, else beside the scenario)
/// and bundled, so they survive the cleanup; both paths are printed.
fn keep_failure_log(lab: &crate::Lab, artifacts: Option<&std::path::Path>, command: &str) {
    let dir =
        artifacts.map(std::path::Path::to_path_buf).unwrap_or_else(|| crate::artifacts::default_dir(&lab.scenario));
    let kept = crate::artifacts::keep(&dir, &[lab.state.log(), lab.state.file("plan.txt")])
        .and_then(|()| crate::artifacts::bundle(&dir));
    match kept {
        Ok(tarball) => eprintln!("the log of the failed lab {command}: {} (and {})", dir.display(), tarball.display()),
        Err(e) => eprintln!("keeping the log of the failed lab {command} in {} failed: {e:#}", dir.display()),
    }
}

use std::process::ExitCode;

use crate::Lab;
use crate::cli::UpArgs;
use crate::plan::{Plan, execute};
use crate::progress::Progress;

pub async fn run(args: UpArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?;
    lab.check_machine().await?;
    let plan = lab.prepare_plan();
    if super::shown(&lab, &plan, args.change.dry_run) {
        return Ok(ExitCode::SUCCESS);
    }
    let _held = lab.hold("prepare")?;
    let undo = lab.undo_log();
    // Read before any change: a damaged record must stop us, not be overwritten.
    let recorded_before = undo.entries()?.len();
    let Err(error) = execute(&plan, lab.provider.as_ref(), progress, &lab.state).await else {
        eprintln!(
            "lab {} is prepared; `lab down` restores what it changed ({})",
            lab.scenario.name(),
            undo.path().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    super::keep_failure_log(&lab, args.artifacts.as_deref(), "prepare").await;
    if args.keep_on_failure {
        eprintln!("keeping what this run changed (--keep-on-failure); `lab down` restores it");
        return Err(error);
    }
    // Only this run's changes: an earlier, successful preparation stays.
    let entries = undo.entries()?;
    let steps = undo.restore_steps(&entries[recorded_before.min(entries.len())..], true);
    if !steps.is_empty() {
        eprintln!("undoing what this run changed (use --keep-on-failure to keep it)");
        let rollback = Plan { title: "undo this run's changes".into(), steps };
        if let Err(undo_error) = execute(&rollback, lab.provider.as_ref(), progress, &lab.state).await {
            eprintln!("undoing failed too: {undo_error:#}; `lab down` tries again");
        }
    }
    Err(error)
}

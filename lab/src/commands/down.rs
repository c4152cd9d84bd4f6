use std::process::ExitCode;

use super::run_or_show;
use crate::Lab;
use crate::cli::ChangeArgs;
use crate::progress::Progress;

pub async fn run(args: ChangeArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let plan = lab.down_plan()?;
    run_or_show(&lab, &plan, args.dry_run, progress).await
}

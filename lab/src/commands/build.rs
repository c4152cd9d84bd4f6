//! `lab build` and `lab load`: the inner loop of a contributor.

use std::process::ExitCode;

use super::run_or_show;
use crate::Lab;
use crate::cli::ComponentArgs;
use crate::progress::Progress;

pub async fn build(args: ComponentArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?;
    let plan = lab.build_plan(args.component.as_deref())?;
    run_or_show(&lab, &plan, args.change.dry_run, progress).await
}

pub async fn load(args: ComponentArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?;
    let plan = lab.load_plan(args.component.as_deref())?;
    run_or_show(&lab, &plan, args.change.dry_run, progress).await
}

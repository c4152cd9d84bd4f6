//! `lab build`, `lab load` and `lab images`: the inner loop of a contributor.

use std::process::ExitCode;

use super::run_or_show;
use crate::Lab;
use crate::cli::{ComponentArgs, ImagesArgs};
use crate::load::preflight::{Verdict, render};
use crate::progress::Progress;

pub async fn build(args: ComponentArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?;
    let plan = lab.build_plan(args.component.as_deref())?;
    run_or_show(&lab, &plan, args.change.dry_run, progress, "build").await
}

pub async fn load(args: ComponentArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?;
    let plan = lab.load_plan(args.component.as_deref())?;
    run_or_show(&lab, &plan, args.change.dry_run, progress, "load").await
}

pub async fn images(args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let verdicts = lab.image_report(args.offline).await?;
    if verdicts.is_empty() {
        println!("{} references no images lab builds or preloads", lab.scenario.name());
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&verdicts));
    let missing = verdicts.iter().any(|(_, v)| matches!(v, Verdict::Missing { .. }));
    Ok(if missing { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

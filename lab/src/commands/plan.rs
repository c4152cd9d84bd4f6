use std::process::ExitCode;

use crate::Lab;
use crate::cli::{PlanArgs, PlanFor};

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let plan = match args.plan_for {
        PlanFor::Up => lab.up_plan()?,
        PlanFor::Prepare => lab.prepare_plan(),
        PlanFor::Build => lab.build_plan(None)?,
        PlanFor::Load => lab.load_plan(None)?,
        PlanFor::Deploy => lab.deploy_plan()?,
        PlanFor::Down => lab.down_plan()?,
    };
    print!("{}", plan.render(lab.provider.as_ref(), args.files));
    Ok(ExitCode::SUCCESS)
}

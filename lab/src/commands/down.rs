use std::process::ExitCode;

use crate::Lab;
use crate::cli::ChangeArgs;
use crate::plan::execute;
use crate::progress::Progress;

pub async fn run(args: ChangeArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let plan = lab.down_plan()?;
    if args.dry_run {
        print!("{}", plan.render(lab.provider.as_ref(), false));
        return Ok(ExitCode::SUCCESS);
    }
    execute(&plan, lab.provider.as_ref(), progress, &lab.state).await?;
    Ok(ExitCode::SUCCESS)
}

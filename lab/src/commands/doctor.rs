use std::process::ExitCode;

use crate::Lab;
use crate::cli::ScenarioArg;
use crate::doctor::{Level, examine, render, this_machine};

pub async fn run(args: ScenarioArg) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario)?;
    let findings = examine(&lab.scenario, lab.provider.as_ref(), &this_machine()).await;
    println!("lab doctor: scenario {} ({})", lab.scenario.name(), lab.scenario.cluster.provider);
    print!("{}", render(&findings));
    let missing = findings.iter().filter(|f| f.level == Level::Missing).count();
    if missing > 0 {
        println!("{missing} required prerequisite(s) missing");
        return Ok(ExitCode::FAILURE);
    }
    println!("everything this scenario needs is here");
    Ok(ExitCode::SUCCESS)
}

//! `lab replay BUNDLE`: what differs from where the bundle was made, then
//! `lab run` of its scenario and selection (see `lab::replay`).

use std::process::ExitCode;

use crate::cli::{ReplayArgs, ScenarioArg, TestArgs};
use crate::progress::Progress;

pub async fn run(args: ReplayArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let replay = crate::replay::open(&args.bundle, args.scenario.as_deref(), args.dry_run)?;
    if replay.differences.is_empty() {
        eprintln!("replay: nothing differs from where the bundle was made");
    }
    for difference in &replay.differences {
        eprintln!("replay: differs: {difference}");
    }
    for source in &replay.sources {
        eprintln!("replay: builds {source}");
    }
    let selection = &replay.selection;
    let scenarios = match (&selection.tags, &selection.name) {
        (Some(tags), _) => format!("the scenarios tagged {tags}"),
        (None, Some(name)) => format!("the scenarios matching /{name}/"),
        (None, None) => "every scenario".into(),
    };
    let lab = replay.lab;
    if args.dry_run {
        lab.check_machine()?;
        print!("{}", lab.up_plan()?.render(lab.provider.as_ref(), false));
        println!("then `lab test` of {scenarios} in {}, then `lab down`", lab.scenario.source.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("replay: lab run of {} with {scenarios}", lab.scenario.name());
    let test = TestArgs {
        scenario: ScenarioArg { scenario: Some(lab.scenario.source.clone()) },
        tags: selection.tags.clone(),
        name: selection.name.clone(),
        fail_fast: false,
        concurrency: None,
        junit: None,
        json: None,
        html: None,
        keep_on_failure: args.keep_on_failure,
        strict: false,
        artifacts: args.artifacts,
        adopt: false,
    };
    // The clones the replay builds from live as long as `replay`'s parts.
    let done = super::run::run_lab(lab, &test, progress).await;
    drop(replay.clones);
    done
}

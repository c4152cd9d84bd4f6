//! `lab replay BUNDLE`: what differs from where the bundle was made, then
//! `lab run` of its scenario and selection (see `lab::replay`).

use std::process::ExitCode;

use crate::cli::{ReplayArgs, ScenarioArg, TestArgs};
use crate::progress::Progress;

/// Asked on a terminal; refused off one: a bundle is someone else's scenario, run as root.
fn agree() -> anyhow::Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "replay: the bundle runs a scenario or code that is not your own (above), and no one is at a terminal to agree: read it, then give --yes"
        );
    }
    eprint!("Run it? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        anyhow::bail!("replay: not run (answered `{}`)", answer.trim());
    }
    Ok(())
}

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
    let consent = &replay.consent;
    if consent.needed() {
        eprint!("{}", consent.render());
    }
    let lab = replay.lab;
    if !args.dry_run && consent.needed() && !args.yes {
        agree()?;
    }
    if args.dry_run {
        lab.check_machine().await?;
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

//! `lab bisect`: the arguments into `lab::bisect`'s options, its outcome
//! as the last line (the first bad commit, or the commits it is among).

use std::process::ExitCode;

use crate::cli::BisectArgs;
use crate::progress::Progress;

/// A bisect stopped by a signal: its clones are gone (they went with the
/// search); say what the lab runs now, take a half-made `--fresh` lab
/// down, and exit 130 as a shell does for Ctrl-C.
async fn stopped(
    lab: &crate::Lab,
    status: &crate::bisect::Status,
    why: &str,
    progress: &crate::progress::Progress,
) -> anyhow::Result<ExitCode> {
    eprintln!("bisect {why}; lab's clones of the checkout are removed");
    match status.now() {
        None => eprintln!("bisect: no step had touched the lab: it runs what it ran before"),
        Some((what, false)) => {
            eprintln!("bisect: {what}; `lab build`, `lab load`, `lab deploy` put your checkout's back")
        }
        Some((what, true)) => {
            eprintln!("bisect: {what}: taking it down");
            let _held = lab.hold("bisect")?;
            let down = lab.down_plan()?;
            crate::plan::execute_through(&down, lab.provider.as_ref(), progress, &lab.state).await?;
        }
    }
    Ok(ExitCode::from(130))
}

pub async fn run(args: BisectArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = crate::Lab::open(args.scenario.scenario.clone())?;
    let options = crate::bisect::Options {
        component: args.component,
        good: args.good,
        bad: args.bad,
        tags: args.tags,
        name: args.name,
        fio: args.fio.map(|profile| crate::bisect::FioCriterion {
            profile,
            target: args.target.unwrap_or_default(),
            node: args.node,
            metric: args.metric,
            overwrite: args.overwrite,
            sampling: crate::fio::interleave::Sampling {
                min_pairs: args.min_pairs,
                max_pairs: args.max_pairs,
                budget: std::time::Duration::from_secs(args.budget),
            },
        }),
        fresh: args.fresh,
        retries: args.retries,
        dry_run: args.dry_run,
    };
    let status = crate::bisect::Status::default();
    let outcome = tokio::select! {
        outcome = crate::bisect::run(&lab, &options, progress, &status) => outcome?,
        // The search's future is dropped: its clones go, its child processes are killed.
        why = super::interrupted() => return stopped(&lab, &status, why, progress).await,
    };
    match outcome.candidates.as_slice() {
        _ if options.dry_run => {
            outcome.candidates.iter().for_each(|(c, s)| println!("{} {s}", &c[..12]));
            Ok(ExitCode::SUCCESS)
        }
        [(commit, subject)] => {
            println!("first bad commit: {commit} {subject}");
            Ok(ExitCode::SUCCESS)
        }
        several => {
            println!("the first bad commit is one of (the others could not be judged):");
            several.iter().for_each(|(c, s)| println!("  {c} {s}"));
            Ok(ExitCode::FAILURE)
        }
    }
}

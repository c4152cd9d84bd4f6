//! `lab bisect`: the arguments into `lab::bisect`'s options, its outcome
//! as the last line (the first bad commit, or the commits it is among).

use std::process::ExitCode;

use crate::cli::BisectArgs;
use crate::progress::Progress;

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
    let outcome = crate::bisect::run(&lab, &options, progress).await?;
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

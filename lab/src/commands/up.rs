use std::process::ExitCode;

use anyhow::Context as _;

use crate::Lab;
use crate::cli::UpArgs;
use crate::doctor;
use crate::plan::{execute, execute_through};
use crate::progress::Progress;
use crate::state::Held;

pub async fn run(args: UpArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario.clone())?.adopting(args.adopt);
    if args.change.dry_run {
        lab.check_machine().await?;
        super::shown(&lab, &lab.up_plan()?, true);
        return Ok(ExitCode::SUCCESS);
    }
    let (plan, held) = check_and_hold(&lab, "up").await?;
    let up = bring_up(&lab, &held, plan, &args, progress).await;
    if up.is_ok() {
        super::account(progress, "up", None);
    }
    up
}

/// [`check`], and the lab held: a state folder that exists is held first, so
/// another lab process at work on it is named rather than mistaken for a
/// host in the way; a new one is made only once the checks pass.
pub async fn check_and_hold(lab: &Lab, command: &str) -> anyhow::Result<(crate::plan::Plan, Held)> {
    let early = if lab.state.exists() { Some(lab.hold(command)?) } else { None };
    let plan = check(lab).await?;
    let held = match early {
        Some(held) => held,
        None => lab.hold(command)?,
    };
    Ok((plan, held))
}

/// What `lab up` checks before it touches anything (the state folder
/// included): the machine, the scenario's plan, the provider's own tools.
pub async fn check(lab: &Lab) -> anyhow::Result<crate::plan::Plan> {
    lab.check_machine().await?;
    let plan = lab.up_plan()?;
    // The provider's own tools first: a missing kind should stop `up` before
    // it writes anything, not half-way.
    let missing: Vec<_> = doctor::provisioning(&lab.scenario, lab.provider.as_ref(), &doctor::this_machine())
        .await
        .into_iter()
        .filter(|f| f.level == doctor::Level::Missing)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "this machine lacks what {} needs:\n{}",
            lab.scenario.cluster.provider,
            doctor::render(&missing).trim_end()
        );
    }
    Ok(plan)
}

/// `lab up` of a lab this process holds (`lab run` holds it through up,
/// test and down), after [`check`].
pub async fn bring_up(
    lab: &Lab,
    held: &Held,
    plan: crate::plan::Plan,
    args: &UpArgs,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    // A lab that is up is refused before anything: a failed second `up` would
    // otherwise undo the first one's records (its labels, hugepages, claims).
    if lab.has_records() {
        anyhow::bail!(
            "lab {} is already up: {} records what an earlier `lab up` made. `lab prepare`, `lab load` and \
             `lab deploy` re-apply onto it; `lab down` removes it before a fresh `lab up`",
            lab.scenario.name(),
            lab.state.dir().display()
        );
    }
    if lab.provider.exists().await.context("checking whether the lab is already up")? {
        held.forget_if_new();
        anyhow::bail!(
            "{} is already up: `lab status` shows its nodes; `lab down` removes it before a fresh `lab up`",
            lab.scenario.cluster_name()
        );
    }
    std::fs::write(lab.state.file("plan.txt"), plan.render(lab.provider.as_ref(), true))?;
    // This run's record of the objects it creates starts empty: a failed run removes only those.
    let _ = std::fs::remove_file(lab.state.created_objects());

    // A signal stops the run as a failure would: its log kept, what it made removed from its records.
    let result = tokio::select! {
        done = execute(&plan, lab.provider.as_ref(), progress, &lab.state) => done,
        why = super::interrupted() => Err(anyhow::anyhow!("lab up {why}")),
    };
    let Err(error) = result else {
        eprintln!("lab {} is up; state in {}", lab.scenario.name(), lab.state.dir().display());
        if lab.state.kubeconfig().exists() {
            eprintln!("  export KUBECONFIG={}", lab.state.absolute().join("kubeconfig").display());
        }
        return Ok(ExitCode::SUCCESS);
    };
    // The log and plan outlive the cleanup below, which removes the state folder.
    super::keep_failure_log(lab, args.artifacts.as_deref(), "up").await;
    if args.keep_on_failure {
        eprintln!("keeping the half-made lab for inspection (--keep-on-failure); log: {}", lab.state.log().display());
        eprintln!("  `lab status` lists its nodes, `lab down` removes it");
    } else {
        // Every record in the state is this run's: an earlier `up` was refused above.
        eprintln!("cleaning up what this run made (use --keep-on-failure to keep the lab for inspection)");
        let cleanup = match lab.cleanup_plan() {
            Ok(down) => tokio::select! {
                done = execute_through(&down, lab.provider.as_ref(), progress, &lab.state) => done,
                why = super::interrupted() => Err(anyhow::anyhow!("the cleanup {why}")),
            },
            Err(e) => Err(e),
        };
        if let Err(cleanup) = cleanup {
            eprintln!(
                "cleanup failed too: {cleanup:#}\n`lab down` finishes it from the records kept in {}",
                lab.state.dir().display()
            );
        }
    }
    Err(error)
}

use std::process::ExitCode;

use anyhow::Context as _;

use crate::Lab;
use crate::cli::UpArgs;
use crate::doctor;
use crate::plan::execute;
use crate::progress::Progress;

pub async fn run(args: UpArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?.adopting(args.adopt);
    lab.check_machine()?;
    let plan = lab.up_plan()?;
    if super::shown(&lab, &plan, args.change.dry_run) {
        return Ok(ExitCode::SUCCESS);
    }
    // The provider's own tools first: a missing kind should stop `up` before
    // it writes anything, not half-way.
    let missing: Vec<_> = doctor::provisioning(&lab.scenario, &doctor::this_machine())
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
    if lab.provider.exists().await.context("checking whether the lab is already up")? {
        anyhow::bail!(
            "{} is already up: `lab status` shows its nodes; `lab down` removes it before a fresh `lab up`",
            lab.scenario.cluster_name()
        );
    }
    std::fs::create_dir_all(lab.state.dir()).with_context(|| format!("cannot create {}", lab.state.dir().display()))?;
    std::fs::write(lab.state.file("plan.txt"), plan.render(lab.provider.as_ref(), true))?;
    // This run's record of the objects it creates starts empty: a failed run removes only those.
    let _ = std::fs::remove_file(lab.state.created_objects());

    let Err(error) = execute(&plan, lab.provider.as_ref(), progress, &lab.state).await else {
        eprintln!("lab {} is up; state in {}", lab.scenario.name(), lab.state.dir().display());
        if lab.state.kubeconfig().exists() {
            eprintln!("  export KUBECONFIG={}", lab.state.absolute().join("kubeconfig").display());
        }
        return Ok(ExitCode::SUCCESS);
    };
    // The log and plan outlive the cleanup below, which removes the state folder.
    super::keep_failure_log(&lab, args.artifacts.as_deref(), "up");
    if args.keep_on_failure {
        eprintln!("keeping the half-made lab for inspection (--keep-on-failure); log: {}", lab.state.log().display());
        eprintln!("  `lab status` lists its nodes, `lab down` removes it");
    } else {
        eprintln!("cleaning up what this run made (use --keep-on-failure to keep the lab for inspection)");
        let cleanup = match lab.cleanup_plan() {
            Ok((lab, down)) => execute(&down, lab.provider.as_ref(), progress, &lab.state).await,
            Err(e) => Err(e),
        };
        if let Err(cleanup) = cleanup {
            eprintln!("cleanup failed too: {cleanup:#}");
        }
    }
    Err(error)
}

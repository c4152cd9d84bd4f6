use std::process::ExitCode;

use crate::Lab;
use crate::cli::DownArgs;
use crate::plan::execute_through;
use crate::progress::Progress;

/// Every step runs even when one fails (each failure listed, exit 1); the
/// state folder, with its records, stays until a `lab down` finishes clean.
pub async fn run(args: DownArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.change.scenario.scenario)?.deleting_adopted(args.delete_adopted);
    let plan = lab.down_plan()?;
    if super::shown(&lab, &plan, args.change.dry_run) {
        return Ok(ExitCode::SUCCESS);
    }
    if lab.state.exists() {
        let _held = lab.hold("down")?;
        tokio::select! {
            done = execute_through(&plan, lab.provider.as_ref(), progress, &lab.state) => done?,
            why = super::interrupted() => anyhow::bail!(
                "lab down {why}; the records left in {} let the next `lab down` finish", lab.state.dir().display()
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    // No state: say what is left of the lab rather than report a clean success.
    let traces = lab.traces().await;
    if traces.is_empty() {
        eprintln!(
            "nothing to remove: no state at {} and no trace of lab {} (no nodes, processes or marked objects)",
            lab.state.dir().display(),
            lab.scenario.name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("no state at {}, but lab {} left traces:", lab.state.dir().display(), lab.scenario.name());
    for trace in &traces {
        eprintln!("  - {trace}");
    }
    eprintln!("removing what can be found without the state");
    let removed = execute_through(&plan, lab.provider.as_ref(), progress, &lab.state).await;
    let left = lab.traces().await;
    let mut message = format!(
        "lab down had no state at {}: host changes recorded there (hugepages, modules, sysctls) were not undone; \
         if the state was moved, set LAB_STATE_DIR to the folder that holds {}/",
        lab.state.dir().display(),
        lab.scenario.name()
    );
    if let Err(e) = removed {
        message.push_str(&format!("\n{e:#}"));
    }
    if !left.is_empty() {
        message.push_str(&format!("\nstill there:\n  - {}", left.join("\n  - ")));
    }
    anyhow::bail!(message)
}

use std::process::ExitCode;

use anyhow::Context as _;

use crate::Lab;
use crate::cli::ShellArgs;

pub async fn run(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let nodes = lab.provider.nodes().await?;
    if !nodes.iter().any(|n| n.name == args.node) {
        let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        anyhow::bail!(
            "no node {} in lab {}; its nodes are: {}",
            args.node,
            lab.scenario.name(),
            if known.is_empty() { "none (is it up? `lab status`)".to_string() } else { known.join(", ") }
        );
    }
    let cmd = lab.provider.interactive_shell(&args.node);
    tracing::debug!(command = %cmd, "interactive shell");
    let status = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .status()
        .with_context(|| format!("running `{cmd}`"))?;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}

use std::process::ExitCode;

use crate::Lab;
use crate::cli::ScenarioArg;

pub async fn run(args: ScenarioArg) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario)?;
    let nodes = lab.provider.nodes().await?;
    println!("lab {} ({}), state in {}", lab.scenario.name(), lab.scenario.cluster.provider, lab.state.dir().display());
    if lab.state.kubeconfig().exists() {
        println!("kubeconfig: {}", lab.state.kubeconfig().display());
    }
    if nodes.is_empty() {
        println!("no nodes: the lab is not up (`lab up` creates it)");
        return Ok(ExitCode::SUCCESS);
    }
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:13}  STATE", "NODE", "ROLE");
    for node in nodes {
        println!("{:width$}  {:13}  {}", node.name, node.role, node.state);
    }
    Ok(ExitCode::SUCCESS)
}

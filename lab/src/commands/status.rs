use std::process::ExitCode;

use crate::Lab;
use crate::cli::StatusArgs;

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let lab = Lab::open(args.scenario.scenario)?;
    let nodes = lab.provider.nodes().await?;
    let kubeconfig = lab.state.kubeconfig().exists().then(|| lab.state.kubeconfig());
    if args.json {
        let value = serde_json::json!({
            "name": lab.scenario.name(),
            "provider": lab.scenario.cluster.provider.to_string(),
            "state": lab.state.absolute(),
            "kubeconfig": kubeconfig.as_ref().map(|k| crate::state::absolute(k)),
            "up": !nodes.is_empty(),
            "nodes": nodes.iter().map(|n| serde_json::json!({
                "name": n.name, "role": n.role.to_string(), "state": n.state.to_string(),
            })).collect::<Vec<_>>(),
        });
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("lab {} ({}), state in {}", lab.scenario.name(), lab.scenario.cluster.provider, lab.state.dir().display());
    if let Some(kubeconfig) = &kubeconfig {
        println!("kubeconfig: {}", kubeconfig.display());
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

//! Cluster and node steps: every node Ready, io-engine nodes with their
//! hugepages allocatable and their modules loaded (checked on the node), and
//! every node's own kernel with the modules asked for.

use cucumber::{given, then};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::super::world::LabWorld;
use crate::prepare::kubelet::quantity_bytes;
use crate::provider::node_ready;
use crate::scenario::IO_ENGINE_LABEL;
use crate::shell::Cmd;

async fn io_engine_nodes(world: &LabWorld) -> Result<Vec<Node>, String> {
    let nodes: Api<Node> = Api::all(world.ctx.client()?);
    let selector = format!("{}={}", IO_ENGINE_LABEL.0, IO_ENGINE_LABEL.1);
    let found =
        nodes.list(&ListParams::default().labels(&selector)).await.map_err(|e| format!("listing nodes: {e}"))?;
    if found.items.is_empty() {
        return Err(format!("no node carries the label {selector}"));
    }
    Ok(found.items)
}

#[given(regex = r"^every node is Ready$")]
async fn every_node_ready(world: &mut LabWorld) -> Result<(), String> {
    let mut not_ready = Vec::new();
    for node in all_nodes(world).await? {
        if node_ready(&node) != Some(true) {
            not_ready.push(node.metadata.name.unwrap_or_default());
        }
    }
    if not_ready.is_empty() { Ok(()) } else { Err(format!("nodes not Ready: {}", not_ready.join(", "))) }
}

/// Every node; none is a failure, so "every node …" never holds of an empty cluster.
async fn all_nodes(world: &LabWorld) -> Result<Vec<Node>, String> {
    let nodes: Api<Node> = Api::all(world.ctx.client()?);
    let found = nodes.list(&ListParams::default()).await.map_err(|e| format!("listing nodes: {e}"))?.items;
    if found.is_empty() {
        return Err("the cluster lists no nodes, so no node can be checked".into());
    }
    Ok(found)
}

#[then(regex = r#"^every node has the label "([^"=]+)=([^"]*)"$"#)]
async fn every_node_labelled(world: &mut LabWorld, key: String, value: String) -> Result<(), String> {
    let mut without = Vec::new();
    for node in all_nodes(world).await? {
        let has = node.metadata.labels.as_ref().and_then(|l| l.get(&key)).map(String::as_str);
        if has != Some(value.as_str()) {
            let name = node.metadata.name.clone().unwrap_or_default();
            without.push(format!("{name} has {}", has.map(|v| format!("{key}={v}")).unwrap_or("no such label".into())));
        }
    }
    if without.is_empty() { Ok(()) } else { Err(format!("expected {key}={value}: {}", without.join(", "))) }
}

#[then(regex = r"^every node has at least (\d+) MiB of hugepages-2Mi allocatable$")]
async fn every_node_hugepages(world: &mut LabWorld, mib: u64) -> Result<(), String> {
    hugepages_short(all_nodes(world).await?, mib)
}

#[then(regex = r"^every io-engine node has at least (\d+) MiB of hugepages-2Mi allocatable$")]
async fn hugepages_allocatable(world: &mut LabWorld, mib: u64) -> Result<(), String> {
    hugepages_short(io_engine_nodes(world).await?, mib)
}

/// Fails naming each node with less than `mib` of hugepages-2Mi allocatable.
fn hugepages_short(nodes: Vec<Node>, mib: u64) -> Result<(), String> {
    let mut short = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let have = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get("hugepages-2Mi"))
            .and_then(|q| quantity_bytes(&q.0))
            .unwrap_or(0);
        if have < u128::from(mib) << 20 {
            short.push(format!("{name} has {} MiB", have >> 20));
        }
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!("expected at least {mib} MiB of hugepages-2Mi allocatable: {}", short.join(", ")))
    }
}

#[then(regex = r"^every io-engine node has the module (\w+) loaded$")]
async fn module_loaded(world: &mut LabWorld, module: String) -> Result<(), String> {
    let mut missing = Vec::new();
    for node in io_engine_nodes(world).await? {
        let name = node.metadata.name.clone().unwrap_or_default();
        let shell = world.ctx.provider.node_shell(&name);
        let found = shell.exec(&Cmd::new("test").args(["-d", &format!("/sys/module/{module}")]), None).await;
        if !matches!(found, Ok(ref out) if out.success()) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("/sys/module/{module} is missing on {} (`lab prepare` loads it)", missing.join(", ")))
    }
}

/// Asked of the node's own kernel (`lsmod`, from /proc/modules): a module
/// built into the kernel is not listed, and does not pass.
#[then(regex = r#"^every node has the kernel module "(\w+)" loaded$"#)]
async fn every_node_module_loaded(world: &mut LabWorld, module: String) -> Result<(), String> {
    let mut missing = Vec::new();
    for node in all_nodes(world).await? {
        let name = node.metadata.name.clone().unwrap_or_default();
        let listed = world
            .ctx
            .provider
            .node_shell(&name)
            .run(&Cmd::new("lsmod"))
            .await
            .map_err(|e| format!("listing the modules of {name}: {e}"))?;
        if !lsmod_lists(&listed.stdout, &module) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("lsmod does not list {module} on {} (`lab prepare` loads it)", missing.join(", ")))
    }
}

fn lsmod_lists(lsmod: &str, module: &str) -> bool {
    lsmod.lines().skip(1).any(|line| line.split_whitespace().next() == Some(module))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsmod_lists_a_module_by_its_first_column_only() {
        let lsmod = "Module                  Size  Used by\nnvme_tcp               45056  0\nnvme_fabrics           32768  1 nvme_tcp\n";
        assert!(super::lsmod_lists(lsmod, "nvme_tcp"));
        assert!(super::lsmod_lists(lsmod, "nvme_fabrics"));
        assert!(!super::lsmod_lists(lsmod, "nbd"));
        assert!(!super::lsmod_lists("Module Size Used by\n", "Module"));
    }
}

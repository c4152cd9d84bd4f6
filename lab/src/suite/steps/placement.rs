//! Where Mayastor puts replicas, asked of its control plane: cordoned
//! nodes, node labels a StorageClass's topology selects, pools that refuse
//! deletion, and thin volumes over-committing a pool within the core
//! agent's pool commitment. What a scenario changes (cordons, labels,
//! pools) is recorded first and undone after it.

use std::time::Duration;

use cucumber::{then, when};
use serde_json::{Value, json};

use super::super::world::LabWorld;
use super::datapath::{MIB, placement, replicas_of, volume_of};
use crate::stack::mayastor::Rest;

/// The label lab cordons a Mayastor node with: its own, so a cordon someone
/// else put there is never lifted by lab.
pub const CORDON_LABEL: &str = "lab-scenario";

#[when(regex = r"^I cordon one io-engine node in Mayastor$")]
async fn cordon(world: &mut LabWorld) -> Result<(), String> {
    let rest = Rest::find(&world.ctx.client()?).await?;
    let nodes = rest.get("nodes").await?.unwrap_or(Value::Null);
    let node = nodes
        .as_array()
        .and_then(|n| n.first())
        .and_then(|n| n.get("id"))
        .and_then(Value::as_str)
        .ok_or("Mayastor knows no node to cordon")?
        .to_string();
    // Recorded first: a cordon that half-happened is lifted after the scenario too.
    world.cordoned.push(node.clone());
    rest.put(&format!("nodes/{node}/cordon/{CORDON_LABEL}"), &Value::Null).await.map(|_| ())
}

#[when(regex = r"^I uncordon that node in Mayastor$")]
async fn uncordon(world: &mut LabWorld) -> Result<(), String> {
    let node = world.cordoned.pop().ok_or("no node was cordoned in this scenario")?;
    let rest = Rest::find(&world.ctx.client()?).await?;
    rest.delete(&format!("nodes/{node}/cordon/{CORDON_LABEL}")).await
}

/// What the scenario cordoned, uncordoned: a later scenario must find every node open.
pub async fn uncordon_all(world: &mut LabWorld) -> Result<(), String> {
    if world.cordoned.is_empty() {
        return Ok(());
    }
    let rest = Rest::find(&world.ctx.client()?).await?;
    while let Some(node) = world.cordoned.pop() {
        rest.delete(&format!("nodes/{node}/cordon/{CORDON_LABEL}")).await?;
    }
    Ok(())
}

#[then(regex = r#"^no replica of the volume of the PVC "([^"]+)" is on the cordoned node$"#)]
async fn avoids_cordoned(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let cordoned = world.cordoned.last().cloned().ok_or("no node is cordoned in this scenario")?;
    let (_, uuid, volume) = volume_of(world, &claim).await?;
    let (placed, _) = placement(&volume);
    if placed.is_empty() {
        return Err(format!("volume {uuid} has no replica yet"));
    }
    match placed.values().find(|(node, _)| *node == cordoned) {
        Some((_, pool)) => Err(format!("volume {uuid} has a replica in pool {pool} on {cordoned}, which is cordoned")),
        None => Ok(()),
    }
}

#[then(regex = r#"^Mayastor refuses to delete the pool of a replica of the volume of the PVC "([^"]+)"$"#)]
async fn pool_in_use_stays(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let (rest, uuid, volume) = volume_of(world, &claim).await?;
    let (placed, _) = placement(&volume);
    let (node, pool) = placed.values().next().cloned().ok_or_else(|| format!("volume {uuid} has no replica"))?;
    match rest.delete(&format!("nodes/{node}/pools/{pool}")).await {
        Ok(()) => {
            Err(format!("Mayastor accepted deleting pool {pool} on {node}, which holds a replica of volume {uuid}"))
        }
        Err(refusal) => {
            let still = rest.get(&format!("pools/{pool}")).await?;
            match still.as_ref().and_then(|p| p.pointer("/state/status")).and_then(Value::as_str) {
                Some("Online") => Ok(()),
                other => Err(format!(
                    "deleting pool {pool} was refused ({refusal}), but the pool is now {}",
                    other.unwrap_or("gone")
                )),
            }
        }
    }
}

#[when(
    regex = r#"^I create an empty (\d+) MiB pool "([^"]+)" in memory on an io-engine node through Mayastor's REST API$"#
)]
async fn create_memory_pool(world: &mut LabWorld, mib: u64, pool: String) -> Result<(), String> {
    let rest = Rest::find(&world.ctx.client()?).await?;
    let nodes = rest.get("nodes").await?.unwrap_or(Value::Null);
    let node = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n.pointer("/state/status").and_then(Value::as_str) == Some("Online")))
        .and_then(|n| n.get("id"))
        .and_then(Value::as_str)
        .ok_or("Mayastor has no Online node for a pool")?
        .to_string();
    // Recorded first: a pool that half-came is removed after the scenario too.
    world.made_pools.push((node.clone(), pool.clone()));
    let body = json!({"disks": [format!("malloc:///{pool}?size_mb={mib}")], "labels": {"lab.dev/scenario": "true"}});
    rest.put(&format!("nodes/{node}/pools/{pool}"), &body).await.map(|_| ())
}

#[then(regex = r#"^Mayastor deletes the pool "([^"]+)" within (\d+) seconds$"#)]
async fn pool_deleted(world: &mut LabWorld, pool: String, seconds: u64) -> Result<(), String> {
    let (node, _) = world
        .made_pools
        .iter()
        .find(|(_, p)| *p == pool)
        .cloned()
        .ok_or_else(|| format!("no pool \"{pool}\" was made in this scenario"))?;
    let rest = Rest::find(&world.ctx.client()?).await?;
    rest.delete(&format!("nodes/{node}/pools/{pool}")).await?;
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        Ok::<_, String>(rest.get(&format!("pools/{pool}")).await?.map(|_| pool.clone()).into_iter().collect())
    })
    .await?;
    world.made_pools.retain(|(_, p)| *p != pool);
    if left.is_empty() { Ok(()) } else { Err(format!("pool {pool} on {node} is still there after {seconds}s")) }
}

/// The pools a scenario made, deleted after it.
pub async fn delete_made_pools(world: &mut LabWorld) -> Result<(), String> {
    if world.made_pools.is_empty() {
        return Ok(());
    }
    let rest = Rest::find(&world.ctx.client()?).await?;
    while let Some((node, pool)) = world.made_pools.pop() {
        rest.delete(&format!("nodes/{node}/pools/{pool}")).await?;
    }
    Ok(())
}

/// A Mayastor node label as a step names it, `KEY=VALUE`: both plain words,
/// since the REST API takes them in its path.
fn node_label(text: &str) -> Result<(String, String), String> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    match text.split_once('=') {
        Some((key, value)) if plain(key) && plain(value) => Ok((key.to_string(), value.to_string())),
        _ => Err(format!(
            "node label \"{text}\": write it as KEY=VALUE, each of letters, digits, '-', '_' or '.' (the REST API takes it in a path)"
        )),
    }
}

/// Mayastor's nodes (their ids, in order) and each one's labels.
async fn nodes_and_labels(rest: &Rest) -> Result<Vec<(String, serde_json::Map<String, Value>)>, String> {
    let nodes = rest.get("nodes").await?.unwrap_or(Value::Null);
    let mut out: Vec<(String, serde_json::Map<String, Value>)> = nodes
        .as_array()
        .ok_or("Mayastor's REST API returned no list of nodes")?
        .iter()
        .filter_map(|n| {
            let id = n.get("id").and_then(Value::as_str)?.to_string();
            let labels = n.pointer("/spec/labels").and_then(Value::as_object).cloned().unwrap_or_default();
            Some((id, labels))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn has_label(labels: &serde_json::Map<String, Value>, key: &str, value: &str) -> bool {
    labels.get(key).and_then(Value::as_str) == Some(value)
}

/// Labels nodes (recorded first, removed after the scenario); never one
/// that carries the key already, which someone else may rely on.
async fn label_nodes(world: &mut LabWorld, text: &str, how_many: Option<usize>) -> Result<(), String> {
    let (key, value) = node_label(text)?;
    let rest = Rest::find(&world.ctx.client()?).await?;
    let nodes = nodes_and_labels(&rest).await?;
    let ours = |node: &str| world.node_labels.iter().any(|(n, k)| n == node && *k == key);
    let mut todo: Vec<&String> = Vec::new();
    for (node, labels) in &nodes {
        if ours(node) {
            continue;
        }
        if labels.contains_key(&key) {
            return Err(format!(
                "Mayastor node {node} already has a label {key} that this scenario did not put there: remove it, or use another key"
            ));
        }
        todo.push(node);
    }
    let todo: Vec<String> = todo.into_iter().take(how_many.unwrap_or(usize::MAX)).cloned().collect();
    if todo.is_empty() {
        return Err(format!("Mayastor has no node left to label {text}"));
    }
    for node in todo {
        world.node_labels.push((node.clone(), key.clone()));
        rest.put(&format!("nodes/{node}/label/{key}={value}?overwrite=false"), &Value::Null)
            .await
            .map_err(|e| format!("labelling Mayastor node {node} {text}: {e}"))?;
    }
    Ok(())
}

#[when(regex = r#"^I label one io-engine node "([^"]+)" in Mayastor$"#)]
async fn label_one(world: &mut LabWorld, label: String) -> Result<(), String> {
    label_nodes(world, &label, Some(1)).await
}

#[when(regex = r#"^I label every io-engine node "([^"]+)" in Mayastor$"#)]
async fn label_every(world: &mut LabWorld, label: String) -> Result<(), String> {
    label_nodes(world, &label, None).await
}

/// The node labels the scenario put on, removed: a later scenario must find the nodes as they were.
pub async fn unlabel_all(world: &mut LabWorld) -> Result<(), String> {
    if world.node_labels.is_empty() {
        return Ok(());
    }
    let rest = Rest::find(&world.ctx.client()?).await?;
    while let Some((node, key)) = world.node_labels.pop() {
        rest.delete(&format!("nodes/{node}/label/{key}")).await?;
    }
    Ok(())
}

#[then(regex = r#"^every replica of the volume of the PVC "([^"]+)" is on a node labelled "([^"]+)" in Mayastor$"#)]
async fn replicas_on_labelled(world: &mut LabWorld, claim: String, label: String) -> Result<(), String> {
    let (key, value) = node_label(&label)?;
    let (rest, uuid, volume) = volume_of(world, &claim).await?;
    let (placed, _) = placement(&volume);
    if placed.is_empty() {
        return Err(format!("volume {uuid} of the PVC \"{claim}\" has no replica yet"));
    }
    let nodes = nodes_and_labels(&rest).await?;
    let unlabelled: Vec<String> = placed
        .iter()
        .filter(|(_, (node, _))| !nodes.iter().any(|(n, labels)| n == node && has_label(labels, &key, &value)))
        .map(|(id, (node, pool))| format!("replica {id} in pool {pool} on {node}"))
        .collect();
    if unlabelled.is_empty() {
        Ok(())
    } else {
        Err(format!("volume {uuid} of the PVC \"{claim}\": {} not labelled {label}", unlabelled.join(", ")))
    }
}

/// A pool's capacity and what is committed to it, in bytes, from its state.
fn capacity_and_committed(pool: &Value) -> Option<(u64, u64)> {
    let field = |k: &str| pool.pointer(&format!("/state/{k}")).and_then(Value::as_u64);
    Some((field("capacity")?, field("committed")?))
}

#[then(regex = r#"^the pool of the replica of the volume of the PVC "([^"]+)" has more committed than its capacity$"#)]
async fn pool_overcommitted(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let (rest, uuid, volume) = volume_of(world, &claim).await?;
    let (placed, _) = placement(&volume);
    let (node, pool) = placed.values().next().cloned().ok_or_else(|| format!("volume {uuid} has no replica"))?;
    let state = rest.get(&format!("pools/{pool}")).await?.ok_or_else(|| format!("pool {pool} is gone"))?;
    let (capacity, committed) = capacity_and_committed(&state)
        .ok_or_else(|| format!("pool {pool} on {node} reports no capacity or commitment: {state}"))?;
    if committed > capacity {
        eprintln!(
            "pool {pool} on {node}: {} MiB committed on {} MiB of capacity ({}%)",
            committed / MIB,
            capacity / MIB,
            committed * 100 / capacity.max(1)
        );
        Ok(())
    } else {
        Err(format!(
            "pool {pool} on {node}: {} MiB committed, not more than its {} MiB of capacity",
            committed / MIB,
            capacity / MIB
        ))
    }
}

/// The core agent learns a pool's commitment from its io-engine at its next
/// poll (its cache period): a claim made before that is placed against the
/// old figure (seen here: three 900 MiB thin volumes on one 1 GiB pool).
/// Waits until every pool (`every`) or the pools together report `mib` committed.
#[then(
    regex = r"^Mayastor reports (every pool with|the pools together with) at least (\d+) MiB committed within (\d+) seconds$"
)]
async fn pools_committed(world: &mut LabWorld, scope: String, mib: u64, seconds: u64) -> Result<(), String> {
    let every = scope == "every pool with";
    let rest = Rest::find(&world.ctx.client()?).await?;
    let mut seen = String::new();
    let short = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let pools = rest.get("pools").await?.unwrap_or(Value::Null);
        let items = pools.as_array().ok_or("Mayastor's REST API returned no list of pools")?;
        let figures: Vec<(String, Option<(u64, u64)>)> = items
            .iter()
            .map(|p| (p.get("id").and_then(Value::as_str).unwrap_or("?").to_string(), capacity_and_committed(p)))
            .collect();
        seen = figures
            .iter()
            .map(|(id, f)| match f {
                Some((capacity, committed)) => {
                    format!("pool {id}: {} MiB committed of {} MiB", committed / MIB, capacity / MIB)
                }
                None => format!("pool {id} reports no commitment"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let enough = if every {
            figures.iter().all(|(_, f)| f.is_some_and(|(_, c)| c >= mib * MIB))
        } else {
            figures.iter().filter_map(|(_, f)| f.map(|(_, c)| c)).sum::<u64>() >= mib * MIB
        };
        Ok::<_, String>(if enough { vec![] } else { vec![()] })
    })
    .await?;
    if short.is_empty() { Ok(()) } else { Err(format!("after {seconds}s, not {scope} {mib} MiB committed: {seen}")) }
}

#[then(regex = r#"^every replica of the volume of the PVC "([^"]+)" is thin with less than (\d+) MiB allocated$"#)]
async fn thin_replicas(world: &mut LabWorld, claim: String, mib: u64) -> Result<(), String> {
    let (uuid, replicas) = replicas_of(world, &claim).await?;
    let mut wrong = Vec::new();
    for (id, node, replica) in &replicas {
        let thin = replica.get("thin").and_then(Value::as_bool);
        let allocated = replica.pointer("/space/allocated_bytes").and_then(Value::as_u64);
        let size = replica.get("size").and_then(Value::as_u64).unwrap_or(0);
        match (thin, allocated) {
            (Some(true), Some(bytes)) if bytes < mib * MIB => {
                eprintln!("replica {id} on {node}: {} MiB allocated of {} MiB", bytes / MIB, size / MIB)
            }
            (Some(true), Some(bytes)) => {
                wrong.push(format!("replica {id} on {node} has {} MiB allocated of {} MiB", bytes / MIB, size / MIB))
            }
            (Some(true), None) => wrong.push(format!("replica {id} on {node} reports no allocated space")),
            _ => wrong.push(format!("replica {id} on {node} is not thin")),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "volume {uuid} of the PVC \"{claim}\", expected thin with less than {mib} MiB allocated: {}",
            wrong.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_are_plain_words_around_one_equals_sign() {
        assert_eq!(node_label("lab-zone=east"), Ok(("lab-zone".into(), "east".into())));
        for bad in ["lab.dev/zone=east", "zone", "=east", "zone=", "zone=a b", "zone=a=b"] {
            let e = node_label(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("KEY=VALUE"), "{e}");
        }
    }

    #[test]
    fn a_pool_state_gives_capacity_and_commitment() {
        let pool = json!({"id": "p", "state": {"capacity": 1069547520u64, "committed": 1610612736u64, "used": 0}});
        assert_eq!(capacity_and_committed(&pool), Some((1069547520, 1610612736)));
        assert_eq!(capacity_and_committed(&json!({"id": "p", "spec": {}})), None);
    }
}

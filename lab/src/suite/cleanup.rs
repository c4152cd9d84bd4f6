//! After each scenario: on failure, what happened is collected into
//! `.lab/<name>/artifacts/<scenario>/` (events, pod logs, node state, the
//! fio results); then its namespace is removed, unless it failed and
//! `--keep-on-failure` asks to keep it for a look.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams};

use super::world::LabWorld;

pub async fn after_scenario(world: &mut LabWorld, failed: bool) {
    if failed {
        let dir = artifacts_dir(world);
        if let Err(e) = collect(world, &dir).await {
            eprintln!("collecting artifacts into {} failed: {e}", dir.display());
        } else {
            eprintln!("artifacts of the failed scenario \"{}\": {}", world.name, dir.display());
        }
    }
    let Some(namespace) = world.namespace.clone() else { return };
    if failed && world.ctx.keep_on_failure {
        eprintln!(
            "keeping namespace {namespace} (--keep-on-failure); `kubectl delete namespace {namespace}` removes it"
        );
        return;
    }
    if let Ok(client) = world.ctx.client() {
        let _ = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::background()).await;
    }
}

fn artifacts_dir(world: &LabWorld) -> PathBuf {
    let slug: String =
        world.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    world.ctx.state.dir().join("artifacts").join(format!("{}-{}", world.ctx.label, slug.trim_matches('-')))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("{}: {e}", dir.join(name).display()))
}

async fn collect(world: &LabWorld, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let runs = serde_json::to_string_pretty(&world.runs).unwrap_or_default();
    write(dir, "fio-results.json", &runs)?;
    let Ok(client) = world.ctx.client() else { return Ok(()) };
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(|e| e.to_string())?;
    let node_state: Vec<serde_json::Value> = nodes
        .items
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n.metadata.name,
                "labels": n.metadata.labels,
                "conditions": n.status.as_ref().and_then(|s| s.conditions.clone()),
                "allocatable": n.status.as_ref().and_then(|s| s.allocatable.clone()),
            })
        })
        .collect();
    write(dir, "nodes.json", &serde_json::to_string_pretty(&node_state).unwrap_or_default())?;
    let Some(namespace) = &world.namespace else { return Ok(()) };
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let lines: Vec<String> = events
        .items
        .iter()
        .map(|e| {
            format!(
                "{} {} {}/{}: {}",
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    write(dir, "events.txt", &lines.join("\n"))?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    for pod in pods.list(&ListParams::default()).await.map_err(|e| e.to_string())? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let logs = pods.logs(&name, &LogParams::default()).await.unwrap_or_else(|e| format!("(no logs: {e})"));
        write(dir, &format!("pod-{name}.log"), &logs)?;
    }
    Ok(())
}

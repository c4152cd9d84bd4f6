//! After each scenario: on failure, what happened is collected into the
//! run's artifacts folder (`artifacts/<lab>/<time>/<scenario>/` beside the
//! scenario file, or `--artifacts DIR`), outside the state directory so
//! `lab down` never takes it: events, every pod's object and logs (with the
//! previous container's), node state, the fio results. Then the scenario's
//! namespace is removed, unless it failed and `--keep-on-failure` asks to
//! keep it. After the run, the folder is bundled into one tarball.

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
    if let Err(e) = super::steps::faults::put_back_io_engine(world).await {
        eprintln!("putting back the io-engine scenario \"{}\" took off its node failed: {e}", world.name);
    }
    if let Err(e) = super::steps::placement::uncordon_all(world).await {
        eprintln!("uncordoning what scenario \"{}\" cordoned in Mayastor failed: {e}", world.name);
    }
    if let Err(e) = super::steps::placement::unlabel_all(world).await {
        eprintln!("removing the node labels scenario \"{}\" put on in Mayastor failed: {e}", world.name);
    }
    if let Err(e) = super::steps::placement::delete_made_pools(world).await {
        eprintln!("deleting the pools scenario \"{}\" made in Mayastor failed: {e}", world.name);
    }
    let Some(namespace) = world.namespace.clone() else { return };
    if !(failed && world.ctx.keep_on_failure)
        && let Err(e) = super::steps::snapshots::remove_restored_then_snapshots(world).await
    {
        eprintln!(
            "removing the snapshots scenario \"{}\" took, after the claims restored from them, failed: {e}",
            world.name
        );
    }
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
    world.ctx.artifacts.join(slug.trim_matches('-'))
}

/// After the run: the lab's log and this run's raw fio output join the
/// artifacts, and the folder becomes `<folder>.tar.gz` beside it.
pub fn bundle(ctx: &super::world::Context) -> anyhow::Result<PathBuf> {
    let dir = &ctx.artifacts;
    crate::artifacts::keep(dir, &[ctx.state.log()])?;
    let raw = ctx.results.join(ctx.scenario.name()).join("raw");
    let runs: Vec<PathBuf> =
        std::fs::read_dir(&raw).map(|entries| entries.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    let ours: Vec<PathBuf> =
        runs.into_iter().filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(&ctx.label))).collect();
    if !ours.is_empty() {
        crate::artifacts::keep(&dir.join("fio-raw"), &ours)?;
    }
    crate::artifacts::bundle(dir)
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
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
    let lines: Vec<String> = events.items.iter().map(event_line).collect();
    write(dir, "events.txt", &lines.join("\n"))?;
    pod_logs(&client, namespace, dir).await?;
    // The stack's own pods: a driver's log often says why a volume failed.
    for namespace in &world.ctx.stack_namespaces {
        let stack = dir.join("stack").join(namespace);
        std::fs::create_dir_all(&stack).map_err(|e| format!("{}: {e}", stack.display()))?;
        pod_logs(&client, namespace, &stack).await?;
    }
    Ok(())
}

/// An event as one line: `Warning FailedMount Pod/p: message`.
pub(crate) fn event_line(e: &Event) -> String {
    format!(
        "{} {} {}/{}: {}",
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.involved_object.kind.clone().unwrap_or_default(),
        e.involved_object.name.clone().unwrap_or_default(),
        e.message.clone().unwrap_or_default()
    )
}

/// Each pod of a namespace: its object with status (`pods.json`, what
/// `kubectl describe` reads) and each container's log, and the previous
/// container's log when it restarted.
pub(crate) async fn pod_logs(client: &kube::Client, namespace: &str, dir: &Path) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default()).await.map_err(|e| format!("listing pods in {namespace}: {e}"))?;
    write(dir, "pods.json", &serde_json::to_string_pretty(&list.items).unwrap_or_default())?;
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        let containers: Vec<String> =
            pod.spec.iter().flat_map(|s| s.containers.iter().map(|c| c.name.clone())).collect();
        for container in containers {
            let params = LogParams { container: Some(container.clone()), ..LogParams::default() };
            let logs = pods.logs(&name, &params).await.unwrap_or_else(|e| format!("(no logs: {e})"));
            write(dir, &format!("pod-{name}-{container}.log"), &logs)?;
            let restarted = statuses.iter().any(|s| s.name == container && s.restart_count > 0);
            if restarted {
                let previous = LogParams { previous: true, ..params };
                let logs = pods.logs(&name, &previous).await.unwrap_or_else(|e| format!("(no logs: {e})"));
                write(dir, &format!("pod-{name}-{container}.previous.log"), &logs)?;
            }
        }
    }
    Ok(())
}

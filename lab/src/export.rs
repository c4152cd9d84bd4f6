//! `lab export logs`: what a bug report needs, gathered into one folder
//! (kind's habit): per node the kubelet's and containerd's logs (or the
//! local provider's process logs) and the kernel's, per namespace every
//! pod's object and logs (with the previous container's) and the events,
//! the objects that are not Ready with their conditions, the nodes, and
//! lab's own log and plan.

use std::path::Path;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams};

use crate::Lab;
use crate::stack::ready;
use crate::suite::cleanup::{event_line, pod_logs, write};

/// What was gathered, and what could not be (each with why).
#[derive(Debug, Default)]
pub struct Exported {
    /// Files in the folder afterwards.
    pub files: usize,
    pub problems: Vec<String>,
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

/// Pods' logs and environments are in there: the folder is the owner's
/// only (see [`crate::artifacts::seal`]).
pub async fn logs(lab: &Lab, dir: &Path) -> anyhow::Result<Exported> {
    // Only what lab gathers goes in: a folder that holds anything is refused.
    crate::artifacts::check_new_folder(dir, "the export folder")?;
    crate::state::make_private_dir(dir)?;
    let mut problems = Vec::new();
    crate::artifacts::keep(dir, &[lab.state.log(), lab.state.dir().join("plan.txt")])?;
    for node in lab.provider.nodes().await.unwrap_or_default() {
        let node_dir = dir.join("nodes").join(&node.name);
        std::fs::create_dir_all(&node_dir)?;
        let shell = lab.provider.node_shell(&node.name);
        for (file, cmd) in lab.provider.node_logs() {
            let text = match shell.exec(&cmd, None).await {
                Ok(output) if output.success() => output.stdout,
                Ok(output) => {
                    problems.push(format!("{file} of {}: `{cmd}` exited with {}", node.name, output.status));
                    format!("(`{cmd}` failed: {})\n{}", output.status, output.stderr)
                }
                Err(e) => {
                    problems.push(format!("{file} of {}: {e}", node.name));
                    format!("(`{cmd}` could not run: {e})")
                }
            };
            write(&node_dir, &file, &text).map_err(anyhow::Error::msg)?;
        }
    }
    let client = match lab.provider.client().await {
        Ok(client) => client,
        Err(e) => {
            problems.push(format!("no cluster API, so no pods, events or objects: {e:#}"));
            crate::artifacts::seal(dir)?;
            return Ok(Exported { files: count_files(dir), problems });
        }
    };
    if let Err(e) = cluster(&client, dir).await {
        problems.push(e);
    }
    crate::artifacts::seal(dir)?;
    Ok(Exported { files: count_files(dir), problems })
}

async fn cluster(client: &kube::Client, dir: &Path) -> Result<(), String> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(|e| e.to_string())?;
    write(dir, "nodes.json", &serde_json::to_string_pretty(&nodes.items).unwrap_or_default())?;
    let mut not_ready = Vec::new();
    for node in &nodes.items {
        let ready = node
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            not_ready.push(format!(
                "Node {}: {}",
                node.metadata.name.clone().unwrap_or_default(),
                conditions_of_node(node)
            ));
        }
    }
    let namespaces =
        Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await.map_err(|e| e.to_string())?;
    for namespace in namespaces.items.iter().filter_map(|n| n.metadata.name.clone()) {
        let ns_dir = dir.join("namespaces").join(&namespace);
        std::fs::create_dir_all(&ns_dir).map_err(|e| e.to_string())?;
        pod_logs(client, &namespace, &ns_dir).await?;
        let events = Api::<Event>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let lines: Vec<String> = events
            .items
            .iter()
            .map(|e| {
                let at = e.last_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
                format!("{at} {}", event_line(e))
            })
            .collect();
        write(&ns_dir, "events.txt", &lines.join("\n"))?;
        not_ready.extend(not_ready_in(client, &namespace).await?);
    }
    write(dir, "not-ready.txt", &not_ready.join("\n"))?;
    Ok(())
}

fn conditions_of_node(node: &Node) -> String {
    let conditions = node.status.iter().flat_map(|s| s.conditions.iter().flatten());
    conditions
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.message.clone().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pods and workloads of a namespace that are not ready, each with why.
async fn not_ready_in(client: &kube::Client, namespace: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    for pod in &pods.items {
        let status = pod.status.clone().unwrap_or_default();
        if status.phase.as_deref() == Some("Succeeded") {
            continue;
        }
        let conditions = status.conditions.unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
            continue;
        }
        let waiting: Vec<String> = status
            .container_statuses
            .iter()
            .chain(status.init_container_statuses.iter())
            .flatten()
            .filter_map(|c| {
                let waiting = c.state.as_ref()?.waiting.as_ref()?;
                Some(format!(
                    "{} waiting: {} {}",
                    c.name,
                    waiting.reason.clone().unwrap_or_default(),
                    waiting.message.clone().unwrap_or_default()
                ))
            })
            .collect();
        let why: Vec<String> = conditions
            .iter()
            .filter(|c| c.status != "True")
            .map(|c| format!("{}={} {}", c.type_, c.status, c.message.clone().unwrap_or_default()))
            .chain(waiting)
            .collect();
        out.push(format!(
            "Pod {namespace}/{} ({}): {}",
            pod.metadata.name.clone().unwrap_or_default(),
            status.phase.unwrap_or_default(),
            why.join("; ")
        ));
    }
    // Workloads as `lab deploy` judges them ready (stack::ready), with why not.
    let list = ListParams::default();
    let failed = |e: kube::Error| e.to_string();
    let mut workloads = Vec::new();
    for d in Api::<Deployment>::namespaced(client.clone(), namespace).list(&list).await.map_err(failed)?.items {
        workloads.push(("Deployment", d.metadata.name.clone(), ready::deployment(&d)));
    }
    for d in Api::<DaemonSet>::namespaced(client.clone(), namespace).list(&list).await.map_err(failed)?.items {
        workloads.push(("DaemonSet", d.metadata.name.clone(), ready::daemon_set(&d)));
    }
    for s in Api::<StatefulSet>::namespaced(client.clone(), namespace).list(&list).await.map_err(failed)?.items {
        workloads.push(("StatefulSet", s.metadata.name.clone(), ready::stateful_set(&s)));
    }
    for (kind, name, readiness) in workloads {
        if let ready::Readiness::Waiting(why) = readiness {
            out.push(format!("{kind} {namespace}/{}: {why}", name.unwrap_or_default()));
        }
    }
    Ok(out)
}

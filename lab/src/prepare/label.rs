//! Node labels from the scenario, applied through the Kubernetes API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// The request `apply` makes when a label is missing or different.
pub fn describe(node: &str, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("GET /api/v1/nodes/{node}, then PATCH it (merge) with labels {}", pairs.join(", "))
}

/// Add or correct the labels; other labels on the node are left alone.
pub async fn apply(client: Client, node: &str, labels: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client);
    let current = nodes.get(node).await.map_err(|e| anyhow::anyhow!("node {node}: reading its labels: {e}"))?;
    let have = current.metadata.labels.unwrap_or_default();
    let wrong: BTreeMap<&String, &String> = labels.iter().filter(|(k, v)| have.get(*k) != Some(*v)).collect();
    if wrong.is_empty() {
        return Ok(format!("already has {} label(s)", labels.len()));
    }
    let patch = serde_json::json!({ "metadata": { "labels": wrong } });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| anyhow::anyhow!("node {node}: setting labels: {e}"))?;
    let names: Vec<&str> = wrong.keys().map(|k| k.as_str()).collect();
    Ok(format!("set {}", names.join(", ")))
}

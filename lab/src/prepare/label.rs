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

#[cfg(test)]
mod tests {
    use super::*;

    type Mock = tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

    fn node(labels: serde_json::Value) -> kube::client::Body {
        let node =
            serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1", "labels": labels}});
        kube::client::Body::from(serde_json::to_vec(&node).unwrap())
    }

    /// Answers the GET with the node's labels, then records the PATCH, if any.
    async fn serve(mut handle: Mock, have: serde_json::Value) -> Option<(String, String, serde_json::Value)> {
        let (request, respond) = handle.next_request().await.expect("no GET");
        assert_eq!((request.method(), request.uri().path()), (&http::Method::GET, "/api/v1/nodes/w1"));
        respond.send_response(http::Response::builder().body(node(have.clone())).unwrap());
        let (request, respond) = handle.next_request().await?;
        let content_type = request.headers()[http::header::CONTENT_TYPE].to_str().unwrap().to_string();
        let method = request.method().to_string();
        let body = request.into_body().collect_bytes().await.unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&body).unwrap();
        // The patch is a valid (partial) Node.
        serde_json::from_value::<Node>(serde_json::json!({"metadata": patch["metadata"].clone()})).unwrap();
        respond.send_response(http::Response::builder().body(node(have)).unwrap());
        Some((method, content_type, patch))
    }

    #[tokio::test]
    async fn only_missing_or_different_labels_are_patched() {
        let (service, handle) = tower_test::mock::pair();
        let server = tokio::spawn(serve(handle, serde_json::json!({"openebs.io/engine": "old", "keep": "me"})));
        let labels = BTreeMap::from([
            ("openebs.io/engine".to_string(), "mayastor".to_string()),
            ("keep".to_string(), "me".to_string()),
            ("tier".to_string(), "fast".to_string()),
        ]);
        let note = apply(Client::new(service, "default"), "w1", &labels).await.unwrap();
        assert_eq!(note, "set openebs.io/engine, tier");
        let (method, content_type, patch) = server.await.unwrap().expect("no PATCH");
        assert_eq!((method.as_str(), content_type.as_str()), ("PATCH", "application/merge-patch+json"));
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {"labels": {"openebs.io/engine": "mayastor", "tier": "fast"}}})
        );
    }

    #[tokio::test]
    async fn a_labelled_node_is_left_alone() {
        let (service, handle) = tower_test::mock::pair();
        let server = tokio::spawn(serve(handle, serde_json::json!({"openebs.io/engine": "mayastor"})));
        let labels = BTreeMap::from([("openebs.io/engine".to_string(), "mayastor".to_string())]);
        let client = Client::new(service, "default");
        assert_eq!(apply(client, "w1", &labels).await.unwrap(), "already has 1 label(s)");
        assert!(server.await.unwrap().is_none(), "patched a node that needed nothing");
    }
}

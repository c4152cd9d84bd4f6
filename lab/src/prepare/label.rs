//! Node labels from the scenario, applied through the Kubernetes API. Each
//! label's previous value (or its absence) is recorded first, so `lab down`
//! puts it back.

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
/// `remember(key, previous value)` runs for each label before it changes.
pub async fn apply(
    client: Client,
    node: &str,
    labels: &BTreeMap<String, String>,
    remember: impl Fn(&str, Option<&str>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client);
    let current = nodes.get(node).await.map_err(|e| anyhow::anyhow!("node {node}: reading its labels: {e}"))?;
    let have = current.metadata.labels.unwrap_or_default();
    let wrong: BTreeMap<&String, &String> = labels.iter().filter(|(k, v)| have.get(*k) != Some(*v)).collect();
    if wrong.is_empty() {
        return Ok(format!("already has {} label(s)", labels.len()));
    }
    for key in wrong.keys() {
        remember(key, have.get(*key).map(String::as_str))?;
    }
    let patch = serde_json::json!({ "metadata": { "labels": wrong } });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| anyhow::anyhow!("node {node}: setting labels: {e}"))?;
    let names: Vec<&str> = wrong.keys().map(|k| k.as_str()).collect();
    Ok(format!("set {}", names.join(", ")))
}

/// Put recorded labels back: each to its previous value, or removed when
/// the node had none. A cluster that is gone (a local one after `down`) took
/// its Node objects with it, so there is nothing to restore.
#[derive(Debug)]
pub struct RestoreLabels {
    pub node: String,
    /// Each key with the value it had before lab (`None`: it had none).
    pub labels: BTreeMap<String, Option<String>>,
}

#[async_trait::async_trait(?Send)]
impl crate::plan::Work for RestoreLabels {
    fn describe(&self, _view: &crate::plan::View<'_>) -> String {
        let patch = serde_json::json!({ "metadata": { "labels": self.labels } });
        format!("api: PATCH /api/v1/nodes/{} (merge) with {patch}; a null removes the label", self.node)
    }

    async fn run(&self, ctx: &crate::plan::Context<'_>) -> anyhow::Result<Option<String>> {
        let Some(client) = ctx.reachable_client().await else {
            return Ok(Some("no API server answers: the cluster is gone with its nodes".into()));
        };
        let nodes: Api<Node> = Api::all(client);
        if nodes.get_opt(&self.node).await?.is_none() {
            return Ok(Some(format!("node {} is gone", self.node)));
        }
        let patch = serde_json::json!({ "metadata": { "labels": self.labels } });
        nodes
            .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| anyhow::anyhow!("node {}: restoring labels: {e}", self.node))?;
        let said: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k} removed"),
            })
            .collect();
        Ok(Some(said.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::undo::Change;

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
        let dir = tempfile::tempdir().unwrap();
        let log = super::super::UndoLog::new(dir.path().join("changes.json"));
        let record = super::super::Recorder { log: &log, on: crate::plan::Target::Node("w1".into()) };
        let remember = |key: &str, was: Option<&str>| {
            record.remember(Change::Label { key: key.into(), was: was.map(String::from) })
        };
        let note = apply(Client::new(service, "default"), "w1", &labels, remember).await.unwrap();
        assert_eq!(note, "set openebs.io/engine, tier");
        let recorded: Vec<_> = log.entries().unwrap().into_iter().map(|e| e.change).collect();
        assert_eq!(
            recorded,
            [
                Change::Label { key: "openebs.io/engine".into(), was: Some("old".into()) },
                Change::Label { key: "tier".into(), was: None },
            ],
            "each changed label's previous value is recorded, and only those"
        );
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
        let dir = tempfile::tempdir().unwrap();
        let log = super::super::UndoLog::new(dir.path().join("changes.json"));
        let record = super::super::Recorder { log: &log, on: crate::plan::Target::Node("w1".into()) };
        let remember = |key: &str, was: Option<&str>| {
            record.remember(Change::Label { key: key.into(), was: was.map(String::from) })
        };
        assert_eq!(apply(client, "w1", &labels, remember).await.unwrap(), "already has 1 label(s)");
        assert!(log.entries().unwrap().is_empty(), "nothing changed, nothing recorded");
        assert!(server.await.unwrap().is_none(), "patched a node that needed nothing");
    }
}

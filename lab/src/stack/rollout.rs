//! Rollouts Kubernetes leaves to the operator: a DaemonSet with
//! `updateStrategy: OnDelete` (Mayastor's io-engine) replaces a pod only
//! when the pod is deleted, so a changed template would never roll out and
//! readiness (every pod updated) would never come. lab deletes the outdated
//! pods itself, one node at a time, each replacement Ready before the next.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};

use super::manifest::Object;
use crate::plan::{Context, View, Work};

/// The label a DaemonSet's pods carry with the revision they run.
const REVISION_LABEL: &str = "controller-revision-hash";

/// The DaemonSets among `objects` that Kubernetes does not roll by itself.
pub fn on_delete_daemon_sets(objects: &[Object]) -> Vec<Object> {
    objects
        .iter()
        .filter(|o| o.kind() == "DaemonSet" && o.value.pointer("/spec/updateStrategy/type") == Some(&"OnDelete".into()))
        .cloned()
        .collect()
}

#[derive(Debug)]
pub struct RollOnDelete {
    pub daemon_sets: Vec<Object>,
    /// How long each replacement may take to be Ready.
    pub timeout: Duration,
}

#[async_trait::async_trait(?Send)]
impl Work for RollOnDelete {
    fn describe(&self, _view: &View<'_>) -> String {
        let names: Vec<String> = self.daemon_sets.iter().map(|o| o.describe()).collect();
        let verb = if names.len() == 1 { "uses" } else { "use" };
        format!(
            "api: {} {verb} updateStrategy OnDelete, which replaces a pod only when it is deleted: \
             delete each pod not on the newest revision, one node at a time, and wait until it is \
             gone and its replacement is Ready (at most {}s each)",
            names.join(", "),
            self.timeout.as_secs()
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = ctx.client().await?;
        let mut notes = Vec::new();
        for daemon_set in &self.daemon_sets {
            let namespace = daemon_set.namespace().unwrap_or("default");
            let rolled = roll(&client, namespace, daemon_set.name(), self.timeout, Duration::from_secs(1)).await?;
            notes.push(format!("{}: {rolled}", daemon_set.describe()));
        }
        Ok(Some(notes.join("; ")))
    }
}

/// The revision hash of the DaemonSet's newest template.
async fn newest_revision(client: &Client, namespace: &str, daemon_set: &DaemonSet) -> anyhow::Result<Option<String>> {
    let uid = daemon_set.metadata.uid.clone().unwrap_or_default();
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .context("listing controller revisions")?;
    Ok(revisions
        .items
        .into_iter()
        .filter(|r| r.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
        .max_by_key(|r| r.revision)
        .and_then(|r| r.metadata.labels?.get(REVISION_LABEL).cloned()))
}

/// Whether the pod's controller is the object with this uid.
fn owned_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Replace the DaemonSet's outdated pods one at a time; say how many.
pub async fn roll(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<String> {
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = |ds: &DaemonSet| {
        let labels = ds.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    };
    let mut replaced = Vec::new();
    let seen_by = std::time::Instant::now() + timeout;
    loop {
        let ds = daemon_sets.get(name).await.with_context(|| format!("reading DaemonSet {namespace}/{name}"))?;
        // The controller records the new template as a revision once it has seen it.
        let seen = ds.status.as_ref().and_then(|s| s.observed_generation) >= ds.metadata.generation;
        let newest = if seen { newest_revision(client, namespace, &ds).await? } else { None };
        let Some(newest) = newest else {
            if std::time::Instant::now() > seen_by {
                anyhow::bail!(
                    "DaemonSet {namespace}/{name}: its controller has not recorded the new template within {}s",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(poll).await;
            continue;
        };
        let list = pods.list(&ListParams::default().labels(&selector(&ds))).await?;
        // Only this DaemonSet's own pods: another workload's pods may match its selector.
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let outdated = list.items.iter().find(|p| {
            owned_by(p, &uid)
                && p.metadata.deletion_timestamp.is_none()
                && p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)) != Some(&newest)
        });
        let Some(pod) = outdated else { break };
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let pod_uid = pod.metadata.uid.clone();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        pods.delete(&pod_name, &DeleteParams::background())
            .await
            .with_context(|| format!("deleting outdated pod {namespace}/{pod_name}"))?;
        // The outdated pod gone (the controller starts the replacement while
        // it still terminates, and a storage daemon must not overlap its
        // successor past the rollout), and its replacement on the same node,
        // on the newest revision, Ready.
        let waited = crate::wait::until_none_pending(timeout, poll, async || {
            let list = pods.list(&ListParams::default().labels(&selector(&ds))).await?;
            let old_gone = !list.items.iter().any(|p| p.metadata.uid == pod_uid);
            let ready = old_gone
                && list.items.iter().any(|p| {
                    owned_by(p, &uid)
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str())
                        && p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)) == Some(&newest)
                        && p.metadata.deletion_timestamp.is_none()
                        && pod_ready(p)
                });
            Ok::<_, anyhow::Error>(if ready { Vec::new() } else { vec![node.clone()] })
        })
        .await?;
        if !waited.is_empty() {
            anyhow::bail!(
                "DaemonSet {namespace}/{name}: within {}s of deleting the outdated pod {pod_name}, it was not gone \
                 and a pod of revision {newest} Ready on node {node}",
                timeout.as_secs()
            );
        }
        replaced.push(node);
    }
    Ok(if replaced.is_empty() {
        "every pod runs the newest template".into()
    } else {
        format!("replaced the pods on {} node(s), one at a time: {}", replaced.len(), replaced.join(", "))
    })
}

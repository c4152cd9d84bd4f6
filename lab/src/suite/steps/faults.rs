//! Fault steps: delete a pod; restart the kubelet of a pod's node; restart
//! one node's io-engine and wait for it to come back, or keep it off its
//! node (its DaemonSet's node label removed) until a step puts it back. Around a fault, a
//! volume written with a checksummed pattern before it is verified after it
//! from a fresh pod, so "it came back" also means "the data did".

use std::time::Duration;

use cucumber::{given, then, when};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::super::world::LabWorld;
use super::namespace;

/// The pod that writes the pattern, and the size of the pattern.
const WRITER: &str = "writer";
const PATTERN_MIB: u64 = 32;

/// The stack's one StorageClass, when a step does not name one.
fn stack_class(world: &LabWorld) -> Result<String, String> {
    let objects = crate::stack::load(&world.ctx.scenario).map_err(|e| format!("{e:#}"))?;
    match crate::stack::teardown::storage_classes(&objects).as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("the stack has no StorageClass: name one (`a volume of StorageClass \"…\" written …`)".into()),
        many => Err(format!("the stack has StorageClasses {}: name one in the step", many.join(", "))),
    }
}

#[given(regex = r"^a volume written with a verifiable pattern$")]
async fn volume_with_pattern(world: &mut LabWorld) -> Result<(), String> {
    let class = stack_class(world)?;
    volume_of_class_with_pattern(world, class).await
}

#[given(regex = r#"^a volume of StorageClass "([^"]+)" written with a verifiable pattern$"#)]
async fn volume_of_class_with_pattern(world: &mut LabWorld, class: String) -> Result<(), String> {
    let claim = "survivor".to_string();
    super::storage::create_claim(world, 64, claim.clone(), class).await?;
    super::storage::claim_bound(world, claim.clone(), 120).await?;
    super::workloads::start_pod(world, WRITER.into(), claim.clone()).await?;
    super::workloads::pod_running(world, WRITER.into(), 180).await?;
    super::workloads::write_pattern(world, WRITER.into(), PATTERN_MIB).await?;
    world.survivor = Some((claim, 0));
    Ok(())
}

#[then(regex = r"^the data on the volume verifies$")]
async fn data_verifies(world: &mut LabWorld) -> Result<(), String> {
    let (claim, readers) =
        world.survivor.clone().ok_or("no volume was written (`Given a volume written with a verifiable pattern`)")?;
    // A fresh pod on the same claim reads what a restarted or rescheduled workload would.
    let reader = format!("reader-{}", readers + 1);
    world.survivor = Some((claim.clone(), readers + 1));
    super::workloads::start_pod(world, reader.clone(), claim).await?;
    super::workloads::pod_running(world, reader.clone(), 180).await?;
    let verified = super::workloads::verify_pattern(world, reader.clone()).await;
    let ns = namespace(world).await?;
    let _ = Api::<Pod>::namespaced(world.ctx.client()?, &ns).delete(&reader, &DeleteParams::background()).await;
    verified
}

/// The node a pod of the scenario's namespace runs on.
pub(crate) async fn node_of(world: &mut LabWorld, pod: &str) -> Result<String, String> {
    let ns = namespace(world).await?;
    let found = Api::<Pod>::namespaced(world.ctx.client()?, &ns)
        .get(pod)
        .await
        .map_err(|e| format!("reading pod {ns}/{pod}: {e}"))?;
    found.spec.and_then(|s| s.node_name).ok_or(format!("pod {ns}/{pod} is not on a node yet"))
}

#[when(regex = r#"^the kubelet restarts on the node of the pod "([^"]+)"$"#)]
async fn restart_kubelet(world: &mut LabWorld, pod: String) -> Result<(), String> {
    let node = node_of(world, &pod).await?;
    let client = world.ctx.client()?;
    // The provider says how: a systemd unit on most nodes, a process of this host on the local one.
    let restart = world.ctx.provider.kubelet_restart();
    let shell = world.ctx.provider.node_shell(&node);
    shell.run(&restart).await.map_err(|e| format!("restarting the kubelet on {node}: {e}"))?;
    // Back when the node is Ready and the new kubelet has renewed the node's
    // lease (every 10 s; the Ready condition's own heartbeat may wait 5 min)
    // after the restart ended: a renewal from before it could be the old kubelet's.
    let before = std::time::SystemTime::now();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, "kube-node-lease");
    let pending = crate::wait::until_none_pending(Duration::from_secs(120), Duration::from_secs(1), async || {
        let n = nodes.get(&node).await.map_err(|e| format!("reading node {node}: {e}"))?;
        let ready =
            n.status.and_then(|s| s.conditions).into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        let lease = leases.get_opt(&node).await.map_err(|e| format!("reading the lease of node {node}: {e}"))?;
        let renewed = lease.and_then(|l| l.spec?.renew_time).is_some_and(|t| std::time::SystemTime::from(t.0) > before);
        Ok::<_, String>(if ready && renewed { vec![] } else { vec![node.clone()] })
    })
    .await?;
    if !pending.is_empty() {
        return Err(format!("node {node} did not report Ready within 120s after its kubelet restarted"));
    }
    Ok(())
}

#[when(regex = r#"^I delete the pod "([^"]+)"$"#)]
async fn delete_pod(world: &mut LabWorld, name: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    pods.delete(&name, &DeleteParams::default()).await.map_err(|e| format!("deleting pod {ns}/{name}: {e}"))?;
    Ok(())
}

fn io_engine_pods(pods: &[Pod]) -> Vec<(String, String, bool)> {
    pods.iter()
        .map(|p| {
            // Ready, not merely Running: an io-engine that started but cannot serve is not back.
            let running = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                && p.metadata.deletion_timestamp.is_none();
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            (p.metadata.name.clone().unwrap_or_default(), node, running)
        })
        .collect()
}

/// The io-engine pod on `node`: the one serving a volume whose app pod runs
/// there (its nexus), in a single-replica lab. Any other would prove nothing.
fn io_engine_on(pods: &[Pod], node: &str) -> Result<Pod, String> {
    let on_node: Vec<&Pod> =
        pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)).collect();
    match on_node.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let nodes: Vec<String> = io_engine_pods(pods).into_iter().map(|(_, n, _)| n).collect();
            Err(format!(
                "no io-engine pod runs on {node}, the node of the volume's pod (io-engine runs on: {})",
                nodes.join(", ")
            ))
        }
        _ => Err(format!("{} io-engine pods on {node}; expected one (a DaemonSet's)", on_node.len())),
    }
}

#[when(regex = r#"^I restart the io-engine on the node of the pod "([^"]+)"$"#)]
async fn restart_io_engine(world: &mut LabWorld, app: String) -> Result<(), String> {
    let node = node_of(world, &app).await?;
    restart_io_engine_on(world, node, false).await
}

/// Delete the io-engine pod on `node` (its DaemonSet makes a new one) and
/// remember it for `the io-engine runs again on that node`; `kill`: at once
/// (no grace period), as a crash would, not a clean shutdown.
pub(super) async fn restart_io_engine_on(world: &mut LabWorld, node: String, kill: bool) -> Result<(), String> {
    let name = delete_io_engine_pod(&world.ctx.client()?, &node, kill).await?;
    world.restarted = Some((node, name));
    Ok(())
}

/// Deletes the io-engine pod on `node` (`kill`: with no grace period);
/// its name.
pub(super) async fn delete_io_engine_pod(client: &kube::Client, node: &str, kill: bool) -> Result<String, String> {
    let pods: Api<Pod> = Api::all(client.clone());
    let found = pods
        .list(&ListParams::default().labels("app=io-engine"))
        .await
        .map_err(|e| format!("listing io-engine pods: {e}"))?;
    if found.items.is_empty() {
        return Err("no io-engine pod runs (is the stack deployed? `lab deploy`)".into());
    }
    let pod = io_engine_on(&found.items, node)?;
    let (name, namespace) =
        (pod.metadata.name.clone().unwrap_or_default(), pod.metadata.namespace.clone().unwrap_or_default());
    Api::<Pod>::namespaced(client.clone(), &namespace)
        .delete(&name, &if kill { DeleteParams::default().grace_period(0) } else { DeleteParams::default() })
        .await
        .map_err(|e| format!("deleting io-engine pod {namespace}/{name}: {e}"))?;
    Ok(name)
}

/// The node label the io-engine DaemonSet selects its nodes by
/// (`manifests/mayastor-source/20-io-engine.yaml`): without it, a node's
/// io-engine is not made again.
pub const IO_ENGINE_NODE_LABEL: &str = "openebs.io/engine";

/// The value of the io-engine's node label on `node`, to put back later.
pub(super) async fn io_engine_label_of(client: &kube::Client, node: &str) -> Result<String, String> {
    let found = Api::<Node>::all(client.clone()).get(node).await.map_err(|e| format!("reading node {node}: {e}"))?;
    found
        .metadata
        .labels
        .and_then(|l| l.get(IO_ENGINE_NODE_LABEL).cloned())
        .ok_or_else(|| format!("node {node} has no {IO_ENGINE_NODE_LABEL} label: no io-engine is meant to run there"))
}

/// Sets (or, with `None`, removes) the io-engine's node label on `node`.
pub(super) async fn set_io_engine_label(client: &kube::Client, node: &str, value: Option<&str>) -> Result<(), String> {
    let patch = serde_json::json!({"metadata": {"labels": {IO_ENGINE_NODE_LABEL: value}}});
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("setting label {IO_ENGINE_NODE_LABEL} of node {node} to {value:?}: {e}"))
}

/// Kills the io-engine on `node` and keeps it off: its node label removed
/// first (the caller has recorded the value), so the DaemonSet makes no new
/// one. The killed pod's name.
pub(super) async fn take_io_engine_off(client: &kube::Client, node: &str) -> Result<String, String> {
    set_io_engine_label(client, node, None).await?;
    delete_io_engine_pod(client, node, true).await
}

#[when(regex = r"^I put the io-engine back on that node$")]
async fn put_io_engine_back(world: &mut LabWorld) -> Result<(), String> {
    let (node, value) = world.engine_off.clone().ok_or("no io-engine was taken off a node in this scenario")?;
    set_io_engine_label(&world.ctx.client()?, &node, Some(&value)).await?;
    world.engine_off = None;
    Ok(())
}

/// An io-engine a scenario took off its node, put back after it.
pub async fn put_back_io_engine(world: &mut LabWorld) -> Result<(), String> {
    match world.engine_off.take() {
        Some((node, value)) => set_io_engine_label(&world.ctx.client()?, &node, Some(&value)).await,
        None => Ok(()),
    }
}

#[then(regex = r"^the io-engine runs again on that node within (\d+) seconds$")]
async fn io_engine_back(world: &mut LabWorld, seconds: u64) -> Result<(), String> {
    let (node, old) = world.restarted.clone().ok_or("no io-engine was restarted in this scenario")?;
    let pods: Api<Pod> = Api::all(world.ctx.client()?);
    let not_back = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let found = pods
            .list(&ListParams::default().labels("app=io-engine"))
            .await
            .map_err(|e| format!("listing io-engine pods: {e}"))?;
        let back =
            io_engine_pods(&found.items).into_iter().any(|(name, on, running)| on == node && name != old && running);
        Ok::<_, String>(if back { vec![] } else { vec![()] })
    })
    .await?;
    if not_back.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no new io-engine pod is Ready on {node} after {seconds}s (the DaemonSet uses OnDelete; is the node still schedulable?)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "mayastor"},
            "spec": {"nodeName": node, "containers": []}, "status": {"phase": "Running"}}))
        .unwrap()
    }

    #[test]
    fn an_io_engine_is_back_when_ready_not_when_running() {
        let mut ready = pod("io-engine-a", "w1");
        let running = pod("io-engine-b", "w1");
        ready.status.as_mut().unwrap().conditions =
            Some(vec![serde_json::from_value(serde_json::json!({"type": "Ready", "status": "True"})).unwrap()]);
        let seen: Vec<bool> = io_engine_pods(&[ready, running]).into_iter().map(|(_, _, back)| back).collect();
        assert_eq!(seen, [true, false]);
    }

    #[test]
    fn the_io_engine_restarted_is_the_one_on_the_volumes_node() {
        let pods = [pod("io-engine-a", "w1"), pod("io-engine-b", "w2"), pod("io-engine-c", "w3")];
        assert_eq!(io_engine_on(&pods, "w2").unwrap().metadata.name.as_deref(), Some("io-engine-b"));
        assert_eq!(
            io_engine_on(&pods, "cp").unwrap_err(),
            "no io-engine pod runs on cp, the node of the volume's pod (io-engine runs on: w1, w2, w3)"
        );
    }
}

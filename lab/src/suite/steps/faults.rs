//! Fault steps: delete a pod; restart one node's io-engine and wait for it
//! to come back.

use std::time::Duration;

use cucumber::{then, when};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

use super::super::world::LabWorld;
use super::namespace;

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
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && p.metadata.deletion_timestamp.is_none();
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            (p.metadata.name.clone().unwrap_or_default(), node, running)
        })
        .collect()
}

#[when(regex = r"^I restart the io-engine on one io-engine node$")]
async fn restart_io_engine(world: &mut LabWorld) -> Result<(), String> {
    let pods: Api<Pod> = Api::all(world.ctx.client()?);
    let found = pods
        .list(&ListParams::default().labels("app=io-engine"))
        .await
        .map_err(|e| format!("listing io-engine pods: {e}"))?;
    let Some(pod) = found.items.into_iter().next() else {
        return Err("no io-engine pod runs (is the stack deployed? `lab deploy`)".into());
    };
    let (name, namespace, node) = (
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
    );
    Api::<Pod>::namespaced(world.ctx.client()?, &namespace)
        .delete(&name, &DeleteParams::default())
        .await
        .map_err(|e| format!("deleting io-engine pod {namespace}/{name}: {e}"))?;
    world.restarted = Some((node, name));
    Ok(())
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
            "no new io-engine pod is Running on {node} after {seconds}s (the DaemonSet uses OnDelete; is the node still schedulable?)"
        ))
    }
}

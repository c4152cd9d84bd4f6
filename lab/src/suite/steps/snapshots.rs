//! CSI snapshots: a VolumeSnapshot of a claim taken through the
//! external-snapshotter (its snapshot-controller and the csi-snapshotter
//! beside the storage's CSI controller), waited for until ready to use, and
//! restored into a new claim whose `dataSource` is the snapshot. What the
//! claim held when the snapshot was taken is recorded with it, so the
//! restored volume's data can be checked against that moment.

use std::time::Duration;

use cucumber::{then, when};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, TypedLocalObjectReference};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::super::world::{LabWorld, Snapshot};
use super::namespace;

fn volume_snapshots() -> ApiResource {
    ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: "VolumeSnapshot".into(),
        plural: "volumesnapshots".into(),
    }
}

/// A VolumeSnapshot of `claim` of class `class`, marked as lab's.
fn snapshot_object(name: &str, claim: &str, class: &str) -> DynamicObject {
    let mut object = DynamicObject::new(name, &volume_snapshots())
        .data(json!({"spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": claim}}}));
    object.metadata.labels = super::lab_meta(name).labels;
    object
}

#[when(regex = r#"^I take a snapshot "([^"]+)" of the PVC "([^"]+)" with VolumeSnapshotClass "([^"]+)"$"#)]
async fn take_snapshot(world: &mut LabWorld, name: String, claim: String, class: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    // What the claim holds now, as the userspace data path wrote it.
    let pattern = world.published.get(&claim).and_then(|p| p.seed.map(|seed| (seed, p.size)));
    let snapshots: Api<DynamicObject> = Api::namespaced_with(world.ctx.client()?, &ns, &volume_snapshots());
    snapshots
        .create(&PostParams::default(), &snapshot_object(&name, &claim, &class))
        .await
        .map_err(|e| format!("creating VolumeSnapshot {ns}/{name} of the PVC \"{claim}\": {e}"))?;
    world.snapshots.insert(name, Snapshot { claim, pattern, restored: Vec::new() });
    Ok(())
}

/// Whether a VolumeSnapshot's status says it is ready, and its error if any.
fn readiness(snapshot: &Value) -> (bool, Option<String>) {
    let status = snapshot.get("status");
    let ready = status.and_then(|s| s.get("readyToUse")).and_then(Value::as_bool).unwrap_or(false);
    let error = status.and_then(|s| s.pointer("/error/message")).and_then(Value::as_str).map(String::from);
    (ready, error)
}

#[then(regex = r#"^the snapshot "([^"]+)" is ready to use within (\d+) seconds$"#)]
async fn snapshot_ready(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let snapshots: Api<DynamicObject> = Api::namespaced_with(world.ctx.client()?, &ns, &volume_snapshots());
    let mut last = String::from("no status yet");
    let pending = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let found = snapshots.get(&name).await.map_err(|e| format!("reading VolumeSnapshot {ns}/{name}: {e}"))?;
        let (ready, error) = readiness(&found.data);
        if let Some(error) = error {
            last = format!("its error: {error}");
        }
        Ok::<_, String>(if ready { vec![] } else { vec![()] })
    })
    .await?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "VolumeSnapshot {ns}/{name} is not ready to use after {seconds}s ({last}; see `kubectl -n {ns} describe volumesnapshot {name}` and the snapshot-controller's log)"
        ))
    }
}

#[when(regex = r#"^I create a (\d+) MiB PVC "([^"]+)" of StorageClass "([^"]+)" from the snapshot "([^"]+)"$"#)]
async fn restore(world: &mut LabWorld, size: u64, name: String, class: String, snapshot: String) -> Result<(), String> {
    if !world.snapshots.contains_key(&snapshot) {
        return Err(format!("no snapshot \"{snapshot}\" was taken in this scenario"));
    }
    let ns = namespace(world).await?;
    let mut claim = super::storage::claim(&name, &class, size);
    if let Some(spec) = claim.spec.as_mut() {
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: Some("snapshot.storage.k8s.io".into()),
            kind: "VolumeSnapshot".into(),
            name: snapshot.clone(),
        });
    }
    Api::<PersistentVolumeClaim>::namespaced(world.ctx.client()?, &ns)
        .create(&PostParams::default(), &claim)
        .await
        .map_err(|e| format!("creating PVC {ns}/{name} from the snapshot \"{snapshot}\": {e}"))?;
    if let Some(taken) = world.snapshots.get_mut(&snapshot) {
        taken.restored.push(name);
    }
    Ok(())
}

/// After a scenario, before its namespace goes: the claims restored from
/// its snapshots first, until their volumes are gone, then the snapshots,
/// until they are gone. The namespace's own deletion takes them in no
/// order; after it, a pool was seen keeping 36 MiB in use with no replica
/// on it (twice, each after a series of runs of the replica catalogue), so
/// its DiskPool could not be deleted. With restored volume, then snapshot,
/// then origin, every pool was empty after four runs (which order leaked
/// was not isolated).
pub async fn remove_restored_then_snapshots(world: &mut LabWorld) -> Result<(), String> {
    if world.snapshots.is_empty() {
        return Ok(());
    }
    let Some(ns) = world.namespace.clone() else { return Ok(()) };
    let client = world.ctx.client()?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let volumes: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(client.clone());
    let snapshots: Api<DynamicObject> = Api::namespaced_with(client, &ns, &volume_snapshots());
    let restored: Vec<String> = world.snapshots.values().flat_map(|s| s.restored.clone()).collect();
    let mut bound = Vec::new();
    for name in &restored {
        if let Some(claim) = claims.get_opt(name).await.map_err(|e| format!("reading PVC {ns}/{name}: {e}"))? {
            bound.extend(claim.spec.and_then(|s| s.volume_name));
            let _ = claims.delete(name, &DeleteParams::default()).await;
        }
    }
    let timeout = Duration::from_secs(120);
    let left = crate::wait::until_none_pending(timeout, Duration::from_secs(2), async || {
        let mut left = Vec::new();
        for volume in &bound {
            if volumes.get_opt(volume).await.map_err(|e| format!("reading PV {volume}: {e}"))?.is_some() {
                left.push(format!("PersistentVolume {volume}"));
            }
        }
        Ok::<_, String>(left)
    })
    .await?;
    if !left.is_empty() {
        return Err(format!("the restored claims' volumes are still there after 120s: {}", left.join(", ")));
    }
    let taken: Vec<String> = world.snapshots.keys().cloned().collect();
    for name in &taken {
        let _ = snapshots.delete(name, &DeleteParams::default()).await;
    }
    let left = crate::wait::until_none_pending(timeout, Duration::from_secs(2), async || {
        let mut left = Vec::new();
        for name in &taken {
            if snapshots.get_opt(name).await.map_err(|e| format!("reading VolumeSnapshot {ns}/{name}: {e}"))?.is_some()
            {
                left.push(format!("VolumeSnapshot {ns}/{name}"));
            }
        }
        Ok::<_, String>(left)
    })
    .await?;
    if !left.is_empty() {
        return Err(format!("still there after 120s: {}", left.join(", ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_names_its_claim_and_class_and_is_lab_s() {
        let object = snapshot_object("moment", "origin", "mayastor-snapshots");
        let value = serde_json::to_value(&object).unwrap();
        assert_eq!(value["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert_eq!(value["kind"], "VolumeSnapshot");
        assert_eq!(value["spec"]["source"]["persistentVolumeClaimName"], "origin");
        assert_eq!(value["spec"]["volumeSnapshotClassName"], "mayastor-snapshots");
        assert_eq!(value["metadata"]["labels"]["app.kubernetes.io/managed-by"], "lab");
    }

    #[test]
    fn readiness_reads_ready_to_use_and_the_error() {
        assert_eq!(readiness(&json!({})), (false, None));
        assert_eq!(readiness(&json!({"status": {"readyToUse": true}})), (true, None));
        let failed = json!({"status": {"readyToUse": false, "error": {"message": "no space"}}});
        assert_eq!(readiness(&failed), (false, Some("no space".into())));
    }
}

//! Storage steps: pools Online, the StorageClass present, claims made in the
//! scenario's own namespace and Bound.

use std::time::Duration;

use cucumber::{given, then, when};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;

use super::super::world::LabWorld;
use super::namespace;

/// A claim of `size_mib` MiB of `class`.
pub fn claim(name: &str, class: &str, size_mib: u64) -> PersistentVolumeClaim {
    use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    PersistentVolumeClaim {
        metadata: super::lab_meta(name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(class.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_string(), Quantity(format!("{size_mib}Mi")))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[then(regex = r"^every DiskPool is Online$")]
async fn pools_still_online(world: &mut LabWorld) -> Result<(), String> {
    pools_online(world).await
}

#[given(regex = r"^every DiskPool is Online$")]
async fn pools_online(world: &mut LabWorld) -> Result<(), String> {
    let not_online = diskpools_not_online(world).await?;
    if not_online.is_empty() { Ok(()) } else { Err(format!("DiskPools not Online: {}", not_online.join(", "))) }
}

/// After an io-engine restart the DiskPool resources lag behind Mayastor's
/// own view: the operator refreshes their status on its next pass.
#[then(regex = r"^every DiskPool is Online within (\d+) seconds$")]
async fn pools_online_within(world: &mut LabWorld, seconds: u64) -> Result<(), String> {
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        diskpools_not_online(world).await
    })
    .await?;
    if left.is_empty() { Ok(()) } else { Err(format!("after {seconds}s, DiskPools not Online: {}", left.join(", "))) }
}

/// Each DiskPool that is not Online, with its state.
async fn diskpools_not_online(world: &mut LabWorld) -> Result<Vec<String>, String> {
    let resource = ApiResource {
        group: "openebs.io".into(),
        version: "v1beta2".into(),
        api_version: "openebs.io/v1beta2".into(),
        kind: "DiskPool".into(),
        plural: "diskpools".into(),
    };
    let pools: Api<DynamicObject> = Api::all_with(world.ctx.client()?, &resource);
    let found = pools.list(&ListParams::default()).await.map_err(|e| format!("listing DiskPools: {e}"))?;
    if found.items.is_empty() {
        return Err("there are no DiskPools (`lab deploy` creates one per io-engine node with a pool)".into());
    }
    let mut not_online = Vec::new();
    for pool in found.items {
        let value = serde_json::to_value(&pool).unwrap_or_default();
        if let Err(state) = crate::stack::pool::pool_state(&value) {
            not_online.push(format!("{} ({state})", pool.metadata.name.unwrap_or_default()));
        }
    }
    Ok(not_online)
}

#[given(regex = r#"^the StorageClass "([^"]+)" exists$"#)]
async fn storage_class_exists(world: &mut LabWorld, name: String) -> Result<(), String> {
    let classes: Api<StorageClass> = Api::all(world.ctx.client()?);
    match classes.get_opt(&name).await.map_err(|e| format!("reading StorageClass {name}: {e}"))? {
        Some(_) => Ok(()),
        None => Err(format!("StorageClass {name} does not exist (is the stack deployed? `lab deploy`)")),
    }
}

#[when(regex = r#"^I create a (\d+) MiB PVC "([^"]+)" of StorageClass "([^"]+)"$"#)]
pub(crate) async fn create_claim(world: &mut LabWorld, size: u64, name: String, class: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.ctx.client()?, &ns);
    claims
        .create(&PostParams::default(), &claim(&name, &class, size))
        .await
        .map_err(|e| format!("creating PVC {ns}/{name}: {e}"))?;
    Ok(())
}

#[then(regex = r#"^the PVC "([^"]+)" is Bound within (\d+) seconds$"#)]
pub(crate) async fn claim_bound(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.ctx.client()?, &ns);
    let not_bound = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(1), async || {
        let claim = claims.get(&name).await.map_err(|e| format!("reading PVC {ns}/{name}: {e}"))?;
        let phase = claim.status.and_then(|s| s.phase).unwrap_or_else(|| "no status".into());
        Ok::<_, String>(if phase == "Bound" { vec![] } else { vec![phase] })
    })
    .await?;
    match not_bound.first() {
        None => Ok(()),
        Some(phase) => Err(format!(
            "PVC {ns}/{name} is {phase} after {seconds}s, expected Bound (see `kubectl -n {ns} describe pvc {name}`)"
        )),
    }
}

/// A claim the storage cannot serve yet stays Pending: checked every
/// second for the whole time, so a late Bound fails it too.
#[then(regex = r#"^the PVC "([^"]+)" stays Pending for (\d+) seconds$"#)]
async fn claim_stays_pending(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.ctx.client()?, &ns);
    let started = std::time::Instant::now();
    loop {
        let claim = claims.get(&name).await.map_err(|e| format!("reading PVC {ns}/{name}: {e}"))?;
        let phase = claim.status.and_then(|s| s.phase).unwrap_or_else(|| "Pending".into());
        if phase != "Pending" {
            return Err(format!(
                "PVC {ns}/{name} is {phase} after {:.0}s, expected it to stay Pending for {seconds}s",
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() >= Duration::from_secs(seconds) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[when(regex = r#"^I delete the PVC "([^"]+)"$"#)]
async fn delete_claim(world: &mut LabWorld, name: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.ctx.client()?, &ns);
    let claim = claims.get(&name).await.map_err(|e| format!("reading PVC {ns}/{name}: {e}"))?;
    let volume = claim
        .spec
        .and_then(|s| s.volume_name)
        .ok_or_else(|| format!("PVC {ns}/{name} has no volume to be removed with it (is it Bound?)"))?;
    claims
        .delete(&name, &kube::api::DeleteParams::default())
        .await
        .map_err(|e| format!("deleting PVC {ns}/{name}: {e}"))?;
    world.deleted_claims.insert(name, volume);
    Ok(())
}

/// The PV a claim was bound to when a step deleted it.
pub(crate) fn deleted_volume(world: &LabWorld, claim: &str) -> Result<String, String> {
    world
        .deleted_claims
        .get(claim)
        .cloned()
        .ok_or_else(|| format!("PVC {claim} was not deleted in this scenario (`I delete the PVC \"{claim}\"`)"))
}

#[then(regex = r#"^the PV of the PVC "([^"]+)" is gone within (\d+) seconds$"#)]
async fn volume_gone(world: &mut LabWorld, claim: String, seconds: u64) -> Result<(), String> {
    use k8s_openapi::api::core::v1::PersistentVolume;
    let volume = deleted_volume(world, &claim)?;
    let volumes: Api<PersistentVolume> = Api::all(world.ctx.client()?);
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(1), async || {
        let found = volumes.get_opt(&volume).await.map_err(|e| format!("reading PV {volume}: {e}"))?;
        Ok::<_, String>(
            found.map(|pv| pv.status.and_then(|s| s.phase).unwrap_or_else(|| "no status".into())).into_iter().collect(),
        )
    })
    .await?;
    match left.first() {
        None => Ok(()),
        Some(phase) => Err(format!("PV {volume} of PVC {claim} is still there ({phase}) after {seconds}s")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_a_valid_typed_object() {
        let claim = claim("data", "mayastor-single-replica", 64);
        let json = serde_json::to_value(&claim).unwrap();
        assert_eq!(json["spec"]["resources"]["requests"]["storage"], "64Mi");
        assert_eq!(json["spec"]["storageClassName"], "mayastor-single-replica");
    }
}

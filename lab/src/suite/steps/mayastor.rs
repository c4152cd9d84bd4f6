//! Steps that ask Mayastor's own REST API what Kubernetes does not show:
//! pool state on the io-engine, volumes and their replicas. The API is
//! reached through the API server's service proxy, so the steps work on
//! every provider (no port on the host, no address of a node).

use std::time::Duration;

use cucumber::{then, when};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use serde_json::Value;

use super::super::world::LabWorld;
use super::namespace;
use crate::stack::mayastor::{Rest, not_online};

/// The REST API's answer to `GET /v0/<path>`, `None` when it says 404.
async fn rest_get(world: &LabWorld, path: &str) -> Result<Option<Value>, String> {
    Rest::find(&world.ctx.client()?).await?.get(path).await
}

#[then(regex = r"^Mayastor reports every pool Online within (\d+) seconds$")]
async fn pools_online(world: &mut LabWorld, seconds: u64) -> Result<(), String> {
    let mut count = 0;
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let pools = rest_get(world, "pools").await?.unwrap_or(Value::Null);
        count = pools.as_array().map(Vec::len).unwrap_or(0);
        let mut pending = not_online(&pools, &[], "pool");
        if count == 0 {
            pending.push("Mayastor knows no pool yet".into());
        }
        Ok::<_, String>(pending)
    })
    .await?;
    if left.is_empty() { Ok(()) } else { Err(format!("after {seconds}s ({count} pool(s) known): {}", left.join("; "))) }
}

/// The Mayastor volume of a PV: CSI names PVs `pvc-<uuid>`, and Mayastor
/// keeps the volume under that uuid.
fn volume_uuid(pv: &str) -> Result<&str, String> {
    pv.strip_prefix("pvc-")
        .ok_or_else(|| format!("PV {pv} is not named pvc-<uuid>, as Mayastor's CSI driver names them"))
}

/// What is wrong with a volume, if anything: its state, its replica count.
fn volume_problems(volume: &Value, replicas: usize) -> Vec<String> {
    let mut problems = Vec::new();
    match volume.pointer("/state/status").and_then(Value::as_str) {
        Some("Online") => {}
        Some(other) => problems.push(format!("volume is {other}")),
        None => problems.push("volume has no state yet".into()),
    }
    let wanted = volume.pointer("/spec/num_replicas").and_then(Value::as_u64);
    if wanted != Some(replicas as u64) {
        problems.push(format!(
            "spec asks {} replica(s), expected {replicas}",
            wanted.map_or("?".into(), |n| n.to_string())
        ));
    }
    let topology = volume.pointer("/state/replica_topology").and_then(Value::as_object);
    let online = topology
        .map(|t| t.values().filter(|r| r.pointer("/state").and_then(Value::as_str) == Some("Online")).count())
        .unwrap_or(0);
    if online != replicas {
        problems.push(format!("{online} replica(s) Online, expected {replicas}"));
    }
    problems
}

async fn bound_volume(world: &mut LabWorld, claim: &str) -> Result<String, String> {
    let ns = namespace(world).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.ctx.client()?, &ns);
    let found = claims.get(claim).await.map_err(|e| format!("reading PVC {ns}/{claim}: {e}"))?;
    found.spec.and_then(|s| s.volume_name).ok_or_else(|| format!("PVC {ns}/{claim} is not Bound to a volume"))
}

/// The Mayastor volume's uuid of a claim, by the PV it is bound to.
pub(super) async fn volume_uuid_of_claim(world: &mut LabWorld, claim: &str) -> Result<String, String> {
    let pv = bound_volume(world, claim).await?;
    volume_uuid(&pv).map(String::from)
}

#[then(regex = r#"^Mayastor reports the volume of the PVC "([^"]+)" Online with (\d+) replicas?$"#)]
async fn volume_online(world: &mut LabWorld, claim: String, replicas: usize) -> Result<(), String> {
    let pv = bound_volume(world, &claim).await?;
    let uuid = volume_uuid(&pv)?.to_string();
    let volume = rest_get(world, &format!("volumes/{uuid}"))
        .await?
        .ok_or_else(|| format!("Mayastor has no volume {uuid} for PVC {claim} (PV {pv})"))?;
    let problems = volume_problems(&volume, replicas);
    if problems.is_empty() {
        let seen = volume.pointer("/state/replica_topology").and_then(Value::as_object);
        world.mayastor_replicas.insert(claim, seen.map(|t| t.keys().cloned().collect()).unwrap_or_default());
        Ok(())
    } else {
        Err(format!("Mayastor volume {uuid} of PVC {claim}: {}", problems.join("; ")))
    }
}

/// What keeps a volume from being served to `node` over NVMe-oF: its
/// target (nexus) must be Online on that node, shared over nvmf. Returns
/// the target's NQN (the last part of its device URI) when all is well.
fn nvmf_target(volume: &Value, node: &str) -> Result<String, String> {
    let target = volume.pointer("/state/target").ok_or("the volume has no target (nexus): it is not published")?;
    let field = |name: &str| target.get(name).and_then(Value::as_str).unwrap_or("");
    let mut problems = Vec::new();
    if field("state") != "Online" {
        problems.push(format!(
            "its nexus is {}",
            Some(field("state")).filter(|s| !s.is_empty()).unwrap_or("without state")
        ));
    }
    if field("node") != node {
        problems.push(format!("its nexus is on node {:?}, not on {node}, the pod's", field("node")));
    }
    if field("protocol") != "nvmf" {
        problems.push(format!("its nexus is shared over {:?}, not nvmf", field("protocol")));
    }
    let uri = field("deviceUri");
    let nqn = nqn_of_device_uri(uri);
    if nqn.is_none() {
        problems.push(format!("its device URI {uri:?} is not nvmf[+TRANSPORT]://HOST:PORT/NQN[?…]"));
    }
    if problems.is_empty() { Ok(nqn.unwrap_or_default()) } else { Err(problems.join("; ")) }
}

/// The NQN in a nexus's device URI: `nvmf://HOST:PORT/NQN`, or with the
/// transport in the scheme and the host's NQN in the query, as this
/// Mayastor writes it (`nvmf+tcp://…/NQN?hostnqn=…`).
fn nqn_of_device_uri(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "nvmf" && !scheme.starts_with("nvmf+") {
        return None;
    }
    let (_, path) = rest.split_once('/')?;
    let nqn = path.split('?').next().unwrap_or_default();
    (!nqn.is_empty()).then(|| nqn.to_string())
}

/// The node kernel's NVMe controllers, one line each: name, transport,
/// state, subsystem NQN.
const NVME_CONTROLLERS: &str = "for c in /sys/class/nvme/nvme*; do [ -e \"$c/subsysnqn\" ] || continue; \
     echo \"${c##*/} $(cat $c/transport) $(cat $c/state) $(cat $c/subsysnqn)\"; done";

/// Whether the node's kernel has a live NVMe/TCP controller of `nqn`.
fn live_tcp_controller(listing: &str, nqn: &str) -> bool {
    listing.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields.as_slice(), [_, "tcp", "live", found] if *found == nqn)
    })
}

#[then(
    regex = r#"^the node of the pod "([^"]+)" reaches the volume of the PVC "([^"]+)" over NVMe-oF/TCP within (\d+) seconds$"#
)]
async fn reached_over_nvmf(world: &mut LabWorld, pod: String, claim: String, seconds: u64) -> Result<(), String> {
    let node = super::faults::node_of(world, &pod).await?;
    let pv = bound_volume(world, &claim).await?;
    let uuid = volume_uuid(&pv)?.to_string();
    let shell = world.ctx.provider.node_shell(&node);
    // After a fault the nexus is made again and the kernel reconnects on its own schedule.
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let volume = rest_get(world, &format!("volumes/{uuid}"))
            .await?
            .ok_or_else(|| format!("Mayastor has no volume {uuid} for PVC {claim} (PV {pv})"))?;
        let nqn = match nvmf_target(&volume, &node) {
            Ok(nqn) => nqn,
            Err(problem) => return Ok(vec![format!("Mayastor volume {uuid} of PVC {claim}: {problem}")]),
        };
        let listing = shell
            .run(&crate::shell::Cmd::sh(NVME_CONTROLLERS))
            .await
            .map_err(|e| format!("listing the NVMe controllers of node {node}: {e}"))?
            .stdout;
        Ok::<_, String>(if live_tcp_controller(&listing, &nqn) {
            vec![]
        } else {
            let listing = if listing.trim().is_empty() { "(none)" } else { listing.trim() };
            vec![format!(
                "node {node}'s kernel has no live NVMe/TCP controller of {nqn} (volume {uuid} of PVC {claim}); its controllers:\n{listing}"
            )]
        })
    })
    .await?;
    if left.is_empty() { Ok(()) } else { Err(format!("after {seconds}s: {}", left.join("; "))) }
}

/// The replicas Mayastor still has of a volume: in its specs (owned by the
/// volume) or on an io-engine (`known`: the ones a step saw Online).
fn replicas_left(specs: &Value, replicas: &Value, uuid: &str, known: &[String]) -> Vec<String> {
    let owned = specs
        .get("replicas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.pointer("/owners/volume").and_then(Value::as_str) == Some(uuid));
    let on_engines = replicas
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("uuid").and_then(Value::as_str).is_some_and(|id| known.iter().any(|k| k == id)));
    let mut left: Vec<String> =
        owned.chain(on_engines).filter_map(|r| r.get("uuid").and_then(Value::as_str)).map(String::from).collect();
    left.sort();
    left.dedup();
    left
}

#[then(regex = r#"^Mayastor has no volume and no replica of the PVC "([^"]+)" within (\d+) seconds$"#)]
async fn volume_gone(world: &mut LabWorld, claim: String, seconds: u64) -> Result<(), String> {
    let pv = super::storage::deleted_volume(world, &claim)?;
    let uuid = volume_uuid(&pv)?.to_string();
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let mut left = Vec::new();
        if rest_get(world, &format!("volumes/{uuid}")).await?.is_some() {
            left.push(format!("volume {uuid}"));
        }
        let specs = rest_get(world, "specs").await?.unwrap_or(Value::Null);
        let replicas = rest_get(world, "replicas").await?.unwrap_or(Value::Null);
        let known = world.mayastor_replicas.get(&claim).cloned().unwrap_or_default();
        left.extend(replicas_left(&specs, &replicas, &uuid, &known).into_iter().map(|r| format!("replica {r}")));
        Ok::<_, String>(left)
    })
    .await?;
    if left.is_empty() { Ok(()) } else { Err(format!("after {seconds}s Mayastor still has {}", left.join(", "))) }
}

#[when(regex = r"^I restart the io-engine on the node of a DiskPool$")]
async fn restart_io_engine_of_a_pool(world: &mut LabWorld) -> Result<(), String> {
    let pools = rest_get(world, "pools").await?.unwrap_or(Value::Null);
    let node = pools
        .as_array()
        .and_then(|p| p.first())
        .and_then(|p| p.pointer("/spec/node").or_else(|| p.pointer("/state/node")))
        .and_then(Value::as_str)
        .ok_or("Mayastor knows no pool, so no node to restart the io-engine on")?
        .to_string();
    super::faults::restart_io_engine_on(world, node, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_volume_is_reached_over_nvmf_only_from_its_online_nexus_on_the_pods_node() {
        let nqn = "nqn.2019-05.io.openebs:8c3b-uuid";
        let volume = |state: &str, node: &str, protocol: &str, uri: &str| json!({"state": {"target": {"state": state, "node": node, "protocol": protocol, "deviceUri": uri}}});
        let uri = format!("nvmf://192.168.125.10:8420/{nqn}");
        assert_eq!(nvmf_target(&volume("Online", "n1", "nvmf", &uri), "n1"), Ok(nqn.to_string()));
        // As this Mayastor writes it (seen on a VM node).
        let uri = format!("nvmf+tcp://192.168.125.10:8420/{nqn}?hostnqn=nqn.2019-05.io.openebs:node-name:n1");
        assert_eq!(nvmf_target(&volume("Online", "n1", "nvmf", &uri), "n1"), Ok(nqn.to_string()));
        for not_nvmf in ["nbd:///dev/nbd0", "nvmf+tcp://host:8420/", "nvmfx://host/nqn"] {
            assert_eq!(nqn_of_device_uri(not_nvmf), None, "{not_nvmf}");
        }
        let wrong = nvmf_target(&volume("Degraded", "n2", "nbd", "/dev/nbd0"), "n1").unwrap_err();
        for part in ["nexus is Degraded", "on node \"n2\", not on n1", "over \"nbd\"", "\"/dev/nbd0\" is not nvmf"] {
            assert!(wrong.contains(part), "{part:?} missing from: {wrong}");
        }
        assert!(nvmf_target(&json!({"state": {"status": "Online"}}), "n1").unwrap_err().contains("not published"));

        let listing = format!("nvme0 tcp connecting {nqn}\nnvme1 rdma live {nqn}\nnvme2 tcp live nqn.other\n");
        assert!(!live_tcp_controller(&listing, nqn), "no controller is both tcp and live for the NQN");
        assert!(live_tcp_controller(&format!("{listing}nvme3 tcp live {nqn}\n"), nqn));
    }

    #[test]
    fn a_volume_needs_its_state_and_every_replica_online() {
        let online = json!({"spec": {"num_replicas": 1}, "state": {"status": "Online",
            "replica_topology": {"r1": {"node": "n", "pool": "p", "state": "Online"}}}});
        assert!(volume_problems(&online, 1).is_empty());
        let degraded = json!({"spec": {"num_replicas": 2}, "state": {"status": "Degraded",
            "replica_topology": {"r1": {"state": "Online"}, "r2": {"state": "Faulted"}}}});
        assert_eq!(volume_problems(&degraded, 2), ["volume is Degraded", "1 replica(s) Online, expected 2"]);
        assert_eq!(volume_uuid("pvc-1234").unwrap(), "1234");
        assert!(volume_uuid("local-pv").is_err());
    }

    #[test]
    fn replicas_are_left_while_a_spec_owns_them_or_an_io_engine_has_them() {
        let specs = json!({"replicas": [
            {"uuid": "a", "owners": {"volume": "v1", "nexuses": []}},
            {"uuid": "b", "owners": {"volume": "v2", "nexuses": []}}
        ]});
        let on_engines = json!([{"uuid": "a"}, {"uuid": "c"}, {"uuid": "d"}]);
        assert_eq!(replicas_left(&specs, &on_engines, "v1", &["c".into()]), ["a", "c"]);
        assert!(replicas_left(&json!({"replicas": []}), &json!([]), "v1", &["a".into()]).is_empty());
    }
}

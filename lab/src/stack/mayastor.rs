//! Mayastor's own REST API, reached through the API server's service proxy
//! (no port on the host, no node address, so it works on every provider),
//! and the readiness that matters: a Mayastor stack is ready when its
//! control plane does its work — every io-engine node and pool reported
//! Online by the core agent, and a canary volume created and deleted — not
//! when its pods say Ready. A PVC made right after "pods Ready" can meet a
//! REST API whose core agent does not answer yet (503, "connection closed").

use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::manifest::Object;
use crate::plan::{Context, View, Work};

/// The REST service: labelled `app=api-rest` as upstream's chart labels it.
pub const REST_SERVICE_LABEL: &str = "app=api-rest";
/// The node label on which upstream's chart runs an io-engine.
pub const ENGINE_NODE_LABEL: &str = "openebs.io/engine=mayastor";

/// Whether a stack serves Mayastor's REST API (a Service labelled as upstream's).
pub fn serves_rest(objects: &[Object]) -> bool {
    let (key, value) = REST_SERVICE_LABEL.split_once('=').unwrap_or_default();
    objects.iter().any(|o| {
        o.kind() == "Service"
            && o.value.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str) == Some(value)
    })
}

/// Mayastor's REST API at `/api/v1/namespaces/NS/services/NAME:http/proxy/v0/`.
pub struct Rest {
    client: Client,
    base: String,
}

impl Rest {
    /// The API of the cluster's Service labelled [`REST_SERVICE_LABEL`].
    pub async fn find(client: &Client) -> Result<Rest, String> {
        let services: Api<Service> = Api::all(client.clone());
        let found = services
            .list(&ListParams::default().labels(REST_SERVICE_LABEL))
            .await
            .map_err(|e| format!("listing Services {REST_SERVICE_LABEL}: {e}"))?;
        let service = found.items.first().ok_or_else(|| {
            format!(
                "no Service labelled {REST_SERVICE_LABEL} (Mayastor's REST API): is the stack deployed? `lab deploy`"
            )
        })?;
        let name = service.metadata.name.clone().unwrap_or_default();
        let ns = service.metadata.namespace.clone().unwrap_or_default();
        Ok(Rest { client: client.clone(), base: format!("/api/v1/namespaces/{ns}/services/{name}:http/proxy/v0") })
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Option<Value>, String> {
        let url = format!("{}/{path}", self.base);
        let what = format!("{method} {url} (Mayastor's REST API through the API server)");
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .map_err(|e| format!("{what}: {e}"))?;
        match self.client.request_text(request).await {
            Ok(text) if text.trim().is_empty() => Ok(Some(Value::Null)),
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| format!("{what}: not JSON ({e}): {text}")),
            // The Service exists, so a 404 is Mayastor's own: no such object.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    /// `GET /v0/<path>`; `None` when Mayastor says 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        self.send("GET", path, None).await
    }

    /// `PUT /v0/<path>` with a JSON body; what Mayastor answers.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.send("PUT", path, Some(body)).await?.ok_or_else(|| format!("PUT {path}: Mayastor says 404"))
    }

    /// `DELETE /v0/<path>`; a 404 (already gone) is fine.
    pub async fn delete(&self, path: &str) -> Result<(), String> {
        self.send("DELETE", path, None).await.map(|_| ())
    }
}

/// What is not Online in a REST list of nodes or pools: each object that is
/// not, and each id of `expected` the list lacks.
pub fn not_online(list: &Value, expected: &[String], what: &str) -> Vec<String> {
    let Some(items) = list.as_array() else { return vec![format!("the REST API returned no list of {what}s")] };
    let mut left: Vec<String> = items
        .iter()
        .filter_map(|item| {
            let id = item.get("id").and_then(Value::as_str).unwrap_or("?");
            match item.pointer("/state/status").and_then(Value::as_str) {
                Some("Online") => None,
                Some(other) => Some(format!("{what} {id} is {other}")),
                None => Some(format!("{what} {id} has no state (its io-engine does not report it)")),
            }
        })
        .collect();
    for id in expected {
        if !items.iter().any(|i| i.get("id").and_then(Value::as_str) == Some(id)) {
            left.push(format!("{what} {id} is not known to the core agent yet"));
        }
    }
    left
}

/// Each replica Mayastor still keeps on one of `pools`, named with its
/// kind (a volume's, a snapshot's, a clone's) and the volume whose topology
/// lists it: what keeps a DiskPool's `openebs.io/diskpool-protection`
/// finalizer on.
pub async fn replicas_on(rest: &Rest, pools: &[String]) -> Result<Vec<String>, String> {
    let replicas = rest.get("replicas").await?.unwrap_or(Value::Null);
    let volumes = rest.get("volumes?max_entries=0").await?.unwrap_or(Value::Null);
    let states = rest.get("pools").await?.unwrap_or(Value::Null);
    let mut left = holders(&replicas, &volumes, pools);
    left.extend(space_without_replicas(&states, &replicas, pools));
    Ok(left)
}

/// A pool of `pools` with space in use and no replica on it: what a
/// snapshot no volume owns any more keeps.
fn space_without_replicas(states: &Value, replicas: &Value, pools: &[String]) -> Vec<String> {
    let has_replica = |pool: &str| {
        replicas.as_array().into_iter().flatten().any(|r| r.get("pool").and_then(Value::as_str) == Some(pool))
    };
    states
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let id = p.get("id").and_then(Value::as_str)?;
            let used = p.pointer("/state/used").and_then(Value::as_u64).unwrap_or(0);
            (pools.iter().any(|x| x == id) && used > 0 && !has_replica(id))
                .then(|| format!("pool {id} has {} MiB in use and no replica (a snapshot no volume owns?)", used >> 20))
        })
        .collect()
}

fn holders(replicas: &Value, volumes: &Value, pools: &[String]) -> Vec<String> {
    let owner = |replica: &str| {
        volumes.get("entries").and_then(Value::as_array).into_iter().flatten().find_map(|v| {
            v.pointer("/state/replica_topology")
                .and_then(|t| t.get(replica))
                .and(v.pointer("/spec/uuid").and_then(Value::as_str))
        })
    };
    replicas
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("pool").and_then(Value::as_str).is_some_and(|p| pools.iter().any(|x| x == p)))
        .map(|r| {
            let uuid = r.get("uuid").and_then(Value::as_str).unwrap_or("?");
            let pool = r.get("pool").and_then(Value::as_str).unwrap_or("?");
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or("Regular");
            match owner(uuid) {
                Some(volume) => format!("replica {uuid} ({kind}) of volume {volume} on pool {pool}"),
                None => format!("replica {uuid} ({kind}, no volume lists it) on pool {pool}"),
            }
        })
        .collect()
}

/// Before lab's DiskPools are deleted: Mayastor lets go of them. A pool
/// with a replica (or a snapshot's space) on it keeps its finalizer, so the
/// deletion would only wait; this waits instead until the pools hold
/// nothing (the CSI driver and the snapshot controller finishing what the
/// scenarios' claims and snapshots left), and when they still do, names
/// each replica with its volume, and each pool's space no replica owns. It
/// removes nothing itself.
#[derive(Debug)]
pub struct ReleasePools {
    pub pools: Vec<String>,
    pub timeout: Duration,
}

#[async_trait::async_trait(?Send)]
impl Work for ReleasePools {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "rest: wait until Mayastor keeps no replica and no space on {} (at most {}s); what still holds one is named (a replica with its volume, space no replica owns)",
            self.pools.join(", "),
            self.timeout.as_secs()
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = match ctx.teardown_client().await {
            Ok(client) => client,
            Err(why) => return Ok(Some(format!("{why}; skipped"))),
        };
        let rest = match Rest::find(&client).await {
            Ok(rest) => rest,
            Err(why) => return Ok(Some(format!("{why}; skipped"))),
        };
        let left = crate::wait::until_none_pending(self.timeout, Duration::from_secs(3), async || {
            replicas_on(&rest, &self.pools).await.map_err(|e| anyhow::anyhow!(e))
        })
        .await?;
        if !left.is_empty() {
            bail!(
                "after {}s Mayastor still holds lab's pools, so their DiskPools cannot go: {}; \
                 `kubectl get volumesnapshots,pvc -A` shows what may still use them",
                self.timeout.as_secs(),
                left.join("; ")
            );
        }
        Ok(Some("nothing left on them".into()))
    }
}

/// A random volume id (RFC 4122 version 4), from the kernel's randomness.
pub fn random_uuid() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// Wait until Mayastor's control plane serves: the REST API answers, every
/// io-engine node and every pool is Online in it, and a canary volume of one
/// replica is created, seen Online and deleted.
#[derive(Debug)]
pub struct WaitControlPlane {
    /// The pools (DiskPool names) the core agent must report.
    pub pools: Vec<String>,
    pub timeout: Duration,
}

/// The canary's size: small, and a whole number of Mayastor's 4 MiB clusters.
const CANARY_BYTES: u64 = 8 << 20;

#[async_trait::async_trait(?Send)]
impl Work for WaitControlPlane {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "within {}s: Mayastor's REST API reports every io-engine node and {} pool(s) Online, and a canary volume ({} MiB, 1 replica) is created and deleted",
            self.timeout.as_secs(),
            self.pools.len(),
            CANARY_BYTES >> 20
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = ctx.client().await?;
        let poll = Duration::from_secs(2);
        let engine_nodes: Vec<String> = Api::<Node>::all(client.clone())
            .list(&ListParams::default().labels(ENGINE_NODE_LABEL))
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let started = std::time::Instant::now();
        let left = crate::wait::until_none_pending(self.timeout, poll, async || {
            let rest = match Rest::find(&client).await {
                Ok(rest) => rest,
                Err(e) => return Ok::<_, anyhow::Error>(vec![e]),
            };
            let mut left = Vec::new();
            for (path, what, expected) in [("nodes", "node", &engine_nodes), ("pools", "pool", &self.pools)] {
                match rest.get(path).await {
                    Ok(list) => left.extend(not_online(&list.unwrap_or(Value::Null), expected, what)),
                    Err(e) => left.push(e),
                }
            }
            Ok(left)
        })
        .await?;
        if !left.is_empty() {
            bail!("Mayastor's control plane is not serving after {}s: {}", self.timeout.as_secs(), left.join("; "));
        }
        let remaining = self.timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(30));
        canary(&client, remaining, poll).await?;
        Ok(Some(format!(
            "{} node(s) and {} pool(s) Online; a canary volume came Online and went in {:.0}s",
            engine_nodes.len(),
            self.pools.len(),
            started.elapsed().as_secs_f64()
        )))
    }
}

/// Create a one-replica volume, wait for it Online, delete it, wait until
/// it is gone. Creation is retried while the API refuses (a control plane
/// still starting answers 503); the volume is deleted whatever happens.
async fn canary(client: &Client, timeout: Duration, poll: Duration) -> anyhow::Result<()> {
    let rest = Rest::find(client).await.map_err(anyhow::Error::msg)?;
    let uuid = random_uuid()?;
    let path = format!("volumes/{uuid}");
    let body = json!({
        "policy": {"self_heal": true},
        "replicas": 1,
        "size": CANARY_BYTES,
        "thin": false,
        "labels": {"lab.dev/canary": "true"},
    });
    let mut last = String::new();
    let online = crate::wait::until_none_pending(timeout, poll, async || {
        let answer = match rest.get(&path).await {
            Ok(Some(volume)) => volume,
            Ok(None) => match rest.put(&path, &body).await {
                Ok(volume) => volume,
                Err(e) => {
                    last = e.clone();
                    return Ok::<_, anyhow::Error>(vec![format!("creating the canary volume {uuid}: {e}")]);
                }
            },
            Err(e) => return Ok(vec![e]),
        };
        match answer.pointer("/state/status").and_then(Value::as_str) {
            Some("Online") => Ok(vec![]),
            other => Ok(vec![format!("the canary volume {uuid} is {}", other.unwrap_or("without state"))]),
        }
    })
    .await?;
    let gone = crate::wait::until_none_pending(Duration::from_secs(60), poll, async || {
        if let Err(e) = rest.delete(&path).await {
            return Ok::<_, anyhow::Error>(vec![e]);
        }
        Ok(match rest.get(&path).await {
            Ok(None) => vec![],
            Ok(Some(_)) => vec![format!("the canary volume {uuid} is still there")],
            Err(e) => vec![e],
        })
    })
    .await?;
    if !online.is_empty() {
        bail!(
            "Mayastor's control plane cannot make a volume: {}{}",
            online.join("; "),
            if last.is_empty() { String::new() } else { format!(" (last refusal: {last})") }
        );
    }
    if !gone.is_empty() {
        bail!("Mayastor's control plane cannot delete a volume: {}", gone.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicas_on_lab_pools_are_named_with_their_volume() {
        let replicas = json!([
            {"uuid": "r1", "pool": "pool-a", "kind": "Regular"},
            {"uuid": "r2", "pool": "pool-b", "kind": "SnapshotClone"},
            {"uuid": "r3", "pool": "theirs", "kind": "Regular"},
        ]);
        let volumes = json!({"entries": [
            {"spec": {"uuid": "v1"}, "state": {"replica_topology": {"r1": {"pool": "pool-a"}}}},
        ]});
        let pools = ["pool-a".to_string(), "pool-b".to_string()];
        assert_eq!(
            holders(&replicas, &volumes, &pools),
            [
                "replica r1 (Regular) of volume v1 on pool pool-a",
                "replica r2 (SnapshotClone, no volume lists it) on pool pool-b"
            ]
        );
        assert!(holders(&json!([]), &volumes, &pools).is_empty());
        let states = json!([
            {"id": "pool-a", "state": {"used": 37748736}},
            {"id": "pool-b", "state": {"used": 37748736}},
            {"id": "pool-c", "state": {"used": 0}},
            {"id": "theirs", "state": {"used": 1048576}},
        ]);
        let with_one = json!([{"uuid": "r1", "pool": "pool-a"}]);
        let pools = ["pool-a".to_string(), "pool-b".to_string(), "pool-c".to_string()];
        assert_eq!(
            space_without_replicas(&states, &with_one, &pools),
            ["pool pool-b has 36 MiB in use and no replica (a snapshot no volume owns?)"]
        );
    }

    #[test]
    fn a_node_or_pool_counts_only_when_reported_online() {
        let list = json!([
            {"id": "n1", "state": {"status": "Online"}},
            {"id": "n2", "state": {"status": "Offline"}},
            {"id": "n3"},
        ]);
        let left = not_online(&list, &["n1".into(), "n4".into()], "node");
        assert_eq!(
            left,
            [
                "node n2 is Offline",
                "node n3 has no state (its io-engine does not report it)",
                "node n4 is not known to the core agent yet",
            ]
        );
        assert!(not_online(&json!([{"id": "p", "state": {"status": "Online"}}]), &["p".into()], "pool").is_empty());
        assert_eq!(not_online(&Value::Null, &[], "pool"), ["the REST API returned no list of pools"]);
    }

    #[test]
    fn a_canary_id_is_a_version_4_uuid() {
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_stack_serves_rest_when_it_has_upstreams_rest_service() {
        let service = |labels: Value| {
            let value = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": labels}});
            Object { file: "s.yaml".into(), line: 1, value }
        };
        assert!(serves_rest(&[service(json!({"app": "api-rest"}))]));
        assert!(!serves_rest(&[service(json!({"app": "etcd"}))]));
    }
}

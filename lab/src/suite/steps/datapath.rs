//! Mayastor's data path from userspace, for nodes whose kernel has no
//! nvme_tcp (kind's and the local node share this host's): a volume is
//! published over NVMe-oF through Mayastor's REST API, and the io-engine
//! checkout's own `initiator` (in the io-engine image lab builds) writes and
//! reads its blocks from inside an io-engine pod. A pattern is a set of
//! blocks spread over the volume, each derived from a seed and its offset,
//! so a block that comes back stale, zeroed or from elsewhere fails the check.

use std::collections::BTreeMap;
use std::time::Duration;

use cucumber::{then, when};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::world::{LabWorld, Published};
use crate::stack::mayastor::Rest;

/// A pattern's block: the initiator writes and reads one device block (512
/// or 4096 bytes, the pool's) at a time, so blocks are 4096 bytes on 4096
/// boundaries and a read is checked over the device block it returned.
pub const BLOCK: u64 = 4096;
/// Blocks in a pattern: the first, the last and some between.
const BLOCKS: u64 = 8;

/// An NVMe-oF device URI the initiator takes (`nvmf://` or `nvmf+tcp://`, as
/// Mayastor writes it, with its `hostnqn`), safe inside single quotes.
fn is_nvmf_uri(uri: &str) -> bool {
    (uri.starts_with("nvmf://") || uri.starts_with("nvmf+tcp://")) && !uri.contains('\'')
}

/// What the nexus keeps of each replica for itself: its metadata (this
/// version's nexus starts its data at block 10240, 5 MiB in, and a GPT
/// backup sits at the end) makes the device an initiator sees smaller than
/// the volume's size, which is all the REST API reports. Blocks stay this
/// far from the end.
pub const NEXUS_METADATA: u64 = 8 << 20;

/// Where a pattern's blocks go in a volume of `size` bytes: the first block,
/// the last the nexus serves (within [`NEXUS_METADATA`] of the end), and
/// evenly between, each on a block boundary.
pub fn offsets(size: u64) -> Vec<u64> {
    let last = size.saturating_sub(NEXUS_METADATA + BLOCK) / BLOCK * BLOCK;
    let mut out: Vec<u64> = (0..BLOCKS).map(|i| (last / (BLOCKS - 1) * i) / BLOCK * BLOCK).collect();
    out.push(last);
    out.sort_unstable();
    out.dedup();
    out
}

/// The block at `offset` for `seed`: a readable header naming both, then
/// bytes of a xorshift stream started from them.
pub fn block(seed: u64, offset: u64) -> Vec<u8> {
    let mut out = format!("lab pattern {seed:016x} at {offset}\n").into_bytes();
    let mut state = seed ^ offset.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    while (out.len() as u64) < BLOCK {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(BLOCK as usize);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Each offset whose block read back (`LENGTH SHA256` lines, one per offset
/// in order: the device block the initiator returned) is not the pattern's
/// first LENGTH bytes, with what came instead.
pub fn mismatches(seed: u64, offsets: &[u64], read: &str) -> Vec<String> {
    let reads: Vec<(usize, &str)> = read
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?))
        })
        .collect();
    let mut out = Vec::new();
    for (i, offset) in offsets.iter().enumerate() {
        let Some(&(length, sum)) = reads.get(i) else {
            out.push(format!("offset {offset}: not read"));
            continue;
        };
        let wanted = block(seed, *offset);
        let wrong = if length == 0 || length > wanted.len() {
            format!("{length} bytes read")
        } else if sum == sha256_hex(&wanted[..length]) {
            continue;
        } else if sum == sha256_hex(&vec![0u8; length]) {
            "zeroes".to_string()
        } else {
            "other bytes".to_string()
        };
        out.push(format!("offset {offset}: {wrong}"));
    }
    out
}

/// A random seed from the kernel.
fn random_seed() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// A Ready io-engine pod (not being deleted), preferring one not on `avoid`:
/// the initiator runs in its container, which has the binary and hugepages.
async fn initiator_pod(world: &LabWorld, avoid: Option<&str>) -> Result<(String, String), String> {
    let pods: Api<Pod> = Api::all(world.ctx.client()?);
    let found = pods
        .list(&ListParams::default().labels("app=io-engine"))
        .await
        .map_err(|e| format!("listing io-engine pods: {e}"))?;
    let ready: Vec<&Pod> = found
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let pod = ready
        .iter()
        .find(|p| avoid.is_none_or(|a| node(p) != a))
        .or(ready.first())
        .ok_or("no io-engine pod is Ready to run the initiator in")?;
    Ok((pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default()))
}

/// What the initiator logs when it could not attach to the target: it did
/// no I/O, so running it again is safe.
const NOT_CONNECTED: &str = "Failed to create a BDEV";

/// Attempts per block: a connect refused under load (two io-engines and the
/// initiator polling two cores, seen in CI) is tried again, an I/O error never.
const CONNECT_ATTEMPTS: u32 = 3;

/// A shell script run in the io-engine container: the initiator once per
/// offset, its log shown only when it fails; a failed connect is tried again
/// (and said on stderr).
fn initiator_script(uri: &str, offsets: &[u64], write: bool) -> String {
    initiator_passes(uri, offsets, write, 0)
}

/// The same, its passes over the offsets repeated until `seconds` have gone
/// by (at least one): I/O that keeps going while something is faulted.
fn initiator_passes(uri: &str, offsets: &[u64], write: bool, seconds: u64) -> String {
    let offsets: Vec<String> = offsets.iter().map(u64::to_string).collect();
    let each = if write {
        format!(
            "busybox dd if=\"$d/pattern\" of=\"$d/block\" bs={BLOCK} skip=$i count=1 2>/dev/null; initiator '{uri}' --offset $o write \"$d/block\""
        )
    } else {
        format!(
            "initiator '{uri}' --offset $o read \"$d/block\" && echo \"$(busybox wc -c < \"$d/block\") $(busybox sha256sum < \"$d/block\")\""
        )
    };
    let first = if write { "cat > \"$d/pattern\"; " } else { "" };
    format!(
        "d=$(busybox mktemp -d /tmp/lab-initiator.XXXXXX); trap 'rm -rf \"$d\"' EXIT; {first}\
         end=$(($(busybox date +%s)+{seconds})); while :; do i=0; \
         for o in {}; do n=1; until {{ {each}; }} 2>\"$d/log\" >\"$d/out\"; do \
         if [ $n -lt {CONNECT_ATTEMPTS} ] && busybox grep -q '{NOT_CONNECTED}' \"$d/out\"; then \
         echo \"initiator at offset $o: attempt $n did not connect; trying again\" >&2; n=$((n+1)); sleep 2; \
         else echo \"initiator at offset $o failed (attempt $n):\" >&2; \
         busybox tail -n 20 \"$d/log\" \"$d/out\" >&2; exit 1; fi; done; {}i=$((i+1)); done; \
         [ $(busybox date +%s) -lt $end ] || break; done",
        offsets.join(" "),
        if write { "" } else { "busybox grep -E '^ *[0-9]+ [0-9a-f]{64}' \"$d/out\"; " }
    )
}

/// One initiator at a time on this lab: each polls a core of its own for
/// its whole run, and concurrent scenarios starved the targets of CPU.
static ONE_INITIATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run_initiator(world: &LabWorld, script: String, stdin: Option<&[u8]>) -> Result<String, String> {
    run_initiator_avoiding(world, None, script, stdin).await
}

/// The same, in an io-engine pod off `avoid` where there is one (a node
/// about to be faulted).
async fn run_initiator_avoiding(
    world: &LabWorld,
    avoid: Option<&str>,
    script: String,
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let _one = ONE_INITIATOR.lock().await;
    let (namespace, name) = initiator_pod(world, avoid).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &namespace);
    let argv = vec!["sh".to_string(), "-c".to_string(), script];
    let output = crate::provider::exec_in_pod(&pods, &name, Some("io-engine"), argv, stdin)
        .await
        .map_err(|e| format!("running the initiator in io-engine pod {namespace}/{name}: {e}"))?;
    if output.success() {
        // Connects tried again, said where the scenario's output shows it.
        if !output.stderr.trim().is_empty() {
            eprintln!("{}", output.stderr.trim());
        }
        Ok(output.stdout)
    } else {
        Err(format!(
            "the initiator in io-engine pod {namespace}/{name} failed (exit {}): {}{}",
            output.status,
            output.stderr.trim(),
            output.stdout.trim()
        ))
    }
}

/// The Mayastor volume of a claim, by its bound PV.
pub(super) async fn volume_of(world: &mut LabWorld, claim: &str) -> Result<(Rest, String, Value), String> {
    let uuid = super::mayastor::volume_uuid_of_claim(world, claim).await?;
    let rest = Rest::find(&world.ctx.client()?).await?;
    let volume = rest
        .get(&format!("volumes/{uuid}"))
        .await?
        .ok_or_else(|| format!("Mayastor has no volume {uuid} for PVC {claim}"))?;
    Ok((rest, uuid, volume))
}

#[when(regex = r#"^I publish the volume of the PVC "([^"]+)" over NVMe-oF through Mayastor's REST API$"#)]
async fn publish(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let (rest, uuid, volume) = volume_of(world, &claim).await?;
    let published = match volume.pointer("/state/target/deviceUri").and_then(Value::as_str) {
        Some(uri) if !uri.is_empty() => volume.clone(),
        _ => rest.put(&format!("volumes/{uuid}/target"), &json!({"protocol": "nvmf", "publish_context": {}})).await?,
    };
    let uri = published
        .pointer("/state/target/deviceUri")
        .and_then(Value::as_str)
        .filter(|u| is_nvmf_uri(u))
        .ok_or_else(|| format!("volume {uuid} was published but names no nvmf device URI: {published}"))?
        .to_string();
    let size = usable_size(&published).ok_or("the volume has no size (state.target.size, spec.size)")?;
    world.published.insert(claim, Published { uuid, uri, size, seed: None });
    Ok(())
}

fn published<'a>(world: &'a mut LabWorld, claim: &str) -> Result<&'a mut Published, String> {
    world.published.get_mut(claim).ok_or_else(|| {
        format!(
            "the volume of the PVC \"{claim}\" is not published in this scenario (`I publish the volume of the PVC …`)"
        )
    })
}

/// The volume's target as Mayastor serves it now: after a fault its nexus
/// may have been made again, elsewhere.
async fn current_target(world: &mut LabWorld, claim: &str) -> Result<Published, String> {
    let known = published(world, claim)?.clone();
    let rest = Rest::find(&world.ctx.client()?).await?;
    let volume =
        rest.get(&format!("volumes/{}", known.uuid)).await?.ok_or_else(|| format!("volume {} is gone", known.uuid))?;
    let uri = volume
        .pointer("/state/target/deviceUri")
        .and_then(Value::as_str)
        .filter(|u| is_nvmf_uri(u))
        .ok_or_else(|| format!("volume {} has no nvmf target now (its nexus is gone)", known.uuid))?;
    Ok(Published { uri: uri.to_string(), size: usable_size(&volume).unwrap_or(known.size), ..known })
}

/// What an initiator can address: the nexus's own size (smaller than the
/// volume's by the nexus's metadata), else the volume's.
fn usable_size(volume: &Value) -> Option<u64> {
    volume.pointer("/state/target/size").or_else(|| volume.pointer("/spec/size")).and_then(Value::as_u64)
}

#[when(regex = r#"^I write a verifiable pattern to the volume of the PVC "([^"]+)" from userspace$"#)]
async fn write_pattern(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let target = current_target(world, &claim).await?;
    let seed = random_seed()?;
    let offsets = offsets(target.size);
    let data: Vec<u8> = offsets.iter().flat_map(|o| block(seed, *o)).collect();
    run_initiator(world, initiator_script(&target.uri, &offsets, true), Some(&data)).await?;
    published(world, &claim)?.seed = Some(seed);
    Ok(())
}

async fn read_back(world: &mut LabWorld, claim: &str, seed: u64) -> Result<Vec<String>, String> {
    let target = current_target(world, claim).await?;
    let offsets = offsets(target.size);
    let read = run_initiator(world, initiator_script(&target.uri, &offsets, false), None).await?;
    Ok(mismatches(seed, &offsets, &read))
}

fn written_seed(world: &mut LabWorld, claim: &str) -> Result<u64, String> {
    published(world, claim)?
        .seed
        .ok_or_else(|| format!("no pattern was written to the volume of the PVC \"{claim}\" in this scenario"))
}

#[then(regex = r#"^the data on the volume of the PVC "([^"]+)" verifies from userspace$"#)]
async fn verifies(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let seed = written_seed(world, &claim)?;
    let wrong = read_back(world, &claim, seed).await?;
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("the data on the volume of the PVC \"{claim}\" did not verify: {}", wrong.join("; ")))
    }
}

/// A restored volume against what its snapshot's claim held when the
/// snapshot was taken (read at that volume's offsets: the sizes match).
#[then(
    regex = r#"^the data on the volume of the PVC "([^"]+)" verifies against the pattern of the snapshot "([^"]+)"$"#
)]
async fn verifies_as_snapshot(world: &mut LabWorld, claim: String, snapshot: String) -> Result<(), String> {
    let taken = world
        .snapshots
        .get(&snapshot)
        .cloned()
        .ok_or_else(|| format!("no snapshot \"{snapshot}\" was taken in this scenario"))?;
    let (seed, size) = taken.pattern.ok_or_else(|| {
        format!("no pattern had been written to the PVC \"{}\" when the snapshot \"{snapshot}\" was taken", taken.claim)
    })?;
    let target = current_target(world, &claim).await?;
    let offsets = offsets(size);
    let read = run_initiator(world, initiator_script(&target.uri, &offsets, false), None).await?;
    let wrong = mismatches(seed, &offsets, &read);
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the volume of the PVC \"{claim}\" does not hold what the PVC \"{}\" held at the snapshot \"{snapshot}\": {}",
            taken.claim,
            wrong.join("; ")
        ))
    }
}

/// The check itself checked: the blocks read back against a pattern never
/// written must not pass.
#[then(regex = r#"^the data on the volume of the PVC "([^"]+)" does not verify against another pattern$"#)]
async fn other_pattern_fails(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let seed = written_seed(world, &claim)?;
    let wrong = read_back(world, &claim, seed.wrapping_add(1)).await?;
    let count = offsets(published(world, &claim)?.size).len();
    if wrong.len() == count {
        Ok(())
    } else {
        Err(format!("{} of {count} blocks matched a pattern that was never written", count - wrong.len()))
    }
}

/// The nodes of a volume's replicas and of its nexus, from the REST API.
pub fn placement(volume: &Value) -> (BTreeMap<String, (String, String)>, Option<String>) {
    let replicas = volume
        .pointer("/state/replica_topology")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .map(|(id, r)| {
                    let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    (id.clone(), (field("node"), field("pool")))
                })
                .collect()
        })
        .unwrap_or_default();
    let nexus = volume.pointer("/state/target/node").and_then(Value::as_str).map(String::from);
    (replicas, nexus)
}

#[then(regex = r#"^the (\d+) replicas of the volume of the PVC "([^"]+)" are on (\d+) distinct nodes and pools$"#)]
async fn distinct(world: &mut LabWorld, replicas: usize, claim: String, nodes: usize) -> Result<(), String> {
    let (_, uuid, volume) = volume_of(world, &claim).await?;
    let (placed, _) = placement(&volume);
    let mut on_nodes: Vec<&String> = placed.values().map(|(n, _)| n).collect();
    let mut on_pools: Vec<&String> = placed.values().map(|(_, p)| p).collect();
    on_nodes.sort();
    on_nodes.dedup();
    on_pools.sort();
    on_pools.dedup();
    if placed.len() == replicas && on_nodes.len() == nodes && on_pools.len() == nodes {
        Ok(())
    } else {
        Err(format!(
            "volume {uuid}: {} replica(s) on node(s) {on_nodes:?} and pool(s) {on_pools:?}; expected {replicas} on {nodes} distinct nodes and pools",
            placed.len()
        ))
    }
}

#[when(regex = r#"^I set the replica count of the volume of the PVC "([^"]+)" to (\d+)$"#)]
async fn set_replicas(world: &mut LabWorld, claim: String, count: u8) -> Result<(), String> {
    let (rest, uuid, _) = volume_of(world, &claim).await?;
    rest.put(&format!("volumes/{uuid}/replica_count/{count}"), &Value::Null).await.map(|_| ())
}

/// A node holding a replica of the volume but not its nexus: killing its
/// io-engine degrades the volume without taking its target away.
pub fn replica_only_node(volume: &Value) -> Result<String, String> {
    let (placed, nexus) = placement(volume);
    let nexus = nexus.ok_or("the volume has no nexus: publish it first")?;
    placed
        .values()
        .map(|(node, _)| node.clone())
        .find(|node| *node != nexus)
        .ok_or_else(|| format!("every replica is on {nexus}, the nexus's node"))
}

#[when(
    regex = r#"^I kill the io-engine of a node with a replica but not the nexus of the volume of the PVC "([^"]+)"$"#
)]
async fn kill_replica_engine(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let (_, _, volume) = volume_of(world, &claim).await?;
    let node = replica_only_node(&volume)?;
    super::faults::restart_io_engine_on(world, node, true).await
}

/// How long the pattern is written again around a fault: passes start a
/// few seconds before it and go on well after it.
const WRITES_AROUND_FAULT: Duration = Duration::from_secs(30);
const FAULT_AFTER: Duration = Duration::from_secs(5);

#[when(
    regex = r#"^I (kill|take off) the io-engine of a node with a replica but not the nexus of the volume of the PVC "([^"]+)" while writing that pattern to it$"#
)]
async fn fault_replica_engine_under_io(world: &mut LabWorld, how: String, claim: String) -> Result<(), String> {
    let seed = written_seed(world, &claim)?;
    let target = current_target(world, &claim).await?;
    let (_, _, volume) = volume_of(world, &claim).await?;
    let victim = replica_only_node(&volume)?;
    let offsets = offsets(target.size);
    let data: Vec<u8> = offsets.iter().flat_map(|o| block(seed, *o)).collect();
    let client = world.ctx.client()?;
    // Taken off: killed and not made again until a step puts it back, long
    // past the nexus's reconnect window. Recorded first, so it is put back
    // after the scenario whatever happens.
    let hold = how == "take off";
    if hold {
        let value = super::faults::io_engine_label_of(&client, &victim).await?;
        world.engine_off = Some((victim.clone(), value));
    }
    // The same pattern again, from the nexus's node, while the replica's
    // io-engine dies: every write must still succeed through the nexus.
    let script = initiator_passes(&target.uri, &offsets, true, WRITES_AROUND_FAULT.as_secs());
    let writes = run_initiator_avoiding(world, Some(&victim), script, Some(&data));
    let fault = async {
        tokio::time::sleep(FAULT_AFTER).await;
        if hold {
            super::faults::take_io_engine_off(&client, &victim).await
        } else {
            super::faults::delete_io_engine_pod(&client, &victim, true).await
        }
    };
    let (written, killed) = tokio::join!(writes, fault);
    let killed = killed?;
    written.map_err(|e| {
        format!("writing to the volume of the PVC \"{claim}\" while the io-engine on {victim} was killed: {e}")
    })?;
    world.restarted = Some((victim, killed));
    Ok(())
}

#[when(regex = r#"^I restart the io-engine on the node of the nexus of the volume of the PVC "([^"]+)"$"#)]
async fn restart_nexus_engine(world: &mut LabWorld, claim: String) -> Result<(), String> {
    let (_, uuid, volume) = volume_of(world, &claim).await?;
    let (_, nexus) = placement(&volume);
    let node = nexus.ok_or_else(|| format!("volume {uuid} has no nexus: publish it first"))?;
    super::faults::restart_io_engine_on(world, node, false).await
}

#[then(
    regex = r#"^Mayastor reports the volume of the PVC "([^"]+)" (Degraded|Online) with (\d+) healthy replicas? within (\d+) seconds$"#
)]
async fn volume_state_within(
    world: &mut LabWorld,
    claim: String,
    status: String,
    healthy: usize,
    seconds: u64,
) -> Result<(), String> {
    let uuid = super::mayastor::volume_uuid_of_claim(world, &claim).await?;
    let rest = Rest::find(&world.ctx.client()?).await?;
    let path = format!("volumes/{uuid}");
    let mut last = String::new();
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(2), async || {
        let Some(volume) = rest.get(&path).await? else { return Ok::<_, String>(vec!["gone".to_string()]) };
        let state = volume.pointer("/state/status").and_then(Value::as_str).unwrap_or("without state");
        let online = volume
            .pointer("/state/replica_topology")
            .and_then(Value::as_object)
            .map(|t| t.values().filter(|r| r.get("state").and_then(Value::as_str) == Some("Online")).count())
            .unwrap_or(0);
        last = format!("{state} with {online} replica(s) Online");
        Ok(if state == status && online == healthy { vec![] } else { vec![last.clone()] })
    })
    .await?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("volume {uuid} of PVC {claim} after {seconds}s: {last}; expected {status} with {healthy}"))
    }
}

pub(super) const MIB: u64 = 1024 * 1024;

#[when(regex = r#"^I expand the volume of the PVC "([^"]+)" to (\d+) MiB through Mayastor's REST API$"#)]
async fn expand(world: &mut LabWorld, claim: String, mib: u64) -> Result<(), String> {
    let (rest, uuid, _) = volume_of(world, &claim).await?;
    rest.put(&format!("volumes/{uuid}/size"), &json!({"size": mib * MIB}))
        .await
        .map_err(|e| format!("expanding volume {uuid} of the PVC \"{claim}\" to {mib} MiB: {e}"))?;
    Ok(())
}

/// Each replica of a claim's volume as the REST API reports it (its id,
/// node and object), with the volume's id; an error when it has none.
pub(super) async fn replicas_of(
    world: &mut LabWorld,
    claim: &str,
) -> Result<(String, Vec<(String, String, Value)>), String> {
    let (rest, uuid, volume) = volume_of(world, claim).await?;
    let (placed, _) = placement(&volume);
    if placed.is_empty() {
        return Err(format!("volume {uuid} of the PVC \"{claim}\" has no replica"));
    }
    let mut out = Vec::new();
    for (id, (node, _)) in placed {
        let replica = rest.get(&format!("replicas/{id}")).await?.ok_or_else(|| format!("replica {id} is gone"))?;
        out.push((id, node, replica));
    }
    Ok((uuid, out))
}

#[then(regex = r#"^every replica of the volume of the PVC "([^"]+)" holds at least (\d+) MiB$"#)]
async fn replicas_hold(world: &mut LabWorld, claim: String, mib: u64) -> Result<(), String> {
    let (uuid, replicas) = replicas_of(world, &claim).await?;
    let small: Vec<String> = replicas
        .iter()
        .filter_map(|(id, node, replica)| {
            let size = replica.get("size").and_then(Value::as_u64).unwrap_or(0);
            (size < mib * MIB).then(|| format!("replica {id} on {node} holds {} MiB", size / MIB))
        })
        .collect();
    if small.is_empty() {
        Ok(())
    } else {
        Err(format!("volume {uuid} of the PVC \"{claim}\", expected at least {mib} MiB: {}", small.join("; ")))
    }
}

/// What the initiator can address through the volume's target now.
#[then(regex = r#"^the target of the volume of the PVC "([^"]+)" offers more than (\d+) MiB$"#)]
async fn target_offers(world: &mut LabWorld, claim: String, mib: u64) -> Result<(), String> {
    let target = current_target(world, &claim).await?;
    if target.size > mib * MIB {
        Ok(())
    } else {
        Err(format!("the target of the PVC \"{claim}\" offers {} bytes, not more than {mib} MiB", target.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_spans_the_volume_on_block_boundaries() {
        let size = 64 << 20;
        let at = offsets(size);
        assert_eq!(at.first(), Some(&0));
        assert_eq!(at.last(), Some(&(size - NEXUS_METADATA - BLOCK)));
        assert!(at.len() >= 2 && at.len() as u64 <= BLOCKS + 1);
        assert!(at.iter().all(|o| o % BLOCK == 0 && o + BLOCK <= size - NEXUS_METADATA));
        // A volume too small for more still has its first block.
        assert_eq!(offsets(BLOCK), [0]);
    }

    #[test]
    fn blocks_differ_by_seed_and_offset_and_are_whole() {
        assert_eq!(block(1, 0).len() as u64, BLOCK);
        assert_ne!(block(1, 0), block(2, 0));
        assert_ne!(block(1, 0), block(1, 512));
        assert_eq!(block(7, 4096), block(7, 4096));
    }

    #[test]
    fn a_read_verifies_only_against_the_pattern_written() {
        let at = offsets(64 << 20);
        let sums = |seed: u64, length: usize| {
            at.iter().map(|o| format!("{length} {}  -\n", sha256_hex(&block(seed, *o)[..length]))).collect::<String>()
        };
        // Whole 4096-byte blocks, and 512-byte device blocks (their first bytes).
        assert!(mismatches(5, &at, &sums(5, 4096)).is_empty());
        assert!(mismatches(5, &at, &sums(5, 512)).is_empty());
        // The wrong pattern fails every block; zeroes and short reads are named.
        assert_eq!(mismatches(6, &at, &sums(5, 4096)).len(), at.len());
        let mut read: Vec<String> = sums(5, 4096).lines().map(String::from).collect();
        read[1] = format!("4096 {}  -", sha256_hex(&[0u8; 4096]));
        read[2] = "0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  -".into();
        read.pop();
        let wrong = mismatches(5, &at, &read.join("\n"));
        assert_eq!(
            wrong,
            [
                format!("offset {}: zeroes", at[1]),
                format!("offset {}: 0 bytes read", at[2]),
                format!("offset {}: not read", at[at.len() - 1])
            ]
        );
    }

    #[test]
    fn the_replica_to_fault_is_off_the_nexus_node() {
        let volume = json!({"state": {"target": {"node": "w1"}, "replica_topology": {
            "r1": {"node": "w1", "pool": "p1", "state": "Online"},
            "r2": {"node": "w2", "pool": "p2", "state": "Online"}}}});
        assert_eq!(replica_only_node(&volume).unwrap(), "w2");
        let local =
            json!({"state": {"target": {"node": "w1"}, "replica_topology": {"r1": {"node": "w1", "pool": "p1"}}}});
        assert!(replica_only_node(&local).unwrap_err().contains("every replica is on w1"));
        assert!(replica_only_node(&json!({"state": {}})).unwrap_err().contains("no nexus"));
    }

    #[test]
    fn the_initiator_addresses_the_nexus_not_the_whole_volume() {
        let volume = json!({"spec": {"size": 67108864}, "state": {"target": {"size": 62914560}}});
        assert_eq!(usable_size(&volume), Some(62914560));
        assert_eq!(usable_size(&json!({"spec": {"size": 67108864}})), Some(67108864));
    }

    #[test]
    fn the_initiator_takes_mayastors_device_uris() {
        assert!(is_nvmf_uri("nvmf+tcp://10.0.0.2:8420/nqn.2019-05.io.openebs:v?hostnqn=nqn.x"));
        assert!(is_nvmf_uri("nvmf://10.0.0.2:8420/nqn.2019-05.io.openebs:v"));
        assert!(!is_nvmf_uri("bdev:///v"));
        assert!(!is_nvmf_uri("nvmf://h:1/n'; rm -rf /"));
    }

    /// Runs an initiator script with a stand-in `initiator` that answers
    /// each call with the next of `answers` ("connect" fails to attach,
    /// "io" fails after attaching, "ok" writes or reads a block).
    fn run_script(script: &str, answers: &[&str]) -> (bool, String, usize) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(dir.path().join("answers"), answers.join("\n") + "\n").unwrap();
        let stand_in = format!(
            "#!/bin/sh\nd={}\nn=$(cat $d/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > $d/calls\n\
             case $(sed -n ${{n}}p $d/answers) in\n\
             connect) echo \"ERROR initiator: {NOT_CONNECTED} '$1': ENXIO\"; exit 1;;\n\
             io) echo 'ERROR initiator: IO error'; exit 1;;\n\
             *) [ \"$4\" = read ] && head -c 4096 /dev/zero > \"$5\"; exit 0;;\nesac\n",
            dir.path().display()
        );
        // busybox's applets, from the host's own tools.
        for (name, body) in [("initiator", stand_in.as_str()), ("busybox", "#!/bin/sh\nexec \"$@\"\n")] {
            std::fs::write(bin.join(name), body).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("sh")
            .args(["-c", &script.replace("sleep 2", "sleep 0")])
            .env("PATH", path)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap_or_default();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), calls.trim().parse().unwrap_or(0))
    }

    #[test]
    fn a_block_that_did_not_connect_is_tried_again_and_an_io_error_is_not() {
        let read = initiator_script("nvmf://h:1/n", &[0, 4096], false);
        let (ok, said, calls) = run_script(&read, &["connect", "ok", "ok"]);
        assert!(ok, "{said}");
        assert_eq!(calls, 3);
        assert!(said.contains("offset 0: attempt 1 did not connect; trying again"), "{said}");

        let (ok, said, calls) = run_script(&read, &["connect", "connect", "connect", "ok"]);
        assert!(!ok && said.contains("failed (attempt 3)"), "{said}");
        assert_eq!(calls, CONNECT_ATTEMPTS as usize);

        let (ok, said, calls) = run_script(&read, &["ok", "io", "ok"]);
        assert!(!ok && said.contains("offset 4096 failed (attempt 1)") && said.contains("IO error"), "{said}");
        assert_eq!(calls, 2);
    }

    #[test]
    fn writes_around_a_fault_go_on_for_their_seconds_and_stop() {
        let once = initiator_passes("nvmf://h:1/n", &[0, 4096], true, 0);
        let (ok, said, calls) = run_script(&once, &[]);
        assert!(ok, "{said}");
        assert_eq!(calls, 2, "one pass over two offsets");
        let (ok, said, calls) = run_script(&initiator_passes("nvmf://h:1/n", &[0, 4096], true, 2), &[]);
        assert!(ok, "{said}");
        assert!(calls >= 4 && calls % 2 == 0, "whole passes for two seconds: {calls} calls");
    }

    #[test]
    fn the_initiator_script_writes_and_reads_each_offset() {
        let write = initiator_script("nvmf://10.0.0.1:8420/nqn.x:1", &[0, 512], true);
        assert!(write.contains("for o in 0 512;"));
        assert!(write.contains("initiator 'nvmf://10.0.0.1:8420/nqn.x:1' --offset $o write"));
        assert!(write.contains("cat > \"$d/pattern\""));
        let read = initiator_script("nvmf://h:1/n", &[1024], false);
        assert!(read.contains("--offset $o read") && read.contains("sha256sum") && !read.contains("cat >"));
    }
}

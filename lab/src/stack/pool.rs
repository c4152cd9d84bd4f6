//! DiskPools: one per io-engine node that asks for a pool, on a backing file
//! under the node's pool mount (kind), a file on the node, or a device (VMs).
//! Ready means `pool_status: Online`; a pool stuck in Creating is explained.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use kube::Client;
use serde_json::{Value, json};

use super::kinds::Kinds;
use super::manifest::Object;
use crate::device::Probe;
use crate::plan::{Context, View, Work};
use crate::plan::{Step, Target};
use crate::provider::Capabilities;
use crate::provider::kind::POOL_MOUNT;
use crate::scenario::Scenario;
use crate::shell::{Cmd, quote};
use crate::state::StateDir;

/// The backing file's name inside the node's pool folder.
const POOL_FILE: &str = "pool.img";

/// The namespace the DiskPool operator watches: the io-engine's.
pub fn namespace(objects: &[Object]) -> String {
    objects
        .iter()
        .find(|o| {
            o.kind() == "DaemonSet"
                && super::image::images(std::slice::from_ref(o)).iter().any(|i| i.contains("io-engine"))
        })
        .and_then(|o| o.namespace())
        .unwrap_or("mayastor")
        .to_string()
}

/// The disk URI io-engine opens for a node's pool: the backing file in the
/// node's pool folder as io-engine sees it (see [`pool_folder`]).
pub fn disk_uri(device: Option<&str>, folder: &str) -> String {
    match device {
        Some(device) => device.to_string(),
        None => format!("aio://{folder}/{POOL_FILE}"),
    }
}

/// The folder io-engine knows as `/var/local/mayastor`: on kind the node
/// container mounts the node's pool folder of the lab's state there; lab's
/// local node is this host, so the manifests' paths are pointed at that
/// folder itself (absolute); VMs have their own `/var/local/mayastor`.
pub fn pool_folder(capabilities: &Capabilities, state: &StateDir, node: &str) -> String {
    if capabilities.node_is_this_host {
        crate::state::absolute(&state.pool_dir(node)).display().to_string()
    } else {
        POOL_MOUNT.to_string()
    }
}

/// On lab's local node, io-engine's `/var/local/mayastor` in the manifests
/// (host paths and mount paths alike) becomes the node's pool folder in the
/// lab's state, which `lab down` removes with the state: nothing is left
/// in the host's own `/var/local`.
pub fn point_at_pool_folder(
    scenario: &Scenario,
    capabilities: &Capabilities,
    state: &StateDir,
    objects: &mut [Object],
) {
    if !capabilities.node_is_this_host {
        return;
    }
    let Some(node) = scenario.planned_nodes().into_iter().next() else { return };
    super::rewrite_path_root(objects, POOL_MOUNT, &pool_folder(capabilities, state, &node.name));
}

/// A DiskPool per io-engine node with a `pool:`, as objects like any other.
pub fn disk_pools(scenario: &Scenario, capabilities: &Capabilities, state: &StateDir, namespace: &str) -> Vec<Object> {
    scenario
        .planned_nodes()
        .into_iter()
        .filter(|n| n.group.runs_io_engine())
        .filter_map(|node| {
            let pool = node.group.pool.as_ref()?;
            let value = json!({
                "apiVersion": "openebs.io/v1beta2",
                "kind": "DiskPool",
                "metadata": {"name": format!("pool-{}", node.name), "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "lab"}},
                "spec": {"node": node.name, "disks": [disk_uri(pool.device.as_deref(), &pool_folder(capabilities, state, &node.name))]},
            });
            Some(Object { file: scenario.source.clone(), line: 0, value })
        })
        .collect()
}

/// Steps that make each backing file: on the host under the kind node's
/// pool folder, or on the node itself. A device needs none, but where the
/// nodes share this host's `/dev` it is checked first (see [`judge_device`]).
pub fn backing_file_steps(scenario: &Scenario, capabilities: &Capabilities, state: &StateDir) -> Vec<Step> {
    let mut steps = Vec::new();
    for node in scenario.planned_nodes().into_iter().filter(|n| n.group.runs_io_engine()) {
        let Some(pool) = &node.group.pool else { continue };
        if let Some(device) = &pool.device {
            if scenario.cluster.provider.shares_host_dev() {
                steps.push(device_step(&node.name, device, pool, state));
            }
            continue;
        }
        let size = pool.size.0.to_string();
        let (target, dir) = if capabilities.pool_files_in_state {
            (Target::Host, state.pool_dir(&node.name))
        } else {
            (Target::Node(node.name.clone()), Path::new(POOL_MOUNT).to_path_buf())
        };
        let file = dir.join(POOL_FILE).display().to_string();
        // Grown, never shrunk or rewritten: a pool's data survives a second
        // deploy. Volume data is user data: root's alone (0700 folder, 0600 file).
        let script = format!(
            "umask 077 && mkdir -p {dir} && chmod 0700 {dir} && {{ [ \"$(stat -c %s {file} 2>/dev/null || echo 0)\" -ge {size} ] || truncate -s {size} {file}; }} && chmod 0600 {file}",
            dir = quote(&dir.display().to_string()),
            file = quote(&file),
        );
        // A file lab made on a node that outlives the lab is recorded, so `lab down` removes it.
        let record = !capabilities.pool_files_in_state;
        let file_title = format!("make the {} pool file on {}", pool.size, node.name);
        steps.push(Step::work(file_title, MakePoolFile { target, file, script: Cmd::sh(script), record }));
    }
    steps
}

/// Where nodes share this host's `/dev`, a pool device is a disk of this
/// machine: a loop device over a file in the lab's state folder, unless the
/// scenario allows a host disk, which the plan then says in capitals. Either
/// way it is probed again just before the pool is made.
fn device_step(node: &str, device: &str, pool: &crate::scenario::PoolSpec, state: &StateDir) -> Step {
    let check = CheckPoolDevice {
        device: device.to_string(),
        allow_host_device: pool.allow_host_device,
        overwrite: pool.overwrite,
        state: state.absolute().display().to_string(),
    };
    if pool.allow_host_device {
        let title =
            format!("USE HOST DEVICE {device} AS THE POOL OF {node} (allowHostDevice): ALL ITS DATA IS OVERWRITTEN");
        return Step::work(title, check);
    }
    Step::work(
        format!("check that {device}, the pool of {node}, is a loop device of this lab and holds nothing"),
        check,
    )
}

#[derive(Debug)]
pub struct CheckPoolDevice {
    pub device: String,
    pub allow_host_device: bool,
    /// The second consent: a signature or a holder on the device does not stop it.
    pub overwrite: bool,
    /// The lab's state folder (absolute): the loop device's file must lie in it.
    pub state: String,
}

impl CheckPoolDevice {
    fn backing_file_cmd(&self) -> Cmd {
        Cmd::new("losetup").args(["--noheadings", "--output", "BACK-FILE", &self.device])
    }

    /// The loop device's file and lab's device probe, in `shell` (this
    /// host), judged: `Err` when the pool must not be made there.
    async fn verdict(&self, shell: &dyn crate::shell::Shell) -> anyhow::Result<Result<String, String>> {
        let output = shell.exec(&self.backing_file_cmd(), None).await?;
        let backing = output.success().then(|| output.stdout.trim().to_string());
        let probe = crate::device::probe(shell, &self.device).await?;
        Ok(judge_device(self, backing.as_deref(), &probe))
    }
}

/// Whether a pool may be made on `device`, given the loop device's backing
/// file (`None`: not a loop device, or not attached) and what is on it. An
/// allowed host disk still must not be mounted, swap, held by another
/// device or carry a signature, unless `overwrite` (the second consent)
/// covers the last two.
pub fn judge_device(check: &CheckPoolDevice, backing_file: Option<&str>, probe: &Probe) -> Result<String, String> {
    let device = &check.device;
    if !check.allow_host_device {
        let Some(file) = backing_file.filter(|f| !f.is_empty()) else {
            return Err(format!(
                "{device} is not a loop device attached to a file: lab makes pools only on its own loop devices where nodes share this host's /dev (`allowHostDevice: true` allows a host disk)"
            ));
        };
        if !Path::new(file).starts_with(&check.state) {
            return Err(format!(
                "{device} is a loop device over {file}, which lies outside the lab's state folder {}: it is not this lab's",
                check.state
            ));
        }
    }
    if probe.kind != crate::device::Kind::Block {
        return Err(format!("{device} is not a block device on this host"));
    }
    match probe.block_refusal() {
        None if check.allow_host_device => {
            Ok(format!("{device} holds nothing lab can see; used as allowed (allowHostDevice)"))
        }
        None => Ok(format!("{device} is a loop device over {} and holds nothing", backing_file.unwrap_or_default())),
        Some(refusal) if refusal.overridable && check.overwrite => {
            Ok(format!("{device}: {refusal}; overwritten as the scenario allows (overwrite: true)"))
        }
        Some(refusal) => {
            let consent = if check.allow_host_device {
                "add `overwrite: true` to the pool"
            } else {
                "clear it first (`wipefs -a`), or add `allowHostDevice: true` and `overwrite: true`"
            };
            Err(crate::device::explain(&refusal, consent))
        }
    }
}

/// Every pool device of a lab whose nodes share this host's `/dev`,
/// checked on this host before a command changes anything; a refusal names
/// the scenario's file, line and field.
pub async fn check_devices_here(scenario: &Scenario, state: &StateDir) -> anyhow::Result<()> {
    if !scenario.cluster.provider.shares_host_dev() {
        return Ok(());
    }
    for (i, group) in scenario.cluster.nodes.iter().enumerate() {
        let Some(pool) = &group.pool else { continue };
        let Some(device) = &pool.device else { continue };
        let check = CheckPoolDevice {
            device: device.clone(),
            allow_host_device: pool.allow_host_device,
            overwrite: pool.overwrite,
            state: state.absolute().display().to_string(),
        };
        if let Err(why) = check.verdict(&crate::shell::LocalShell).await? {
            return Err(scenario.problem(&format!("cluster.nodes[{i}].pool.device"), why).into());
        }
    }
    Ok(())
}

#[async_trait::async_trait(?Send)]
impl crate::plan::Work for CheckPoolDevice {
    fn describe(&self, view: &crate::plan::View<'_>) -> String {
        let probe = crate::device::probe_cmd(&self.device);
        let mut checks = vec![crate::plan::Detail::when(
            probe,
            "with lab's device probe on stdin: it must not be mounted, swap, held, or carry a signature",
        )];
        if self.allow_host_device {
            let note = format!("{} IS A DISK OF THIS HOST; ITS DATA IS OVERWRITTEN", self.device);
            checks.insert(0, crate::plan::Detail::Note(note));
        } else {
            checks.insert(
                0,
                crate::plan::Detail::when(self.backing_file_cmd(), "its file must lie in the lab's state folder"),
            );
        }
        view.details(&Target::Host, &checks)
    }

    async fn run(&self, ctx: &crate::plan::Context<'_>) -> anyhow::Result<Option<String>> {
        let verdict = self.verdict(&ctx.shell(&Target::Host)).await?;
        verdict.map(Some).map_err(|why| anyhow::anyhow!("pool device {why}"))
    }
}

/// Make (or grow) a pool's backing file; when it did not exist, record it for `lab down`.
#[derive(Debug)]
pub struct MakePoolFile {
    pub target: Target,
    pub file: String,
    pub script: Cmd,
    pub record: bool,
}

#[async_trait::async_trait(?Send)]
impl crate::plan::Work for MakePoolFile {
    fn describe(&self, view: &crate::plan::View<'_>) -> String {
        let mut details = vec![crate::plan::Detail::run(self.script.clone())];
        if self.record {
            details.push(crate::plan::Detail::Note(format!("a new {} is recorded; lab down removes it", self.file)));
        }
        view.details(&self.target, &details)
    }

    async fn run(&self, ctx: &crate::plan::Context<'_>) -> anyhow::Result<Option<String>> {
        use crate::shell::Shell as _;
        let shell = ctx.shell(&self.target);
        let existed = shell.exec(&Cmd::new("test").args(["-e", &self.file]), None).await?.success();
        if self.record && !existed {
            let log = crate::prepare::UndoLog::new(ctx.state.changes());
            log.remember(&self.target, crate::prepare::undo::Change::File { path: self.file.clone(), was: None })?;
        }
        shell.run(&self.script).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(if existed {
            format!("{} was there; kept, grown if smaller", self.file)
        } else {
            format!("made {}", self.file)
        }))
    }
}

/// Online, or what the pool reports.
pub fn pool_state(pool: &Value) -> Result<(), String> {
    let state = pool.pointer("/status/cr_state").and_then(Value::as_str).unwrap_or("no status yet");
    match pool.pointer("/status/pool_status").and_then(Value::as_str) {
        Some("Online") => Ok(()),
        Some(status) => Err(format!("{state}, {status}")),
        None => Err(state.to_string()),
    }
}

/// Why a pool may be stuck, from what the node looks like.
pub fn stuck_reason(node_labels: Option<&Value>, io_engine_running: bool) -> String {
    let labelled = node_labels.and_then(|l| l.get("openebs.io/engine")).and_then(Value::as_str) == Some("mayastor");
    match (labelled, io_engine_running) {
        (false, _) => "its node lacks the label openebs.io/engine=mayastor, so no io-engine runs there".into(),
        (true, false) => "no io-engine pod is running on its node (see the io-engine DaemonSet's pods)".into(),
        (true, true) => "the io-engine on its node runs; check the disk path and the diskpool operator's log".into(),
    }
}

/// Wait until every pool is Online; on timeout, each stuck pool is named with a likely cause.
/// Wait until these DiskPools are Online.
#[derive(Debug)]
pub struct WaitPools {
    pub pools: Vec<Object>,
    pub timeout: Duration,
}

#[async_trait::async_trait(?Send)]
impl Work for WaitPools {
    fn describe(&self, _view: &View<'_>) -> String {
        let names: Vec<String> = self.pools.iter().map(|o| o.describe()).collect();
        format!("pool_status Online within {}s: {}", self.timeout.as_secs(), names.join(", "))
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = ctx.client().await?;
        Ok(Some(wait_online(&client, &self.pools, self.timeout, Duration::from_secs(2)).await?))
    }
}

pub async fn wait_online(
    client: &Client,
    pools: &[Object],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<String> {
    let mut kinds = Kinds::default();
    let stuck = crate::wait::until_none_pending(timeout, poll, async || {
        let mut stuck = Vec::new();
        for pool in pools {
            let api = kinds.api(client, pool).await?;
            let found = api.get_opt(pool.name()).await?;
            let value = found.map(|p| serde_json::to_value(p).unwrap_or_default()).unwrap_or_default();
            if let Err(state) = pool_state(&value) {
                stuck.push((pool, state));
            }
        }
        Ok::<_, anyhow::Error>(stuck)
    })
    .await?;
    if stuck.is_empty() {
        return Ok(format!("{} pool(s) Online", pools.len()));
    }
    let mut lines = Vec::new();
    for (pool, state) in stuck {
        let node = pool.value.pointer("/spec/node").and_then(Value::as_str).unwrap_or_default();
        let reason = explain(client, node).await;
        lines.push(format!("{} on {node}: {state}; {reason}", pool.describe()));
    }
    bail!("pools not Online after {}s:\n{}", timeout.as_secs(), lines.join("\n"));
}

async fn explain(client: &Client, node: &str) -> String {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, ListParams};
    let labels = Api::<Node>::all(client.clone())
        .get_opt(node)
        .await
        .ok()
        .flatten()
        .and_then(|n| serde_json::to_value(n.metadata.labels).ok());
    let running = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels("app=io-engine").fields(&format!("spec.nodeName={node}")))
        .await
        .map(|pods| pods.items.iter().any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
        .unwrap_or(false);
    stuck_reason(labels.as_ref(), running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_ready_only_when_online() {
        let pool = |status: Value| json!({"status": status});
        assert_eq!(pool_state(&json!({})), Err("no status yet".into()));
        assert_eq!(pool_state(&pool(json!({"cr_state": "Creating"}))), Err("Creating".into()));
        assert_eq!(
            pool_state(&pool(json!({"cr_state": "Created", "pool_status": "Unknown"}))),
            Err("Created, Unknown".into())
        );
        assert_eq!(pool_state(&pool(json!({"cr_state": "Created", "pool_status": "Online"}))), Ok(()));
    }

    #[test]
    fn a_stuck_pool_is_explained_by_its_node() {
        assert!(
            stuck_reason(Some(&json!({"kubernetes.io/os": "linux"})), false)
                .contains("lacks the label openebs.io/engine=mayastor")
        );
        assert!(
            stuck_reason(Some(&json!({"openebs.io/engine": "mayastor"})), false)
                .contains("no io-engine pod is running")
        );
        assert!(stuck_reason(Some(&json!({"openebs.io/engine": "mayastor"})), true).contains("check the disk path"));
    }
}

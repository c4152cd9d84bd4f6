//! Workload steps: a pod using a claim, Running; fio inside it on the volume.

use std::time::Duration;

use async_trait::async_trait;
use cucumber::{then, when};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::super::world::LabWorld;
use super::namespace;
use crate::shell::{Cmd, Output, RunError, Shell, quote};

/// Where a test pod mounts its claim.
pub const MOUNT: &str = "/volume";

/// A pod that keeps running with `claim` mounted at [`MOUNT`].
pub fn pod_with_claim(name: &str, claim: &str, image: &str) -> Pod {
    use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaimVolumeSource, PodSpec, Volume, VolumeMount};
    Pod {
        metadata: super::lab_meta(name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "fio".into(),
                image: Some(image.into()),
                command: Some(vec!["sleep".into(), "86400".into()]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: MOUNT.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            restart_policy: Some("Never".into()),
            // `sleep` as PID 1 ignores SIGTERM: without this a deletion waits 30s.
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An image the scenario names: lab's build when a component builds that
/// repository (`fio.podImage: lab-local/fio`), else as written.
fn built_or_named(world: &LabWorld, image: &str) -> Result<String, String> {
    let images = crate::stack::ImageMap::of(&world.ctx.scenario, &world.ctx.state).map_err(|e| format!("{e:#}"))?;
    let built = images.reference_for(image).map_err(|e| format!("{e:#}"))?;
    Ok(built.unwrap_or_else(|| image.to_string()))
}

#[when(regex = r#"^I start a pod "([^"]+)" using the PVC "([^"]+)"$"#)]
pub(crate) async fn start_pod(world: &mut LabWorld, name: String, claim: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    let image = built_or_named(world, &world.ctx.scenario.fio.pod_image)?;
    let pod = pod_with_claim(&name, &claim, &image);
    pods.create(&PostParams::default(), &pod).await.map_err(|e| format!("creating pod {ns}/{name}: {e}"))?;
    Ok(())
}

#[then(regex = r#"^the pod "([^"]+)" is Running within (\d+) seconds$"#)]
pub(crate) async fn pod_running(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    let not_running =
        crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(1), async || {
            let pod = pods.get(&name).await.map_err(|e| format!("reading pod {ns}/{name}: {e}"))?;
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                return Ok(vec![]);
            }
            let why = crate::stack::ready::pod_trouble(&pod).map(|(line, _)| line).unwrap_or_else(|| {
                format!("phase {}", pod.status.and_then(|s| s.phase).unwrap_or_else(|| "unknown".into()))
            });
            Ok::<_, String>(vec![why])
        })
        .await?;
    match not_running.first() {
        None => Ok(()),
        Some(why) => Err(format!("pod {ns}/{name} is not Running after {seconds}s, expected Running: {why}")),
    }
}

/// A shell inside a pod, through kube exec.
pub struct PodShell {
    pub pods: Api<Pod>,
    pub namespace: String,
    pub name: String,
}

#[async_trait]
impl Shell for PodShell {
    fn place(&self) -> String {
        format!("pod {}/{}", self.namespace, self.name)
    }

    fn display(&self, cmd: &Cmd) -> String {
        let argv: Vec<String> = cmd.argv().iter().map(|w| quote(w)).collect();
        format!("kubectl -n {} exec -i {} -- {}", quote(&self.namespace), quote(&self.name), argv.join(" "))
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        crate::provider::exec_in_pod(&self.pods, &self.name, None, cmd.argv(), stdin)
            .await
            .map_err(|e| RunError::Spawn { place: self.place(), command: self.display(cmd), reason: e.to_string() })
    }
}

#[then(regex = r#"^the pod "([^"]+)" is gone within (\d+) seconds$"#)]
async fn pod_gone(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    let left = crate::wait::until_none_pending(Duration::from_secs(seconds), Duration::from_secs(1), async || {
        let pod = pods.get_opt(&name).await.map_err(|e| format!("reading pod {ns}/{name}: {e}"))?;
        Ok::<_, String>(pod.map(|_| name.clone()).into_iter().collect())
    })
    .await?;
    if left.is_empty() { Ok(()) } else { Err(format!("pod {ns}/{name} is still there after {seconds}s")) }
}

/// The container's log in every pod of a DaemonSet, one per node: each must carry the line.
#[then(regex = r#"^the container "([^"]+)" of every pod of the DaemonSet "([^"/]+)/([^"]+)" logs "([^"]*)"$"#)]
async fn daemon_set_logs(
    world: &mut LabWorld,
    container: String,
    ns: String,
    name: String,
    expected: String,
) -> Result<(), String> {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let client = world.ctx.client()?;
    let set = Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .get(&name)
        .await
        .map_err(|e| format!("reading DaemonSet {ns}/{name}: {e}"))?;
    let selector = set
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let found = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("listing the pods of DaemonSet {ns}/{name}: {e}"))?;
    if found.items.is_empty() {
        return Err(format!("DaemonSet {ns}/{name} has no pod"));
    }
    let params = kube::api::LogParams { container: Some(container.clone()), ..Default::default() };
    for pod in found.items {
        let pod_name = pod.metadata.name.unwrap_or_default();
        let logs = pods
            .logs(&pod_name, &params)
            .await
            .map_err(|e| format!("reading the logs of {container} in pod {ns}/{pod_name}: {e}"))?;
        if !logs.lines().any(|line| line.contains(&expected)) {
            let head: Vec<&str> = logs.lines().take(5).collect();
            return Err(format!(
                "{container} in pod {ns}/{pod_name} did not log {expected:?}; it began:\n{}",
                head.join("\n")
            ));
        }
    }
    Ok(())
}

fn pod_shell(world: &LabWorld, ns: &str, pod: &str) -> Result<PodShell, String> {
    Ok(PodShell { pods: Api::namespaced(world.ctx.client()?, ns), namespace: ns.to_string(), name: pod.to_string() })
}

/// Where fio's raw output of a pattern job in a pod is kept.
fn pattern_raw(world: &LabWorld, what: &str, pod: &str) -> std::path::PathBuf {
    let ctx = &world.ctx;
    ctx.results.join(ctx.scenario.name()).join("raw").join(format!("{what}-{}-{pod}.json", ctx.label))
}

const PATTERN_FILE: &str = "pattern.data";

#[when(regex = r#"^the pod "([^"]+)" writes a verifiable pattern of (\d+) MiB to its volume$"#)]
pub(crate) async fn write_pattern(world: &mut LabWorld, pod: String, mib: u64) -> Result<(), String> {
    let ns = namespace(world).await?;
    let shell = pod_shell(world, &ns, &pod)?;
    let raw = pattern_raw(world, "write-pattern", &pod);
    crate::fio::pattern(&shell, &format!("{MOUNT}/{PATTERN_FILE}"), mib, false, &raw)
        .await
        .map_err(|e| format!("{e:#}"))?;
    world.pattern_mib = Some(mib);
    Ok(())
}

#[then(regex = r#"^the pattern on the volume verifies in the pod "([^"]+)"$"#)]
pub(crate) async fn verify_pattern(world: &mut LabWorld, pod: String) -> Result<(), String> {
    let mib = world.pattern_mib.ok_or("no pattern was written in this scenario (`writes a verifiable pattern`)")?;
    let ns = namespace(world).await?;
    let shell = pod_shell(world, &ns, &pod)?;
    let raw = pattern_raw(world, "verify-pattern", &pod);
    crate::fio::pattern(&shell, &format!("{MOUNT}/{PATTERN_FILE}"), mib, true, &raw)
        .await
        .map(|_| ())
        .map_err(|e| format!("the data on the volume did not verify: {e:#}"))
}

#[when(regex = r#"^I run the fio profile "([^"]+)" (\d+) times? in the pod "([^"]+)"$"#)]
async fn fio_in_pod(world: &mut LabWorld, profile: String, times: usize, pod: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let shell = pod_shell(world, &ns, &pod)?;
    let target = format!("{MOUNT}/fio.data");
    super::fio::run_profile_on(world, &profile, times, &shell, &target, &format!("pvc in pod {pod}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_pod_mounts_its_claim_and_round_trips_through_the_typed_api() {
        let pod = pod_with_claim("fio", "data", "example/fio:1");
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(json["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "data");
        assert_eq!(json["spec"]["containers"][0]["volumeMounts"][0]["mountPath"], MOUNT);
        let back: Pod = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), json);
    }
}

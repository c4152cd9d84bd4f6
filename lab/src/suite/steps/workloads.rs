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
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[when(regex = r#"^I start a pod "([^"]+)" using the PVC "([^"]+)"$"#)]
async fn start_pod(world: &mut LabWorld, name: String, claim: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    let pod = pod_with_claim(&name, &claim, &world.ctx.scenario.fio.pod_image);
    pods.create(&PostParams::default(), &pod).await.map_err(|e| format!("creating pod {ns}/{name}: {e}"))?;
    Ok(())
}

/// A pod that runs a component's image as it is (its own entrypoint), never pulled.
fn pod_of_image(name: &str, image: &str) -> Pod {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    Pod {
        metadata: super::lab_meta(name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: name.into(),
                image: Some(image.into()),
                image_pull_policy: Some("Never".into()),
                ..Default::default()
            }],
            restart_policy: Some("Never".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[when(regex = r#"^I start a pod "([^"]+)" from the component "([^"]+)"$"#)]
async fn start_component_pod(world: &mut LabWorld, name: String, component: String) -> Result<(), String> {
    let builds = crate::build::resolve(&world.ctx.scenario, &world.ctx.state, Some(&component))
        .map_err(|e| format!("component {component}: {e:#}"))?;
    let image = builds
        .first()
        .map(|b| b.refs())
        .transpose()
        .map_err(|e| format!("component {component}: {e:#}"))?
        .and_then(|refs| refs.into_iter().next())
        .ok_or_else(|| format!("component {component} makes no image"))?;
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    pods.create(&PostParams::default(), &pod_of_image(&name, &image))
        .await
        .map_err(|e| format!("creating pod {ns}/{name} with {image}: {e}"))?;
    Ok(())
}

#[then(regex = r#"^the pod "([^"]+)" logs "([^"]*)"$"#)]
async fn pod_logs(world: &mut LabWorld, name: String, expected: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let pods: Api<Pod> = Api::namespaced(world.ctx.client()?, &ns);
    let logs =
        pods.logs(&name, &Default::default()).await.map_err(|e| format!("reading the logs of pod {ns}/{name}: {e}"))?;
    if logs.lines().any(|line| line.contains(&expected)) {
        Ok(())
    } else {
        Err(format!("pod {ns}/{name} did not log {expected:?}; it logged:\n{logs}"))
    }
}

#[then(regex = r#"^the pod "([^"]+)" is Running within (\d+) seconds$"#)]
async fn pod_running(world: &mut LabWorld, name: String, seconds: u64) -> Result<(), String> {
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

#[when(regex = r#"^I run the fio profile "([^"]+)" (\d+) times? in the pod "([^"]+)"$"#)]
async fn fio_in_pod(world: &mut LabWorld, profile: String, times: usize, pod: String) -> Result<(), String> {
    let ns = namespace(world).await?;
    let shell = PodShell { pods: Api::namespaced(world.ctx.client()?, &ns), namespace: ns, name: pod.clone() };
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

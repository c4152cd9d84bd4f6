//! "Really ready": a workload is ready when its controller has seen the
//! current generation and every replica is updated and available. While
//! waiting, the pods say why not: an image that cannot be pulled, a
//! container that keeps crashing (with its last log lines), a pod the
//! scheduler cannot place (with the scheduler's reason).

use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use super::manifest::Object;
use crate::plan::{Context, View, Work};

/// Ready, or why not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(String),
}

fn caught_up(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= generation.unwrap_or(0)
}

pub fn deployment(d: &Deployment) -> Readiness {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else { return Readiness::Waiting("no status yet".into()) };
    if !caught_up(d.metadata.generation, status.observed_generation) {
        return Readiness::Waiting("the controller has not seen the latest spec".into());
    }
    let (updated, available) = (status.updated_replicas.unwrap_or(0), status.available_replicas.unwrap_or(0));
    if updated >= want && available >= want && status.replicas.unwrap_or(0) == want {
        Readiness::Ready
    } else {
        Readiness::Waiting(format!("{available}/{want} available, {updated}/{want} updated"))
    }
}

pub fn daemon_set(d: &DaemonSet) -> Readiness {
    let Some(status) = &d.status else { return Readiness::Waiting("no status yet".into()) };
    if !caught_up(d.metadata.generation, status.observed_generation) {
        return Readiness::Waiting("the controller has not seen the latest spec".into());
    }
    let want = status.desired_number_scheduled;
    let (updated, available) = (status.updated_number_scheduled.unwrap_or(0), status.number_available.unwrap_or(0));
    if want == 0 {
        return Readiness::Waiting("no node matches its node selector".into());
    }
    if updated >= want && available >= want {
        Readiness::Ready
    } else {
        Readiness::Waiting(format!("{available}/{want} available, {updated}/{want} updated"))
    }
}

pub fn stateful_set(s: &StatefulSet) -> Readiness {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else { return Readiness::Waiting("no status yet".into()) };
    if !caught_up(s.metadata.generation, status.observed_generation) {
        return Readiness::Waiting("the controller has not seen the latest spec".into());
    }
    let (ready, updated) = (status.ready_replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0));
    if ready >= want && updated >= want {
        Readiness::Ready
    } else {
        Readiness::Waiting(format!("{ready}/{want} ready, {updated}/{want} updated"))
    }
}

/// What keeps a pod from running, if anything recognisable: an image pull
/// failure (naming the image), a crash loop (naming the container), or a
/// scheduling failure (with the scheduler's message).
pub fn pod_trouble(pod: &Pod) -> Option<(String, Option<String>)> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        match waiting.reason.as_deref() {
            Some(reason @ ("ImagePullBackOff" | "ErrImagePull" | "InvalidImageName")) => {
                return Some((
                    format!(
                        "pod {name}: {reason} for image {} ({})",
                        container.image,
                        waiting.message.clone().unwrap_or_default()
                    ),
                    None,
                ));
            }
            Some("CrashLoopBackOff") => {
                let restarts = container.restart_count;
                return Some((
                    format!("pod {name}: container {} is crash-looping ({restarts} restarts)", container.name),
                    Some(container.name.clone()),
                ));
            }
            _ => {}
        }
    }
    if status.phase.as_deref() == Some("Pending") {
        let unschedulable =
            status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        return Some((
            format!("pod {name}: cannot be scheduled: {}", unschedulable.message.clone().unwrap_or_default()),
            None,
        ));
    }
    None
}

/// Wait until every workload among `objects` is ready; on timeout, the
/// error lists each one that is not, with what its pods report.
/// Wait until the workloads among these objects are ready.
#[derive(Debug)]
pub struct WaitReady {
    pub objects: Vec<Object>,
    pub timeout: Duration,
}

#[async_trait::async_trait(?Send)]
impl Work for WaitReady {
    fn describe(&self, _view: &View<'_>) -> String {
        let names: Vec<String> = self
            .objects
            .iter()
            .filter(|o| matches!(o.kind(), "Deployment" | "DaemonSet" | "StatefulSet"))
            .map(|o| o.describe())
            .collect();
        format!("at most {}s for: {}", self.timeout.as_secs(), names.join(", "))
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = ctx.client().await?;
        Ok(Some(wait(&client, &self.objects, self.timeout, Duration::from_secs(2)).await?))
    }
}

pub async fn wait(client: &Client, objects: &[Object], timeout: Duration, poll: Duration) -> anyhow::Result<String> {
    let workloads: Vec<&Object> =
        objects.iter().filter(|o| matches!(o.kind(), "Deployment" | "DaemonSet" | "StatefulSet")).collect();
    let waiting = crate::wait::until_none_pending(timeout, poll, async || {
        let mut waiting = Vec::new();
        for workload in &workloads {
            if let Readiness::Waiting(why) = check(client, workload).await? {
                waiting.push((*workload, why));
            }
        }
        Ok::<_, anyhow::Error>(waiting)
    })
    .await?;
    if waiting.is_empty() {
        return Ok(format!("{} workload(s) ready", workloads.len()));
    }
    let mut report = Vec::new();
    for (workload, why) in waiting {
        report.push(format!("{}: {why}", workload.describe()));
        for line in troubles(client, workload).await? {
            report.push(format!("  {line}"));
        }
    }
    bail!("not ready after {}s:\n{}", timeout.as_secs(), report.join("\n"));
}

async fn check(client: &Client, workload: &Object) -> anyhow::Result<Readiness> {
    let namespace = workload.namespace().unwrap_or("default");
    let name = workload.name();
    let missing = || Readiness::Waiting("not found".into());
    Ok(match workload.kind() {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .as_ref()
            .map_or_else(missing, deployment),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .as_ref()
            .map_or_else(missing, daemon_set),
        _ => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .as_ref()
            .map_or_else(missing, stateful_set),
    })
}

/// What the workload's pods report, with a crashing container's last log lines.
async fn troubles(client: &Client, workload: &Object) -> anyhow::Result<Vec<String>> {
    let labels = workload.value.pointer("/spec/selector/matchLabels").and_then(|l| l.as_object());
    let Some(labels) = labels else { return Ok(Vec::new()) };
    let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), workload.namespace().unwrap_or("default"));
    let mut out = Vec::new();
    for pod in pods.list(&ListParams::default().labels(&selector.join(","))).await? {
        let Some((line, crashing)) = pod_trouble(&pod) else { continue };
        out.push(line);
        if let Some(container) = crashing {
            let params =
                LogParams { container: Some(container), previous: true, tail_lines: Some(10), ..LogParams::default() };
            if let Ok(logs) = pods.logs(&pod.metadata.name.clone().unwrap_or_default(), &params).await {
                out.extend(logs.lines().map(|l| format!("  | {l}")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_daemon_set_mid_rollout_is_not_ready_until_every_node_runs_the_new_pods() {
        let ds = |generation: i64, observed: i64, desired: i32, updated: i32, available: i32| -> DaemonSet {
            from(json!({"metadata": {"name": "io-engine", "generation": generation},
                        "status": {"observedGeneration": observed, "desiredNumberScheduled": desired, "currentNumberScheduled": desired,
                                   "numberMisscheduled": 0, "numberReady": available, "updatedNumberScheduled": updated, "numberAvailable": available}}))
        };
        let cases = [
            (ds(2, 1, 3, 3, 3), Readiness::Waiting("the controller has not seen the latest spec".into())),
            (ds(2, 2, 3, 1, 3), Readiness::Waiting("3/3 available, 1/3 updated".into())),
            (ds(2, 2, 3, 3, 2), Readiness::Waiting("2/3 available, 3/3 updated".into())),
            (ds(2, 2, 0, 0, 0), Readiness::Waiting("no node matches its node selector".into())),
            (ds(2, 2, 3, 3, 3), Readiness::Ready),
        ];
        for (set, want) in cases {
            assert_eq!(daemon_set(&set), want, "{:?}", set.status);
        }
    }

    #[test]
    fn deployments_and_stateful_sets_count_updated_and_available_replicas() {
        let deploy: Deployment = from(
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 1, "selector": {}, "template": {}},
                                             "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0}}),
        );
        assert_eq!(deployment(&deploy), Readiness::Waiting("0/1 available, 1/1 updated".into()));
        let ready: Deployment = from(
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 1, "selector": {}, "template": {}},
                                            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}),
        );
        assert_eq!(deployment(&ready), Readiness::Ready);
        let etcd: StatefulSet = from(
            json!({"metadata": {"name": "etcd", "generation": 1}, "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": "e"},
                                            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0, "updatedReplicas": 1}}),
        );
        assert_eq!(stateful_set(&etcd), Readiness::Waiting("0/1 ready, 1/1 updated".into()));
    }

    #[test]
    fn pods_say_why_they_do_not_run() {
        let pull: Pod = from(
            json!({"metadata": {"name": "io-engine-x"}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "io-engine", "image": "openebs/mayastor-io-engine:lab-1", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}}),
        );
        assert_eq!(
            pod_trouble(&pull).unwrap().0,
            "pod io-engine-x: ImagePullBackOff for image openebs/mayastor-io-engine:lab-1 (Back-off pulling image)"
        );
        let crash: Pod =
            from(json!({"metadata": {"name": "core-y"}, "status": {"phase": "Running", "containerStatuses": [
            {"name": "agent-core", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}));
        assert_eq!(
            pod_trouble(&crash).unwrap(),
            (
                "pod core-y: container agent-core is crash-looping (4 restarts)".to_string(),
                Some("agent-core".to_string())
            )
        );
        let pending: Pod =
            from(json!({"metadata": {"name": "io-engine-z"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/2 nodes are available: 2 Insufficient hugepages-2Mi."}]}}));
        assert_eq!(
            pod_trouble(&pending).unwrap().0,
            "pod io-engine-z: cannot be scheduled: 0/2 nodes are available: 2 Insufficient hugepages-2Mi."
        );
        let running: Pod = from(json!({"metadata": {"name": "fine"}, "status": {"phase": "Running"}}));
        assert_eq!(pod_trouble(&running), None);
    }
}

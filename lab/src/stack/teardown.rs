//! Teardown in the order finalizers demand: the workloads lab's scenarios
//! left on the lab's volumes, then their claims (until the volumes are
//! gone), then the pools, then the stack in reverse, CRDs last. Only what
//! carries this lab's mark is deleted (see [`super::ownership`]); what stays
//! is named with the reason. Each stage waits for what it deleted to be
//! gone, and a stuck object is named with its finalizers.

use std::time::Duration;

use anyhow::bail;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};
use serde_json::json;

use super::kinds::Kinds;
use super::manifest::Object;
use crate::plan::{Context, View, Work};

/// Remove the workloads using these storage classes' claims in namespaces
/// this lab made, then the claims, until their volumes are gone.
#[derive(Debug)]
pub struct RemoveVolumes {
    pub classes: Vec<String>,
    /// The lab instance whose scenario namespaces are searched.
    pub lab: String,
    pub instance: String,
    pub timeout: Duration,
}

#[async_trait::async_trait(?Send)]
impl Work for RemoveVolumes {
    fn describe(&self, _view: &View<'_>) -> String {
        format!(
            "api: in the namespaces of lab's scenarios ({}): the pods (by their controllers) using claims of {}, \
             then the claims; waits for the volumes (at most {}s each); claims elsewhere are not lab's and stay",
            super::ownership::scenario_namespaces(&self.lab, "<this lab instance's id>"),
            self.classes.join(", "),
            self.timeout.as_secs()
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = match ctx.teardown_client().await {
            Ok(client) => client,
            Err(why) => return Ok(Some(format!("{why}; skipped"))),
        };
        let namespaces = super::ownership::scenario_namespaces(&self.lab, &self.instance);
        Ok(Some(remove_volumes(&client, &self.classes, &namespaces, self.timeout, Duration::from_secs(2)).await?))
    }
}

/// Delete the objects that are this lab's, wait until they are gone, and
/// say which stay and why.
#[derive(Debug)]
pub struct Delete {
    pub objects: Vec<Object>,
    pub timeout: Duration,
    pub ownership: std::sync::Arc<super::ownership::Ownership>,
}

#[async_trait::async_trait(?Send)]
impl Work for Delete {
    fn describe(&self, _view: &View<'_>) -> String {
        let names: Vec<String> = self.objects.iter().map(|o| o.describe()).collect();
        let which = if self.ownership.only_recorded {
            "those this run created"
        } else if self.ownership.delete_adopted {
            "those labelled for this lab and applied by lab, adopted ones too"
        } else {
            "those labelled for this lab and applied by lab, not adopted ones"
        };
        format!(
            "api: delete {}; of them only {which}; waits until gone (at most {}s)",
            names.join(", "),
            self.timeout.as_secs()
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = match ctx.teardown_client().await {
            Ok(client) => client,
            Err(why) => return Ok(Some(format!("{why}; skipped"))),
        };
        let (delete, left) = super::ownership::deletable(&client, &self.objects, &self.ownership).await?;
        let mut note = delete_and_wait(&client, &delete, self.timeout, Duration::from_secs(2)).await?;
        if !left.is_empty() {
            ctx.note(&format!("left in the cluster: {}", left.join("; ")));
            note.push_str(&format!("; left {}: {}", left.len(), left.join("; ")));
        }
        Ok(Some(note))
    }
}

pub async fn delete_and_wait(
    client: &Client,
    objects: &[Object],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<String> {
    let mut kinds = Kinds::default();
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    for object in objects {
        let api = kinds.api(client, object).await?;
        match api.delete(object.name(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e).map_err(|e| anyhow::anyhow!("deleting {}: {e}", object.describe())),
        }
    }
    let left = crate::wait::until_none_pending(timeout, poll, async || {
        let mut left = Vec::new();
        for object in objects {
            let api = kinds.api(client, object).await?;
            if let Some(found) = api.get_opt(object.name()).await? {
                let finalizers = found.metadata.finalizers.unwrap_or_default();
                left.push(if finalizers.is_empty() {
                    object.describe()
                } else {
                    format!("{} (held by finalizers {})", object.describe(), finalizers.join(", "))
                });
            }
        }
        Ok::<_, anyhow::Error>(left)
    })
    .await?;
    if !left.is_empty() {
        bail!("still there after {}s: {}", timeout.as_secs(), left.join("; "));
    }
    Ok(format!("{} object(s) gone", objects.len()))
}

/// An object to delete, made from a kind and a name.
fn reference(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Object {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    Object {
        file: "cluster".into(),
        line: 0,
        value: json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
    }
}

/// The claims of the given storage classes in this lab's namespaces, and
/// what runs on them: each pod's controller (a Deployment for a
/// ReplicaSet's pods), or the pod itself. Claims of these classes elsewhere
/// are someone else's: they come back last, by name, to be reported.
pub async fn volume_users(
    client: &Client,
    classes: &[String],
    namespaces: &str,
) -> anyhow::Result<(Vec<Object>, Vec<Object>, Vec<Object>, Vec<String>)> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
    let selector = ListParams::default().labels(namespaces);
    let ours: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let (claims, others): (Vec<PersistentVolumeClaim>, Vec<PersistentVolumeClaim>) =
        Api::<PersistentVolumeClaim>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|c| {
                c.spec.as_ref().and_then(|s| s.storage_class_name.as_ref()).is_some_and(|sc| classes.contains(sc))
            })
            .partition(|c| c.metadata.namespace.as_ref().is_some_and(|ns| ours.contains(ns)));
    let others = others
        .iter()
        .map(|c| {
            format!(
                "PersistentVolumeClaim {}/{}",
                c.metadata.namespace.clone().unwrap_or_default(),
                c.metadata.name.clone().unwrap_or_default()
            )
        })
        .collect();
    let claim_key = |c: &PersistentVolumeClaim| {
        (c.metadata.namespace.clone().unwrap_or_default(), c.metadata.name.clone().unwrap_or_default())
    };
    let keys: Vec<(String, String)> = claims.iter().map(claim_key).collect();
    let mut users: Vec<Object> = Vec::new();
    for pod in Api::<Pod>::all(client.clone()).list(&ListParams::default()).await?.items {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let uses = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()).any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| keys.contains(&(namespace.clone(), c.claim_name.clone())))
        });
        if !uses {
            continue;
        }
        let owner = pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).cloned();
        let user = match owner {
            Some(owner) if owner.kind == "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), &namespace).get_opt(&owner.name).await?;
                let deployment = rs
                    .and_then(|rs| rs.metadata.owner_references)
                    .and_then(|refs| refs.into_iter().find(|o| o.kind == "Deployment"));
                match deployment {
                    Some(d) => reference("apps/v1", "Deployment", Some(&namespace), &d.name),
                    None => reference("apps/v1", "ReplicaSet", Some(&namespace), &owner.name),
                }
            }
            Some(owner) => reference(&owner.api_version, &owner.kind, Some(&namespace), &owner.name),
            None => reference("v1", "Pod", Some(&namespace), pod.metadata.name.as_deref().unwrap_or_default()),
        };
        if !users.contains(&user) {
            users.push(user);
        }
    }
    let claim_objects =
        keys.iter().map(|(ns, name)| reference("v1", "PersistentVolumeClaim", Some(ns), name)).collect();
    // Only a volume its driver deletes with the claim is waited for; one
    // kept by its reclaim policy (a volume made by hand, say) stays, and is named.
    let mut others: Vec<String> = others;
    let mut volumes = Vec::new();
    let pvs = Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(client.clone());
    for name in claims.iter().filter_map(|c| c.spec.as_ref().and_then(|s| s.volume_name.clone())) {
        let policy = pvs.get_opt(&name).await?.and_then(|pv| pv.spec?.persistent_volume_reclaim_policy);
        match policy.as_deref() {
            Some("Delete") => volumes.push(reference("v1", "PersistentVolume", None, &name)),
            Some(kept) => {
                others.push(format!("PersistentVolume {name} (reclaim policy {kept}: it outlives its claim)"))
            }
            None => {}
        }
    }
    Ok((users, claim_objects, volumes, others))
}

/// The storage classes among the stack's objects.
pub fn storage_classes(objects: &[Object]) -> Vec<String> {
    objects.iter().filter(|o| o.kind() == "StorageClass").map(|o| o.name().to_string()).collect()
}

/// Stage one and two of a teardown: the volumes' users, then the claims until their volumes are gone.
pub async fn remove_volumes(
    client: &Client,
    classes: &[String],
    namespaces: &str,
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<String> {
    let (users, claims, volumes, others) = volume_users(client, classes, namespaces).await?;
    if !users.is_empty() {
        delete_and_wait(client, &users, timeout, poll).await?;
    }
    if !claims.is_empty() {
        delete_and_wait(client, &claims, timeout, poll).await?;
        // Deleting a claim deletes its volume through the CSI driver; wait for that too.
        delete_and_wait_gone_only(client, &volumes, timeout, poll).await?;
    }
    let mut note =
        format!("{} workload(s), {} claim(s), {} volume(s) removed", users.len(), claims.len(), volumes.len());
    if !others.is_empty() {
        note.push_str(&format!("; left {} not lab's to remove: {}", others.len(), others.join(", ")));
    }
    Ok(note)
}

/// Wait for objects something else deletes.
async fn delete_and_wait_gone_only(
    client: &Client,
    objects: &[Object],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<()> {
    let mut kinds = Kinds::default();
    let left = crate::wait::until_none_pending(timeout, poll, async || {
        let mut left = Vec::new();
        for object in objects {
            if kinds.api(client, object).await?.get_opt(object.name()).await?.is_some() {
                left.push(object.describe());
            }
        }
        Ok::<_, anyhow::Error>(left)
    })
    .await?;
    if !left.is_empty() {
        bail!("the CSI driver has not removed these volumes after {}s: {}", timeout.as_secs(), left.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;
    use crate::stack::apply::tests::{resource_list, respond};

    /// A tiny API server: objects by path; GET, LIST, DELETE; every request line recorded.
    #[derive(Clone, Default)]
    struct FakeApi {
        objects: Arc<Mutex<BTreeMap<String, Value>>>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FakeApi {
        fn put(&self, path: &str, value: Value) {
            self.objects.lock().unwrap().insert(path.to_string(), value);
        }

        fn serve(self, mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>) {
            tokio::spawn(async move {
                while let Some((request, send)) = handle.next_request().await {
                    let (method, path) = (request.method().to_string(), request.uri().path().to_string());
                    self.seen.lock().unwrap().push(format!("{method} {path}"));
                    let answer = self.answer(&method, &path);
                    match answer {
                        Some(body) => respond(send, body),
                        None => send.send_response(
                            Response::builder()
                                .status(404)
                                .body(Body::from(serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})).unwrap()))
                                .unwrap(),
                        ),
                    }
                }
            });
        }

        fn answer(&self, method: &str, path: &str) -> Option<Value> {
            let discovery = [
                (
                    "/api/v1",
                    resource_list(
                        "v1",
                        &[
                            ("pods", "Pod", true),
                            ("configmaps", "ConfigMap", true),
                            ("persistentvolumeclaims", "PersistentVolumeClaim", true),
                            ("persistentvolumes", "PersistentVolume", false),
                        ],
                    ),
                ),
                (
                    "/apis/apps/v1",
                    resource_list(
                        "apps/v1",
                        &[("deployments", "Deployment", true), ("replicasets", "ReplicaSet", true)],
                    ),
                ),
            ];
            if let Some((_, list)) = discovery.iter().find(|(p, _)| *p == path) {
                return Some(list.clone());
            }
            let mut objects = self.objects.lock().unwrap();
            if method == "GET" && path == "/api/v1/namespaces" {
                // Only the lab's namespaces are put here: the fake ignores the label selector.
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(p, _)| p.starts_with("/api/v1/namespaces/") && p.matches('/').count() == 4)
                    .map(|(_, v)| v.clone())
                    .collect();
                return Some(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}));
            }
            if method == "GET" && (path == "/api/v1/persistentvolumeclaims" || path == "/api/v1/pods") {
                let kind = if path.ends_with("pods") { "/pods/" } else { "/persistentvolumeclaims/" };
                let items: Vec<Value> =
                    objects.iter().filter(|(p, _)| p.contains(kind)).map(|(_, v)| v.clone()).collect();
                return Some(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}));
            }
            match method {
                "GET" => objects.get(path).cloned(),
                "DELETE" => {
                    let removed = objects.remove(path)?;
                    // Deleting a claim removes its volume, as the CSI driver would.
                    if path.contains("/persistentvolumeclaims/") {
                        objects.retain(|p, _| !p.starts_with("/api/v1/persistentvolumes/"));
                    }
                    Some(removed)
                }
                _ => None,
            }
        }
    }

    #[tokio::test]
    async fn the_users_of_lab_volumes_go_first_then_their_claims_until_the_volumes_are_gone() {
        let api = FakeApi::default();
        let meta = |name: &str, ns: &str| json!({"name": name, "namespace": ns});
        api.put("/api/v1/namespaces/app", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "labels": {"lab.dev/lab": "ci"}}}));
        api.put("/api/v1/namespaces/users/persistentvolumeclaims/theirs", json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("theirs", "users"), "spec": {"storageClassName": "mayastor-single-replica", "volumeName": "pvc-2"}}));
        api.put("/api/v1/namespaces/app/persistentvolumeclaims/data", json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("data", "app"), "spec": {"storageClassName": "mayastor-single-replica", "volumeName": "pvc-1"}}));
        api.put("/api/v1/namespaces/app/persistentvolumeclaims/other", json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("other", "app"), "spec": {"storageClassName": "standard"}}));
        api.put(
            "/api/v1/persistentvolumes/pvc-1",
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pvc-1"}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        api.put("/api/v1/namespaces/app/pods/fio-abc", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fio-abc", "namespace": "app",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "fio-rs", "uid": "1", "controller": true}]},
            "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}}));
        api.put("/apis/apps/v1/namespaces/app/replicasets/fio-rs", json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "fio-rs", "namespace": "app",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "fio", "uid": "2", "controller": true}]}}));
        api.put(
            "/apis/apps/v1/namespaces/app/deployments/fio",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("fio", "app")}),
        );
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        api.clone().serve(handle);

        let client = Client::new(service, "default");
        let classes = vec!["mayastor-single-replica".to_string()];
        let note =
            remove_volumes(&client, &classes, "lab.dev/lab=ci", Duration::from_secs(5), Duration::from_millis(1))
                .await
                .unwrap();
        assert_eq!(
            note,
            "1 workload(s), 1 claim(s), 1 volume(s) removed; \
             left 1 not lab's to remove: PersistentVolumeClaim users/theirs"
        );
        let deletes: Vec<String> =
            api.seen.lock().unwrap().iter().filter(|l| l.starts_with("DELETE")).cloned().collect();
        assert_eq!(
            deletes,
            [
                "DELETE /apis/apps/v1/namespaces/app/deployments/fio",
                "DELETE /api/v1/namespaces/app/persistentvolumeclaims/data"
            ],
            "the claim of another storage class stays, and so does the claim in a namespace lab did not make"
        );
        assert!(api.objects.lock().unwrap().contains_key("/api/v1/namespaces/app/persistentvolumeclaims/other"));
        assert!(api.objects.lock().unwrap().contains_key("/api/v1/namespaces/users/persistentvolumeclaims/theirs"));
    }

    #[tokio::test]
    async fn an_object_held_by_a_finalizer_is_named_with_it() {
        let api = FakeApi::default();
        let pool = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": "m", "finalizers": ["openebs.io/diskpool-protection"]}});
        api.put("/apis/apps/v1/namespaces/m/deployments/stuck", pool.clone());
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        // This server never really deletes: the object keeps coming back.
        let sticky = api.clone();
        tokio::spawn(async move {
            let mut handle = handle;
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_string();
                let body = if path == "/apis/apps/v1" { sticky.answer("GET", &path).unwrap() } else { pool.clone() };
                respond(send, body);
            }
        });
        let object = Object {
            file: "m.yaml".into(),
            line: 1,
            value: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": "m"}}),
        };
        let err = delete_and_wait(
            &Client::new(service, "default"),
            &[object],
            Duration::from_millis(20),
            Duration::from_millis(5),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "still there after 0s: Deployment m/stuck (held by finalizers openebs.io/diskpool-protection)"
        );
    }

    #[tokio::test]
    async fn only_this_labs_objects_are_deleted_and_a_failed_up_deletes_only_what_it_created() {
        let api = FakeApi::default();
        let config_map = |name: &str, labels: Value, annotations: Value, manager: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": "m", "labels": labels, "annotations": annotations,
                                "managedFields": [{"manager": manager, "operation": "Apply"}]}})
        };
        let marks =
            json!({"app.kubernetes.io/managed-by": "lab", "lab.dev/lab": "ci", "lab.dev/instance": "0123456789ab"});
        let adopted = json!({"lab.dev/adopted": "ci"});
        for (name, labels, annotations, manager) in [
            ("ours", marks.clone(), json!({}), "lab"),
            ("earlier", marks.clone(), json!({}), "lab"),
            ("theirs", json!({}), json!({}), "helm"),
            ("copied", marks.clone(), json!({}), "kubectl"),
            ("adopted", marks.clone(), adopted, "lab"),
        ] {
            api.put(&format!("/api/v1/namespaces/m/configmaps/{name}"), config_map(name, labels, annotations, manager));
        }
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        api.clone().serve(handle);
        let client = Client::new(service, "default");
        let objects: Vec<Object> = ["ours", "earlier", "theirs", "copied", "adopted", "gone"]
            .iter()
            .map(|name| reference("v1", "ConfigMap", Some("m"), name))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("created-objects.txt");
        super::super::ownership::record_created(&record, &["ConfigMap m/ours".to_string()]).unwrap();
        let mut ownership = super::super::ownership::Ownership {
            instance: "0123456789ab".into(),
            lab: "ci".into(),
            adopt: false,
            delete_adopted: false,
            only_recorded: true,
            record,
        };
        let names = |objects: Vec<Object>| objects.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();

        let (delete, left) = super::super::ownership::deletable(&client, &objects, &ownership).await.unwrap();
        assert_eq!(names(delete), ["ours"], "a failed up deletes only what it recorded creating");
        assert_eq!(
            left,
            [
                "ConfigMap m/earlier (not created by this run)",
                "ConfigMap m/theirs (not lab's: no lab mark, managed by helm)",
                "ConfigMap m/copied (not lab's: marked for lab ci but not applied by lab (managed by kubectl))",
                "ConfigMap m/adopted (adopted; --delete-adopted removes it)",
            ]
        );

        ownership.only_recorded = false;
        let (delete, _) = super::super::ownership::deletable(&client, &objects, &ownership).await.unwrap();
        assert_eq!(names(delete), ["ours", "earlier"], "lab down deletes every object of this lab's, not adopted ones");
        ownership.delete_adopted = true;
        let (delete, left) = super::super::ownership::deletable(&client, &objects, &ownership).await.unwrap();
        assert_eq!(names(delete), ["ours", "earlier", "adopted"]);
        assert_eq!(left.len(), 2, "the user's objects stay even with --delete-adopted: {left:?}");
    }
}

//! Which cluster objects are lab's. Every object lab applies carries
//! `app.kubernetes.io/managed-by: lab`, `lab.dev/lab: <lab name>` and
//! `lab.dev/instance: <this lab instance's id>`, and lab's field manager owns
//! its fields (two CI jobs running one scenario on a shared cluster are two
//! instances, and never take each other's objects). Teardown deletes only objects with
//! both; an object lab found already there is refused by `lab up`, or with
//! `--adopt` taken over and annotated `lab.dev/adopted`, which `lab down`
//! then leaves unless told `--delete-adopted`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

use super::kinds::Kinds;
use super::manifest::Object;
use crate::plan::{Context, View, Work};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label naming the lab an object belongs to.
pub const LAB: &str = "lab.dev/lab";
/// The label naming the lab instance (`.lab/<name>/instance`) that made it.
pub const INSTANCE: &str = "lab.dev/instance";
/// The field manager of every server-side apply lab makes.
pub const FIELD_MANAGER: &str = "lab";
/// The annotation on an object lab found and took over (`--adopt`).
pub const ADOPTED: &str = "lab.dev/adopted";

/// What a lab may do with the cluster's objects, and where it records what it created.
#[derive(Clone, Debug)]
pub struct Ownership {
    pub lab: String,
    /// This lab instance's id (`.lab/<name>/instance`).
    pub instance: String,
    /// Take over stack objects that are already there instead of refusing.
    pub adopt: bool,
    /// Also delete what was adopted.
    pub delete_adopted: bool,
    /// Delete only what the record of created objects lists (cleanup after a failed `lab up`).
    pub only_recorded: bool,
    /// The record: one `Kind namespace/name` per object lab created.
    pub record: PathBuf,
}

/// Whose a live object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Marked for this lab and managed by lab's field manager.
    Ours,
    /// Taken over by this lab with `--adopt`.
    Adopted,
    /// Anyone else's; the reason says what it lacks and who manages it.
    Foreign(String),
}

/// The managers of a live object's fields, as `kubectl get -o yaml` lists them.
pub fn managers(live: &DynamicObject) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in live.metadata.managed_fields.iter().flatten() {
        if let Some(manager) = &entry.manager
            && !out.contains(manager)
        {
            out.push(manager.clone());
        }
    }
    out
}

impl Ownership {
    /// Whether these labels carry this lab instance's marks.
    pub fn marked(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(labels) = labels else { return false };
        labels.get(MANAGED_BY).is_some_and(|v| v == "lab")
            && labels.get(LAB) == Some(&self.lab)
            && labels.get(INSTANCE) == Some(&self.instance)
    }
}

pub fn owner(live: &DynamicObject, ownership: &Ownership) -> Owner {
    let lab = ownership.lab.as_str();
    let labels = live.metadata.labels.clone().unwrap_or_default();
    let managers = managers(live);
    let marked = ownership.marked(Some(&labels));
    let managed = managers.iter().any(|m| m == FIELD_MANAGER);
    let who = if managers.is_empty() {
        "no field manager".to_string()
    } else {
        format!("managed by {}", managers.join(", "))
    };
    match (marked, managed) {
        (true, true) => {
            let adopted = live.metadata.annotations.as_ref().and_then(|a| a.get(ADOPTED)).is_some_and(|v| v == lab);
            if adopted { Owner::Adopted } else { Owner::Ours }
        }
        (true, false) => Owner::Foreign(format!("marked for lab {lab} but not applied by lab ({who})")),
        (false, _) => match (labels.get(LAB), labels.get(INSTANCE)) {
            (Some(other), _) if other != lab => Owner::Foreign(format!("lab {other}'s, {who}")),
            (Some(_), Some(other)) => Owner::Foreign(format!("another instance of lab {lab} ({other}), {who}")),
            (Some(_), None) => Owner::Foreign(format!("lab {lab}'s mark without an instance, {who}")),
            _ => Owner::Foreign(format!("no lab mark, {who}")),
        },
    }
}

/// Add lab's marks to an object about to be applied (and the adoption note
/// when adopted), and to the claims a StatefulSet of it will make, which
/// carry no owner reference.
pub fn mark(object: &mut Object, ownership: &Ownership, adopted: bool) {
    let lab = ownership.lab.as_str();
    let add = |metadata: &mut serde_json::Map<String, serde_json::Value>| {
        let labels = metadata.entry("labels").or_insert_with(|| serde_json::json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(MANAGED_BY.into(), "lab".into());
            labels.insert(LAB.into(), lab.into());
            labels.insert(INSTANCE.into(), ownership.instance.as_str().into());
        }
    };
    if let Some(templates) = object.value.pointer_mut("/spec/volumeClaimTemplates").and_then(|t| t.as_array_mut()) {
        for template in templates {
            if let Some(metadata) = template
                .as_object_mut()
                .map(|t| t.entry("metadata").or_insert_with(|| serde_json::json!({})))
                .and_then(|m| m.as_object_mut())
            {
                add(metadata);
            }
        }
    }
    let Some(metadata) = object.value.get_mut("metadata").and_then(|m| m.as_object_mut()) else { return };
    add(metadata);
    if adopted {
        let annotations = metadata.entry("annotations").or_insert_with(|| serde_json::json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(ADOPTED.into(), lab.into());
        }
    }
}

/// The live object, or `None` when it is absent or its kind is not served (its CRD is not there yet).
pub async fn live(client: &Client, kinds: &mut Kinds, object: &Object) -> anyhow::Result<Option<DynamicObject>> {
    let api = match kinds.api(client, object).await {
        Ok(api) => api,
        Err(e) if not_served(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    api.get_opt(object.name()).await.with_context(|| format!("reading {}", object.describe()))
}

fn not_served(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => status.code == 404,
        Some(kube::Error::Discovery(_)) => true,
        _ => false,
    }
}

/// Each object with whose it is now (`None`: not there).
pub async fn owners(client: &Client, objects: &[Object], ownership: &Ownership) -> anyhow::Result<Vec<Option<Owner>>> {
    let mut kinds = Kinds::default();
    let mut out = Vec::new();
    for object in objects {
        out.push(live(client, &mut kinds, object).await?.map(|l| owner(&l, ownership)));
    }
    Ok(out)
}

/// The refusal for objects that are already there and not this lab's.
pub fn refusal(lab: &str, conflicts: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "the cluster already has {} object(s) of lab {lab}'s stack that lab did not create:\n  {}\n\
         nothing was changed; `--adopt` takes them over (and `lab down` then leaves them), or remove them first",
        conflicts.len(),
        conflicts.join("\n  ")
    )
}

/// Refuse, before anything changes, a stack whose objects are already in the
/// cluster and not this lab's (unless adopting).
#[derive(Debug)]
pub struct CheckOwnership {
    pub objects: Vec<Object>,
    pub ownership: Ownership,
}

#[async_trait::async_trait(?Send)]
impl Work for CheckOwnership {
    fn describe(&self, _view: &View<'_>) -> String {
        let then = if self.ownership.adopt {
            "adopts those (--adopt): lab down leaves them unless --delete-adopted"
        } else {
            "refuses if any is there and not lab's (--adopt takes them over)"
        };
        format!("api: GET each of the {} stack object(s); {then}", self.objects.len())
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let client = ctx.client().await?;
        let found = owners(&client, &self.objects, &self.ownership).await?;
        let conflicts = conflicts(&self.objects, &found);
        if conflicts.is_empty() {
            let present = found.iter().filter(|o| o.is_some()).count();
            return Ok(Some(format!("{present} of {} already there, all lab's", self.objects.len())));
        }
        if !self.ownership.adopt {
            return Err(refusal(&self.ownership.lab, &conflicts));
        }
        Ok(Some(format!("adopting {} object(s) lab did not create: {}", conflicts.len(), conflicts.join("; "))))
    }
}

/// `Kind ns/name (why)` for each object there that is not this lab's.
pub fn conflicts(objects: &[Object], owners: &[Option<Owner>]) -> Vec<String> {
    objects
        .iter()
        .zip(owners)
        .filter_map(|(o, owner)| match owner {
            Some(Owner::Foreign(why)) => Some(format!("{} ({why})", o.describe())),
            _ => None,
        })
        .collect()
}

/// Record objects lab created, so a failed `lab up` removes only those.
pub fn record_created(record: &std::path::Path, created: &[String]) -> anyhow::Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    if let Some(parent) = record.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut all = recorded(record);
    all.extend(created.iter().filter(|c| !all.contains(c)).cloned().collect::<Vec<_>>());
    std::fs::write(record, all.join("\n") + "\n").with_context(|| format!("cannot record in {}", record.display()))
}

/// What the record lists (nothing when there is no record).
pub fn recorded(record: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(record).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Namespaces and CRDs in the cluster that carry this lab's mark.
pub async fn marked_cluster_objects(client: &Client, lab: &str) -> Vec<String> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let selector = ListParams::default().labels(&format!("{LAB}={lab}"));
    let mut out = Vec::new();
    if let Ok(list) = Api::<Namespace>::all(client.clone()).list(&selector).await {
        out.extend(
            list.items
                .into_iter()
                .map(|n| format!("namespace {} carries lab {lab}'s mark", n.metadata.name.unwrap_or_default())),
        );
    }
    if let Ok(list) = Api::<CustomResourceDefinition>::all(client.clone()).list(&selector).await {
        out.extend(
            list.items
                .into_iter()
                .map(|n| format!("CRD {} carries lab {lab}'s mark", n.metadata.name.unwrap_or_default())),
        );
    }
    out
}

/// Objects in a namespace that someone other than this lab instance made,
/// of every kind the API serves there (found by discovery: a CronJob, a
/// Role, a NetworkPolicy or a user's DiskPool counts). What the cluster
/// makes by itself does not: objects with owner references, events, the
/// Endpoints of a Service, leader-election Leases, the root CA ConfigMap,
/// the default ServiceAccount and its tokens.
pub async fn foreign_in_namespace(
    client: &Client,
    namespace: &str,
    ownership: &Ownership,
) -> anyhow::Result<Vec<String>> {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .with_context(|| format!("discovering the kinds namespace {namespace} may hold"))?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        if matches!(group.name(), "events.k8s.io" | "metrics.k8s.io" | "coordination.k8s.io") {
            continue;
        }
        for (resource, capabilities) in group.recommended_resources() {
            let listable = capabilities.supports_operation(kube::discovery::verbs::LIST);
            if capabilities.scope != kube::discovery::Scope::Namespaced || !listable {
                continue;
            }
            if resource.group.is_empty() && matches!(resource.kind.as_str(), "Event" | "Endpoints") {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
            let list = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                // A kind going away (its CRD deleted) while lab looks.
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("listing {} in namespace {namespace}", resource.plural));
                }
            };
            for item in list.items {
                let meta = &item.metadata;
                let name = meta.name.clone().unwrap_or_default();
                let made_by_cluster = meta.owner_references.as_ref().is_some_and(|r| !r.is_empty())
                    || (resource.kind == "ConfigMap" && name == "kube-root-ca.crt")
                    || (resource.kind == "ServiceAccount" && name == "default")
                    || (resource.kind == "Secret"
                        && item.data.get("type").and_then(|t| t.as_str())
                            == Some("kubernetes.io/service-account-token"));
                if !ownership.marked(meta.labels.as_ref()) && !made_by_cluster {
                    out.push(format!("{} {namespace}/{name}", resource.kind));
                }
            }
        }
    }
    Ok(out)
}

/// Custom resources of a CRD that are not this lab's: deleting the CRD would take them.
pub async fn foreign_custom_resources(
    client: &Client,
    crd: &Object,
    ownership: &Ownership,
) -> anyhow::Result<Vec<String>> {
    let spec = &crd.value["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    let Some(version) = spec["versions"].as_array().and_then(|v| v.iter().find(|v| v["served"] == true)) else {
        return Ok(Vec::new());
    };
    let version = version["name"].as_str().unwrap_or_default();
    let resource = kube::discovery::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {kind} objects")),
    };
    Ok(list
        .items
        .iter()
        .filter(|item| matches!(owner(item, ownership), Owner::Foreign(_)))
        .map(|item| {
            let ns = item.metadata.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default();
            format!("{kind} {ns}{}", item.metadata.name.clone().unwrap_or_default())
        })
        .collect())
}

/// Split objects into those lab may delete and, for the rest, why each stays.
pub async fn deletable(
    client: &Client,
    objects: &[Object],
    ownership: &Ownership,
) -> anyhow::Result<(Vec<Object>, Vec<String>)> {
    let recorded = recorded(&ownership.record);
    let mut kinds = Kinds::default();
    let mut delete = Vec::new();
    let mut left = Vec::new();
    for object in objects {
        let Some(found) = live(client, &mut kinds, object).await? else { continue };
        let why = match owner(&found, ownership) {
            Owner::Foreign(why) => Some(format!("not lab's: {why}")),
            Owner::Adopted if !ownership.delete_adopted => Some("adopted; --delete-adopted removes it".into()),
            _ if ownership.only_recorded && !recorded.contains(&object.describe()) => {
                Some("not created by this run".into())
            }
            _ => None,
        };
        let why = match (why, object.kind()) {
            (None, "Namespace") => {
                let foreign = foreign_in_namespace(client, object.name(), ownership).await?;
                (!foreign.is_empty()).then(|| format!("it holds objects lab did not make: {}", foreign.join(", ")))
            }
            (None, "CustomResourceDefinition") => {
                let foreign = foreign_custom_resources(client, object, ownership).await?;
                (!foreign.is_empty()).then(|| format!("deleting it would delete {}", foreign.join(", ")))
            }
            (why, _) => why,
        };
        match why {
            None => delete.push(object.clone()),
            Some(why) => left.push(format!("{} ({why})", object.describe())),
        }
    }
    Ok((delete, left))
}

/// The label on the namespaces lab's Gherkin scenarios make: what is in
/// them is the scenario's, unlike a stack namespace someone else may use too.
pub const SCENARIO_NAMESPACE: &str = "lab.dev/scenario-namespace";

/// The labels of a namespace one of this lab instance's scenarios makes.
pub fn namespace_labels(lab: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "lab".to_string()),
        (LAB.to_string(), lab.to_string()),
        (INSTANCE.to_string(), instance.to_string()),
        (SCENARIO_NAMESPACE.to_string(), "true".to_string()),
    ])
}

/// The selector of those namespaces.
pub fn scenario_namespaces(lab: &str, instance: &str) -> String {
    format!("{LAB}={lab},{INSTANCE}={instance},{SCENARIO_NAMESPACE}=true")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn live(labels: serde_json::Value, managers: &[&str], annotations: serde_json::Value) -> DynamicObject {
        let fields: Vec<_> = managers.iter().map(|m| json!({"manager": m, "operation": "Apply"})).collect();
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": labels, "annotations": annotations, "managedFields": fields}}))
        .unwrap()
    }

    fn ours(lab: &str) -> Ownership {
        Ownership {
            lab: lab.into(),
            instance: "0123456789ab".into(),
            adopt: false,
            delete_adopted: false,
            only_recorded: false,
            record: "created-objects.txt".into(),
        }
    }

    #[test]
    fn an_object_is_labs_only_with_its_marks_and_lab_as_a_field_manager() {
        let marks =
            json!({"app.kubernetes.io/managed-by": "lab", "lab.dev/lab": "ci", "lab.dev/instance": "0123456789ab"});
        let ci = ours("ci");
        assert_eq!(owner(&live(marks.clone(), &["lab"], json!({})), &ci), Owner::Ours);
        assert_eq!(owner(&live(marks.clone(), &["lab"], json!({"lab.dev/adopted": "ci"})), &ci), Owner::Adopted);
        assert_eq!(
            owner(&live(marks.clone(), &["kubectl"], json!({})), &ci),
            Owner::Foreign("marked for lab ci but not applied by lab (managed by kubectl)".into()),
            "a copied label alone does not make an object lab's"
        );
        assert_eq!(
            owner(&live(marks, &["lab"], json!({})), &ours("other")),
            Owner::Foreign("lab ci's, managed by lab".into()),
            "another lab's object is not this lab's"
        );
        let twin =
            json!({"app.kubernetes.io/managed-by": "lab", "lab.dev/lab": "ci", "lab.dev/instance": "fedcba987654"});
        assert_eq!(
            owner(&live(twin, &["lab"], json!({})), &ci),
            Owner::Foreign("another instance of lab ci (fedcba987654), managed by lab".into()),
            "a second CI job running the same scenario is another instance"
        );
        assert_eq!(
            owner(&live(json!({}), &["helm", "kube-controller-manager"], json!({})), &ci),
            Owner::Foreign("no lab mark, managed by helm, kube-controller-manager".into())
        );
    }

    #[test]
    fn marks_join_the_objects_own_labels() {
        let mut object = Object {
            file: "a.yaml".into(),
            line: 1,
            value: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "x"}}}),
        };
        mark(&mut object, &ours("ci"), true);
        assert_eq!(
            object.value["metadata"],
            json!({"name": "c", "labels": {"app": "x", "app.kubernetes.io/managed-by": "lab", "lab.dev/lab": "ci",
                                           "lab.dev/instance": "0123456789ab"},
                   "annotations": {"lab.dev/adopted": "ci"}})
        );
        let mut etcd = Object {
            file: "a.yaml".into(),
            line: 1,
            value: json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "etcd"},
                          "spec": {"volumeClaimTemplates": [{"spec": {}}]}}),
        };
        mark(&mut etcd, &ours("ci"), false);
        assert_eq!(
            etcd.value["spec"]["volumeClaimTemplates"][0]["metadata"]["labels"],
            json!({"app.kubernetes.io/managed-by": "lab", "lab.dev/lab": "ci", "lab.dev/instance": "0123456789ab"}),
            "the claims a StatefulSet makes are lab's too"
        );
    }

    #[test]
    fn the_record_of_created_objects_keeps_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("state/created-objects.txt");
        record_created(&record, &["Namespace a".into(), "ConfigMap a/b".into()]).unwrap();
        record_created(&record, &["ConfigMap a/b".into(), "Service a/s".into()]).unwrap();
        assert_eq!(recorded(&record), ["Namespace a", "ConfigMap a/b", "Service a/s"]);
    }
}

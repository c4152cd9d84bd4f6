//! The images a stack references, and rewriting them to the ones `lab`
//! built: every container and init container of every workload kind.

use serde_json::Value;

use super::manifest::Object;

/// The lists of a pod spec that hold containers, each with an image.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Where a kind keeps its pod spec.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("/spec"),
        _ => None,
    }
}

/// The repository of a reference, without registry default, tag or digest:
/// `docker.io/openebs/x:v1` and `openebs/x` are both `openebs/x`.
pub fn repository(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let without_tag = match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    let trimmed = without_tag.strip_prefix("docker.io/").unwrap_or(without_tag);
    trimmed.strip_prefix("library/").unwrap_or(trimmed).to_string()
}

fn for_each_container(object: &mut Object, mut visit: impl FnMut(&mut serde_json::Map<String, Value>)) {
    let Some(pointer) = pod_spec_pointer(object.kind()) else { return };
    let Some(spec) = object.value.pointer_mut(pointer) else { return };
    for list in CONTAINER_LISTS {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                visit(container);
            }
        }
    }
}

/// One container's image, with who runs it and whether it may be pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    pub image: String,
    /// `container hostpath of DaemonSet ns/name (file:line)`.
    pub user: String,
    /// `imagePullPolicy: Never`: the kubelet only runs what the node has.
    pub never_pulled: bool,
}

/// Every container of every workload, with its image.
pub fn uses(objects: &[Object]) -> Vec<ImageUse> {
    let mut out = Vec::new();
    for object in objects {
        let Some(spec) = pod_spec_pointer(object.kind()).and_then(|p| object.value.pointer(p)) else { continue };
        for list in CONTAINER_LISTS {
            for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
                let Some(image) = container.get("image").and_then(Value::as_str) else { continue };
                let name = container.get("name").and_then(Value::as_str).unwrap_or("?");
                out.push(ImageUse {
                    image: image.to_string(),
                    user: format!("container {name} of {} ({})", object.describe(), object.location()),
                    never_pulled: container.get("imagePullPolicy").and_then(Value::as_str) == Some("Never"),
                });
            }
        }
    }
    out
}

/// Every image the objects reference, in order, without repeats.
pub fn images(objects: &[Object]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for used in uses(objects) {
        if !out.contains(&used.image) {
            out.push(used.image);
        }
    }
    out
}

/// Replace each image whose repository matches one of `replacements`
/// (`(repository, new reference)`); returns how many were replaced. When the
/// nodes pull lab's builds from a registry, a replaced container's
/// `imagePullPolicy: Never` (right for images streamed into the nodes)
/// becomes `IfNotPresent`, or the kubelet would never pull it.
pub fn rewrite(objects: &mut [Object], replacements: &[(String, String)], pulled: bool) -> usize {
    let mut replaced = 0;
    for object in objects {
        for_each_container(object, |container| {
            let Some(current) = container.get("image").and_then(Value::as_str) else { return };
            let repo = repository(current);
            if let Some((_, new)) = replacements.iter().find(|(wanted, _)| repository(wanted) == repo) {
                container.insert("image".into(), Value::String(new.clone()));
                if pulled && container.get("imagePullPolicy").and_then(Value::as_str) == Some("Never") {
                    container.insert("imagePullPolicy".into(), Value::String("IfNotPresent".into()));
                }
                replaced += 1;
            }
        });
    }
    replaced
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::manifest::parse;

    #[test]
    fn repositories_ignore_the_default_registry_tags_and_digests() {
        for (reference, repo) in [
            ("docker.io/openebs/mayastor-io-engine:v2.8.0", "openebs/mayastor-io-engine"),
            ("openebs/mayastor-io-engine", "openebs/mayastor-io-engine"),
            ("busybox@sha256:abc", "busybox"),
            ("docker.io/library/busybox:1", "busybox"),
            ("localhost:5001/openebs/x:lab-1", "localhost:5001/openebs/x"),
            ("registry.k8s.io/sig-storage/csi-attacher:v4.3.0", "registry.k8s.io/sig-storage/csi-attacher"),
        ] {
            assert_eq!(repository(reference), repo, "{reference}");
        }
    }

    #[test]
    fn containers_and_init_containers_of_every_workload_are_rewritten() {
        let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      initContainers: [{name: i, image: 'docker.io/openebs/tool:1'}]\n      containers: [{name: c, image: 'docker.io/openebs/engine:v2'}, {name: s, image: 'other/side:1'}]\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: j}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: c, image: 'openebs/engine'}]\n";
        let mut objects = parse(Path::new("t.yaml"), text).unwrap();
        let replacements = vec![
            ("openebs/engine".to_string(), "openebs/engine:lab-123".to_string()),
            ("openebs/tool".to_string(), "localhost:5001/openebs/tool:lab-9".to_string()),
        ];
        assert_eq!(rewrite(&mut objects, &replacements, false), 3);
        assert_eq!(images(&objects), ["localhost:5001/openebs/tool:lab-9", "openebs/engine:lab-123", "other/side:1"]);
    }

    #[test]
    fn builds_pulled_from_a_registry_are_not_left_at_pull_policy_never() {
        let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: 'a/built:1', imagePullPolicy: Never}, {name: s, image: 'a/other:1', imagePullPolicy: Never}]\n";
        let replacements = vec![("a/built".to_string(), "localhost:5001/a/built:lab-1".to_string())];
        let policies = |pulled: bool| {
            let mut objects = parse(Path::new("t.yaml"), text).unwrap();
            rewrite(&mut objects, &replacements, pulled);
            uses(&objects).into_iter().map(|u| (u.image, u.never_pulled)).collect::<Vec<_>>()
        };
        // Streamed: the node has it, Never stays. Pulled: only lab's build may now be pulled.
        assert_eq!(policies(false), [("localhost:5001/a/built:lab-1".into(), true), ("a/other:1".into(), true)]);
        assert_eq!(policies(true), [("localhost:5001/a/built:lab-1".into(), false), ("a/other:1".into(), true)]);
    }

    #[test]
    fn each_container_is_named_with_its_workload_file_and_pull_policy() {
        let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\n  namespace: store\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: 'a/b:1', imagePullPolicy: Never}, {name: s, image: 'a/c:1'}]\n";
        let objects = parse(Path::new("t.yaml"), text).unwrap();
        let found = uses(&objects);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].image, "a/b:1");
        assert_eq!(found[0].user, "container c of DaemonSet store/d (t.yaml:1)");
        assert!(found[0].never_pulled);
        assert!(!found[1].never_pulled, "no policy is not Never");
    }
}

//! Every object checked before anything is applied: built-in kinds through
//! k8s-openapi's types (a field the type does not have is an error, not
//! silently dropped), custom resources against their CRD's openAPIV3Schema.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::manifest::{Object, Problem};

/// Check every object; custom resources against the CRDs among `objects`.
pub fn check_all(objects: &[Object]) -> Vec<Problem> {
    let crds: Vec<CustomResourceDefinition> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .filter_map(|o| serde_json::from_value(o.value.clone()).ok())
        .collect();
    let mut problems = Vec::new();
    for object in objects {
        if let Err(message) = check(object, &crds) {
            problems.push(Problem {
                file: object.file.clone(),
                line: object.line,
                message: format!("{}: {message}", object.describe()),
            });
        }
    }
    problems
}

/// One object against its type or its CRD.
pub fn check(object: &Object, crds: &[CustomResourceDefinition]) -> Result<(), String> {
    let v = &object.value;
    match (object.api_version(), object.kind()) {
        ("v1", "Namespace") => round_trip::<Namespace>(v),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(v),
        ("v1", "Service") => round_trip::<Service>(v),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(v),
        ("v1", "Secret") => round_trip::<Secret>(v),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(v),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(v),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(v),
        ("batch/v1", "Job") => round_trip::<Job>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<ClusterRoleBinding>(v),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(v),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(v),
        ("storage.k8s.io/v1", "StorageClass") => round_trip::<StorageClass>(v),
        ("storage.k8s.io/v1", "CSIDriver") => round_trip::<CSIDriver>(v),
        ("scheduling.k8s.io/v1", "PriorityClass") => round_trip::<PriorityClass>(v),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(v),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(v)?;
            let crd: CustomResourceDefinition = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
            if crd
                .spec
                .versions
                .iter()
                .all(|ver| ver.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).is_none())
            {
                return Err("has no openAPIV3Schema: lab checks custom resources against it".into());
            }
            Ok(())
        }
        (api_version, kind) => {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let schema = crds
                .iter()
                .filter(|crd| crd.spec.group == group && crd.spec.names.kind == kind)
                .flat_map(|crd| crd.spec.versions.iter())
                .find(|v| v.name == version)
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref());
            let Some(schema) = schema else {
                return Err(format!(
                    "{api_version} {kind} is neither a built-in kind lab knows nor defined by a CRD in the stack"
                ));
            };
            let mut body = v.clone();
            if let Some(map) = body.as_object_mut() {
                // The API server owns these; the schema describes the rest.
                for owned in ["apiVersion", "kind", "metadata"] {
                    map.remove(owned);
                }
            }
            match_schema(&body, schema, "")
        }
    }
}

/// Through the typed API and back: a field the type lacks would be dropped,
/// so any difference is a field Kubernetes does not know.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Result<(), String> {
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })?;
    let back = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    match first_dropped(value, &back, "") {
        Some(path) => Err(format!("{path}: unknown field (the typed API drops it; check its spelling and place)")),
        None => Ok(()),
    }
}

/// The first path present in `original` but missing (or different) in `back`.
fn first_dropped(original: &Value, back: &Value, at: &str) -> Option<String> {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, value)| {
            let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            match b.get(key) {
                Some(other) => first_dropped(value, other, &path),
                // An explicit null or empty value the type leaves out loses nothing.
                None if value.is_null()
                    || value.as_object().is_some_and(|m| m.is_empty())
                    || value.as_array().is_some_and(|a| a.is_empty()) =>
                {
                    None
                }
                None => Some(path),
            }
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_dropped(x, y, &format!("{at}[{i}]")))
        }
        // 0 and 0.0 are the same number.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        // Quantities and int-or-strings may change spelling ("2" ↔ 2) but not meaning.
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) if x == &y.to_string() => None,
        (a, b) if a == b => None,
        _ => Some(at.to_string()),
    }
}

/// A custom resource against an openAPIV3Schema (the structural subset CRDs use).
pub fn match_schema(value: &Value, schema: &JSONSchemaProps, at: &str) -> Result<(), String> {
    let here = if at.is_empty() { "the object".to_string() } else { at.to_string() };
    if value.is_null() {
        return if schema.nullable == Some(true) || at.is_empty() {
            Ok(())
        } else {
            Err(format!("{here}: must not be null"))
        };
    }
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) && schema.properties.is_none() {
        return Ok(());
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| &a.0 == value)
    {
        let names: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
        return Err(format!("{here}: {value} is not one of {}", names.join(", ")));
    }
    let kind = schema.type_.as_deref().unwrap_or_default();
    let wrong = |expected: &str| Err(format!("{here}: expected {expected}, found {value}"));
    match kind {
        "object" => {
            let Some(map) = value.as_object() else { return wrong("an object") };
            for required in schema.required.iter().flatten() {
                if !map.contains_key(required) {
                    let path = if at.is_empty() { required.clone() } else { format!("{at}.{required}") };
                    return Err(format!("{path}: required"));
                }
            }
            for (key, item) in map {
                let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                match (schema.properties.as_ref().and_then(|p| p.get(key)), &schema.additional_properties) {
                    (Some(sub), _) => match_schema(item, sub, &path)?,
                    (None, Some(JSONSchemaPropsOrBool::Schema(sub))) => match_schema(item, sub, &path)?,
                    (None, Some(JSONSchemaPropsOrBool::Bool(true))) => {}
                    _ if schema.x_kubernetes_preserve_unknown_fields == Some(true) => {}
                    _ => return Err(format!("{path}: unknown field (not in the CRD's schema)")),
                }
            }
            Ok(())
        }
        "array" => {
            let Some(items) = value.as_array() else { return wrong("an array") };
            if let Some(min) = schema.min_items
                && (items.len() as i64) < min
            {
                return Err(format!("{here}: needs at least {min} item(s), has {}", items.len()));
            }
            if let Some(max) = schema.max_items
                && (items.len() as i64) > max
            {
                return Err(format!("{here}: allows at most {max} item(s), has {}", items.len()));
            }
            if let Some(JSONSchemaPropsOrArray::Schema(sub)) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    match_schema(item, sub, &format!("{here}[{i}]"))?;
                }
            }
            Ok(())
        }
        "string" if !value.is_string() => wrong("a string"),
        "boolean" if !value.is_boolean() => wrong("true or false"),
        "integer" | "number" => {
            let number = if kind == "integer" { value.as_i64().map(|n| n as f64) } else { value.as_f64() };
            let Some(number) = number else { return wrong(if kind == "integer" { "an integer" } else { "a number" }) };
            if let Some(min) = schema.minimum
                && number < min
            {
                return Err(format!("{here}: {number} is below the minimum {min}"));
            }
            if let Some(max) = schema.maximum
                && number > max
            {
                return Err(format!("{here}: {number} is above the maximum {max}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::manifest::parse;

    fn problems_of(text: &str) -> Vec<String> {
        let objects = parse(Path::new("t.yaml"), text).unwrap();
        check_all(&objects).into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_misspelt_or_misplaced_field_is_named_with_its_location() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: a}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      containers:\n        - name: c\n          image: x:1\n          imagePullPolicyy: Always\n";
        assert_eq!(
            problems_of(text),
            [
                "t.yaml:5: DaemonSet a/d: spec.template.spec.containers[0].imagePullPolicyy: unknown field (the typed API drops it; check its spelling and place)"
            ]
        );
        let wrong_type = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: many}]\n";
        let found = problems_of(wrong_type);
        assert!(found[0].starts_with("t.yaml:1: Service s: spec.ports[0].port: invalid type"), "{found:?}");
    }

    #[test]
    fn an_unknown_kind_without_its_crd_is_an_error() {
        let found = problems_of("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n");
        assert_eq!(
            found,
            [
                "t.yaml:1: Widget w: example.com/v1 Widget is neither a built-in kind lab knows nor defined by a CRD in the stack"
            ]
        );
    }
}

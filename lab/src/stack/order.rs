//! The order a stack is applied in, and the reverse it is removed in:
//! CRDs first (and established) so their resources can be made, namespaces
//! before what lives in them, cluster-wide rules and configuration before
//! the workloads that need them, custom resources last.

use super::manifest::Object;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Crds,
    Namespaces,
    ClusterWide,
    Configuration,
    Workloads,
    CustomResources,
}

impl Phase {
    pub fn of(object: &Object) -> Phase {
        match (object.api_version(), object.kind()) {
            (_, "CustomResourceDefinition") => Phase::Crds,
            ("v1", "Namespace") => Phase::Namespaces,
            (_, "ClusterRole" | "ClusterRoleBinding" | "StorageClass" | "CSIDriver" | "PriorityClass") => {
                Phase::ClusterWide
            }
            (
                _,
                "ServiceAccount" | "Role" | "RoleBinding" | "ConfigMap" | "Secret" | "Service" | "PodDisruptionBudget",
            ) => Phase::Configuration,
            (_, "Deployment" | "DaemonSet" | "StatefulSet" | "Job" | "CronJob" | "Pod" | "ReplicaSet") => {
                Phase::Workloads
            }
            _ => Phase::CustomResources,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Phase::Crds => "custom resource definitions",
            Phase::Namespaces => "namespaces",
            Phase::ClusterWide => "cluster-wide objects (RBAC, storage and CSI drivers)",
            Phase::Configuration => "configuration (service accounts, services, config maps)",
            Phase::Workloads => "workloads",
            Phase::CustomResources => "custom resources",
        }
    }
}

/// The objects grouped by phase, in apply order; within a phase, as written.
pub fn apply_order(objects: &[Object]) -> Vec<(Phase, Vec<Object>)> {
    let mut phases: Vec<(Phase, Vec<Object>)> = Vec::new();
    let mut sorted: Vec<&Object> = objects.iter().collect();
    sorted.sort_by_key(|o| Phase::of(o));
    for object in sorted {
        let phase = Phase::of(object);
        match phases.last_mut() {
            Some((last, group)) if *last == phase => group.push(object.clone()),
            _ => phases.push((phase, vec![object.clone()])),
        }
    }
    phases
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::stack::manifest::parse;

    #[test]
    fn crds_then_namespaces_then_rules_then_workloads_then_custom_resources() {
        let doc = |api: &str, kind: &str, name: &str| {
            format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}}}\n")
        };
        let text = [
            doc("apps/v1", "Deployment", "app"),
            doc("openebs.io/v1beta2", "DiskPool", "pool"),
            doc("v1", "Service", "svc"),
            doc("v1", "Namespace", "ns"),
            doc("storage.k8s.io/v1", "StorageClass", "sc"),
            doc("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd"),
        ]
        .join("---\n");
        let objects = parse(Path::new("t.yaml"), &text).unwrap();
        let phases = apply_order(&objects);
        let order: Vec<(Phase, Vec<&str>)> =
            phases.iter().map(|(p, group)| (*p, group.iter().map(|o| o.name()).collect())).collect();
        assert_eq!(
            order,
            [
                (Phase::Crds, vec!["crd"]),
                (Phase::Namespaces, vec!["ns"]),
                (Phase::ClusterWide, vec!["sc"]),
                (Phase::Configuration, vec!["svc"]),
                (Phase::Workloads, vec!["app"]),
                (Phase::CustomResources, vec!["pool"]),
            ]
        );
    }
}

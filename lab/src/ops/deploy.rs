//! `lab deploy`: the stack's objects applied in order and awaited, and their
//! removal by ownership (also part of `lab up` and `lab down`).

use crate::load::registry::Registry;
use crate::plan::{self, Plan, Step};
use crate::{Lab, build, provider, scenario, stack};

impl Lab {
    /// `lab deploy`: the stack in apply order (CRDs established first), its
    /// workloads ready, then a DiskPool per io-engine node, Online.
    /// Images are checked on the nodes first: a component changed since its
    /// last `lab build`/`lab load` is named before anything is applied.
    pub fn deploy_plan(&self) -> anyhow::Result<Plan> {
        let builds = build::resolve(&self.scenario, &self.state, None)?;
        let objects = self.load_stack()?;
        let mut steps = plan::in_phase(self.preflight_step(&builds, &objects), plan::Phase::Load);
        steps.extend(self.deploy_steps(objects)?);
        Ok(Plan { title: format!("lab deploy: {}", self.describe()), steps })
    }

    /// `lab deploy --server-dry-run`: the API server checks every object of
    /// the stack as it would apply it (`dryRun=All`) and stores none, except
    /// the CRDs and namespaces the others need, which are applied for real.
    pub fn server_dry_run_plan(&self) -> anyhow::Result<Plan> {
        let objects = self.load_stack()?;
        let images = std::sync::Arc::new(self.image_map()?);
        let mut groups = stack::order::apply_order(&objects);
        let pools = stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects)?;
        if !pools.is_empty() {
            groups.push((stack::order::Phase::CustomResources, pools));
        }
        let steps = groups
            .into_iter()
            .map(|(phase, group)| {
                let real = matches!(phase, stack::order::Phase::Crds | stack::order::Phase::Namespaces);
                let establish_within = (phase == stack::order::Phase::Crds).then(|| std::time::Duration::from_secs(60));
                let title = if real {
                    format!("apply {} ({})", phase.title(), group.len())
                } else {
                    format!("check {} ({}) with the API server, storing nothing", phase.title(), group.len())
                };
                Step::work(
                    title,
                    stack::apply::Apply {
                        objects: group,
                        images: images.clone(),
                        establish_within,
                        server_dry_run: !real,
                        ownership: self.ownership.clone(),
                    },
                )
            })
            .collect();
        Ok(Plan { title: format!("lab deploy --server-dry-run: {}", self.describe()), steps })
    }

    /// The stack's objects, checked, with their kubelet paths pointed at the
    /// cluster's kubelet root (lab's local cluster keeps its own).
    pub(crate) fn load_stack(&self) -> anyhow::Result<Vec<stack::manifest::Object>> {
        let mut objects = stack::load(&self.scenario)?;
        if let Some(root) = self.provider.capabilities().kubelet_root {
            stack::rewrite_path_root(&mut objects, provider::local::USUAL_KUBELET_ROOT, &root);
        }
        stack::pool::point_at_pool_folder(&self.scenario, &self.provider.capabilities(), &self.state, &mut objects);
        Ok(objects)
    }

    pub(crate) fn image_map(&self) -> anyhow::Result<stack::ImageMap> {
        stack::ImageMap::of(&self.scenario, &self.state)
    }

    pub(crate) fn deploy_steps(&self, objects: Vec<stack::manifest::Object>) -> anyhow::Result<Vec<Step>> {
        let timeouts = self.scenario.stack.as_ref().map(|s| s.timeouts.clone()).unwrap_or_default();
        let seconds = |text: &str| std::time::Duration::from_secs(scenario::parse_duration_secs(text).unwrap_or(60));
        let images = std::sync::Arc::new(self.image_map()?);
        let mut steps = Vec::new();
        for (phase, group) in stack::order::apply_order(&objects) {
            let establish_within = (phase == stack::order::Phase::Crds).then(|| seconds(&timeouts.crds));
            steps.push(
                Step::work(
                    format!("apply {} ({})", phase.title(), group.len()),
                    stack::apply::Apply {
                        objects: group,
                        images: images.clone(),
                        establish_within,
                        server_dry_run: false,
                        ownership: self.ownership.clone(),
                    },
                )
                .in_phase(plan::Phase::Rollout),
            );
        }
        // Kubernetes rolls an OnDelete DaemonSet (io-engine) only as its pods are deleted: lab does that.
        let on_delete = stack::rollout::on_delete_daemon_sets(&objects);
        if !on_delete.is_empty() {
            steps.push(
                Step::work(
                    format!(
                        "roll {} OnDelete DaemonSet(s) to their newest template, one node at a time",
                        on_delete.len()
                    ),
                    stack::rollout::RollOnDelete { daemon_sets: on_delete, timeout: seconds(&timeouts.ready) },
                )
                .in_phase(plan::Phase::Rollout),
            );
        }
        steps.push(
            Step::work(
                "wait until the stack's workloads are ready",
                stack::ready::WaitReady { objects: objects.clone(), timeout: seconds(&timeouts.ready) },
            )
            .in_phase(plan::Phase::Ready),
        );
        let pools = stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects)?;
        if !pools.is_empty() {
            steps.extend(plan::in_phase(
                stack::pool::backing_file_steps(&self.scenario, &self.provider.capabilities(), &self.state),
                plan::Phase::Rollout,
            ));
            steps.push(Step::work(
                format!("create {} DiskPool(s)", pools.len()),
                stack::apply::Apply {
                    objects: pools.clone(),
                    images: images.clone(),
                    establish_within: None,
                    server_dry_run: false,
                    ownership: self.ownership.clone(),
                },
            ));
            steps.push(
                Step::work(
                    "wait until the pools are Online",
                    stack::pool::WaitPools { pools: pools.clone(), timeout: seconds(&timeouts.pools) },
                )
                .in_phase(plan::Phase::Ready),
            );
        }
        // Pods Ready is not a control plane that serves: a claim made now could meet a 503.
        if stack::mayastor::serves_rest(&objects) {
            steps.push(
                Step::work(
                    "wait until Mayastor's control plane serves",
                    stack::mayastor::WaitControlPlane {
                        pools: pools.iter().map(|p| p.name().to_string()).collect(),
                        timeout: seconds(&timeouts.pools),
                    },
                )
                .in_phase(plan::Phase::Ready),
            );
        }
        Ok(steps)
    }

    /// The stack comes off before the cluster, in the order its finalizers
    /// need: volume users, claims, pools, the stack in reverse, CRDs last.
    pub(crate) fn teardown_steps(
        &self,
        ownership: &std::sync::Arc<stack::ownership::Ownership>,
    ) -> anyhow::Result<Vec<Step>> {
        let Some(spec) = &self.scenario.stack else { return Ok(Vec::new()) };
        if !self.provider.capabilities().cluster {
            return Ok(Vec::new());
        }
        // A stack that no longer reads (its files moved) must not keep the cluster alive.
        let objects = match self.load_stack() {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!("the stack cannot be read, so it is not removed object by object: {e:#}");
                return Ok(Vec::new());
            }
        };
        let timeout =
            std::time::Duration::from_secs(scenario::parse_duration_secs(&spec.timeouts.teardown).unwrap_or(300));
        let mut steps = vec![Step::work(
            "remove the workloads lab's scenarios left on the lab's volumes, then their claims",
            stack::teardown::RemoveVolumes {
                classes: stack::teardown::storage_classes(&objects),
                lab: ownership.lab.clone(),
                instance: ownership.instance.clone(),
                timeout,
            },
        )];
        let pools =
            stack::pools(&self.scenario, &self.provider.capabilities(), &self.state, &objects).unwrap_or_default();
        if !pools.is_empty() {
            if stack::mayastor::serves_rest(&objects) {
                steps.push(Step::work(
                    "wait until Mayastor keeps nothing on lab's pools",
                    stack::mayastor::ReleasePools {
                        pools: pools.iter().map(|p| p.name().to_string()).collect(),
                        timeout,
                    },
                ));
            }
            steps.push(Step::work(
                format!("remove {} DiskPool(s)", pools.len()),
                stack::teardown::Delete { objects: pools, timeout, ownership: ownership.clone() },
            ));
        }
        for (phase, group) in stack::order::apply_order(&objects).into_iter().rev() {
            steps.push(Step::work(
                format!("remove {} ({})", phase.title(), group.len()),
                stack::teardown::Delete { objects: group, timeout, ownership: ownership.clone() },
            ));
        }
        Ok(steps)
    }
}

/// The registry's KEP-1755 ConfigMap as a stack object lab applies and removes by its marks.
pub(crate) fn registry_hosting_object(registry: &Registry) -> stack::manifest::Object {
    let value = serde_json::to_value(registry.hosting_config_map()).expect("a ConfigMap of strings always serializes");
    stack::manifest::Object { file: "generated".into(), line: 0, value }
}

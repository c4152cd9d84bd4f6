//! The storage stack a scenario deploys: its layers read (manifest folders,
//! Helm charts rendered with `helm template`), every object checked against
//! the typed API, images pointed at what `lab` built, applied in order.

pub mod apply;
pub mod image;
pub mod kinds;
pub mod manifest;
pub mod mayastor;
pub mod order;
pub mod ownership;
pub mod pool;
pub mod ready;
pub mod rollout;
pub mod teardown;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::build::Build;
use crate::load::registry::Registry;
use crate::scenario::{ChartLayer, Layer, Scenario};
use crate::state::StateDir;
use manifest::{Object, Problems};

/// Which images replace the stack's: each component's, under the registry's
/// name in registry mode. Resolved when the stack is applied (after the build).
#[derive(Debug, Default)]
pub struct ImageMap {
    pub builds: Vec<Arc<Build>>,
    pub registry: Option<Arc<Registry>>,
}

impl ImageMap {
    /// Every component of the scenario, named as its nodes will ask for it.
    pub fn of(scenario: &Scenario, state: &crate::state::StateDir) -> anyhow::Result<ImageMap> {
        Ok(ImageMap {
            builds: crate::build::resolve(scenario, state, None)?,
            registry: Registry::of(scenario).map(Arc::new),
        })
    }

    /// What a pod runs for `image`: lab's build of its repository when a
    /// component builds it (the registry's name in registry mode), else nothing.
    pub fn reference_for(&self, image: &str) -> anyhow::Result<Option<String>> {
        let wanted = image::repository(image);
        Ok(self.replacements()?.into_iter().find(|(repo, _)| image::repository(repo) == wanted).map(|(_, r)| r))
    }

    fn pairs(&self, refs_of: impl Fn(&Build) -> anyhow::Result<Vec<String>>) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for build in &self.builds {
            for reference in refs_of(build)? {
                let (repository, _) = reference.rsplit_once(':').unwrap_or((&reference, ""));
                let target = self.registry.as_ref().map(|r| r.name_of(&reference)).unwrap_or_else(|| reference.clone());
                out.push((repository.to_string(), target));
            }
        }
        Ok(out)
    }

    /// `(repository, reference)` with the tags the builds produce.
    pub fn replacements(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.pairs(Build::refs)
    }

    /// The same as a plan shows them, without fixing a tag before its build.
    pub fn replacements_for_plan(&self) -> Vec<(String, String)> {
        self.pairs(|b| Ok(b.refs_for_plan())).unwrap_or_default()
    }
}

/// Points every path under `usual` (the usual kubelet root
/// `/var/lib/kubelet`, say) in the objects (host paths, mount paths,
/// arguments) at `root`, where the cluster they go to keeps it, as charts do
/// with their `kubeletDir`.
pub fn rewrite_path_root(objects: &mut [Object], usual: &str, root: &str) {
    fn walk(value: &mut serde_json::Value, usual: &str, root: &str) {
        match value {
            serde_json::Value::String(text) => {
                // `--kubelet-endpoint=/var/lib/kubelet/…` as well as a bare path.
                let at = text.find(usual).filter(|&i| {
                    let before_ok = i == 0 || text[..i].ends_with('=');
                    let rest = &text[i + usual.len()..];
                    before_ok && (rest.is_empty() || rest.starts_with('/'))
                });
                if let Some(i) = at {
                    text.replace_range(i..i + usual.len(), root);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, usual, root)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, usual, root)),
            _ => {}
        }
    }
    for object in objects {
        walk(&mut object.value, usual, root);
    }
}

/// Every object of every layer, in layer order, checked; nothing is applied here.
pub fn load(scenario: &Scenario) -> anyhow::Result<Vec<Object>> {
    let Some(stack) = &scenario.stack else {
        bail!(
            "{} has no `stack:` to deploy; add e.g. `stack: {{layers: [{{manifests: ../manifests/mayastor-base}}, {{manifests: ../manifests/mayastor}}]}}`",
            scenario.source.display()
        );
    };
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for layer in &stack.layers {
        let found = match layer {
            Layer::Manifests(m) => manifest::load_dir(&scenario.path_of(&m.manifests)),
            Layer::Chart(chart) => render_chart(scenario, chart)?,
        };
        match found {
            Ok(found) => objects.extend(found),
            Err(Problems(found)) => problems.extend(found),
        }
    }
    apply_core_list(scenario, &mut objects);
    problems.extend(validate::check_all(&objects));
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    Ok(objects)
}

/// The scenario's DiskPools, checked against the DiskPool CRD the stack carries.
pub fn pools(
    scenario: &Scenario,
    capabilities: &crate::provider::Capabilities,
    state: &StateDir,
    objects: &[Object],
) -> anyhow::Result<Vec<Object>> {
    let pools = pool::disk_pools(scenario, capabilities, state, &pool::namespace(objects));
    let mut all = objects.to_vec();
    all.extend(pools.iter().cloned());
    let problems: Vec<_> =
        validate::check_all(&all).into_iter().filter(|p| p.file == scenario.source && p.line == 0).collect();
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    Ok(pools)
}

/// The scenario's io-engine core list (`ioEngineCoreList`) replaces the
/// chart's `-l1,2`, with as many CPUs requested as cores listed, so
/// io-engine starts on nodes with fewer than 3 CPUs. Returns whether it did.
pub fn apply_core_list(scenario: &Scenario, objects: &mut [Object]) -> bool {
    let Some(list) = scenario.cluster.nodes.iter().find_map(|g| g.io_engine_core_list.clone()) else { return false };
    let cores = crate::scenario::parse_core_list(&list).map(|c| c.len()).unwrap_or(1).to_string();
    let mut changed = false;
    for object in objects.iter_mut().filter(|o| o.kind() == "DaemonSet") {
        let Some(containers) =
            object.value.pointer_mut("/spec/template/spec/containers").and_then(|c| c.as_array_mut())
        else {
            continue;
        };
        for container in containers.iter_mut() {
            let is_engine = container
                .get("image")
                .and_then(|i| i.as_str())
                .is_some_and(|i| image::repository(i).ends_with("/mayastor-io-engine"));
            if !is_engine {
                continue;
            }
            if let Some(args) = container.get_mut("args").and_then(|a| a.as_array_mut()) {
                for arg in args.iter_mut().filter(|a| a.as_str().is_some_and(|s| s.starts_with("-l"))) {
                    *arg = format!("-l{list}").into();
                    changed = true;
                }
            }
            for bound in ["limits", "requests"] {
                if let Some(cpu) = container.pointer_mut(&format!("/resources/{bound}/cpu")) {
                    *cpu = cores.clone().into();
                }
            }
        }
    }
    changed
}

/// `helm template` renders a chart without a cluster; `lab` applies, waits
/// and tears down the result like any other layer.
fn render_chart(scenario: &Scenario, chart: &ChartLayer) -> anyhow::Result<Result<Vec<Object>, Problems>> {
    let values = tempfile_with(&serde_json::to_string(&chart.values)?)?;
    let chart_ref = if Path::new(&chart.chart).exists() || chart.chart.starts_with('.') {
        scenario.path_of(&chart.chart).display().to_string()
    } else {
        chart.chart.clone()
    };
    let mut cmd = std::process::Command::new("helm");
    cmd.args(["template", &chart.release, &chart_ref, "--namespace", &chart.namespace, "--include-crds"]);
    cmd.arg("--values").arg(&values.0);
    if let Some(version) = &chart.version {
        cmd.args(["--version", version]);
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "chart layer {}: `helm` is not installed; install it, or render the chart into a manifests folder",
                chart.chart
            )
        }
        Err(e) => return Err(e).context("running helm template"),
    };
    if !output.status.success() {
        bail!(
            "chart layer {}: `helm template` failed:\n{}",
            chart.chart,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    let source = PathBuf::from(format!("helm template {} {}", chart.release, chart.chart));
    let mut found = manifest::parse(&source, &String::from_utf8_lossy(&output.stdout));
    // Namespaced objects helm leaves without a namespace belong to the release's.
    if let Ok(objects) = &mut found {
        for object in objects.iter_mut() {
            if object.namespace().is_none()
                && order::Phase::of(object) != order::Phase::ClusterWide
                && !matches!(object.kind(), "Namespace" | "CustomResourceDefinition")
                && let Some(meta) = object.value.get_mut("metadata").and_then(|m| m.as_object_mut())
            {
                meta.insert("namespace".into(), chart.namespace.clone().into());
            }
        }
    }
    Ok(found)
}

/// A values file for helm, removed when dropped.
struct TempValues(PathBuf);

impl Drop for TempValues {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_with(text: &str) -> anyhow::Result<TempValues> {
    let path = std::env::temp_dir().join(format!("lab-values-{}-{}.json", std::process::id(), rand_suffix()));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(TempValues(path))
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod kubelet_root_tests {
    use super::*;

    #[test]
    fn paths_under_the_usual_kubelet_root_follow_the_clusters() {
        let mut objects = vec![Object {
            value: serde_json::json!({"spec": {"args": ["--kubelet-endpoint=/var/lib/kubelet/plugins/x/csi.sock", "--v=2"],
                "volumes": [{"hostPath": {"path": "/var/lib/kubelet"}}, {"hostPath": {"path": "/var/lib/kubeletx"}},
                            {"hostPath": {"path": "/srv/var/lib/kubelet"}}]}}),
            file: "plugin.yaml".into(),
            line: 1,
        }];
        rewrite_path_root(&mut objects, "/var/lib/kubelet", "/run/lab/x/kubelet");
        assert_eq!(
            objects[0].value,
            serde_json::json!({"spec": {"args": ["--kubelet-endpoint=/run/lab/x/kubelet/plugins/x/csi.sock", "--v=2"],
                "volumes": [{"hostPath": {"path": "/run/lab/x/kubelet"}}, {"hostPath": {"path": "/var/lib/kubeletx"}},
                            {"hostPath": {"path": "/srv/var/lib/kubelet"}}]}})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped Mayastor stack: its common base, then its own layer.
    fn shipped_mayastor() -> Vec<Object> {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("manifests");
        let mut objects = manifest::load_dir(&manifests.join("mayastor-base")).unwrap();
        objects.extend(manifest::load_dir(&manifests.join("mayastor")).unwrap());
        objects
    }

    #[test]
    fn a_pod_image_a_component_builds_is_its_build() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let scenario = Scenario::load(&repo.join("scenarios/local.yaml")).unwrap();
        let state = crate::state::StateDir::at(tempfile::tempdir().unwrap().path());
        let images = ImageMap::of(&scenario, &state).unwrap();
        let fio = images.reference_for("lab-local/fio").unwrap().unwrap();
        assert!(fio.starts_with("lab-local/fio:lab-"), "{fio}");
        assert_eq!(images.reference_for("docker.io/lab-local/fio:other").unwrap().as_deref(), Some(fio.as_str()));
        assert_eq!(images.reference_for("busybox:1.36").unwrap(), None);
    }

    #[test]
    fn the_shipped_mayastor_manifests_are_valid_kubernetes_objects() {
        let objects = shipped_mayastor();
        let problems = validate::check_all(&objects);
        assert!(problems.is_empty(), "{}", Problems(problems));
        let kinds: Vec<&str> = objects.iter().map(|o| o.kind()).collect();
        for kind in [
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "StatefulSet",
            "DaemonSet",
            "StorageClass",
            "CSIDriver",
        ] {
            assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
        }
        let images = image::images(&objects);
        assert!(images.iter().all(|i| i.contains(':')), "every image is pinned by tag: {images:?}");
        assert!(images.contains(&"docker.io/openebs/mayastor-io-engine:v2.8.0".to_string()), "{images:?}");
    }

    #[test]
    fn the_scenarios_core_list_reaches_the_io_engine_with_as_many_cpus() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/fixtures/stack/lab.yaml");
        let scenario = Scenario::load(&path).unwrap();
        let objects = load(&scenario).unwrap();
        let engine = objects.iter().find(|o| o.name() == "mayastor-io-engine").unwrap();
        let container = &engine.value["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(container["name"], "io-engine");
        assert!(container["args"].as_array().unwrap().contains(&"-l1".into()), "{}", container["args"]);
        assert_eq!(container["resources"]["requests"]["cpu"], "1");
        assert_eq!(container["resources"]["limits"]["cpu"], "1");
    }

    #[test]
    fn disk_pools_are_checked_against_the_crds_own_schema() {
        let mut objects = shipped_mayastor();
        let pool = |spec: &str| {
            let text = format!(
                "apiVersion: openebs.io/v1beta2\nkind: DiskPool\nmetadata: {{name: p, namespace: mayastor}}\n{spec}"
            );
            manifest::parse(Path::new("pool.yaml"), &text).unwrap().remove(0)
        };
        objects.push(pool("spec: {node: w1, disks: ['aio:///var/local/mayastor/pool.img']}\n"));
        assert!(validate::check_all(&objects).is_empty());
        let cases = [
            ("spec: {node: w1}\n", "spec.disks: required"),
            ("spec: {node: w1, disks: [a, b]}\n", "spec.disks: allows at most 1 item(s), has 2"),
            ("spec: {node: w1, disks: [a], size: 1}\n", "spec.size: unknown field (not in the CRD's schema)"),
            ("spec: {node: 7, disks: [a]}\n", "spec.node: expected a string, found 7"),
            (
                "spec: {node: w1, disks: [a]}\nstatus: {cr_state: Gone, capacity: 0, used: 0, available: 0}\n",
                "status.cr_state: \"Gone\" is not one of",
            ),
        ];
        for (spec, want) in cases {
            let mut with_bad = objects.clone();
            with_bad.pop();
            with_bad.push(pool(spec));
            let problems: Vec<String> = validate::check_all(&with_bad).iter().map(|p| p.to_string()).collect();
            assert!(
                problems.len() == 1 && problems[0].starts_with(&format!("pool.yaml:1: DiskPool mayastor/p: {want}")),
                "{spec}: {problems:?}"
            );
        }
    }
}

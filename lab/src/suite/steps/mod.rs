//! Step definitions, one module per domain. Objects a scenario makes live
//! in its own namespace, removed after it (kept on failure when asked).

pub mod cluster;
pub mod datapath;
pub mod faults;
pub mod fio;
pub mod host;
pub mod mayastor;
pub mod placement;
pub mod snapshots;
pub mod storage;
pub mod workloads;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};

use super::world::LabWorld;

/// Metadata of an object lab makes for a test.
pub fn lab_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some([("app.kubernetes.io/managed-by".to_string(), "lab".to_string())].into()),
        ..Default::default()
    }
}

/// `lab-t-<scenario words>-<suffix>`: a valid namespace name that says which scenario made it.
pub fn namespace_name(scenario: &str, suffix: u32) -> String {
    let mut slug: String = scenario
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    slug.truncate(40);
    let slug = slug.trim_end_matches('-');
    format!("lab-t-{slug}-{:06x}", suffix & 0xff_ffff)
}

/// The scenario's namespace, made on first use.
pub async fn namespace(world: &mut LabWorld) -> Result<String, String> {
    if let Some(ns) = &world.namespace {
        return Ok(ns.clone());
    }
    let suffix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = namespace_name(&world.name, suffix);
    let namespaces: Api<Namespace> = Api::all(world.ctx.client()?);
    // Marked for this lab: `lab down` removes the claims and workloads left in it, and only those.
    let mut metadata = lab_meta(&name);
    let instance =
        world.ctx.state.instance().ok_or("the lab has no instance id: `lab up` or `lab test` records one")?;
    metadata.labels = Some(crate::stack::ownership::namespace_labels(world.ctx.scenario.name(), &instance));
    let object = Namespace { metadata, ..Default::default() };
    namespaces.create(&PostParams::default(), &object).await.map_err(|e| format!("creating namespace {name}: {e}"))?;
    world.namespace = Some(name.clone());
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_named_after_their_scenario() {
        assert_eq!(namespace_name("A PVC binds, then fio runs!", 0xabc), "lab-t-a-pvc-binds-then-fio-runs-000abc");
        let long = namespace_name(&"x".repeat(100), 1);
        assert!(long.len() <= 63, "{long}");
    }
}

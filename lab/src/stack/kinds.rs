//! Where objects of each kind live in the API, found through discovery of
//! their own group version (so a kind whose CRD was just created resolves).

use std::collections::HashMap;

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};

use super::manifest::Object;

/// Where objects of a kind live in the API, found once per kind.
#[derive(Default)]
pub struct Kinds(HashMap<(String, String), (ApiResource, ApiCapabilities)>);

impl Kinds {
    pub async fn api(&mut self, client: &Client, object: &Object) -> anyhow::Result<Api<DynamicObject>> {
        let key = (object.api_version().to_string(), object.kind().to_string());
        if !self.0.contains_key(&key) {
            let (group, version) = object.api_version().split_once('/').unwrap_or(("", object.api_version()));
            let gvk = GroupVersionKind::gvk(group, version, object.kind());
            let found = discovery::pinned_kind(client, &gvk).await.with_context(|| {
                format!(
                    "{} ({}): the API server does not serve {} {}; is its CRD installed?",
                    object.describe(),
                    object.location(),
                    object.api_version(),
                    object.kind()
                )
            })?;
            self.0.insert(key.clone(), found);
        }
        let (resource, capabilities) = &self.0[&key];
        Ok(match capabilities.scope {
            Scope::Namespaced => {
                Api::namespaced_with(client.clone(), object.namespace().unwrap_or("default"), resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), resource),
        })
    }
}

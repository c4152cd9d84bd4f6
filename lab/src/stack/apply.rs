//! Server-side apply, as field manager `lab`: each object's kind is resolved
//! through discovery of its own group version (so a kind whose CRD was just
//! created resolves too), and re-applying an unchanged stack changes nothing.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use super::manifest::Object;
use crate::plan::{Context, View, Work};

use super::kinds::Kinds;
use super::ownership::FIELD_MANAGER;

/// Server-side apply objects (images pointed at lab's builds); for CRDs,
/// wait until they are Established.
#[derive(Debug)]
pub struct Apply {
    pub objects: Vec<Object>,
    pub images: std::sync::Arc<super::ImageMap>,
    pub establish_within: Option<Duration>,
    /// Only ask the API server (`dryRun=All`): every rejection is reported, nothing is stored.
    pub server_dry_run: bool,
    /// Whose objects these become; what lab finds already there and not its own is refused.
    pub ownership: std::sync::Arc<super::ownership::Ownership>,
}

#[async_trait::async_trait(?Send)]
impl Work for Apply {
    fn describe(&self, _view: &View<'_>) -> String {
        let mut objects = self.objects.clone();
        super::image::rewrite(&mut objects, &self.images.replacements_for_plan(), self.images.registry.is_some());
        let mut lines: Vec<String> = Vec::new();
        for object in &objects {
            let at = if object.line == 0 { "generated".to_string() } else { object.location() };
            lines.push(format!("{}  ({at})", object.describe()));
            for image in super::image::images(std::slice::from_ref(object)) {
                lines.push(format!("  image {image}"));
            }
        }
        let marks = format!(
            "labels {}=lab, {}={}, {}=<this lab instance's id>",
            super::ownership::MANAGED_BY,
            super::ownership::LAB,
            self.ownership.lab,
            super::ownership::INSTANCE
        );
        if self.server_dry_run {
            lines.push(format!(
                "api: server-side apply with dryRun=All (nothing is stored), field manager {FIELD_MANAGER}, {marks}"
            ));
        } else {
            let found = if self.ownership.adopt { "adopts" } else { "refuses" };
            lines.push(format!(
                "api: GET each object ({found} one lab did not make), then server-side apply, field manager {FIELD_MANAGER}, {marks}"
            ));
        }
        if let Some(within) = self.establish_within {
            lines.push(format!("waits until Established (at most {}s)", within.as_secs()));
        }
        lines.join("\n     ")
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        let mut objects = self.objects.clone();
        let replaced =
            super::image::rewrite(&mut objects, &self.images.replacements()?, self.images.registry.is_some());
        let client = ctx.client().await?;
        let ownership = &self.ownership;
        if self.server_dry_run {
            for object in objects.iter_mut() {
                super::ownership::mark(object, ownership, false);
            }
            dry_run(&client, &objects, &mut Kinds::default()).await?;
            return Ok(Some(format!("{} object(s) accepted by the API server, none stored", objects.len())));
        }
        // Every object's owner is checked before the first is applied: a refusal changes nothing.
        let owners = super::ownership::owners(&client, &objects, ownership).await?;
        let conflicts = super::ownership::conflicts(&objects, &owners);
        if !conflicts.is_empty() && !ownership.adopt {
            return Err(super::ownership::refusal(&ownership.lab, &conflicts));
        }
        let mut created = Vec::new();
        for (object, owner) in objects.iter_mut().zip(&owners) {
            let adopted = matches!(owner, Some(super::ownership::Owner::Adopted | super::ownership::Owner::Foreign(_)));
            super::ownership::mark(object, ownership, adopted);
            if owner.is_none() {
                created.push(object.describe());
            }
        }
        // Recorded before applying: an object whose apply fails half-way may still exist.
        super::ownership::record_created(&ownership.record, &created)?;
        apply(&client, &objects, &mut Kinds::default()).await?;
        if let Some(within) = self.establish_within {
            let names: Vec<String> = objects.iter().map(|o| o.name().to_string()).collect();
            wait_established(&client, &names, within, Duration::from_millis(500)).await?;
        }
        let images = if replaced > 0 { format!(", {replaced} image(s) from lab's builds") } else { String::new() };
        let adopted = if conflicts.is_empty() { String::new() } else { format!(", {} adopted", conflicts.len()) };
        Ok(Some(format!("{} object(s) applied ({} new{adopted}){images}", objects.len(), created.len())))
    }
}

/// Apply each object in turn; the first failure names the object and where it was written.
pub async fn apply(client: &Client, objects: &[Object], kinds: &mut Kinds) -> anyhow::Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for object in objects {
        apply_one(client, object, kinds, &params).await?;
    }
    Ok(())
}

/// Ask the API server to apply each object without storing it (`dryRun=All`):
/// its validation, defaulting and admission run as for a real apply. Every
/// rejection is collected, each naming the object and where it was written.
pub async fn dry_run(client: &Client, objects: &[Object], kinds: &mut Kinds) -> anyhow::Result<()> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = true;
    let mut rejected = Vec::new();
    for object in objects {
        if let Err(e) = apply_one(client, object, kinds, &params).await {
            rejected.push(format!("{e:#}"));
        }
    }
    if !rejected.is_empty() {
        bail!("the API server rejects {} of {} object(s):\n{}", rejected.len(), objects.len(), rejected.join("\n"));
    }
    Ok(())
}

async fn apply_one(client: &Client, object: &Object, kinds: &mut Kinds, params: &PatchParams) -> anyhow::Result<()> {
    let api = kinds.api(client, object).await?;
    let body: DynamicObject = serde_json::from_value(object.value.clone())
        .with_context(|| format!("{} ({})", object.describe(), object.location()))?;
    let at = || format!("applying {} ({})", object.describe(), object.location());
    match api.patch(object.name(), params, &Patch::Apply(&body)).await {
        Ok(_) => Ok(()),
        // The API server's own sentence says what is wrong; its status object adds nothing.
        Err(kube::Error::Api(status)) => Err(anyhow::anyhow!("{}: {}", at(), status.message)),
        Err(e) => Err(e).with_context(at),
    }
}

/// Poll until every named CRD is Established; on timeout, say which are not and why.
pub async fn wait_established(
    client: &Client,
    names: &[String],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pending = crate::wait::until_none_pending(timeout, poll, async || {
        let mut pending = Vec::new();
        for name in names {
            let crd = crds.get_opt(name).await.with_context(|| format!("reading CRD {name}"))?;
            let condition = crd
                .as_ref()
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .and_then(|conds| conds.iter().find(|c| c.type_ == "Established").cloned());
            match condition {
                Some(c) if c.status == "True" => {}
                Some(c) => pending.push(format!("{name} ({})", c.message.unwrap_or(c.reason.unwrap_or_default()))),
                None if crd.is_none() => pending.push(format!("{name} (not found)")),
                None => pending.push(format!("{name} (no Established condition yet)")),
            }
        }
        Ok::<_, anyhow::Error>(pending)
    })
    .await?;
    if !pending.is_empty() {
        bail!("after {}s these CRDs are not Established: {}", timeout.as_secs(), pending.join(", "));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::stack::manifest::parse;

    pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    /// The discovery answer for a group version, as the API server gives it.
    pub fn resource_list(group_version: &str, resources: &[(&str, &str, bool)]) -> serde_json::Value {
        let resources: Vec<_> = resources
            .iter()
            .map(|(name, kind, namespaced)| {
                json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
    }

    pub fn respond(send: tower_test::mock::SendResponse<Response<Body>>, body: serde_json::Value) {
        send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap());
    }

    /// The requests a test's fake API server saw, `METHOD path?query`.
    pub async fn next(handle: &mut Handle) -> (String, Vec<u8>, tower_test::mock::SendResponse<Response<Body>>) {
        let (request, send) = handle.next_request().await.expect("the client stopped asking");
        let line = format!("{} {}", request.method(), request.uri());
        let body = request.into_body().collect_bytes().await.unwrap().to_vec();
        (line, body, send)
    }

    #[tokio::test]
    async fn objects_are_server_side_applied_by_lab_after_discovering_their_kind_once() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: mayastor}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a, namespace: mayastor}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: b, namespace: mayastor}\n";
        let objects = parse(Path::new("t.yaml"), text).unwrap();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..5 {
                let (line, body, send) = next(&mut handle).await;
                let answer = if line == "GET /api/v1" {
                    resource_list("v1", &[("namespaces", "Namespace", false)])
                } else if line == "GET /apis/apps/v1" {
                    resource_list("apps/v1", &[("daemonsets", "DaemonSet", true)])
                } else {
                    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    sent
                };
                respond(send, answer);
                seen.push(line);
            }
            seen
        });
        apply(&Client::new(service, "default"), &objects, &mut Kinds::default()).await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(
            seen,
            [
                "GET /api/v1",
                "PATCH /api/v1/namespaces/mayastor?&force=true&fieldManager=lab",
                "GET /apis/apps/v1",
                "PATCH /apis/apps/v1/namespaces/mayastor/daemonsets/a?&force=true&fieldManager=lab",
                "PATCH /apis/apps/v1/namespaces/mayastor/daemonsets/b?&force=true&fieldManager=lab",
            ]
        );
    }

    #[tokio::test]
    async fn a_crd_is_awaited_until_established_and_a_stuck_one_is_named() {
        let crd = |established: &str| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "diskpools.openebs.io"},
                   "spec": {"group": "openebs.io", "scope": "Namespaced", "versions": [],
                            "names": {"plural": "diskpools", "kind": "DiskPool"}},
                   "status": {"conditions": [{"type": "Established", "status": established, "reason": "Installing", "message": "the initial names have not been accepted"}]}})
        };
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            for state in ["False", "True"] {
                let (line, _, send) = next(&mut handle).await;
                assert_eq!(line, "GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/diskpools.openebs.io");
                respond(send, crd(state));
            }
        });
        let client = Client::new(service, "default");
        let names = vec!["diskpools.openebs.io".to_string()];
        wait_established(&client, &names, Duration::from_secs(5), Duration::from_millis(1)).await.unwrap();
        server.await.unwrap();

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                respond(send, crd("False"));
            }
        });
        let client = Client::new(service, "default");
        let err =
            wait_established(&client, &names, Duration::from_millis(20), Duration::from_millis(5)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "after 0s these CRDs are not Established: diskpools.openebs.io (the initial names have not been accepted)"
        );
    }
}

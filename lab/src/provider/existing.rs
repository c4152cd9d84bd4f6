//! An existing cluster, reached through a kubeconfig and context. `lab` never
//! creates or deletes it; a node shell is a short-lived privileged pod that
//! enters the node's namespaces with `nsenter`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, SecurityContext, Toleration};
use kube::api::{AttachParams, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Provider;
use crate::plan::{Action, Step};
use crate::plan::{Cluster, NodeStatus};
use crate::scenario::{ExistingOptions, Scenario};
use crate::shell::{Cmd, Output, RunError, Shell, quote};

const SHELL_NAMESPACE: &str = "default";
const POD_START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Existing {
    named_nodes: Vec<String>,
    options: ExistingOptions,
}

impl Existing {
    pub fn new(scenario: &Scenario) -> Existing {
        Existing {
            named_nodes: scenario.planned_nodes().into_iter().map(|n| n.name).collect(),
            options: resolved_options(scenario),
        }
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        kubeconfig_path(&self.options)
    }

    fn kubectl(&self) -> Cmd {
        let mut cmd = Cmd::new("kubectl").arg("--kubeconfig").arg(self.kubeconfig_path().display().to_string());
        if let Some(context) = &self.options.context {
            cmd = cmd.arg("--context").arg(context);
        }
        cmd
    }
}

/// The scenario's options, with a relative kubeconfig path taken from the
/// scenario's folder like every path written in it.
pub fn resolved_options(scenario: &Scenario) -> ExistingOptions {
    let mut options = scenario.cluster.existing.clone().unwrap_or_default();
    if let Some(path) = &options.kubeconfig
        && !path.starts_with('~')
        && !std::path::Path::new(path).is_absolute()
    {
        options.kubeconfig = Some(scenario.path_of(path).display().to_string());
    }
    options
}

/// The kubeconfig file: the scenario's (a leading `~/` is the home folder),
/// else `$KUBECONFIG`, else `~/.kube/config`.
pub fn kubeconfig_path(options: &ExistingOptions) -> PathBuf {
    if let Some(path) = &options.kubeconfig {
        return match path.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
            None => PathBuf::from(path),
        };
    }
    if let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".kube").join("config")
}

/// A client for the kubeconfig and context, with the file named in errors.
pub async fn client_for(path: PathBuf, context: Option<String>) -> anyhow::Result<Client> {
    let kubeconfig =
        Kubeconfig::read_from(&path).map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
    let options = KubeConfigOptions { context: context.clone(), ..Default::default() };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| {
        let context = context.as_deref().unwrap_or("(current)");
        anyhow::anyhow!("kubeconfig {} context {context}: {e}", path.display())
    })?;
    Ok(Client::try_from(config)?)
}

#[async_trait]
impl Cluster for Existing {
    async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        list_nodes(self.client().await?).await
    }

    async fn client(&self) -> anyhow::Result<Client> {
        client_for(self.kubeconfig_path(), self.options.context.clone()).await
    }

    fn node_shell(&self, node: &str) -> Box<dyn Shell> {
        Box::new(PodShell {
            node: node.to_string(),
            image: self.options.node_shell_image.clone(),
            kubeconfig: self.kubeconfig_path(),
            context: self.options.context.clone(),
            kubectl: self.kubectl(),
        })
    }
}

#[async_trait]
impl Provider for Existing {
    fn capabilities(&self) -> super::Capabilities {
        use super::Capabilities;
        Capabilities { cluster: true, predates_lab: true, nodes_outlive_lab: true, ..Capabilities::default() }
    }

    fn up_steps(&self) -> Vec<Step> {
        vec![Step::new(
            format!("reach the cluster through {}", self.kubeconfig_path().display()),
            Action::ExpectNodes { names: self.named_nodes.clone() },
        )]
    }

    fn down_steps(&self) -> Vec<Step> {
        // The cluster is the user's: down removes only what lab created.
        vec![]
    }

    fn users_own(&self) -> Option<String> {
        let context = self.options.context.as_deref().map(|c| format!(", context {c}")).unwrap_or_default();
        Some(format!("an existing cluster, through kubeconfig {}{context}", self.kubeconfig_path().display()))
    }

    fn tools(&self) -> Vec<crate::findings::Tool> {
        vec![super::kubectl_tool(false)]
    }

    async fn prerequisites(
        &self,
        _scenario: &Scenario,
        _machine: &crate::findings::Machine<'_>,
    ) -> Vec<crate::findings::Finding> {
        use crate::findings::Finding;
        let path = self.kubeconfig_path();
        vec![if path.exists() {
            Finding::ok("kubeconfig", path.display().to_string())
        } else {
            Finding::missing(
                "kubeconfig",
                format!("{} does not exist", path.display()),
                "set cluster.existing.kubeconfig or KUBECONFIG",
            )
        }]
    }

    fn preparation(&self, nodes: &[crate::scenario::PlannedNode]) -> crate::prepare::Preparation {
        // A node of someone else's cluster is changed only where the stack
        // needs it: io-engine nodes, whose CSI plugin mounts with
        // Bidirectional propagation.
        crate::prepare::each_node_on_its_own_kernel(nodes, |n| n.group.runs_io_engine(), &self.kubelet_restart())
    }

    fn interactive_shell(&self, node: &str) -> Cmd {
        self.kubectl()
            .args(["debug", &format!("node/{node}"), "-it", "--profile=sysadmin"])
            .arg(format!("--image={}", self.options.node_shell_image))
            .args(["--", "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh"])
    }
}

pub async fn list_nodes(client: Client) -> anyhow::Result<Vec<NodeStatus>> {
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await.map_err(|e| anyhow::anyhow!("listing nodes: {e}"))?;
    let mut out: Vec<NodeStatus> = list.items.iter().map(node_status).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The node's Ready condition; `None` when it reports none yet.
pub fn node_ready(node: &Node) -> Option<bool> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
}

fn node_status(node: &Node) -> NodeStatus {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let role = if labels.contains_key("node-role.kubernetes.io/control-plane") { "control-plane" } else { "worker" };
    let ready = match node_ready(node) {
        Some(true) => "Ready",
        Some(false) => "NotReady",
        None => "Unknown",
    };
    NodeStatus { name: node.metadata.name.clone().unwrap_or_default(), role: role.into(), state: ready.into() }
}

/// The pod that gives a root shell on `node`: host PID namespace, privileged,
/// tolerating every taint so it lands on control-plane nodes too.
pub fn node_shell_pod(name: &str, node: &str, image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(SHELL_NAMESPACE.into()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "lab".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            host_pid: Some(true),
            host_network: Some(true),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(0),
            tolerations: Some(vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]),
            containers: vec![Container {
                name: "shell".into(),
                image: Some(image.to_string()),
                command: Some(vec!["sleep".into(), "3600".into()]),
                security_context: Some(SecurityContext { privileged: Some(true), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `nsenter` into the node's namespaces through PID 1.
fn nsenter(cmd: &Cmd) -> Vec<String> {
    let mut argv: Vec<String> = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"].map(String::from).to_vec();
    if !cmd.env.is_empty() {
        argv.push("env".into());
        argv.extend(cmd.env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    argv.extend(cmd.argv());
    argv
}

pub struct PodShell {
    node: String,
    image: String,
    kubeconfig: PathBuf,
    context: Option<String>,
    kubectl: Cmd,
}

impl PodShell {
    fn fail(&self, cmd: &Cmd, reason: impl ToString) -> RunError {
        RunError::Spawn { place: self.place(), command: self.display(cmd), reason: reason.to_string() }
    }

    async fn exec_in(&self, pods: &Api<Pod>, pod: &str, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        let running =
            kube::runtime::wait::await_condition(pods.clone(), pod, kube::runtime::conditions::is_pod_running());
        match tokio::time::timeout(POD_START_TIMEOUT, running).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.fail(cmd, format!("waiting for shell pod {pod}: {e}"))),
            Err(_) => {
                return Err(self.fail(
                    cmd,
                    format!(
                        "shell pod {pod} did not start within {}s (can the node pull {}?)",
                        POD_START_TIMEOUT.as_secs(),
                        self.image
                    ),
                ));
            }
        }
        exec_in_pod(pods, pod, None, nsenter(cmd), stdin).await.map_err(|e| self.fail(cmd, e))
    }
}

/// Run `argv` in a pod's container through the API (kube exec), feeding
/// `stdin`, and return its status and output.
pub async fn exec_in_pod(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    argv: Vec<String>,
    stdin: Option<&[u8]>,
) -> Result<Output, kube::Error> {
    let mut params = AttachParams::default().stdin(stdin.is_some()).stdout(true).stderr(true);
    if let Some(container) = container {
        params = params.container(container);
    }
    let mut process = pods.exec(pod, argv, &params).await?;
    if let (Some(data), Some(mut writer)) = (stdin, process.stdin()) {
        let _ = writer.write_all(data).await;
        let _ = writer.shutdown().await;
    }
    // Drain both streams together: an unread stderr stalls the process.
    let (mut out, mut err) = (process.stdout(), process.stderr());
    let (stdout, stderr) = tokio::join!(read_all(out.take()), read_all(err.take()));
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    let _ = process.join().await;
    let code = match status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => exit_code(&s).unwrap_or(1),
        None => -1,
    };
    Ok(Output {
        status: code,
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    })
}

async fn read_all(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut stream) = stream {
        let _ = stream.read_to_end(&mut buf).await;
    }
    buf
}

/// The exit code Kubernetes reports in a failed exec's status details.
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i64> {
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_ref()?.parse().ok())
}

#[async_trait]
impl Shell for PodShell {
    fn place(&self) -> String {
        format!("node {}", self.node)
    }

    /// The kubectl equivalent of what lab does through the API.
    fn display(&self, cmd: &Cmd) -> String {
        let argv: Vec<String> = nsenter(cmd).iter().map(|w| quote(w)).collect();
        let debug = self
            .kubectl
            .clone()
            .args(["debug", &format!("node/{}", self.node), "--attach", "--quiet", "--profile=sysadmin"])
            .arg(format!("--image={}", self.image));
        format!("{debug} -- {}", argv.join(" "))
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        let client = client_for(self.kubeconfig.clone(), self.context.clone()).await.map_err(|e| self.fail(cmd, e))?;
        let pods: Api<Pod> = Api::namespaced(client, SHELL_NAMESPACE);
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
        );
        let name =
            format!("lab-shell-{}", self.node.chars().take(40).collect::<String>().to_lowercase()) + "-" + &suffix;
        pods.create(&PostParams::default(), &node_shell_pod(&name, &self.node, &self.image))
            .await
            .map_err(|e| self.fail(cmd, format!("creating shell pod {name}: {e}")))?;
        let result = self.exec_in(&pods, &name, cmd, stdin).await;
        // Always remove the pod, even when the command failed.
        if let Err(e) = pods.delete(&name, &DeleteParams::default().grace_period(0)).await {
            tracing::warn!(pod = %name, error = %e, "could not delete node shell pod");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_shell_pod_is_a_valid_privileged_pod_pinned_to_its_node() {
        let pod = node_shell_pod("lab-shell-n1-1", "n1", "busybox:1.36");
        // Round-trip through JSON into the typed API: nothing dropped, nothing unknown.
        let json = serde_json::to_value(&pod).unwrap();
        let back: Pod = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        let spec = back.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.containers[0].security_context.as_ref().unwrap().privileged, Some(true));
    }

    /// The exact request `lab status` makes of an existing cluster, answered
    /// with a real-shaped NodeList (kube-rs's tower_test mock pattern).
    #[tokio::test]
    async fn nodes_come_from_the_api_with_role_and_readiness() {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let server = tokio::spawn(async move {
            let (request, respond) = handle.next_request().await.expect("no request made");
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), "/api/v1/nodes");
            let list = serde_json::json!({
                "apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
                "items": [
                    {"metadata": {"name": "w1", "labels": {}},
                     "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                    {"metadata": {"name": "cp", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                     "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}},
                ]
            });
            let body = kube::client::Body::from(serde_json::to_vec(&list).unwrap());
            respond.send_response(http::Response::builder().body(body).unwrap());
        });
        let nodes = list_nodes(Client::new(service, "default")).await.unwrap();
        server.await.unwrap();
        let got: Vec<(&str, &str, &str)> =
            nodes.iter().map(|n| (n.name.as_str(), n.role.as_str(), n.state.as_str())).collect();
        assert_eq!(got, [("cp", "control-plane", "Ready"), ("w1", "worker", "NotReady")]);
    }

    #[test]
    fn commands_enter_the_node_namespaces_with_their_environment() {
        let cmd = Cmd::new("sysctl").arg("vm.nr_hugepages=8").env("LC_ALL", "C");
        assert_eq!(
            nsenter(&cmd),
            [
                "nsenter",
                "-t",
                "1",
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "--",
                "env",
                "LC_ALL=C",
                "sysctl",
                "vm.nr_hugepages=8"
            ]
        );
    }
}

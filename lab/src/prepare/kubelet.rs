//! The kubelet reads the hugepage pool only when it starts: after the pool
//! grows, the node's allocatable shows `hugepages-2Mi` only once it restarts.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use crate::plan::Detail;
use crate::shell::{Cmd, Shell};

const RESOURCE: &str = "hugepages-2Mi";

pub fn details(node: &str, restart: &Cmd) -> Vec<Detail> {
    vec![
        Detail::api(format!("GET /api/v1/nodes/{node}: status.allocatable[{RESOURCE}]")),
        Detail::when(restart.clone(), "when it is short"),
        Detail::api("then GET again every 2s until it is enough"),
    ]
}

/// `2Gi`, `1024Mi`, `2147483648`, `0` → bytes.
pub fn quantity_bytes(text: &str) -> Option<u128> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    number.parse::<u128>().ok()?.checked_mul(factor)
}

async fn allocatable(nodes: &Api<Node>, node: &str) -> anyhow::Result<u128> {
    let found = nodes.get(node).await.map_err(|e| anyhow::anyhow!("node {node}: reading allocatable: {e}"))?;
    let quantity = found.status.and_then(|s| s.allocatable).and_then(|a| a.get(RESOURCE).cloned());
    Ok(quantity.and_then(|q| quantity_bytes(&q.0)).unwrap_or(0))
}

fn pages(bytes: u128) -> u128 {
    bytes / (2 << 20)
}

/// Restart the kubelet when the node's allocatable lacks the pages, then wait
/// until it shows them. `poll` and `timeout` are parameters for tests.
pub async fn make_hugepages_allocatable(
    client: Client,
    shell: &dyn Shell,
    node: &str,
    wanted_pages: u64,
    restart: &Cmd,
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client);
    let wanted = u128::from(wanted_pages);
    let before = pages(allocatable(&nodes, node).await?);
    if before >= wanted {
        return Ok(format!("allocatable already {before} pages"));
    }
    shell.run(restart).await?;
    let started = Instant::now();
    loop {
        let now = pages(allocatable(&nodes, node).await?);
        if now >= wanted {
            return Ok(format!("kubelet restarted; allocatable {before} → {now} pages"));
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "node {node}: allocatable {RESOURCE} is {now} pages {}s after restarting the kubelet, {wanted} needed; \
                 check the kubelet's log (`journalctl -u kubelet` on the node, or the local cluster's logs/kubelet.log) and that the pages are still free",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_kubernetes_notation() {
        assert_eq!(quantity_bytes("2Gi"), Some(2 << 30));
        assert_eq!(quantity_bytes("1024Mi"), Some(1 << 30));
        assert_eq!(quantity_bytes("2147483648"), Some(2 << 30));
        assert_eq!(quantity_bytes("0"), Some(0));
        assert_eq!(quantity_bytes("1M"), Some(1_000_000));
        assert_eq!(quantity_bytes("1.5Gi"), None);
    }
}

#[cfg(test)]
mod api_tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;

    /// What kind's and the VMs' providers restart a kubelet with.
    fn systemd_restart() -> Cmd {
        Cmd::new("systemctl").args(["restart", "kubelet"])
    }
    use crate::shell::{Output, RunError};

    #[derive(Default, Clone)]
    struct Recording(Arc<Mutex<Vec<String>>>);

    #[async_trait]
    impl Shell for Recording {
        fn place(&self) -> String {
            "node w1".into()
        }
        fn display(&self, cmd: &Cmd) -> String {
            cmd.to_string()
        }
        async fn exec(&self, cmd: &Cmd, _stdin: Option<&[u8]>) -> Result<Output, RunError> {
            self.0.lock().unwrap().push(cmd.to_string());
            Ok(Output::default())
        }
    }

    /// Answers each GET of node w1 with the next allocatable quantity.
    fn serve(answers: Vec<&'static str>) -> (Client, tokio::task::JoinHandle<usize>) {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let server = tokio::spawn(async move {
            let mut served = 0;
            for hugepages in answers {
                let Some((request, respond)) = handle.next_request().await else { break };
                assert_eq!((request.method(), request.uri().path()), (&http::Method::GET, "/api/v1/nodes/w1"));
                let node = serde_json::json!({
                    "apiVersion": "v1", "kind": "Node", "metadata": {"name": "w1"},
                    "status": {"allocatable": {"cpu": "4", "hugepages-2Mi": hugepages}}
                });
                serde_json::from_value::<Node>(node.clone()).unwrap();
                let body = kube::client::Body::from(serde_json::to_vec(&node).unwrap());
                respond.send_response(http::Response::builder().body(body).unwrap());
                served += 1;
            }
            served
        });
        (Client::new(service, "default"), server)
    }

    #[tokio::test]
    async fn the_kubelet_is_restarted_only_when_allocatable_is_short_and_then_awaited() {
        let shell = Recording::default();
        let (client, server) = serve(vec!["0", "0", "2Gi"]);
        let note = make_hugepages_allocatable(
            client,
            &shell,
            "w1",
            1024,
            &systemd_restart(),
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(note, "kubelet restarted; allocatable 0 → 1024 pages");
        assert_eq!(*shell.0.lock().unwrap(), ["systemctl restart kubelet"]);
        assert_eq!(server.await.unwrap(), 3);

        let shell = Recording::default();
        let (client, _server) = serve(vec!["2Gi"]);
        let note =
            make_hugepages_allocatable(client, &shell, "w1", 1024, &systemd_restart(), Duration::ZERO, Duration::ZERO)
                .await
                .unwrap();
        assert_eq!(note, "allocatable already 1024 pages");
        assert!(shell.0.lock().unwrap().is_empty(), "restarted a kubelet that saw the pages");
    }

    #[tokio::test]
    async fn a_kubelet_that_never_reports_the_pages_is_an_error_naming_the_node() {
        let (client, _server) = serve(vec!["0", "0", "128Mi"]);
        let err = make_hugepages_allocatable(
            client,
            &Recording::default(),
            "w1",
            1024,
            &systemd_restart(),
            Duration::ZERO,
            Duration::ZERO,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("node w1: allocatable hugepages-2Mi is 0 pages"), "{err}");
        assert!(err.contains("journalctl -u kubelet"), "{err}");
    }
}

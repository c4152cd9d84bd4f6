//! The kubelet reads the hugepage pool only when it starts: after the pool
//! grows, the node's allocatable shows `hugepages-2Mi` only once it restarts.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use super::Detail;
use crate::shell::{Cmd, Shell};

const RESOURCE: &str = "hugepages-2Mi";

fn restart_cmd() -> Cmd {
    Cmd::new("systemctl").args(["restart", "kubelet"])
}

pub fn details(node: &str) -> Vec<Detail> {
    vec![
        Detail::api(format!("GET /api/v1/nodes/{node}: status.allocatable[{RESOURCE}]")),
        Detail::when(restart_cmd(), "when it is short"),
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
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client);
    let wanted = u128::from(wanted_pages);
    let before = pages(allocatable(&nodes, node).await?);
    if before >= wanted {
        return Ok(format!("allocatable already {before} pages"));
    }
    shell.run(&restart_cmd()).await?;
    let started = Instant::now();
    loop {
        let now = pages(allocatable(&nodes, node).await?);
        if now >= wanted {
            return Ok(format!("kubelet restarted; allocatable {before} → {now} pages"));
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "node {node}: allocatable {RESOURCE} is {now} pages {}s after restarting the kubelet, {wanted} needed; \
                 check the kubelet (`journalctl -u kubelet` on the node) and that the pages are still free",
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

//! Kubernetes on the booted VMs, as visible plan steps: kubeadm init on the
//! control plane, the pod network, kubeadm join on every other node, the
//! admin kubeconfig fetched to the host, every node Ready.

use super::{POD_CIDR, SERVICE_CIDR, Vagrant};
use crate::plan::{Action, Step, Target};
use crate::shell::{Cmd, quote};

const FLANNEL_MANIFEST: &str = "https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml";
/// Where a box with Kubernetes inside keeps its pod network (lab's offline box).
const BOX_POD_NETWORK: &str = "/etc/lab/pod-network.yaml";

pub(super) fn cluster_steps(vagrant: &Vagrant) -> Vec<Step> {
    let (cp_index, cp) = vagrant.control_plane();
    let cp_ip = vagrant.ip(cp_index);
    let on_cp = || Target::Node(cp.name.clone());
    let mut steps = vec![
        Step::run(
            format!("kubeadm init on {}", cp.name),
            on_cp(),
            super::script!("kubeadm-init.sh").args([cp.name.as_str(), &cp_ip, POD_CIDR, SERVICE_CIDR]),
        ),
        Step::run(
            "install the pod network (the box's own, else flannel from the internet)",
            on_cp(),
            super::script!("pod-network.sh").args([BOX_POD_NETWORK, &format!("{cp_ip}:6443"), FLANNEL_MANIFEST]),
        ),
    ];
    if vagrant.nodes.len() == 1 {
        let admin = "--kubeconfig=/etc/kubernetes/admin.conf";
        let node = quote(&cp.name);
        steps.push(Step::run(
            format!("let pods run on {}, the only node (remove the control-plane taint)", cp.name),
            on_cp(),
            Cmd::sh(format!(
                "kubectl {admin} get node {node} -o jsonpath='{{.spec.taints}}' | grep -q node-role.kubernetes.io/control-plane || exit 0; \
                 kubectl {admin} taint nodes {node} node-role.kubernetes.io/control-plane:NoSchedule-"
            )),
        ));
    }
    for node in vagrant.nodes.iter().filter(|n| n.name != cp.name) {
        // The join command carries a token: its output is never logged.
        let token = (on_cp(), Cmd::new("kubeadm").args(["token", "create", "--print-join-command"]).secret_output());
        // Reads the join command on stdin; a node that already joined skips it.
        let join = (Target::Node(node.name.clone()), Cmd::sh("test -f /etc/kubernetes/kubelet.conf || sh"));
        steps.push(Step::new(format!("join {} to the cluster", node.name), Action::Pipe { from: token, to: join }));
    }
    // The admin kubeconfig is 0600 from birth, as kubeadm writes it.
    let kubeconfig = vagrant.state.kubeconfig();
    let fetch = format!(
        "(umask 077; ssh -F {} {} sudo cat /etc/kubernetes/admin.conf > {})",
        quote(&vagrant.ssh_config().display().to_string()),
        quote(&cp.name),
        quote(&kubeconfig.display().to_string())
    );
    steps.push(Step::run(format!("fetch kubeconfig into {}", kubeconfig.display()), Target::Host, Cmd::sh(fetch)));
    steps.push(Step::run(
        "wait until every node is Ready",
        Target::Host,
        Cmd::new("kubectl").arg("--kubeconfig").arg(kubeconfig.display().to_string()).args([
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=10m",
        ]),
    ));
    steps
}

#[cfg(test)]
mod tests {
    /// The script that runs kubeadm init, its output's join token withheld.
    const KUBEADM_INIT: &str = include_str!("scripts/kubeadm-init.sh");

    /// What kubeadm init prints, through the script's own sed: no token, no CA hash.
    #[test]
    fn kubeadm_init_output_has_its_join_token_withheld() {
        let printed = "[bootstrap-token] Using token: abcdef.0123456789abcdef\n\
            kubeadm join 192.168.121.10:6443 --token abcdef.0123456789abcdef \\\n\
            \t--discovery-token-ca-cert-hash sha256:4f1c0ffee0ddba11 \\\n\
            \t--control-plane --certificate-key 0123abcd\n";
        let dir = std::env::temp_dir().join(format!("lab-kubeadm-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The script's own lines after kubeadm, run on a log kubeadm "wrote".
        let tail: String = KUBEADM_INIT
            .lines()
            .filter(|l| l.starts_with("withhold=") || l.starts_with("sed -E"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("/etc/lab/kubeadm-init.log", &dir.join("log").display().to_string());
        assert_eq!(tail.lines().count(), 2, "the script's withholding lines moved:\n{KUBEADM_INIT}");
        std::fs::write(dir.join("log"), printed).unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(&tail).output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in ["abcdef.0123456789abcdef", "4f1c0ffee0ddba11", "0123abcd"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert!(text.contains("--token (withheld)") && text.contains("Using token: (withheld)"), "{text}");
    }
}

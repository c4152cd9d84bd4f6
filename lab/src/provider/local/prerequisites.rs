//! What the local provider needs of this machine, for `lab doctor` and
//! `lab up`: lab's Kubernetes binaries, Debian's runtime packages, the CNI
//! plugins, and a host free of another cluster.

use crate::findings::{Finding, Machine, Tool, tool_finding};
use crate::scenario::Scenario;

/// The local provider: lab's Kubernetes binaries, Debian's runtime
/// packages, Docker for the pause image, and a host free of another cluster.
pub async fn local_cluster(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let dir = super::binaries_dir(scenario);
    let mut findings = Vec::new();
    let absent: Vec<&str> = super::BINARIES.iter().copied().filter(|b| !dir.join(b).is_file()).collect();
    findings.push(if absent.is_empty() {
        Finding::ok("Kubernetes binaries", dir.display().to_string())
    } else {
        Finding::missing(
            "Kubernetes binaries",
            format!("{} not in {}", absent.join(", "), dir.display()),
            "build them: `export LAB_KUBE_BIN=$(bash .ci/kube/build | tail -n 1)` (or set cluster.local.binaries)",
        )
    });
    let packages = [
        ("containerd", &["--version"][..], "apt-get install containerd"),
        ("runc", &["--version"][..], "apt-get install runc"),
        ("ctr", &["--version"][..], "apt-get install containerd"),
        ("iptables", &["--version"][..], "apt-get install iptables"),
        ("ip", &["-V"][..], "apt-get install iproute2"),
        ("conntrack", &["--version"][..], "apt-get install conntrack"),
    ];
    for (name, version, install) in packages {
        let why = "runs the local cluster";
        findings.push(tool_finding(machine, Tool { name, version, required: true, why, install }).await);
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        let path = format!("/usr/lib/cni/{plugin}");
        findings.push(if machine.has(&path) {
            Finding::ok(&format!("CNI {plugin}"), path)
        } else {
            Finding::missing(
                &format!("CNI {plugin}"),
                format!("{path} is absent"),
                "apt-get install containernetworking-plugins",
            )
        });
    }
    let state = match scenario.state_dir() {
        Ok(state) => state,
        Err(e) => {
            findings.push(Finding::missing(
                "state directory",
                format!("{e:#}"),
                "set LAB_STATE_DIR to an absolute path",
            ));
            return findings;
        }
    };
    let layout = super::Layout::new(scenario, &state);
    let conflicts = super::host_conflicts(&layout);
    findings.push(if conflicts.is_empty() {
        Finding::ok("host free for a local cluster", super::what_host_conflicts_checks(&layout))
    } else {
        Finding::missing(
            "host free for a local cluster",
            conflicts.join("; "),
            "clear what is named, or `lab down` a lab left behind",
        )
    });
    findings
}

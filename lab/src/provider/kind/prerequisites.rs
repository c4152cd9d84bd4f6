//! What kind needs of this machine, for `lab doctor` and `lab up`: kind
//! itself, nodes that may run `--privileged`, the node image, and inotify
//! limits enough for several nodes.

use crate::findings::{Finding, Machine, Tool};
use crate::scenario::Scenario;

/// Whether this host lets kind start its nodes, the scenario's node image
/// is there, and (for several nodes) the inotify limits.
pub async fn prerequisites(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let mut findings = vec![privileged_nodes(machine).await];
    if let Some(image) = scenario.cluster.kind.as_ref().and_then(|k| k.image.as_deref()) {
        findings.push(kind_node_image(image).await);
    }
    if scenario.planned_nodes().len() > 1 {
        findings.push(inotify(machine));
    }
    findings
}

/// kind creates the cluster; kubectl, where present, waits for its nodes.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "kind",
            version: &["version"],
            required: true,
            why: "creates the cluster",
            install: "install kind: `bash .ci/kind/build` in lab's repository builds the pinned kind v0.33.0 from its Go module (add the directory it prints to PATH), or see https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
        },
        super::super::kubectl_tool(false),
    ]
}

const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities the kernel knows (up to `last_cap`) that a process
/// with this `/proc/<pid>/status` may never hold.
fn withheld_capabilities(status: &str, last_cap: u32) -> Vec<String> {
    let Some(bounding) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Vec::new();
    };
    (0..=last_cap.min(63))
        .filter(|bit| bounding & (1 << bit) == 0)
        .map(|bit| CAPABILITY_NAMES.get(bit as usize).map_or(format!("capability {bit}"), |n| format!("CAP_{n}")))
        .collect()
}

/// kind starts nodes `--privileged`, and Docker's runc then asks for every
/// capability: where the host withholds one, no node starts.
async fn privileged_nodes(machine: &Machine<'_>) -> Finding {
    let check = "privileged nodes";
    let status = machine.read("/proc/self/status").unwrap_or_default();
    let last_cap = machine.read_number("/proc/sys/kernel/cap_last_cap").unwrap_or(40) as u32;
    let withheld = withheld_capabilities(&status, last_cap);
    if withheld.is_empty() {
        return Finding::ok(check, "this host grants every capability");
    }
    let runtime = match crate::docker::connect().await {
        Ok(docker) => docker.info().await.ok().and_then(|info| info.default_runtime),
        Err(_) => None,
    };
    let detail = format!("this host withholds {}", withheld.join(", "));
    match runtime.as_deref() {
        Some("runc") | None => Finding::missing(
            check,
            format!("{detail}; Docker's runc then fails kind's --privileged nodes (\"unable to apply caps\")"),
            "make Docker's default runtime drop them: dockerd --add-runtime lab-runc=<lab>/.ci/kind/runc-host-caps --default-runtime lab-runc (.ci/run does)",
        ),
        Some(other) => Finding::ok(check, format!("{detail}; Docker's default runtime is {other}")),
    }
}

/// The scenario's kind node image: kind pulls one Docker lacks, but lab's
/// offline image (`lab.local/…`) comes from no registry.
async fn kind_node_image(image: &str) -> Finding {
    let check = "kind node image";
    let present = match crate::docker::connect().await {
        Ok(docker) => docker.inspect_image(image).await.is_ok(),
        Err(_) => false,
    };
    if present {
        Finding::ok(check, format!("{image} is in Docker"))
    } else if image.starts_with("lab.local/") {
        Finding::missing(
            check,
            format!("Docker has no {image}, and no registry serves it"),
            "`bash .ci/kind/node-image` in lab's repository assembles it offline",
        )
    } else {
        Finding::warn(
            check,
            format!("Docker has no {image} yet; kind pulls it at `lab up`"),
            format!("`docker pull {image}` now, where a registry is reachable"),
        )
    }
}

fn inotify(machine: &Machine<'_>) -> Finding {
    let check = "inotify limits";
    let watches = machine.read_number("/proc/sys/fs/inotify/max_user_watches").unwrap_or(0);
    let instances = machine.read_number("/proc/sys/fs/inotify/max_user_instances").unwrap_or(0);
    let detail = format!("max_user_watches={watches}, max_user_instances={instances}");
    if watches >= 524_288 && instances >= 512 {
        Finding::ok(check, detail)
    } else {
        Finding::warn(
            check,
            format!("{detail}: many kind nodes exhaust them (\"too many open files\")"),
            "sysctl -w fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_capabilities_are_read_from_the_bounding_set() {
        let status = |bounding: &str| format!("Name:\tlab\nCapPrm:\t0\nCapBnd:\t{bounding}\n");
        assert!(withheld_capabilities(&status("000001ffffffffff"), 40).is_empty());
        assert_eq!(withheld_capabilities(&status("000001fffeffffff"), 40), ["CAP_SYS_RESOURCE"]);
        // A kernel that knows fewer capabilities is not asked for the others.
        assert!(withheld_capabilities(&status("000000ffffffffff"), 39).is_empty());
        assert!(withheld_capabilities("no such line", 40).is_empty());
    }
}

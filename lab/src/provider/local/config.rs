//! What the local cluster's processes are told: flags, config files,
//! kubeconfigs and certificates, all derived from the [`Layout`]; and the
//! teardown scripts (files in `scripts/`), each removing only what lab made.

use std::path::PathBuf;

use super::pki::Leaf;
use super::{API_SERVICE_IP, Layout, NODE_IP, POD_CIDR, POD_SUBNET, SERVICE_CIDR};
use crate::shell::{Cmd, quote};

/// One of the scripts beside this file (`scripts/`), shellchecked in CI.
macro_rules! script {
    ($name:literal) => {
        Cmd::script($name, include_str!(concat!("scripts/", $name)))
    };
}
pub(super) use script;

/// The certificates the components present.
pub fn certificates(layout: &Layout) -> Vec<Leaf> {
    let node = &layout.node;
    let apiserver = Leaf::server(
        "apiserver",
        "kube-apiserver",
        &[
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ],
        vec![NODE_IP.into(), API_SERVICE_IP.into(), std::net::Ipv4Addr::LOCALHOST.into()],
    );
    let kubelet_serving =
        Leaf::server("kubelet-serving", &format!("system:node:{node}"), &[node, "localhost"], vec![NODE_IP.into()]);
    vec![
        apiserver,
        kubelet_serving,
        Leaf::client("admin", "lab-admin", Some("system:masters")),
        Leaf::client("controller-manager", "system:kube-controller-manager", None),
        Leaf::client("scheduler", "system:kube-scheduler", None),
        Leaf::client("kubelet", &format!("system:node:{node}"), Some("system:nodes")),
        Leaf::client("kube-proxy", "system:kube-proxy", None),
        // The apiserver's identity towards the kubelet, which asks RBAC (webhook) about it.
        Leaf::client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", Some("system:masters")),
        // etcd serves and peers over mutual TLS; the apiserver is its one client.
        Leaf::server("etcd", "lab-etcd", &["localhost"], vec![std::net::Ipv4Addr::LOCALHOST.into()]).also_client(),
        Leaf::client("apiserver-etcd-client", "kube-apiserver-etcd-client", None),
    ]
}

fn kubeconfig(layout: &Layout, user: &str) -> String {
    let pki = layout.text("pki");
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {lab}
  cluster:
    server: https://{NODE_IP}:6443
    certificate-authority: {pki}/ca.crt
users:
- name: {user}
  user:
    client-certificate: {pki}/{user}.crt
    client-key: {pki}/{user}.key
contexts:
- name: {lab}
  context:
    cluster: {lab}
    user: {user}
current-context: {lab}
",
        lab = format!("lab-{}", layout.lab)
    )
}

/// Every file the processes read, with its contents and whether it is a
/// secret (kubeconfigs: 0600 from birth); `lab plan --files` shows them.
pub fn files(layout: &Layout) -> Vec<(PathBuf, String, bool)> {
    let mut files = vec![(layout.kubeconfig.clone(), kubeconfig(layout, "admin"), true)];
    for user in ["controller-manager", "scheduler", "kubelet", "kube-proxy"] {
        files.push((layout.path(&format!("config/{user}.kubeconfig")), kubeconfig(layout, user), true));
    }
    files.push((layout.path("config/scheduler.yaml"), scheduler_config(layout), false));
    files.push((layout.path("config/kubelet.yaml"), kubelet_config(layout), false));
    files.push((layout.path("config/kube-proxy.yaml"), kube_proxy_config(layout), false));
    files.push((layout.path("config/containerd.toml"), containerd_config(layout), false));
    files.push((layout.path("cni/net.d/10-lab.conflist"), cni_config(layout), false));
    files
}

/// etcd on loopback behind mutual TLS: a client without a certificate lab's
/// CA signed is refused (it would be cluster-admin, then root through a
/// privileged pod).
pub fn etcd_args(layout: &Layout) -> Vec<String> {
    let pki = layout.text("pki");
    [
        "--name=lab".into(),
        format!("--data-dir={}", layout.text("etcd")),
        format!("--listen-client-urls={ETCD_URL}"),
        format!("--advertise-client-urls={ETCD_URL}"),
        "--listen-peer-urls=https://127.0.0.1:12380".into(),
        "--initial-advertise-peer-urls=https://127.0.0.1:12380".into(),
        "--initial-cluster=lab=https://127.0.0.1:12380".into(),
        format!("--cert-file={pki}/etcd.crt"),
        format!("--key-file={pki}/etcd.key"),
        format!("--trusted-ca-file={pki}/ca.crt"),
        "--client-cert-auth=true".into(),
        format!("--peer-cert-file={pki}/etcd.crt"),
        format!("--peer-key-file={pki}/etcd.key"),
        format!("--peer-trusted-ca-file={pki}/ca.crt"),
        "--peer-client-cert-auth=true".into(),
        "--listen-metrics-urls=".into(),
        // A disposable cluster: losing it on a host crash costs nothing, waiting for fsync does.
        "--unsafe-no-fsync=true".into(),
    ]
    .to_vec()
}

/// Where etcd serves its clients.
pub const ETCD_URL: &str = "https://127.0.0.1:12379";

pub fn apiserver_args(layout: &Layout) -> Vec<String> {
    let pki = layout.text("pki");
    vec![
        format!("--advertise-address={NODE_IP}"),
        format!("--bind-address={NODE_IP}"),
        "--secure-port=6443".into(),
        format!("--etcd-servers={ETCD_URL}"),
        format!("--etcd-cafile={pki}/ca.crt"),
        format!("--etcd-certfile={pki}/apiserver-etcd-client.crt"),
        format!("--etcd-keyfile={pki}/apiserver-etcd-client.key"),
        format!("--tls-cert-file={pki}/apiserver.crt"),
        format!("--tls-private-key-file={pki}/apiserver.key"),
        format!("--client-ca-file={pki}/ca.crt"),
        format!("--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt"),
        format!("--kubelet-client-key={pki}/apiserver-kubelet-client.key"),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={pki}/sa.pub"),
        format!("--service-account-signing-key-file={pki}/sa.key"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        // Node and RBAC, so a stack's missing RBAC rules show up here as they would anywhere.
        "--authorization-mode=Node,RBAC".into(),
        "--allow-privileged=true".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--profiling=false".into(),
    ]
}

pub fn controller_manager_args(layout: &Layout) -> Vec<String> {
    let pki = layout.text("pki");
    let kubeconfig = layout.text("config/controller-manager.kubeconfig");
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--service-account-private-key-file={pki}/sa.key"),
        format!("--root-ca-file={pki}/ca.crt"),
        format!("--cluster-signing-cert-file={pki}/ca.crt"),
        format!("--cluster-signing-key-file={pki}/ca.key"),
        "--use-service-account-credentials=true".into(),
        "--leader-elect=false".into(),
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={POD_CIDR}"),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
    ]
}

pub fn scheduler_args(layout: &Layout) -> Vec<String> {
    let kubeconfig = layout.text("config/scheduler.kubeconfig");
    vec![
        format!("--config={}", layout.text("config/scheduler.yaml")),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
    ]
}

pub fn kubelet_args(layout: &Layout) -> Vec<String> {
    vec![
        format!("--config={}", layout.text("config/kubelet.yaml")),
        format!("--kubeconfig={}", layout.text("config/kubelet.kubeconfig")),
        format!("--hostname-override={}", layout.node),
        format!("--node-ip={NODE_IP}"),
        format!("--root-dir={}", layout.kubelet_root()),
    ]
}

fn scheduler_config(layout: &Layout) -> String {
    format!(
        "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {}
leaderElection:
  leaderElect: false
",
        layout.text("config/scheduler.kubeconfig")
    )
}

fn kubelet_config(layout: &Layout) -> String {
    let pki = layout.text("pki");
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {pki}/ca.crt
authorization:
  mode: Webhook
tlsCertFile: {pki}/kubelet-serving.crt
tlsPrivateKeyFile: {pki}/kubelet-serving.key
containerRuntimeEndpoint: unix://{socket}
cgroupDriver: cgroupfs
# lab's own cgroup, made before the kubelet starts: its pods never mix with another kubelet's kubepods.
cgroupRoot: {cgroup_root}
# This host's cgroups are v1; kubelet 1.35+ refuses them unless told.
failCgroupV1: false
failSwapOn: false
# The hard limit here is 20000 and cannot be raised.
maxOpenFiles: 20000
clusterDomain: cluster.local
clusterDNS:
- 10.96.0.10
resolvConf: /etc/resolv.conf
podLogsDir: {pod_logs}
# kind's settings for a lab: never evict, never collect images lab loaded.
evictionHard:
  imagefs.available: 0%
  nodefs.available: 0%
  nodefs.inodesFree: 0%
imageGCHighThresholdPercent: 100
",
        socket = layout.containerd_socket(),
        pod_logs = layout.text("pod-logs"),
        cgroup_root = layout.cgroup_root(),
    )
}

fn kube_proxy_config(layout: &Layout) -> String {
    format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {}
hostnameOverride: {}
mode: iptables
clusterCIDR: {POD_CIDR}
bindAddress: {NODE_IP}
healthzBindAddress: {NODE_IP}:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
# Leave the host's conntrack settings as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
# NodePorts answer on lab's bridge alone, never on the host's other addresses.
nodePortAddresses:
- {NODE_IP}/32
",
        layout.text("config/kube-proxy.kubeconfig"),
        layout.node
    )
}

fn containerd_config(layout: &Layout) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # A negative oom_score_adj is refused on this kind of host.
  restrict_oom_score_adj = true
  # No hugetlb cgroup hierarchy is mounted on this kind of host.
  tolerate_missing_hugepages_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = layout.text("containerd"),
        state = layout.run.join("containerd").display(),
        socket = layout.containerd_socket(),
        pause = PAUSE_IMAGE,
        cni = layout.text("cni/net.d"),
    )
}

/// The sandbox image: pause from the Kubernetes build, in an image lab makes.
pub const PAUSE_IMAGE: &str = "lab.local/pause:3.10";

/// A bridge with no masquerading and no port maps: pods talk to the node and
/// each other, nothing else, and CNI adds no iptables chains.
fn cni_config(layout: &Layout) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_SUBNET}"}}]],
        "routes": [{{"dst": "{SERVICE_CIDR}"}}],
        "dataDir": "{ipam}"
      }}
    }},
    {{"type": "loopback"}}
  ]
}}
"#,
        bridge = layout.bridge,
        ipam = layout.text("cni/ipam"),
    )
}

/// Traffic between pods crosses lab's bridge, so with bridged traffic seen
/// by iptables it meets the FORWARD chain, whose policy Docker sets to DROP.
/// One rule, naming lab's own bridge on both sides, lets it through; `lab
/// down` deletes exactly that rule.
pub fn forward_rule(layout: &Layout) -> String {
    format!(
        "FORWARD -i {0} -o {0} -m comment --comment {1} -j ACCEPT",
        layout.bridge,
        quote(&format!("lab {}: pods on its bridge", layout.lab))
    )
}

/// lab's addresses, the pods' network (the node's address on lab's bridge
/// is in it) and the services', answer root alone: another user's TCP
/// connection is reset, anything else dropped, so no one else on this host
/// reaches etcd, a REST API or the io-engine's gRPC. Packets no socket sent
/// (the kernel's own replies) pass. `lab down` deletes exactly these rules.
pub fn root_only_rules(layout: &Layout) -> Vec<String> {
    let comment = quote(&format!("lab {}: its addresses answer root alone", layout.lab));
    let others = "-m owner --socket-exists ! --uid-owner 0";
    [POD_CIDR, SERVICE_CIDR]
        .into_iter()
        .flat_map(|net| {
            [
                format!(
                    "OUTPUT -d {net} -p tcp {others} -m comment --comment {comment} -j REJECT --reject-with tcp-reset"
                ),
                format!("OUTPUT -d {net} ! -p tcp {others} -m comment --comment {comment} -j DROP"),
            ]
        })
        .collect()
}

/// Kills and removes every task and container in lab's containerd.
pub fn remove_containers(layout: &Layout) -> Cmd {
    script!("remove-containers.sh").arg(layout.containerd_socket())
}

/// Unmounts, deepest first, every mount under lab's own folders.
pub fn unmount(layout: &Layout) -> Cmd {
    script!("unmount.sh").arg(layout.dir.display().to_string()).arg(layout.run.display().to_string())
}

/// The chains only kube-proxy makes, by table: one already there means
/// another kube-proxy runs on this host.
pub const KUBE_PROXY_CHAINS: [(&str, &str); 3] =
    [("nat", "KUBE-SERVICES"), ("nat", "KUBE-POSTROUTING"), ("filter", "KUBE-FORWARD")];

/// Whether iptables runs and lists its rules here.
pub fn iptables_answers() -> bool {
    iptables_succeeds(&["-w", "-S"])
}

/// Whether iptables has this chain (false without iptables).
pub fn chain_exists(table: &str, chain: &str) -> bool {
    iptables_succeeds(&["-w", "-t", table, "-S", chain])
}

fn iptables_succeeds(args: &[&str]) -> bool {
    std::process::Command::new("iptables")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every chain the host has now, recorded before the kubelet starts.
pub fn record_chains(layout: &Layout) -> Cmd {
    script!("record-chains.sh").arg(layout.chains_before().display().to_string())
}

/// The chains lab's kubelet and kube-proxy made, and the rules jumping to them.
pub fn remove_new_chains(layout: &Layout) -> Cmd {
    script!("remove-new-chains.sh").arg(layout.chains_before().display().to_string())
}

/// The kubelet's root and lab's cgroups, made fresh.
pub fn make_cgroups(layout: &Layout) -> Cmd {
    script!("make-cgroups.sh").args([layout.kubelet_root(), layout.cgroup_root(), layout.processes_cgroup()])
}

/// Kills every process still in lab's cgroup tree.
pub fn stop_cgroup_processes(layout: &Layout) -> Cmd {
    script!("stop-cgroup-processes.sh").arg(layout.cgroup_root())
}

/// lab's run folder and its cgroup in every hierarchy.
pub fn remove_kubelet(layout: &Layout) -> Cmd {
    script!("remove-kubelet.sh").arg(layout.run.display().to_string()).arg(layout.cgroup_root())
}

/// Every process in lab's cgroup tree now, in any mounted hierarchy.
pub fn processes_in_tree(layout: &Layout) -> Vec<u32> {
    let mut pids: Vec<u32> = cgroup_dirs(layout)
        .iter()
        .flat_map(|dir| {
            walkdir(dir).into_iter().flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// lab's cgroup in each mounted hierarchy where it exists.
pub fn cgroup_dirs(layout: &Layout) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let relative = layout.cgroup_root();
    let mut dirs: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            matches!(fields.get(2), Some(&"cgroup") | Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .map(|h| h.join(relative.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A folder and every folder under it.
fn walkdir(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            out.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
        i += 1;
    }
    out
}

//! What the real-component tests share: base images made without pulling
//! anything, kind-like node containers that are removed even when a test
//! fails, and the host's hugepages and lab's /etc files put back likewise.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use lab::docker::{CLUSTER_LABEL, ROLE_LABEL};

pub mod local;
pub mod vm;

/// The tag changes with the applets the image links, so an older import is not reused.
pub const BASE_IMAGE: &str = "lab-test-busybox:2";
/// busybox plus Debian's containerd and ctr: a node that can import images as kind's do.
pub const CONTAINERD_IMAGE: &str = "lab-test-containerd-node:1";

const APPLETS: &[&str] =
    &["sh", "cat", "echo", "sleep", "mount", "ls", "true", "false", "test", "mkdir", "printf", "uname", "rm", "ps"];

/// Serialises image imports across the tests of one binary.
static IMPORT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn have_image(image: &str) -> bool {
    Process::new("docker").args(["image", "inspect", image]).output().unwrap().status.success()
}

/// A busybox rootfs with `extra` host files copied in at the same paths.
fn import_rootfs(image: &str, extra: &[&str]) {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "/bin/busybox is missing: apt-get install busybox-static (.ci/run does)");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
    for tool in APPLETS {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(tool)).unwrap();
    }
    for dir in ["tmp", "run", "etc", "var/lib", "var/log"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    for file in extra {
        let source = Path::new(file);
        assert!(source.exists(), "{file} is missing: apt-get install containerd (.ci/run does)");
        let dest = root.path().join(file.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(source, dest).unwrap();
    }
    let status = Process::new("sh")
        .arg("-c")
        .arg(format!("tar -C {} -c . | docker import -c 'ENV PATH=/usr/bin:/bin' - {image}", root.path().display()))
        .status()
        .unwrap();
    assert!(status.success(), "docker import of the {image} rootfs failed");
}

/// A busybox image made with `docker import` from Debian's busybox-static: nothing is pulled.
pub fn base_image() {
    let _once = IMPORT.lock().unwrap_or_else(|e| e.into_inner());
    if !have_image(BASE_IMAGE) {
        import_rootfs(BASE_IMAGE, &[]);
    }
}

/// The containerd node image: Debian's containerd and ctr with the C library they link.
pub fn containerd_image() {
    let _once = IMPORT.lock().unwrap_or_else(|e| e.into_inner());
    if !have_image(CONTAINERD_IMAGE) {
        let libs = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"];
        let mut files = vec!["/usr/bin/containerd", "/usr/bin/ctr"];
        files.extend(libs);
        import_rootfs(CONTAINERD_IMAGE, &files);
    }
}

/// Node containers of a fake kind cluster, removed (with their volumes) on drop.
pub struct FakeCluster {
    pub containers: Vec<String>,
}

impl FakeCluster {
    /// Plain busybox nodes that sleep.
    pub fn start(cluster: &str, nodes: &[(&str, &str)]) -> FakeCluster {
        base_image();
        FakeCluster::run(cluster, nodes, &["--network", "none"], &[BASE_IMAGE, "sleep", "600"])
    }

    /// Nodes running containerd, ready for `ctr` when this returns.
    pub fn with_containerd(cluster: &str, nodes: &[(&str, &str)]) -> FakeCluster {
        FakeCluster::with_containerd_on(cluster, nodes, "none")
    }

    /// The same on a given Docker network (`host`: they reach servers on 127.0.0.1).
    pub fn with_containerd_on(cluster: &str, nodes: &[(&str, &str)], network: &str) -> FakeCluster {
        containerd_image();
        // containerd's root on a volume: overlayfs snapshots cannot live on the container's overlay root.
        let fake = FakeCluster::run(
            cluster,
            nodes,
            &["-v", "/var/lib/containerd", "--network", network],
            &[CONTAINERD_IMAGE, "sh", "-c", "exec containerd >/var/log/containerd.log 2>&1"],
        );
        for name in &fake.containers {
            let started = Instant::now();
            loop {
                let out = Process::new("docker").args(["exec", name, "ctr", "version"]).output().unwrap();
                if out.status.success() {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "containerd in {name} did not answer");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        fake
    }

    fn run(cluster: &str, nodes: &[(&str, &str)], extra: &[&str], image_and_command: &[&str]) -> FakeCluster {
        let mut fake = FakeCluster { containers: Vec::new() };
        for (name, role) in nodes {
            let _ = Process::new("docker").args(["rm", "-f", "-v", name]).output();
            let out = Process::new("docker")
                .args(["run", "-d", "--name", name])
                // What kind nodes need to remount /sys, change propagation and
                // mount snapshots; --privileged is refused on these machines.
                .args(["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"])
                .args(["--label", &format!("{CLUSTER_LABEL}={cluster}"), "--label", &format!("{ROLE_LABEL}={role}")])
                .args(extra)
                .args(image_and_command)
                .output()
                .unwrap();
            assert!(out.status.success(), "docker run {name}: {}", String::from_utf8_lossy(&out.stderr));
            fake.containers.push(name.to_string());
        }
        fake
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let _ = Process::new("docker").args(["rm", "-f", "-v"]).args(&self.containers).output();
        }
    }
}

/// Images removed on drop.
pub struct Images(pub Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Process::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

/// Every file under `root` with its mode and content: two equal listings mean an identical tree.
pub fn tree_listing(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.push((rel, meta.permissions().mode(), Vec::new()));
                stack.push(path);
            } else {
                let content = if meta.file_type().is_symlink() {
                    std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes()
                } else {
                    std::fs::read(&path).unwrap()
                };
                out.push((rel, meta.permissions().mode(), content));
            }
        }
    }
    out.sort();
    out
}

pub const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
/// The files preparation writes on a host it persists changes on.
pub const HOST_FILES: [&str; 2] = ["/etc/sysctl.d/90-lab-hugepages.conf", "/etc/modules-load.d/lab.conf"];

/// Puts the host's 2 MiB hugepage pool and lab's /etc files back as they
/// were when it was made, whatever happens to the test.
pub struct HostState {
    pub pages: u64,
    /// Each file lab may write, with what it held (`None`: absent).
    files: Vec<(&'static str, Option<String>)>,
}

impl HostState {
    pub fn save() -> HostState {
        let files = HOST_FILES.into_iter().map(|f| (f, std::fs::read_to_string(f).ok())).collect();
        let pages = std::fs::read_to_string(NR_HUGEPAGES).unwrap().trim().parse().unwrap();
        HostState { pages, files }
    }

    /// The files that differ from what they held before.
    pub fn changed_files(&self) -> Vec<&'static str> {
        self.files.iter().filter(|(f, was)| std::fs::read_to_string(f).ok() != *was).map(|(f, _)| *f).collect()
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        let _ = std::fs::write(NR_HUGEPAGES, self.pages.to_string());
        for (file, was) in &self.files {
            let _ = match was {
                Some(text) => std::fs::write(file, text),
                None => std::fs::remove_file(file),
            };
        }
    }
}

/// Debian's docker-registry, with the libraries it links, serving on :5000
/// from /var/lib/registry: the image lab starts for `images.load: registry`.
pub const REGISTRY_IMAGE: &str = "lab-test-registry:1";

pub fn registry_image() {
    let _once = IMPORT.lock().unwrap_or_else(|e| e.into_inner());
    if have_image(REGISTRY_IMAGE) {
        return;
    }
    let binary = "/usr/bin/docker-registry";
    assert!(Path::new(binary).exists(), "{binary} is missing: apt-get install docker-registry (.ci/run does)");
    let root = tempfile::tempdir().unwrap();
    let ldd = Process::new("ldd").arg(binary).output().unwrap();
    let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(String::from)
        .collect();
    for file in std::iter::once(binary.to_string()).chain(libraries) {
        let dest = root.path().join(file.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, dest).unwrap();
    }
    std::fs::create_dir_all(root.path().join("etc/docker/registry")).unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/registry")).unwrap();
    std::fs::write(
        root.path().join("etc/docker/registry/config.yml"),
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n",
    )
    .unwrap();
    let status = Process::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import -c 'ENTRYPOINT [\"{binary}\", \"serve\", \"/etc/docker/registry/config.yml\"]' - {REGISTRY_IMAGE}",
            root.path().display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "docker import of the {REGISTRY_IMAGE} rootfs failed");
}

/// Removes the fio history a test run wrote under the repository's
/// `scenarios/results/<name>` (and `scenarios/results` itself when it made
/// it and it is left empty), unless that folder was there before.
pub struct Results {
    dir: Option<std::path::PathBuf>,
    made_parent: bool,
}

impl Results {
    pub fn of(name: &str) -> Results {
        let parent = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("scenarios/results");
        let dir = parent.join(name);
        Results { made_parent: !parent.exists(), dir: (!dir.exists()).then_some(dir) }
    }
}

impl Drop for Results {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
            if self.made_parent {
                // Only if empty: another test's results may be there by now.
                let _ = dir.parent().map(std::fs::remove_dir);
            }
        }
    }
}

/// `git` in `dir` with a fixed identity and branch name, failing the test
/// with git's own words; its output, trimmed.
/// A command's standard output ("" when it cannot run): what the host shows.
pub fn output(program: &str, args: &[&str]) -> String {
    Process::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Process::new("git")
        .args(["-c", "user.name=lab", "-c", "user.email=lab@test", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is not installed: apt-get install git (.ci/run does)");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `curl` to `url` as root and as another user (uid 4242, no account, made
/// for the test by `setpriv`): curl's exit codes (7: could not connect).
pub fn curl_as_root_and_another_user(url: &str) -> (i32, i32) {
    let curl = ["curl", "-s", "-k", "-o", "/dev/null", "--max-time", "10", url];
    let root = std::process::Command::new(curl[0]).args(&curl[1..]).status().expect("curl (apt-get install curl)");
    let other = std::process::Command::new("setpriv")
        .args(["--reuid", "4242", "--regid", "4242", "--clear-groups"])
        .args(curl)
        .status()
        .expect("setpriv (util-linux)");
    (root.code().unwrap_or(-1), other.code().unwrap_or(-1))
}

/// Runs its closure when dropped: a test's clean-up (`lab down`, mostly)
/// that happens even when an assertion fails half-way.
pub struct OnDrop<'a>(Option<Box<dyn FnOnce() + 'a>>);

pub fn on_drop<'a>(clean_up: impl FnOnce() + 'a) -> OnDrop<'a> {
    OnDrop(Some(Box::new(clean_up)))
}

impl Drop for OnDrop<'_> {
    fn drop(&mut self) {
        if let Some(clean_up) = self.0.take() {
            clean_up();
        }
    }
}

/// What a command said and how it ended.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end; a panic of lab's fails the test whatever the exit.
pub fn run(cmd: &mut assert_cmd::Command) -> Run {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked at"), "{cmd:?} panicked:\n{stderr}");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

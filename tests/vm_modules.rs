//! A real kernel of its own: a qemu VM (TCG) boots Debian's kernel with an
//! initramfs built here from Debian's files (busybox-static, the kernel's own
//! modules), and lab's preparation code loads, verifies and persists `nbd`,
//! `xfs` and `nvme_tcp` in it, reserves hugepages, then undoes it all.
//!
//! The VM is reached over user-mode networking on 127.0.0.1: a busybox `nc`
//! in the guest runs each command and returns its status and output.
//! Needs qemu-system-x86, linux-image-amd64, busybox-static and cpio (.ci/run
//! installs them).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lab::plan::{Action, Target};
use lab::prepare::undo::Recorder;
use lab::prepare::{UndoLog, hugepages, module};
use lab::shell::{Cmd, Output, RunError, Shell};

const GUEST_PORT: u16 = 7000;
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// Module directories the test needs inside the VM: the three modules, their
/// dependencies, the crypto the kernel asks modprobe for (crc64-rocksoft),
/// and the e1000 network driver.
const MODULE_DIRS: &[&str] = &[
    "kernel/block",
    "kernel/crypto",
    "kernel/lib",
    "kernel/drivers/nvme",
    "kernel/fs/xfs",
    "kernel/drivers/block/nbd.ko",
    "kernel/drivers/net/ethernet/intel/e1000",
];

/// Runs one request: a length line, the script, then stdin until EOF; answers
/// "status stdout-bytes stderr-bytes", then stdout and stderr.
const EXEC_HANDLER: &str = r#"#!/bin/sh
read -r len
script=$(head -c "$len")
d=/tmp/lab-exec.$$
cat > $d.in
sh -c "$script" < $d.in > $d.out 2> $d.err
status=$?
echo "$status $(wc -c < $d.out) $(wc -c < $d.err)"
cat $d.out $d.err
rm -f $d.in $d.out $d.err
"#;

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /etc /run
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
modprobe e1000
ifconfig lo up
ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
nc -ll -p 7000 -e /lab-exec &
echo lab-vm-ready > /dev/console
while true; do sleep 3600; done
"#;

/// Debian's kernel and its modules, as linux-image-amd64 installs them.
fn debian_kernel() -> (PathBuf, PathBuf) {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/lib/modules").into_iter().flatten().flatten() {
        let release = entry.file_name().to_string_lossy().into_owned();
        let image = PathBuf::from(format!("/boot/vmlinuz-{release}"));
        if image.exists() && entry.path().join("modules.dep").exists() {
            found.push((image, entry.path()));
        }
    }
    found.sort();
    found.pop().expect("no Debian kernel with modules: apt-get install linux-image-amd64 (.ci/run does)")
}

/// A file or a whole folder, copied as it is into the initramfs root.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        let options = fs_extra::dir::CopyOptions::new().content_only(true).overwrite(true);
        fs_extra::dir::copy(from, to, &options).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// The initramfs as a newc cpio archive, packed by Debian's cpio.
fn build_initramfs(work: &Path, modules: &Path) -> PathBuf {
    let root = work.join("root");
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "/bin/busybox is missing: apt-get install busybox-static (.ci/run does)");
    copy_tree(busybox, &root.join("bin/busybox"));
    let release = modules.file_name().unwrap();
    let target = root.join("lib/modules").join(release);
    for dir in MODULE_DIRS {
        copy_tree(&modules.join(dir), &target.join(dir));
    }
    for index in ["modules.dep", "modules.alias", "modules.symbols"] {
        copy_tree(&modules.join(index), &target.join(index));
    }
    let executable = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    executable(root.join("init"), INIT);
    executable(root.join("lab-exec"), EXEC_HANDLER);
    let archive = work.join("initramfs.cpio");
    let status = Process::new("sh")
        .arg("-c")
        .arg(format!("cd {} && find . | cpio --quiet -o -H newc > {}", root.display(), archive.display()))
        .status()
        .expect("cannot run cpio: apt-get install cpio (.ci/run does)");
    assert!(status.success(), "packing the initramfs failed");
    archive
}

/// A running VM; killed (and its files removed) on drop, even when a test fails.
struct Vm {
    qemu: Child,
    port: u16,
    console: PathBuf,
    _work: tempfile::TempDir,
}

impl Vm {
    fn boot() -> Vm {
        let (kernel, modules) = debian_kernel();
        let work = tempfile::tempdir().unwrap();
        let initramfs = build_initramfs(work.path(), &modules);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let console = work.path().join("console.log");
        let qemu = Process::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none"])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initramfs)
            .args(["-append", "console=ttyS0 panic=-1 rdinit=/init"])
            .args(["-nic", &format!("user,model=e1000,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}")])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start qemu-system-x86_64: apt-get install qemu-system-x86 (.ci/run does)");
        let mut vm = Vm { qemu, port, console, _work: work };
        vm.wait_until_ready();
        vm
    }

    fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.qemu.try_wait() {
                let mut err = String::new();
                let _ = self.qemu.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("qemu exited ({status}): {err}\nconsole:\n{}", self.console());
            }
            if self.console().contains("lab-vm-ready") && request(self.port, "true", b"").is_ok() {
                return;
            }
            assert!(started.elapsed() < BOOT_TIMEOUT, "the VM did not come up; console:\n{}", self.console());
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// One command over the guest's exec port.
fn request(port: u16, script: &str, stdin: &[u8]) -> std::io::Result<Output> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.write_all(format!("{}\n{script}", script.len()).as_bytes())?;
    stream.write_all(stdin)?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let header_end = answer.iter().position(|b| *b == b'\n').ok_or_else(|| bad("no answer"))?;
    let header = String::from_utf8_lossy(&answer[..header_end]).into_owned();
    let numbers: Vec<usize> = header.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [status, out_len, err_len] = numbers[..] else { return Err(bad(&format!("bad header {header:?}"))) };
    let body = &answer[header_end + 1..];
    if body.len() < out_len + err_len {
        return Err(bad("short answer"));
    }
    Ok(Output {
        status: status as i64,
        stdout: String::from_utf8_lossy(&body[..out_len]).into_owned(),
        stderr: String::from_utf8_lossy(&body[out_len..out_len + err_len]).into_owned(),
    })
}

/// lab's node `Shell` over the VM's exec port.
struct VmShell {
    port: u16,
}

#[async_trait]
impl Shell for VmShell {
    fn place(&self) -> String {
        "node qemu-vm".into()
    }
    fn display(&self, cmd: &Cmd) -> String {
        format!("vm:{} {cmd}", self.port)
    }
    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        let (port, script, input) = (self.port, cmd.to_string(), stdin.unwrap_or_default().to_vec());
        tokio::task::spawn_blocking(move || request(port, &script, &input))
            .await
            .expect("exec thread")
            .map_err(|e| RunError::Spawn { place: self.place(), command: self.display(cmd), reason: e.to_string() })
    }
}

async fn sh(vm: &VmShell, script: &str) -> String {
    vm.run(&Cmd::sh(script)).await.unwrap().stdout
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs qemu-system-x86 and Debian's kernel: bash .ci/run runs it"]
async fn modules_and_hugepages_are_loaded_verified_persisted_and_undone_in_a_real_kernel() {
    let vm = Vm::boot();
    let shell = VmShell { port: vm.port };
    let state = tempfile::tempdir().unwrap();
    let undo = UndoLog::new(state.path().join("changes.json"));
    let record = Recorder { log: &undo, on: Target::Node("qemu-vm".into()) };
    let wanted: Vec<String> = ["nbd", "xfs", "nvme_tcp"].map(String::from).to_vec();

    assert_eq!(sh(&shell, "ls /sys/module | grep -E '^(nbd|xfs|nvme_tcp)$' || true").await, "", "loaded at boot");
    let note = module::ensure(&shell, &wanted, true, &record)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nconsole:\n{}", vm.console()));
    assert_eq!(note, "loaded nbd, xfs, nvme_tcp; listed in /etc/modules-load.d/lab.conf");
    assert_eq!(sh(&shell, "ls -d /sys/module/nbd /sys/module/xfs /sys/module/nvme_tcp").await.lines().count(), 3);
    assert!(sh(&shell, "cat /proc/filesystems").await.contains("xfs"), "xfs is not a filesystem the kernel knows");
    assert!(sh(&shell, "ls /dev").await.contains("nbd0"), "nbd devices did not appear");
    let persisted = sh(&shell, "cat /etc/modules-load.d/lab.conf").await;
    assert_eq!(persisted.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["nbd", "xfs", "nvme_tcp"]);
    assert_eq!(module::ensure(&shell, &wanted, true, &record).await.unwrap(), "nbd, xfs, nvme_tcp already loaded");

    let pages = hugepages::ensure(&shell, 32, true, &record).await.unwrap();
    assert_eq!(pages, "0 → 32 pages, 32 free; persisted in /etc/sysctl.d/90-lab-hugepages.conf");
    assert!(sh(&shell, "grep HugePages_Total /proc/meminfo").await.contains("32"));

    // A module this kernel does not have: the error says which, where, and what to do.
    let err = module::ensure(&shell, &["no_such_module".into()], false, &record).await.unwrap_err().to_string();
    assert!(err.starts_with("module no_such_module cannot be loaded on node qemu-vm: "), "{err}");
    assert!(err.contains("Fix: install this kernel's module package"), "{err}");

    // `lab down`'s steps, run in the VM: everything back as it was.
    let entries = undo.entries().unwrap();
    for step in undo.restore_steps(&entries, true) {
        let Action::Run { cmd, .. } = &step.action else { panic!("{} is not a command", step.title) };
        shell.run(cmd).await.unwrap_or_else(|e| panic!("{}: {e}", step.title));
    }
    assert_eq!(sh(&shell, "ls /sys/module | grep -E '^(nbd|xfs|nvme_tcp)$' || true").await, "", "modules still loaded");
    assert_eq!(sh(&shell, "cat /proc/sys/vm/nr_hugepages").await.trim(), "0");
    assert_eq!(sh(&shell, "find /etc/modules-load.d /etc/sysctl.d -type f").await, "", "persisted files left");
}

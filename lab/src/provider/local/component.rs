//! One process of the local cluster: how it starts (a pasteable line), how
//! it is known to be up, and how it stops. Each runs under a small `sh` that
//! waits for it, so it is reaped even where PID 1 reaps nothing (as on the
//! machines lab is developed on). Its pid file records the process itself:
//! `PID START EXE`, its start time (`/proc/PID/stat` field 22) written with
//! the pid, its executable once it has exec'd. A process is lab's only when
//! all three match, so a reused pid (after a reboot, or a stale file) is
//! never signalled.

use std::time::Duration;

use anyhow::bail;

use super::{Layout, config};
use crate::plan::{Context, Target, View, Work};
use crate::shell::{Cmd, Shell as _};

/// How a started component shows it is up.
#[derive(Clone, Debug)]
pub enum Ready {
    /// Something listens on this TCP port of the loopback or node address.
    Port(std::net::SocketAddr),
    /// The API server answers `/readyz` with ok.
    Readyz,
    /// Its socket file exists.
    Socket(String),
}

#[derive(Clone, Debug)]
pub struct Component {
    pub name: &'static str,
    pub program: String,
    pub args: Vec<String>,
    pub ready: Ready,
    log: String,
    pid: String,
    /// lab's cgroup for its processes, which it joins before it starts.
    processes_cgroup: String,
}

const START_TIMEOUT: Duration = Duration::from_secs(90);

impl Component {
    /// The file that records its process.
    pub fn pid_path(&self) -> &str {
        &self.pid
    }

    /// The file the process writes its output to.
    pub fn log_path(&self) -> &str {
        &self.log
    }

    fn new(layout: &Layout, name: &'static str, program: String, args: Vec<String>, ready: Ready) -> Component {
        Component {
            name,
            program,
            args,
            ready,
            log: layout.text(&format!("logs/{name}.log")),
            pid: layout.text(&format!("run/{name}.pid")),
            processes_cgroup: layout.processes_cgroup(),
        }
    }

    /// Every component, in start order.
    pub fn all(layout: &Layout) -> Vec<Component> {
        let node = super::NODE_IP;
        let local = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let binary = |name| layout.binary(name);
        vec![
            Component::new(layout, "etcd", binary("etcd"), config::etcd_args(layout), Ready::Port(local(12379))),
            Component::new(
                layout,
                "kube-apiserver",
                binary("kube-apiserver"),
                config::apiserver_args(layout),
                Ready::Readyz,
            ),
            Component::new(
                layout,
                "kube-controller-manager",
                binary("kube-controller-manager"),
                config::controller_manager_args(layout),
                Ready::Port(local(10257)),
            ),
            Component::new(
                layout,
                "kube-scheduler",
                binary("kube-scheduler"),
                config::scheduler_args(layout),
                Ready::Port(local(10259)),
            ),
            // Debian's containerd, with lab's own config, root, state and socket.
            Component::new(
                layout,
                "containerd",
                "containerd".into(),
                vec!["--config".into(), layout.text("config/containerd.toml")],
                Ready::Socket(layout.containerd_socket()),
            ),
            Component::new(
                layout,
                "kubelet",
                binary("kubelet"),
                config::kubelet_args(layout),
                Ready::Port(local(10248)),
            ),
            Component::new(
                layout,
                "kube-proxy",
                binary("kube-proxy"),
                vec!["--config".into(), layout.text("config/kube-proxy.yaml")],
                Ready::Port(std::net::SocketAddr::from((node.octets(), 10256))),
            ),
        ]
    }

    /// One component by name, e.g. `kubelet`.
    pub fn named(layout: &Layout, name: &str) -> Component {
        Component::all(layout).into_iter().find(|c| c.name == name).expect("lab names only its own components")
    }

    /// Starts it in its own session inside lab's cgroup, its output
    /// appended to its log; the pid file gets its pid and start time at once.
    pub fn start(&self) -> Cmd {
        config::script!("start-component.sh")
            .args([self.processes_cgroup.as_str(), &self.pid, &self.log, &self.program])
            .args(&self.args)
    }

    /// The program's file name: `lab down` may see the binaries elsewhere than `lab up` did.
    fn program_name(&self) -> &str {
        self.program.rsplit('/').next().unwrap_or(&self.program)
    }

    /// TERM, up to 10 s to go, then KILL; nothing when it is not running.
    /// Only the recorded process: pid, start time and executable must all
    /// match (an old pid file with no start time matches nothing).
    pub fn stop(&self) -> Cmd {
        config::script!("stop-component.sh").arg(&self.pid).arg(self.program_name())
    }

    /// Its pid while it runs: not a zombie, and the recorded process (pid,
    /// start time, executable).
    pub fn running_pid(&self) -> Option<u32> {
        let record = ProcessRecord::parse(&std::fs::read_to_string(&self.pid).ok()?)?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", record.pid)).ok()?;
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
        (record.is_alive_as(self.program_name()) && !zombie).then_some(record.pid)
    }

    /// Completes the pid file with the executable, once the process has
    /// exec'd its program (the shell's fork runs `sh` until then).
    fn record_executable(&self) {
        let Some(record) = std::fs::read_to_string(&self.pid).ok().and_then(|t| ProcessRecord::parse(&t)) else {
            return;
        };
        if record.exe.is_some() {
            return;
        }
        let Some(exe) = executable(record.pid) else { return };
        if exe.rsplit('/').next() == Some(self.program_name()) && process_start(record.pid) == Some(record.start) {
            let _ = std::fs::write(&self.pid, format!("{} {} {exe}\n", record.pid, record.start));
        }
    }

    /// The last lines of its log.
    pub fn last_lines(&self, count: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(count)..];
        tail.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
    }

    /// An error naming it, with its log, once it has died.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        if std::path::Path::new(&self.pid).exists() && self.running_pid().is_none() {
            bail!("{} exited; the last lines of {}:\n{}", self.name, self.log, self.last_lines(20));
        }
        Ok(())
    }

    async fn is_ready(&self, ctx: &Context<'_>) -> bool {
        match &self.ready {
            Ready::Port(address) => tokio::net::TcpStream::connect(address).await.is_ok(),
            Ready::Socket(path) => std::path::Path::new(path).exists(),
            Ready::Readyz => {
                let Ok(client) = ctx.client().await else { return false };
                let request = http::Request::get("/readyz").body(Vec::new()).expect("a valid request");
                client.request_text(request).await.is_ok_and(|text| text.trim() == "ok")
            }
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Work for Component {
    fn describe(&self, _view: &View<'_>) -> String {
        let until = match &self.ready {
            Ready::Port(address) => format!("something listens on {address}"),
            Ready::Readyz => "GET /readyz says ok".into(),
            Ready::Socket(path) => format!("{path} exists"),
        };
        format!(
            "$ {}\n     waits until {until} (at most {}s); pid in {}, log in {}",
            self.start(),
            START_TIMEOUT.as_secs(),
            self.pid,
            self.log
        )
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        if let Some(pid) = self.running_pid() {
            bail!("{} already runs as pid {pid}: `lab down` stops a lab's leftover processes", self.name);
        }
        ctx.shell(&Target::Host).run(&self.start()).await?;
        let started = std::time::Instant::now();
        // The pid file appears once the session's shell has started it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        loop {
            self.check_alive()?;
            if std::path::Path::new(&self.pid).exists() && self.is_ready(ctx).await {
                self.record_executable();
                let pid = self.running_pid().map(|p| p.to_string()).unwrap_or_default();
                return Ok(Some(format!("pid {pid}, up in {:.1}s", started.elapsed().as_secs_f64())));
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{} is not up after {}s; the last lines of {}:\n{}",
                    self.name,
                    START_TIMEOUT.as_secs(),
                    self.log,
                    self.last_lines(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A pid file's record of the process lab started.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub start: u64,
    pub exe: Option<String>,
}

impl ProcessRecord {
    /// `PID START [EXE]`; an old file holding a pid alone records no process.
    pub fn parse(text: &str) -> Option<ProcessRecord> {
        let mut words = text.trim().splitn(3, ' ');
        let pid = words.next()?.parse().ok()?;
        let start = words.next()?.parse().ok()?;
        let exe = words.next().map(str::to_string).filter(|e| !e.is_empty());
        Some(ProcessRecord { pid, start, exe })
    }

    /// The process now at this pid is the one recorded: same start time, and
    /// the recorded executable (or, before it was recorded, one of this name).
    pub fn is_alive_as(&self, program_name: &str) -> bool {
        let Some(exe) = executable(self.pid) else { return false };
        let same_exe = match &self.exe {
            Some(recorded) => &exe == recorded,
            None => exe.rsplit('/').next() == Some(program_name),
        };
        process_start(self.pid) == Some(self.start) && same_exe
    }
}

/// When a process started, in clock ticks after boot (`/proc/PID/stat` field 22).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

/// The executable a process runs, without the ` (deleted)` of a replaced file.
fn executable(pid: u32) -> Option<String> {
    let path = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = path.display().to_string();
    Some(text.strip_suffix(" (deleted)").unwrap_or(&text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_records_pid_start_and_executable() {
        assert_eq!(
            ProcessRecord::parse("42 1234 /opt/kube/bin/etcd\n"),
            Some(ProcessRecord { pid: 42, start: 1234, exe: Some("/opt/kube/bin/etcd".into()) })
        );
        assert_eq!(ProcessRecord::parse("42 1234"), Some(ProcessRecord { pid: 42, start: 1234, exe: None }));
        assert_eq!(ProcessRecord::parse("42\n"), None, "a pid alone (an older lab's file) records no process");
    }

    #[test]
    fn this_process_is_itself_and_not_another_start() {
        let pid = std::process::id();
        let start = process_start(pid).unwrap();
        let exe = executable(pid).unwrap();
        let name = exe.rsplit('/').next().unwrap().to_string();
        assert!(ProcessRecord { pid, start, exe: Some(exe.clone()) }.is_alive_as(&name));
        assert!(ProcessRecord { pid, start, exe: None }.is_alive_as(&name));
        assert!(!ProcessRecord { pid, start: start + 1, exe: Some(exe.clone()) }.is_alive_as(&name), "pid reused");
        assert!(!ProcessRecord { pid, start, exe: Some("/usr/bin/containerd".into()) }.is_alive_as(&name));
        assert!(!ProcessRecord { pid, start, exe: None }.is_alive_as("containerd"));
    }
}

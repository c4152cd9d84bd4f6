//! CPU preflight for io-engine, before anything is deployed: it is built for
//! nehalem (SSE4.2) and pins itself to a core list that must exist.

use crate::plan::Detail;
use crate::shell::{Cmd, Shell};

fn cpuinfo_cmd() -> Cmd {
    Cmd::new("cat").arg("/proc/cpuinfo")
}

/// The affinity of the node's init, which io-engine inherits through the
/// kubelet (a container's cpuset, a VM's CPUs), not that of a debug pod.
fn allowed_cmd() -> Cmd {
    Cmd::new("cat").arg("/proc/1/status")
}

pub fn details() -> Vec<Detail> {
    vec![Detail::run(cpuinfo_cmd()), Detail::run(allowed_cmd())]
}

/// Whether the CPU has SSE4.2; `None` when it is not x86 (no `flags` lines).
pub fn has_sse4_2(cpuinfo: &str) -> Option<bool> {
    let mut flags = cpuinfo.lines().filter(|l| l.starts_with("flags")).peekable();
    flags.peek()?;
    Some(flags.any(|l| l.split_whitespace().any(|f| f == "sse4_2")))
}

/// The CPUs this process may run on, from `/proc/<pid>/status`.
pub fn allowed_cpus(status: &str) -> Option<Vec<u32>> {
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    crate::scenario::parse_core_list(list.trim())
}

/// Fail with the crash io-engine would otherwise die of, and its fix.
pub async fn preflight(shell: &dyn Shell, cores: &[u32], core_list: &str) -> anyhow::Result<String> {
    let place = shell.place();
    let cpuinfo = shell.run(&cpuinfo_cmd()).await?.stdout;
    let sse = match has_sse4_2(&cpuinfo) {
        Some(true) => "SSE4.2",
        Some(false) => anyhow::bail!(
            "{place}: the CPU lacks SSE4.2; io-engine is built for nehalem and would die with SIGILL \
             (exit 132) or \"EAL: FATAL: unsupported cpu type\". Use a CPU with SSE4.2 \
             (for VMs: CPU mode host-passthrough or host-model)"
        ),
        None => "not x86, SSE4.2 not needed",
    };
    let status = shell.run(&allowed_cmd()).await?.stdout;
    let Some(allowed) = allowed_cpus(&status) else {
        anyhow::bail!("{place}: /proc/1/status has no readable Cpus_allowed_list");
    };
    let unavailable: Vec<String> = cores.iter().filter(|c| !allowed.contains(c)).map(u32::to_string).collect();
    if !unavailable.is_empty() {
        anyhow::bail!(
            "{place}: io-engine's core list {core_list} needs core(s) {}, but only {} CPU(s) are available \
             (cores {}); it would fail with \"EAL: invalid core list\". Set `ioEngineCoreList` on the node \
             group to cores that exist (e.g. \"1\"), or give the node more CPUs",
            unavailable.join(","),
            allowed.len(),
            allowed.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        );
    }
    Ok(format!("{sse}, {} CPUs, core list {core_list} fits", allowed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_facts_are_read_from_proc_text() {
        assert_eq!(has_sse4_2("processor : 0\nflags : fpu sse4_1 sse4_2 avx\n"), Some(true));
        assert_eq!(has_sse4_2("processor : 0\nflags : fpu sse2\n"), Some(false));
        assert_eq!(has_sse4_2("processor : 0\nFeatures : fp asimd\n"), None);
        assert_eq!(allowed_cpus("Name:\tcat\nCpus_allowed_list:\t0-2,4\n"), Some(vec![0, 1, 2, 4]));
        assert_eq!(allowed_cpus("Name:\tcat\n"), None);
    }
}

//! 2 MiB hugepages: io-engine refuses to start unless `nr_hugepages` and
//! `free_hugepages` both reach what it needs.

use super::undo::{Change, Recorder};
use super::{persist_details, write_if_different};
use crate::plan::Detail;
use crate::shell::{Cmd, Shell};

pub const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
pub const FREE_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
/// Read at boot by systemd-sysctl; `vm.nr_hugepages` is the 2 MiB pool on
/// x86-64, whose default hugepage size is 2 MiB.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-lab-hugepages.conf";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub total: u64,
    pub free: u64,
}

/// `MemTotal` in KiB from `/proc/meminfo` text.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo_kib(meminfo, "MemTotal:")
}

/// A field of `/proc/meminfo` text, in KiB.
pub fn meminfo_kib(meminfo: &str, field: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What lab leaves a machine's processes, at least, when it reserves
/// hugepages: a tenth of its memory, between 64 MiB (a small VM node) and 512 MiB.
pub fn memory_margin_kib(mem_total_kib: u64) -> u64 {
    (mem_total_kib / 10).clamp(64 * 1024, 512 * 1024)
}

/// Why growing the pool by `new_pages` would leave the machine short of
/// memory, if it would: the new pages must fit in `MemAvailable` less the margin.
pub fn memory_shortfall(meminfo: &str, new_pages: u64) -> Option<String> {
    let available = meminfo_kib(meminfo, "MemAvailable:")?;
    let margin = memory_margin_kib(mem_total_kib(meminfo)?);
    let need = new_pages.saturating_mul(2048);
    (need.saturating_add(margin) > available).then(|| {
        format!(
            "{new_pages} more 2 MiB hugepages take {} MiB, and only {} MiB are available (MemAvailable) of which lab leaves {} MiB to the host's processes",
            need / 1024,
            available / 1024,
            margin / 1024
        )
    })
}

fn meminfo_cmd() -> Cmd {
    Cmd::new("cat").arg("/proc/meminfo")
}

/// Refuse a pool that would not fit in the machine's memory, or would leave
/// it short (the growth beyond `current` against `MemAvailable`), before
/// asking the kernel.
async fn check_fits(shell: &dyn Shell, current: u64, target: u64) -> anyhow::Result<()> {
    let output = shell.run(&meminfo_cmd()).await?;
    let Some(total) = mem_total_kib(&output.stdout) else {
        anyhow::bail!("{}: /proc/meminfo has no MemTotal line", shell.place());
    };
    if target.saturating_mul(2048) >= total {
        anyhow::bail!(
            "{}: {target} 2 MiB hugepages take {} MiB, and it has {} MiB of memory (MemTotal): lower hugepages2Mi",
            shell.place(),
            target.saturating_mul(2),
            total / 1024
        );
    }
    if let Some(why) = memory_shortfall(&output.stdout, target.saturating_sub(current)) {
        anyhow::bail!("{}: {why}: lower hugepages2Mi, or free memory first", shell.place());
    }
    Ok(())
}

pub fn read_cmd() -> Cmd {
    Cmd::new("cat").args([NR_HUGEPAGES, FREE_HUGEPAGES])
}

fn set_cmd(total: u64) -> Cmd {
    Cmd::sh(format!("echo {total} > {NR_HUGEPAGES}"))
}

fn sysctl_text(total: u64) -> String {
    format!("# written by lab; `lab down` removes it\nvm.nr_hugepages = {total}\n")
}

/// The commands `ensure` may run, for `--dry-run`.
pub fn ensure_details(pages: u64, persist: bool) -> Vec<Detail> {
    let mut details = vec![
        Detail::run(read_cmd()),
        Detail::when(meminfo_cmd(), "when fewer are free: the pages must fit in MemTotal"),
        Detail::when(set_cmd(pages), "when fewer are free: in-use pages plus the pages wanted"),
        Detail::when(read_cmd(), "verify"),
    ];
    if persist {
        details.extend(persist_details(SYSCTL_FILE, &sysctl_text(pages)));
    }
    details
}

/// Read the 2 MiB pool as the kernel reports it.
pub async fn read(shell: &dyn Shell) -> anyhow::Result<Pool> {
    let output = shell.run(&read_cmd()).await?;
    let numbers: Vec<u64> = output.stdout.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    match numbers[..] {
        [total, free] => Ok(Pool { total, free }),
        _ => anyhow::bail!("{}: cannot read the 2 MiB hugepage pool from {:?}", shell.place(), output.stdout),
    }
}

/// Make `pages` free 2 MiB pages available, verify the kernel granted them,
/// and (`persist`) keep the count across reboots. Never shrinks the pool.
pub async fn ensure(shell: &dyn Shell, pages: u64, persist: bool, record: &Recorder<'_>) -> anyhow::Result<String> {
    let before = read(shell).await?;
    let mut total = before.total;
    let mut note = if before.free >= pages {
        // Perhaps another lab's pages: this lab holds them too.
        record.rely_on(Change::Setting { path: NR_HUGEPAGES.into(), was: before.total.to_string() })?;
        format!("already {} pages, {} free; unchanged", before.total, before.free)
    } else {
        // Pages in use (by io-engine, say) stay in use: grow by what is missing.
        let target = before.total - before.free + pages;
        check_fits(shell, before.total, target).await?;
        record.remember(Change::Setting { path: NR_HUGEPAGES.into(), was: before.total.to_string() })?;
        shell.run(&set_cmd(target)).await?;
        let after = read(shell).await?;
        if after.free < pages {
            anyhow::bail!(
                "{}: asked the kernel for {target} 2 MiB hugepages and it granted {} ({} free, {pages} needed); \
                 memory is too fragmented or too small. Free memory (drop caches, stop workloads) and run again, \
                 or reserve them at boot with `hugepagesz=2M hugepages={target}` on the kernel command line",
                shell.place(),
                after.total,
                after.free
            );
        }
        total = after.total;
        format!("{} → {} pages, {} free", before.total, after.total, after.free)
    };
    if persist && write_if_different(shell, SYSCTL_FILE, &sysctl_text(total), record).await? {
        note.push_str(&format!("; persisted in {SYSCTL_FILE}"));
    }
    Ok(note)
}

/// A node sharing another's kernel (kind) must see the pages set there.
pub async fn verify(shell: &dyn Shell, pages: u64) -> anyhow::Result<String> {
    let pool = read(shell).await?;
    if pool.free < pages {
        anyhow::bail!(
            "{} sees {} free 2 MiB hugepages of {}, and {pages} are needed; \
             they were set on the host, so something else took them meanwhile",
            shell.place(),
            pool.free,
            pool.total
        );
    }
    Ok(format!("sees {} pages, {} free", pool.total, pool.free))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::plan::Target;
    use crate::prepare::UndoLog;
    use crate::shell::{Output, RunError};

    /// A kernel that has `pool` and grants at most `limit` pages, on 16 GiB of memory.
    struct Kernel {
        pool: Mutex<Pool>,
        limit: u64,
    }

    const MEMINFO: &str = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n";

    #[async_trait]
    impl Shell for Kernel {
        fn place(&self) -> String {
            "node vm".into()
        }
        fn display(&self, cmd: &Cmd) -> String {
            cmd.to_string()
        }
        async fn exec(&self, cmd: &Cmd, _stdin: Option<&[u8]>) -> Result<Output, RunError> {
            let mut pool = self.pool.lock().unwrap();
            if *cmd == read_cmd() {
                return Ok(Output { stdout: format!("{}\n{}\n", pool.total, pool.free), ..Output::default() });
            }
            if *cmd == meminfo_cmd() {
                return Ok(Output { stdout: MEMINFO.into(), ..Output::default() });
            }
            let asked: u64 = cmd.args[1].split_whitespace().nth(1).unwrap().parse().unwrap();
            let used = pool.total - pool.free;
            pool.total = asked.min(self.limit);
            pool.free = pool.total - used;
            Ok(Output::default())
        }
    }

    #[tokio::test]
    async fn pages_in_use_stay_in_use_and_a_short_grant_is_reported_not_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let log = UndoLog::new(dir.path().join("changes.json"));
        let record = Recorder { log: &log, on: Target::Node("vm".into()) };

        let kernel = Kernel { pool: Mutex::new(Pool { total: 100, free: 40 }), limit: 10_000 };
        assert_eq!(ensure(&kernel, 64, false, &record).await.unwrap(), "100 → 124 pages, 64 free");

        let fragmented = Kernel { pool: Mutex::new(Pool { total: 0, free: 0 }), limit: 300 };
        let err = ensure(&fragmented, 1024, false, &record).await.unwrap_err().to_string();
        assert!(err.starts_with("node vm: asked the kernel for 1024 2 MiB hugepages and it granted 300"), "{err}");
        assert!(err.contains("hugepages=1024"), "{err}");
        let recorded = log.entries().unwrap();
        assert_eq!(recorded.len(), 1, "the original count is recorded once: {recorded:?}");
    }

    #[tokio::test]
    async fn a_pool_larger_than_memory_is_refused_before_the_kernel_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let log = UndoLog::new(dir.path().join("changes.json"));
        let record = Recorder { log: &log, on: Target::Node("vm".into()) };
        let kernel = Kernel { pool: Mutex::new(Pool { total: 0, free: 0 }), limit: u64::MAX };
        let err = ensure(&kernel, 10_000_000, false, &record).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "node vm: 10000000 2 MiB hugepages take 20000000 MiB, and it has 16000 MiB of memory (MemTotal): lower hugepages2Mi"
        );
        assert_eq!(kernel.pool.lock().unwrap().total, 0, "the kernel was asked anyway");
        assert!(log.entries().unwrap().is_empty(), "nothing changed, nothing recorded");
        assert_eq!(mem_total_kib(MEMINFO), Some(16_384_000));
    }

    #[test]
    fn new_pages_must_leave_the_host_its_margin_of_available_memory() {
        // 8000000 KiB available, 512 MiB kept: 3650 pages (7300 MiB) fit, 3700 (7400 MiB) do not.
        assert_eq!(memory_shortfall(MEMINFO, 3650), None);
        let why = memory_shortfall(MEMINFO, 3700).unwrap();
        assert!(why.starts_with("3700 more 2 MiB hugepages take 7400 MiB, and only 7812 MiB are available"), "{why}");
        assert_eq!(memory_shortfall("MemTotal: 1 kB\n", 10), None, "a kernel without MemAvailable is not judged here");
        // A 512 MiB VM keeps 64 MiB back, not 512.
        let small = "MemTotal: 500000 kB\nMemAvailable: 412000 kB\n";
        assert_eq!(memory_shortfall(small, 32), None);
        assert_eq!(memory_margin_kib(24 * 1024 * 1024), 512 * 1024);
    }
}

//! Kernel modules: loaded with `modprobe`, verified through `/sys/module`
//! (built-in modules show there but not in `/proc/modules`), persisted in
//! `/etc/modules-load.d/`.

use super::undo::{Change, Recorder};
use super::{persist_details, write_if_different};
use crate::plan::Detail;
use crate::shell::{Cmd, Shell, quote};

pub const PERSIST_FILE: &str = "/etc/modules-load.d/lab.conf";

/// `/sys/module` spells every module with underscores (`nvme-tcp` → `nvme_tcp`).
pub fn sysfs_name(module: &str) -> String {
    module.replace('-', "_")
}

/// Prints the requested modules that are not loaded, one per line.
fn missing_cmd(modules: &[String]) -> Cmd {
    let names: Vec<String> = modules.iter().map(|m| quote(&sysfs_name(m))).collect();
    Cmd::sh(format!("for m in {}; do [ -d /sys/module/$m ] || echo $m; done", names.join(" ")))
}

/// Kernel release, where modprobe is, and whether the release has modules.
fn kernel_cmd() -> Cmd {
    Cmd::sh(
        "uname -r; command -v modprobe || echo none; [ -d /lib/modules/$(uname -r) ] && echo modules || echo no-modules",
    )
}

fn load_cmd(module: &str) -> Cmd {
    Cmd::new("modprobe").arg(module)
}

fn persist_text(modules: &[String]) -> String {
    let mut text = String::from("# written by lab; `lab down` removes it\n");
    for m in modules {
        text.push_str(m);
        text.push('\n');
    }
    text
}

pub fn ensure_details(modules: &[String], persist: bool) -> Vec<Detail> {
    let mut details = vec![Detail::run(missing_cmd(modules)), Detail::when(kernel_cmd(), "when any is missing")];
    details.extend(modules.iter().map(|m| Detail::when(load_cmd(m), "when missing")));
    details.push(Detail::when(missing_cmd(modules), "verify"));
    if persist {
        details.extend(persist_details(PERSIST_FILE, &persist_text(modules)));
    }
    details
}

pub fn verify_details(modules: &[String]) -> Vec<Detail> {
    vec![Detail::run(missing_cmd(modules))]
}

async fn missing(shell: &dyn Shell, modules: &[String]) -> anyhow::Result<Vec<String>> {
    let output = shell.run(&missing_cmd(modules)).await?;
    Ok(output.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// The kernel option that builds a module, for the "use a kernel built with" hint.
fn kernel_option(module: &str) -> Option<&'static str> {
    Some(match sysfs_name(module).as_str() {
        "nvme_tcp" => "CONFIG_NVME_TCP",
        "nvme_fabrics" => "CONFIG_NVME_FABRICS",
        "nvme_rdma" => "CONFIG_NVME_RDMA",
        "nvmet" => "CONFIG_NVME_TARGET",
        "nvme_loop" => "CONFIG_NVME_TARGET_LOOP",
        "nbd" => "CONFIG_BLK_DEV_NBD",
        "xfs" => "CONFIG_XFS_FS",
        "ext4" => "CONFIG_EXT4_FS",
        _ => return None,
    })
}

/// How to get `modules` onto a kernel that cannot load them.
fn remedy(modules: &[String], release: &str) -> String {
    let options: Vec<&str> = modules.iter().filter_map(|m| kernel_option(m)).collect();
    let built_with = if options.is_empty() { "them".to_string() } else { options.join(", ") };
    format!(
        "install this kernel's module package (Ubuntu: linux-modules-extra-{release}; Debian: linux-image-{release}), \
         or boot a kernel built with {built_with}"
    )
}

/// Why no module can be loaded on a kernel (`release`), from whether
/// modprobe is installed and the release ships modules; `None` when it can.
/// `lab doctor` and preparation judge it the same way.
pub fn cannot_load(modules: &[String], release: &str, modprobe: bool, shipped: bool) -> Option<(String, String)> {
    if !modprobe {
        let fix = format!("Install kmod (apt-get install kmod), then {}", remedy(modules, release));
        return Some(("modprobe is not installed there".into(), fix));
    }
    if !shipped {
        let why = format!(
            "it runs kernel {release} and /lib/modules/{release} does not exist, so that kernel has no loadable modules here"
        );
        return Some((why, format!("Fix: {}", remedy(modules, release))));
    }
    None
}

/// Load the modules not loaded yet, verify them, and (`persist`) have them
/// loaded at boot. Checks that loading can work before loading any.
pub async fn ensure(
    shell: &dyn Shell,
    modules: &[String],
    persist: bool,
    record: &Recorder<'_>,
) -> anyhow::Result<String> {
    let place = shell.place();
    let absent = missing(shell, modules).await?;
    // Loaded already, perhaps by another lab: this lab needs them too.
    for module in modules.iter().filter(|m| !absent.contains(m)) {
        record.rely_on(Change::Module { name: module.clone() })?;
    }
    let mut note = if absent.is_empty() {
        format!("{} already loaded", modules.join(", "))
    } else {
        let facts = shell.run(&kernel_cmd()).await?.stdout;
        let mut lines = facts.lines().map(str::trim);
        let release = lines.next().unwrap_or("?").to_string();
        let modprobe = lines.next().unwrap_or("none");
        let shipped = lines.next() == Some("modules");
        let names = absent.join(", ");
        if let Some((why, fix)) = cannot_load(&absent, &release, modprobe != "none", shipped) {
            anyhow::bail!("module(s) {names} cannot be loaded on {place}: {why}. {fix}");
        }
        for module in &absent {
            if let Err(e) = shell.run(&load_cmd(module)).await {
                anyhow::bail!(
                    "module {module} cannot be loaded on {place}: {e}\nFix: {}",
                    remedy(std::slice::from_ref(module), &release)
                );
            }
            record.remember(Change::Module { name: module.clone() })?;
        }
        let still = missing(shell, modules).await?;
        if !still.is_empty() {
            anyhow::bail!(
                "{place}: modprobe succeeded but /sys/module has no {}; the module may be blacklisted \
                 (see /etc/modprobe.d) or an alias of another name",
                still.join(", ")
            );
        }
        format!("loaded {names}")
    };
    if persist && write_if_different(shell, PERSIST_FILE, &persist_text(modules), record).await? {
        note.push_str(&format!("; listed in {PERSIST_FILE}"));
    }
    Ok(note)
}

/// A node sharing the host's kernel (kind) must see the host's modules.
pub async fn verify(shell: &dyn Shell, modules: &[String]) -> anyhow::Result<String> {
    let absent = missing(shell, modules).await?;
    if !absent.is_empty() {
        anyhow::bail!("{} does not see module(s) {} in /sys/module", shell.place(), absent.join(", "));
    }
    Ok(format!("sees {}", modules.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remedy_names_the_package_and_the_kernel_options() {
        let text = remedy(&["nbd".into(), "nvme-tcp".into()], "6.8.0-1-aws");
        assert!(text.contains("linux-modules-extra-6.8.0-1-aws"), "{text}");
        assert!(text.contains("CONFIG_BLK_DEV_NBD, CONFIG_NVME_TCP"), "{text}");
    }
}

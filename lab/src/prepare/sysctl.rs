//! Kernel settings through `/proc/sys`, each recorded before it changes so
//! `lab down` puts it back.

use super::undo::{Change, Recorder};
use crate::plan::Detail;
use crate::shell::{Cmd, Shell, quote};

/// What the local cluster needs of the host, and what its kubelet changes by itself.
pub fn local_cluster() -> Vec<(String, Option<String>)> {
    let set = |key: &str, value: &str| (key.to_string(), Some(value.to_string()));
    let kept = |key: &str| (key.to_string(), None);
    vec![
        set("net.ipv4.ip_forward", "1"),
        set("net.bridge.bridge-nf-call-iptables", "1"),
        // containerd, the kubelet and its pods each watch files; 128 is not enough.
        set("fs.inotify.max_user_instances", "1024"),
        // The kubelet sets these when it starts (protectKernelDefaults is off).
        kept("vm.overcommit_memory"),
        kept("vm.panic_on_oom"),
        kept("kernel.panic"),
        kept("kernel.panic_on_oops"),
        kept("kernel.keys.root_maxkeys"),
        kept("kernel.keys.root_maxbytes"),
    ]
}

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

pub fn details(settings: &[(String, Option<String>)]) -> Vec<Detail> {
    settings
        .iter()
        .map(|(key, value)| match value {
            Some(value) => {
                Detail::when(Cmd::sh(format!("echo {} > {}", quote(value), path(key))), "after recording what it held")
            }
            None => Detail::run(Cmd::new("cat").arg(path(key))),
        })
        .collect()
}

/// Record every setting, then set those with a value that differ.
pub async fn ensure(
    shell: &dyn Shell,
    settings: &[(String, Option<String>)],
    record: &Recorder<'_>,
) -> anyhow::Result<String> {
    let mut changed = Vec::new();
    for (key, wanted) in settings {
        let file = path(key);
        let was = shell.run(&Cmd::new("cat").arg(&file)).await?.stdout.trim().to_string();
        record.remember(Change::Setting { path: file.clone(), was: was.clone() })?;
        if let Some(value) = wanted
            && &was != value
        {
            shell.run(&Cmd::sh(format!("echo {} > {}", quote(value), quote(&file)))).await?;
            changed.push(format!("{key} {was} → {value}"));
        }
    }
    Ok(if changed.is_empty() { "unchanged; recorded for lab down".into() } else { changed.join(", ") })
}

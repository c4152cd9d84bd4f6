//! `lab bundle`: one tarball another contributor can replay from — the
//! scenario file, lab's version, each component's checkout commit with a
//! hash of any uncommitted change (and the diff, by option), the content tag
//! and image IDs, this host's facts (kernel, CPU, hugepages, provider
//! versions), the lab's newest artifacts and the fio history its verdicts
//! used. Written next to the scenario's artifacts; the path goes to stdout.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Lab;

/// `git -C dir args…`: its output, or `None` when git fails (no repository).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The checkout's commit and what differs from it: tracked changes and
/// untracked files, hashed together (`dirty_sha256`), with the diff itself.
pub fn source_state(checkout: &Path) -> (Value, Option<String>) {
    let Some(commit) = git(checkout, &["rev-parse", "HEAD"]) else {
        return (
            json!({"path": crate::state::absolute(checkout), "git": null, "note": "not a git checkout: only its content tag identifies it"}),
            None,
        );
    };
    // Only the checkout's own folder: a component can live inside a larger repository.
    let diff = git(checkout, &["diff", "HEAD", "--binary", "--relative", "--", "."]).unwrap_or_default();
    let untracked = git(checkout, &["ls-files", "--others", "--exclude-standard", "--", "."]).unwrap_or_default();
    let dirty = !diff.is_empty() || !untracked.is_empty();
    let mut hasher = Sha256::new();
    hasher.update(&diff);
    hasher.update("\0untracked\0");
    for file in untracked.lines() {
        hasher.update(file);
        hasher.update(std::fs::read(checkout.join(file)).unwrap_or_default());
    }
    let value = json!({
        "path": crate::state::absolute(checkout),
        "commit": commit.trim(),
        "dirty": dirty,
        "dirty_sha256": dirty.then(|| format!("{:x}", hasher.finalize())),
        "untracked": untracked.lines().collect::<Vec<_>>(),
    });
    (value, dirty.then_some(diff))
}

fn first_line(program: &str, args: &[&str]) -> Value {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let text = if text.trim().is_empty() {
                String::from_utf8_lossy(&out.stderr).into_owned()
            } else {
                text.into_owned()
            };
            json!(text.lines().next().unwrap_or_default().trim())
        }
        _ => Value::Null,
    }
}

/// What a replay on another machine compares: kernel, CPU, hugepages, tools.
pub fn host_facts() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()));
    let read = |path: &str| std::fs::read_to_string(path).ok().map(|t| t.trim().to_string());
    json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu_model": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "hugepages_2m": read("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        "docker": first_line("docker", &["version", "--format", "{{.Server.Version}}"]),
        "kind": first_line("kind", &["version"]),
        "vagrant": first_line("vagrant", &["--version"]),
        "helm": first_line("helm", &["version", "--short"]),
        "fio": first_line("fio", &["--version"]),
    })
}

/// The newest run folder under `artifacts/<lab>/`, if any.
fn newest_artifacts(lab: &Lab) -> Option<PathBuf> {
    let root = crate::artifacts::default_dir(&lab.scenario).parent()?.to_path_buf();
    // Runs only: not the folders of earlier bundles or log exports.
    let is_run = |p: &PathBuf| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        p.is_dir() && !name.ends_with("-bundle") && !name.ends_with("-logs")
    };
    let mut runs: Vec<PathBuf> = std::fs::read_dir(root).ok()?.flatten().map(|e| e.path()).filter(is_run).collect();
    runs.sort();
    runs.pop()
}

/// The scenarios a bundle's run selected (`lab test -t`/`-n`), replayed alike.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub tags: Option<String>,
    pub name: Option<String>,
}

/// The bundle as `<dir>.tar.gz` (`dir`: `--out`, else
/// `artifacts/<lab>/<UTC time>-bundle` beside the scenario), the folder kept beside it.
/// `artifacts`: the run folder to include, else the lab's newest under `artifacts/<lab>/`.
pub async fn make(
    lab: &Lab,
    with_diff: bool,
    out: Option<PathBuf>,
    artifacts: Option<&Path>,
    selection: &Selection,
) -> anyhow::Result<PathBuf> {
    let stamped = crate::artifacts::default_dir(&lab.scenario);
    let dir = match out {
        Some(dir) => dir,
        None => stamped.with_file_name(format!("{}-bundle", stamped.file_name().unwrap_or_default().to_string_lossy())),
    };
    let dir = crate::state::absolute(&dir);
    let run_folder = artifacts.map(Path::to_path_buf).filter(|p| p.is_dir()).or_else(|| newest_artifacts(lab));
    // Only what lab gathers goes in: a folder that holds anything is refused.
    crate::artifacts::check_new_folder(&dir, "the bundle folder")?;
    crate::state::make_private_dir(&dir.join("scenario"))?;
    let file_name = lab.scenario.source.file_name().unwrap_or_default();
    // The scenario that ran: a replayed bundle's text, not the file here.
    std::fs::write(dir.join("scenario").join(file_name), &lab.scenario.text)
        .with_context(|| format!("cannot write the scenario into {}", dir.display()))?;

    let docker = crate::docker::connect().await.ok();
    let mut components = Vec::new();
    for build in crate::build::resolve(&lab.scenario, &lab.state, None)? {
        let (source, diff) = source_state(&build.checkout);
        if let (true, Some(diff)) = (with_diff, diff) {
            std::fs::create_dir_all(dir.join("diffs"))?;
            std::fs::write(dir.join("diffs").join(format!("{}.diff", build.name())), diff)?;
        }
        let tag = build.tag().map_err(|e| format!("{e:#}"));
        let mut images = Vec::new();
        for reference in build.refs().unwrap_or_default() {
            let id = match &docker {
                Some(docker) => docker.inspect_image(&reference).await.ok().and_then(|i| i.id),
                None => None,
            };
            images.push(json!({"reference": reference, "id": id}));
        }
        components.push(json!({"name": build.name(), "source": source, "tag": tag.as_ref().ok(),
            "tag_error": tag.as_ref().err(), "images": images}));
    }
    let mut kept = Vec::new();
    if let Some(run) = run_folder {
        crate::build::tree::copy(&run, &dir.join("artifacts"), crate::build::tree::Git::Skip)?;
        kept.push(run.display().to_string());
    }
    {
        let history = lab.scenario.path_of(&lab.scenario.fio.results).join(lab.scenario.name());
        let files: Vec<PathBuf> = std::fs::read_dir(&history)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect())
            .unwrap_or_default();
        crate::artifacts::keep(&dir.join("fio-history"), &files)?;
    }
    let manifest = json!({
        "bundle": 1,
        "lab_version": env!("CARGO_PKG_VERSION"),
        "made_at": crate::artifacts::utc_stamp(std::time::SystemTime::now()),
        "scenario": {"name": lab.scenario.name(), "file": format!("scenario/{}", file_name.to_string_lossy()),
                     "path": crate::state::absolute(&lab.scenario.source),
                     "provider": lab.scenario.cluster.provider.to_string()},
        "selection": selection,
        "components": components,
        "host": host_facts(),
        "artifacts_from": kept,
        "diffs_included": with_diff,
    });
    std::fs::write(dir.join("bundle.json"), serde_json::to_string_pretty(&manifest)?)?;
    let tarball = crate::artifacts::bundle(&dir)?;
    Ok(tarball)
}

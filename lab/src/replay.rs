//! `lab replay BUNDLE`: a bundle (`lab bundle`, or a failed `lab run`'s)
//! run again, here. What differs from where it was made is said first: lab's
//! version, the scenario file, each component's commit and uncommitted
//! change, its content tag, the kernel, CPU, hugepages and tools. The
//! bundle's scenario text is what runs, read as if it were this machine's
//! scenario file (its features and manifests are the ones beside that
//! file); a component whose checkout here is not at the bundle's commit is
//! built from that commit in lab's own clone, with the bundle's diff applied
//! when it carries one. The user's checkout is never changed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::Lab;
use crate::bundle::Selection;
use crate::clones::{Clones, git};
use crate::scenario::{Scenario, Source};

/// A bundle made ready to run here.
pub struct Replay {
    /// The bundle's scenario at this machine's scenario path, its components
    /// pointed at the bundle's commits.
    pub lab: Lab,
    /// What differs from the machine and sources the bundle was made with, one line each.
    pub differences: Vec<String>,
    /// What is built from where: one line per component.
    pub sources: Vec<String>,
    pub selection: Selection,
    /// What runs that is not the user's own, to be shown and agreed to.
    pub consent: Consent,
    /// lab's clones the components are built from: removed when dropped.
    pub clones: Option<Clones>,
    _unpacked: Option<tempfile::TempDir>,
}

/// The bundle's folder: `BUNDLE` itself, or where its tarball was unpacked.
fn unpack(bundle: &Path) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if bundle.is_dir() {
        return Ok((bundle.to_path_buf(), None));
    }
    if !bundle.is_file() {
        bail!("no bundle at {}: give the `.tar.gz` that `lab bundle` printed, or its folder", bundle.display());
    }
    let scratch =
        tempfile::Builder::new().prefix("lab-replay-").tempdir().context("cannot make a folder to unpack in")?;
    let out = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(scratch.path())
        .output()
        .context("running tar")?;
    if !out.status.success() {
        bail!("{} is not a bundle tarball: tar says {}", bundle.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let top = std::fs::read_dir(scratch.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("bundle.json").is_file())
        .with_context(|| format!("{} holds no bundle.json: not a bundle of `lab bundle`", bundle.display()))?;
    Ok((top, Some(scratch)))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first 12 characters of a commit id or hash, as git shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Read `bundle`, compare it with this machine, and (unless `dry_run`)
/// clone the components whose commits differ. `scenario`: this machine's
/// copy of the bundle's scenario file [default: the path it had there].
pub fn open(bundle: &Path, scenario: Option<&Path>, dry_run: bool) -> anyhow::Result<Replay> {
    let (dir, unpacked) = unpack(bundle)?;
    let manifest_path = dir.join("bundle.json");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    if manifest["bundle"] != 1 {
        bail!("{}: bundle format {} is not one this lab reads (1)", manifest_path.display(), manifest["bundle"]);
    }
    let recorded = manifest["scenario"]["path"].as_str().map(PathBuf::from);
    let here = match (scenario, &recorded) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) if path.is_file() => path.clone(),
        _ => bail!(
            "the bundle's scenario was {}, which this machine lacks: give your copy with --scenario PATH \
             (its features and manifests are read beside it)",
            recorded.as_deref().map_or("not recorded".into(), |p| p.display().to_string())
        ),
    };
    let file = manifest["scenario"]["file"].as_str().context("bundle.json names no scenario file")?;
    let bundled_file = inside(&dir, file).with_context(|| format!("{}: scenario.file", manifest_path.display()))?;
    let bundled = std::fs::read_to_string(&bundled_file).with_context(|| format!("the bundle lacks {file}"))?;
    let mut differences = Vec::new();
    let local = std::fs::read_to_string(&here).ok();
    match &local {
        Some(local) if *local == bundled => {}
        Some(_) => {
            differences.push(format!("scenario: {} differs from the bundle's; the bundle's runs", here.display()))
        }
        None => differences.push(format!("scenario: no {} here; the bundle's runs from there", here.display())),
    }
    let scenario_diff = match &local {
        Some(text) if *text == bundled => None,
        Some(_) => Some(file_diff(&here, &bundled_file)),
        None => Some(format!("(no {} here: the whole bundled scenario runs)\n{bundled}", here.display())),
    };
    let mut scenario = Scenario::parse(&here, &bundled).context("the bundle's scenario")?;
    if manifest["lab_version"] != env!("CARGO_PKG_VERSION") {
        differences.push(format!("lab: {} there, {} here", text(&manifest["lab_version"]), env!("CARGO_PKG_VERSION")));
    }
    let facts = crate::bundle::host_facts();
    for (key, then) in manifest["host"].as_object().into_iter().flatten() {
        let now = &facts[key.as_str()];
        if then != now {
            differences.push(format!("host {key}: {} there, {} here", text(then), text(now)));
        }
    }

    let clones = if dry_run { None } else { Some(Clones::make(scenario.name(), "replay")?) };
    let mut sources = Vec::new();
    // Code that is not the user's own checkout: someone else's commit or diff.
    let mut foreign_code = Vec::new();
    for component in manifest["components"].as_array().into_iter().flatten() {
        let name = component["name"].as_str().unwrap_or_default();
        let source = &component["source"];
        let Some(commit) = source["commit"].as_str() else { continue };
        // From a file someone sent: a commit id, never an option or a ref name for git.
        if commit.len() != 40 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "{}: component {name}'s commit `{}` is not a commit id",
                manifest_path.display(),
                commit.escape_debug()
            );
        }
        let Some(spec) = scenario.components.iter().find(|c| c.name == name) else {
            differences.push(format!("component {name}: not in the scenario here"));
            continue;
        };
        let Source::Path(path) = &spec.source else { continue };
        let checkout = scenario.path_of(path);
        let (local, _) = crate::bundle::source_state(&checkout);
        let dirty_then = source["dirty_sha256"].as_str();
        let same = local["commit"].as_str() == Some(commit) && local["dirty_sha256"].as_str() == dirty_then;
        if same {
            sources.push(format!("{name}: your checkout {} (at the bundle's commit)", checkout.display()));
            continue;
        }
        let now = match (local["commit"].as_str(), local["dirty_sha256"].as_str()) {
            (Some(c), Some(d)) => format!("{} with an uncommitted change ({})", short(c), short(d)),
            (Some(c), None) => short(c).to_string(),
            _ => "not a git checkout".into(),
        };
        let then = match dirty_then {
            Some(d) => format!("{} with an uncommitted change ({})", short(commit), short(d)),
            None => short(commit).to_string(),
        };
        differences.push(format!("component {name}: {then} there, {now} here ({})", checkout.display()));
        let diff = dir.join("diffs").join(format!("{name}.diff"));
        if dirty_then.is_some() && !diff.is_file() {
            differences.push(format!(
                "component {name}: its uncommitted change is not in the bundle (made without --diff): the commit runs without it"
            ));
        }
        foreign_code.push(format!(
            "{name}: commit {commit}{} (not your checkout's: read it with `git -C {} show {commit}`)",
            if diff.is_file() { format!(" with the bundle's diff (diffs/{name}.diff in it)") } else { String::new() },
            checkout.display()
        ));
        let Some(clones) = &clones else {
            sources.push(format!("{name}: lab's clone of {} at {commit}", checkout.display()));
            continue;
        };
        let clone = clones.clone_of(&checkout, name)?;
        if git(&clone, &["checkout", "--quiet", commit]).is_err() {
            bail!(
                "component {name}: the bundle's commit {commit} is not in {}: fetch it there (`git fetch`), then replay",
                checkout.display()
            );
        }
        if diff.is_file() {
            apply_diff(&clone, &diff).with_context(|| format!("component {name}: the bundle's diff at {commit}"))?;
        }
        sources.push(format!(
            "{name}: lab's clone of {} at {commit}{}",
            checkout.display(),
            if diff.is_file() { " with the bundle's diff" } else { "" }
        ));
        if let Some(spec) = scenario.components.iter_mut().find(|c| c.name == name) {
            spec.source = Source::Path(clone.display().to_string());
        }
    }

    let state = scenario.state_dir()?;
    let lab = Lab::with_state(scenario, state);
    // The content tag sums up every input of a build: equal tags, equal images.
    if !dry_run {
        for build in crate::build::resolve(&lab.scenario, &lab.state, None)? {
            let then = manifest["components"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == build.name())
                .and_then(|c| c["tag"].as_str().map(str::to_string));
            match (then, build.tag()) {
                (Some(then), Ok(now)) if then != now => {
                    differences.push(format!("component {}: content tag {then} there, {now} here", build.name()))
                }
                _ => {}
            }
        }
    }
    let selection = serde_json::from_value(manifest["selection"].clone()).unwrap_or_default();
    let consent = Consent::of(&lab.scenario, lab.provider.as_ref(), scenario_diff, foreign_code);
    Ok(Replay { lab, differences, sources, selection, consent, clones, _unpacked: unpacked })
}

/// `name` (from bundle.json) as a file inside the bundle's folder: a
/// relative path that stays there, even through a symbolic link.
fn inside(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(name);
    let plain = relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || !plain {
        bail!("`{}` is not a path inside the bundle", name.escape_debug());
    }
    let path = dir.join(relative);
    let (real, root) = (path.canonicalize(), dir.canonicalize());
    match (real, root) {
        (Ok(real), Ok(root)) if real.starts_with(&root) => Ok(path),
        (Ok(real), Ok(_)) => bail!("`{name}` leads out of the bundle (to {})", real.display()),
        (Err(e), _) | (_, Err(e)) => Err(e).with_context(|| format!("the bundle lacks {name}")),
    }
}

/// The scenario here against the bundle's, as `git diff --no-index` shows it.
fn file_diff(here: &Path, bundled: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["diff", "--no-index", "--no-color", "--"])
        .arg(here)
        .arg(bundled)
        .output();
    match out {
        Ok(out) if !out.stdout.is_empty() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => format!("(git could not compare them; the bundle's scenario is {})", bundled.display()),
    }
}

/// Apply the bundle's diff (paths relative to the component's folder, as
/// `lab bundle` writes it) from the repository's top with that folder as
/// prefix, then prove it: the folder's diff from its commit is the bundle's.
/// git, run inside a folder, skips a patch's paths outside it and exits 0.
fn apply_diff(folder: &Path, diff: &Path) -> anyhow::Result<()> {
    let top = PathBuf::from(git(folder, &["rev-parse", "--show-toplevel"])?);
    let prefix = git(folder, &["rev-parse", "--show-prefix"])?;
    let diff_path = crate::state::absolute(diff).display().to_string();
    let mut args = vec!["apply"];
    let directory = format!("--directory={}", prefix.trim_end_matches('/'));
    if !prefix.is_empty() {
        args.push(&directory);
    }
    args.push(&diff_path);
    git(&top, &args).context("git apply refused it")?;
    let wanted = std::fs::read_to_string(diff).with_context(|| format!("cannot read {}", diff.display()))?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(["diff", "HEAD", "--binary", "--relative", "--", "."])
        .output()
        .context("running git diff")?;
    if String::from_utf8_lossy(&out.stdout) != wanted {
        bail!(
            "after `git apply`, {} differs from its commit otherwise than the bundle's diff {} says: it did not apply whole",
            folder.display(),
            diff.display()
        );
    }
    Ok(())
}

/// What a replay runs that is not the user's own: shown, then asked for.
#[derive(Debug, Default)]
pub struct Consent {
    /// The scenario here against the bundle's (`None`: the same file).
    pub scenario_diff: Option<String>,
    /// Components built from a commit or diff that is not the user's checkout.
    pub foreign_code: Vec<String>,
    /// What the bundle's scenario runs and touches: provider, kubeconfig,
    /// build commands, devices, manifests, features.
    pub runs: Vec<String>,
}

impl Consent {
    fn of(
        scenario: &Scenario,
        provider: &dyn crate::provider::Provider,
        scenario_diff: Option<String>,
        foreign_code: Vec<String>,
    ) -> Consent {
        use crate::scenario::component::BuildRecipe;
        let mut runs = vec![format!("provider: {}", scenario.cluster.provider)];
        runs.extend(provider.users_own());
        for component in &scenario.components {
            runs.push(match &component.build {
                BuildRecipe::Command(c) => {
                    format!("component {}: build command `sh -c {}`", component.name, crate::shell::quote(&c.command))
                }
                BuildRecipe::Dockerfile(d) => format!("component {}: docker build of {}", component.name, d.dockerfile),
            });
        }
        for (i, group) in scenario.cluster.nodes.iter().enumerate() {
            if let Some(device) = group.pool.as_ref().and_then(|p| p.device.as_deref()) {
                runs.push(format!("cluster.nodes[{i}]: pool device {device} (overwritten)"));
            }
        }
        for layer in scenario.stack.iter().flat_map(|s| s.layers.iter()) {
            runs.push(match layer {
                crate::scenario::Layer::Manifests(m) => {
                    format!("manifests applied: {}", scenario.path_of(&m.manifests).display())
                }
                crate::scenario::Layer::Chart(c) => format!("chart rendered and applied: {}", c.chart),
            });
        }
        let features = match &scenario.features {
            Some(crate::scenario::Features::One(f)) => vec![f.clone()],
            Some(crate::scenario::Features::Many(f)) => f.clone(),
            None => vec![],
        };
        for f in features {
            runs.push(format!("features: {}", scenario.path_of(&f).display()));
        }
        Consent { scenario_diff, foreign_code, runs }
    }

    /// Whether anything runs that is not the user's own scenario and checkouts.
    pub fn needed(&self) -> bool {
        self.scenario_diff.is_some() || !self.foreign_code.is_empty()
    }

    /// What is shown before the question, and by `--dry-run`.
    pub fn render(&self) -> String {
        let mut out = String::from("replay: this bundle runs, as root, what is not your own:\n");
        if let Some(diff) = &self.scenario_diff {
            out.push_str("  its scenario, which differs from yours:\n");
            for line in diff.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
        for code in &self.foreign_code {
            out.push_str(&format!("  code built from {code}\n"));
        }
        out.push_str("  and with it:\n");
        for line in &self.runs {
            out.push_str(&format!("    {line}\n"));
        }
        out
    }
}

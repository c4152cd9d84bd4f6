//! Building images from source checkouts: a content tag from the inputs, an
//! isolated copy with the dependency overrides, then a Dockerfile build
//! through the Docker API or the component's own build command.

mod dockerfile;
pub mod overrides;
pub mod tree;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, bail};
use indicatif::ProgressBar;
use sha2::{Digest as _, Sha256};

use crate::plan::{Action, Context, Detail, Step, Target, View, Work};
use crate::scenario::{BuildRecipe, Component, Override, Scenario, Source};
use crate::shell::{Cmd, quote};
use crate::state::{StateDir, absolute};

/// Bumped when the way inputs are hashed changes, so old tags are not reused.
const TAG_SCHEME: &str = "lab-build-1";

pub use crate::state::cache_root;

/// A file or folder name made from free text (URLs, branch names).
fn file_name_of(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// One component, resolved against the scenario and the state directory.
#[derive(Debug)]
pub struct Build {
    pub component: Component,
    /// The checkout: the user's path, or the clone in the cache for git sources.
    pub checkout: PathBuf,
    /// Each override with its local checkout, for those that have one.
    pub overrides: Vec<(Override, Option<PathBuf>)>,
    /// The component's further inputs by name, resolved.
    pub inputs: Vec<(String, PathBuf)>,
    /// `.lab/<name>/build/<component>`: the isolated copy and the build log.
    pub work_dir: PathBuf,
    tag: OnceLock<String>,
}

impl Build {
    pub fn new(scenario: &Scenario, state: &StateDir, component: &Component) -> Build {
        let checkout = match &component.source {
            Source::Path(path) => scenario.path_of(path),
            Source::Git(git) => cache_root().join("sources").join(file_name_of(&git.git)),
        };
        let overrides =
            component.overrides.iter().map(|o| (o.clone(), o.path().map(|p| scenario.path_of(p)))).collect();
        let inputs = component.inputs.iter().map(|(name, path)| (name.clone(), scenario.path_of(path))).collect();
        Build {
            component: component.clone(),
            checkout,
            overrides,
            inputs,
            work_dir: state.dir().join("build").join(&component.name),
            tag: OnceLock::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.component.name
    }

    /// `lab-` and 12 hex digits of a hash over everything the image is made
    /// from: the recipe, the checkout's files, each override's and each input's files.
    /// Computed once per run, at the build (or load) itself, never from a
    /// clone that a fetch step has yet to update.
    pub fn tag(&self) -> anyhow::Result<String> {
        if let Some(tag) = self.tag.get() {
            return Ok(tag.clone());
        }
        let tag = self.compute_tag()?;
        Ok(self.tag.get_or_init(|| tag).clone())
    }

    fn compute_tag(&self) -> anyhow::Result<String> {
        let mut hasher = Sha256::new();
        hasher.update(TAG_SCHEME);
        let mut recipe = serde_json::json!({
            "build": self.component.build,
            "images": self.component.image.names(),
            "overrides": self.component.overrides.iter().map(Override::recipe).collect::<Vec<_>>(),
        });
        if !self.component.inputs.is_empty() {
            recipe["inputs"] = serde_json::json!(self.component.inputs.keys().collect::<Vec<_>>());
        }
        hasher.update(recipe.to_string());
        tree::hash_into(&mut hasher, &self.checkout)
            .with_context(|| format!("component {}: hashing its checkout", self.name()))?;
        for (o, dir) in &self.overrides {
            let Some(dir) = dir else { continue };
            hasher.update(format!("\0override {}\0", o.target()));
            tree::hash_into(&mut hasher, dir)
                .with_context(|| format!("component {}: hashing override `{}`", self.name(), o.target()))?;
        }
        for (name, dir) in &self.inputs {
            hasher.update(format!("\0input {name}\0"));
            tree::hash_into(&mut hasher, dir)
                .with_context(|| format!("component {}: hashing input `{name}` ({})", self.name(), dir.display()))?;
        }
        let digest = format!("{:x}", hasher.finalize());
        Ok(format!("lab-{}", &digest[..12]))
    }

    /// `image:tag` for every image the component produces.
    pub fn refs(&self) -> anyhow::Result<Vec<String>> {
        let tag = self.tag()?;
        Ok(self.component.image.names().into_iter().map(|image| format!("{image}:{tag}")).collect())
    }

    /// The release the build cache belongs to: the scenario's `release`, the
    /// git ref, or the checkout's branch.
    pub fn release(&self) -> String {
        if let Some(release) = &self.component.release {
            return release.clone();
        }
        if let Source::Git(git) = &self.component.source {
            return git.reference.clone();
        }
        let head = std::fs::read_to_string(self.checkout.join(".git/HEAD")).unwrap_or_default();
        match head.trim().strip_prefix("ref: refs/heads/") {
            Some(branch) => branch.to_string(),
            None if head.trim().is_empty() => "default".into(),
            None => "detached".into(),
        }
    }

    /// A cache folder per component and release (cargo target dir, ccache),
    /// kept across builds and labs, never shared between releases.
    pub fn cache_dir(&self) -> PathBuf {
        cache_root().join("build").join(&self.component.name).join(file_name_of(&self.release()))
    }

    pub fn log_path(&self) -> PathBuf {
        self.work_dir.join("build.log")
    }

    fn copy_dir(&self) -> PathBuf {
        self.work_dir.join("src")
    }

    /// A Dockerfile build without overrides reads the checkout as it is;
    /// everything else works in a copy, so the checkout is never written.
    fn needs_copy(&self) -> bool {
        !self.overrides.is_empty() || matches!(self.component.build, BuildRecipe::Command(_))
    }

    /// The registry part of the component's first image, for `{registry}`.
    fn registry(&self) -> String {
        let first = self.component.image.names().into_iter().next().unwrap_or_default();
        match first.split_once('/') {
            Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => host.to_string(),
            _ => "docker.io".into(),
        }
    }

    fn command(&self, template: &str, tag: &str) -> Cmd {
        let cache = self.cache_dir();
        let mut cmd = Cmd::sh(template.replace("{tag}", tag).replace("{registry}", &self.registry()));
        for (name, dir) in &self.inputs {
            // A build command runs in the copy, so its inputs are given from `/`.
            cmd = cmd.env(input_variable(name), absolute(dir).display().to_string());
        }
        // The copy lies in lab's state folder, often inside the user's own
        // repository: a build asking git (`git describe` for a version) must
        // see the copy's own `.git` or none, never the repository around it.
        cmd.env("GIT_CEILING_DIRECTORIES", absolute(&self.work_dir).display().to_string())
            .env("LAB_TAG", tag)
            .env("LAB_REGISTRY", self.registry())
            .env("LAB_CACHE_DIR", cache.display().to_string())
            .env("CARGO_TARGET_DIR", cache.join("target").display().to_string())
            .env("CCACHE_DIR", cache.join("ccache").display().to_string())
    }

    /// The tag as a plan shows it: computed but not kept (the build computes
    /// it again from what it builds), a placeholder before a git fetch.
    fn tag_for_plan(&self) -> String {
        match &self.component.source {
            Source::Git(_) => "{computed once the source is fetched}".to_string(),
            Source::Path(_) => self.compute_tag().unwrap_or_else(|e| format!("{{unknown: {e:#}}}")),
        }
    }

    /// `image:tag` for every image, as a plan shows them.
    pub fn refs_for_plan(&self) -> Vec<String> {
        let tag = self.tag_for_plan();
        self.component.image.names().into_iter().map(|image| format!("{image}:{tag}")).collect()
    }

    /// What `--dry-run` shows: where it builds, the tag, the equivalent commands.
    pub fn details(&self) -> Vec<Detail> {
        let tag = self.tag_for_plan();
        let mut out = vec![Detail::Note(format!("source {} → tag {tag}", self.checkout.display()))];
        let context = if self.needs_copy() {
            out.push(Detail::Note(format!("copied to {} (the checkout stays untouched)", self.copy_dir().display())));
            self.copy_dir()
        } else {
            self.checkout.clone()
        };
        for (o, dir) in &self.overrides {
            let note = match (o, dir) {
                (Override::CargoVersion(v), _) => {
                    format!("Cargo.lock: {} moved to {} (cargo update --precise)", v.cargo, v.version)
                }
                (Override::Tree(_), Some(dir)) => {
                    format!("folder {} replaced by {}", o.dir_in_context(), dir.display())
                }
                (Override::Go(_), Some(dir)) => {
                    format!("go.mod replace: {} → {} ({})", o.target(), o.dir_in_context(), dir.display())
                }
                (Override::Cargo(_), Some(dir)) => {
                    format!("Cargo [patch]: {} → {} ({})", o.target(), o.dir_in_context(), dir.display())
                }
                // Only a lock move has no folder; resolving gives every other one its folder.
                (_, None) => format!("{} → {}", o.target(), o.dir_in_context()),
            };
            out.push(Detail::Note(note));
        }
        for (name, dir) in &self.inputs {
            out.push(Detail::Note(format!("input {name}: {} (read only, ${})", dir.display(), input_variable(name))));
        }
        match &self.component.build {
            BuildRecipe::Dockerfile(build) => {
                let mut cmd = Cmd::new("docker").arg("build").arg("-f").arg(&build.dockerfile);
                for (key, value) in &build.args {
                    cmd = cmd.arg("--build-arg").arg(format!("{key}={value}"));
                }
                if let Some(target) = &build.target {
                    cmd = cmd.arg("--target").arg(target);
                }
                for image in self.component.image.names() {
                    cmd = cmd.arg("-t").arg(format!("{image}:{tag}"));
                }
                out.push(Detail::Run { cmd: cmd.arg(context.display().to_string()), when: Some("unless cached") });
            }
            BuildRecipe::Command(build) => {
                let cmd = self.command(&build.command, &tag);
                out.push(Detail::Note(format!(
                    "$ cd {} && {cmd}  # unless cached",
                    quote(&context.display().to_string())
                )));
            }
        }
        out
    }

    /// Build unless Docker already has every image at the content tag.
    /// Returns what happened, for the step's line.
    pub async fn run(&self, spinner: Option<&ProgressBar>) -> anyhow::Result<String> {
        let docker = crate::docker::connect().await.with_context(|| format!("component {}", self.name()))?;
        let tag = self.tag()?;
        let refs = self.refs()?;
        if missing_images(&docker, &refs).await?.is_empty() {
            return Ok(format!("cached: {} (inputs unchanged)", refs.join(", ")));
        }
        let _lock = self.lock_cache(spinner).await?;
        // Another lab process may have built it while this one waited.
        if missing_images(&docker, &refs).await?.is_empty() {
            return Ok(format!("cached: {} (built by another lab process meanwhile)", refs.join(", ")));
        }
        std::fs::create_dir_all(&self.work_dir)
            .with_context(|| format!("cannot create {}", self.work_dir.display()))?;
        let context = if self.needs_copy() { self.isolated_copy()? } else { self.checkout.clone() };
        match &self.component.build {
            BuildRecipe::Dockerfile(build) => {
                dockerfile::build(&docker, self, &context, build, &refs, spinner).await?;
            }
            BuildRecipe::Command(build) => {
                let cache = self.cache_dir();
                std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
                run_logged(&self.command(&build.command, &tag), &context, &self.log_path(), spinner)
                    .await
                    .with_context(|| format!("component {}: the build command failed", self.name()))?;
            }
        }
        // A build command can succeed without producing what it should.
        let missing = missing_images(&docker, &refs).await?;
        if !missing.is_empty() {
            bail!(
                "component {}: the build finished but Docker has no {}; the build must tag its images with {{tag}} (here {tag})",
                self.name(),
                missing.join(", ")
            );
        }
        Ok(format!("built {}", refs.join(", ")))
    }

    /// An exclusive `flock` on the component's build cache, held while it
    /// builds: labs side by side (two CI jobs, a test beside a warm-up
    /// build) take turns on the cache (cargo's target folder, Go's), and
    /// the later one finds the image the first built. Waiting is shown.
    async fn lock_cache(&self, spinner: Option<&ProgressBar>) -> anyhow::Result<std::fs::File> {
        let dir = self.cache_dir();
        let path = dir.with_file_name(format!("{}.lock", file_name_of(&self.release())));
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))
            .with_context(|| format!("cannot create the folder of {}", path.display()))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let waiting = format!(
            "component {}: waiting for another lab process's build ({} is locked)",
            self.name(),
            path.display()
        );
        if let Some(spinner) = spinner {
            spinner.set_message(waiting.clone());
        }
        tracing::info!("{waiting}");
        tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await?
            .with_context(|| format!("cannot lock {}", path.display()))
    }

    /// A fresh copy of the checkout with the overrides applied.
    fn isolated_copy(&self) -> anyhow::Result<PathBuf> {
        let copy = self.copy_dir();
        if copy.exists() {
            std::fs::remove_dir_all(&copy).with_context(|| format!("cannot remove the old copy {}", copy.display()))?;
        }
        tree::copy(&self.checkout, &copy, tree::Git::Keep)
            .with_context(|| format!("component {}: copying the checkout", self.name()))?;
        overrides::apply(&copy, &self.overrides)
            .with_context(|| format!("component {}: applying overrides in {}", self.name(), copy.display()))?;
        Ok(copy)
    }
}

/// The variable a build command finds an input in: `LAB_INPUT_SPDK` for `spdk`.
pub fn input_variable(name: &str) -> String {
    format!("LAB_INPUT_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// Which of `refs` the Docker engine does not have.
pub async fn missing_images(docker: &bollard::Docker, refs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for image in refs {
        match docker.inspect_image(image).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                missing.push(image.clone())
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting image {image}")),
        }
    }
    Ok(missing)
}

/// Run a build command in `dir`, its output streamed to `log` and to the
/// spinner; on failure, the error carries the last lines.
async fn run_logged(cmd: &Cmd, dir: &Path, log: &Path, spinner: Option<&ProgressBar>) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt as _;
    let mut file = std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run `{cmd}` in {}", dir.display()))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("`{cmd}`: no output pipes");
    };
    let (mut out, mut err) = (tokio::io::BufReader::new(stdout).lines(), tokio::io::BufReader::new(stderr).lines());
    let mut tail = LastLines::new(20);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let line = tokio::select! {
            line = out.next_line(), if out_open => line?.or_else(|| { out_open = false; None }),
            line = err.next_line(), if err_open => line?.or_else(|| { err_open = false; None }),
        };
        if let Some(line) = line {
            tail.push(&line, &mut file, spinner);
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!(
            "`{cmd}` in {} exited with {status}; last lines (all in {}):\n{}",
            dir.display(),
            log.display(),
            tail.render()
        );
    }
    Ok(())
}

/// The last lines of a build's output: logged in full, shown on the spinner, kept for errors.
struct LastLines {
    lines: std::collections::VecDeque<String>,
    keep: usize,
}

impl LastLines {
    fn new(keep: usize) -> LastLines {
        LastLines { lines: Default::default(), keep }
    }

    fn push(&mut self, line: &str, log: &mut std::fs::File, spinner: Option<&ProgressBar>) {
        use std::io::Write as _;
        let _ = writeln!(log, "{line}");
        if let Some(spinner) = spinner
            && !line.trim().is_empty()
        {
            let short: String = line.trim().chars().take(100).collect();
            spinner.set_message(short);
        }
        if self.lines.len() == self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
    }

    fn render(&self) -> String {
        self.lines.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
    }
}

/// The steps that build the scenario's components (all, or the one named).
#[async_trait::async_trait(?Send)]
impl Work for Build {
    fn describe(&self, view: &View<'_>) -> String {
        view.details(&Target::Host, &self.details())
    }

    async fn run(&self, ctx: &Context<'_>) -> anyhow::Result<Option<String>> {
        Ok(Some(Build::run(self, ctx.spinner).await?))
    }
}

pub fn steps(builds: &[Arc<Build>]) -> Vec<Step> {
    let mut steps = Vec::new();
    for build in builds {
        if let Source::Git(git) = &build.component.source {
            steps.push(Step::run(
                format!("fetch {} {} for component {}", git.git, git.reference, build.name()),
                Target::Host,
                fetch_command(&git.git, &git.reference, &build.checkout),
            ));
        }
        steps.push(Step::new(format!("build component {}", build.name()), Action::Work(build.clone())));
    }
    steps
}

/// Clone once into the cache, then fetch the ref and check it out with its
/// submodules. URL and ref come after `--`, so neither is read as an option.
fn fetch_command(url: &str, reference: &str, dir: &Path) -> Cmd {
    let (url, reference, dir) = (quote(url), quote(reference), quote(&dir.display().to_string()));
    Cmd::sh(format!(
        "[ -d {dir}/.git ] || git clone --quiet -- {url} {dir} && git -C {dir} fetch --quiet -- origin {reference} && git -C {dir} checkout --quiet --detach FETCH_HEAD && git -C {dir} submodule update --quiet --init --recursive"
    ))
}

/// The scenario's components, or only `only`; an unknown name is an error listing the known ones.
pub fn resolve(scenario: &Scenario, state: &StateDir, only: Option<&str>) -> anyhow::Result<Vec<Arc<Build>>> {
    let all: Vec<Arc<Build>> = scenario.components.iter().map(|c| Arc::new(Build::new(scenario, state, c))).collect();
    let Some(only) = only else { return Ok(all) };
    let known: Vec<&str> = scenario.components.iter().map(|c| c.name.as_str()).collect();
    match all.iter().find(|b| b.name() == only) {
        Some(build) => Ok(vec![build.clone()]),
        None if known.is_empty() => bail!("{} has no components to build", scenario.source.display()),
        None => bail!("no component `{only}` in {}; it has: {}", scenario.source.display(), known.join(", ")),
    }
}

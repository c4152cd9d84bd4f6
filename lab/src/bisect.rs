//! `lab bisect`: the first commit of a component at which a test selection
//! fails, in a lab kept up across the steps. Each step checks the commit out
//! in lab's own clone of the checkout (`git clone --shared`: the user's
//! repository is only read), builds that component, loads and redeploys it,
//! and runs the selection. A step that cannot build, or runs no scenario, or
//! gives different answers on retries, is skipped as `git bisect skip` does.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::Lab;
use crate::progress::Progress;
use crate::scenario::Source;

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .with_context(|| format!("cannot run git in {}", dir.display()))?;
    if !out.status.success() {
        bail!("`git {}` in {}: {}", args.join(" "), dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What to search: the component, the range, the selection, the retries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub component: String,
    pub good: String,
    pub bad: String,
    pub tags: Option<String>,
    pub name: Option<String>,
    pub retries: u32,
    pub dry_run: bool,
}

/// What the search found: the first bad commit, or the commits it is among.
#[derive(Debug)]
pub struct Outcome {
    /// `(commit, subject)`, oldest first: one when found.
    pub candidates: Vec<(String, String)>,
    /// Where every step's report, artifacts and `bisect.json` are.
    pub evidence: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Good,
    Bad,
    Skip,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skipped",
        }
    }
}

/// The next commit to try between the last good (`lo`) and the first known
/// bad (`hi`), skipping those that could not be judged: the middle one.
fn next_probe(lo: Option<usize>, hi: usize, skipped: &[usize]) -> Option<usize> {
    let start = lo.map_or(0, |l| l + 1);
    let open: Vec<usize> = (start..hi).filter(|i| !skipped.contains(i)).collect();
    open.get(open.len() / 2).copied().filter(|_| !open.is_empty())
}

/// How many scenarios the cucumber JSON report ran, and how many failed.
fn scenarios_in(report: &Path) -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string(report) else { return (0, 0) };
    let Ok(features) = serde_json::from_str::<serde_json::Value>(&text) else { return (0, 0) };
    let mut ran = 0;
    let mut failed = 0;
    for element in
        features.as_array().into_iter().flatten().flat_map(|f| f["elements"].as_array().into_iter().flatten())
    {
        ran += 1;
        let steps = element["steps"].as_array().into_iter().flatten();
        if steps.into_iter().any(|s| s["result"]["status"] != "passed") {
            failed += 1;
        }
    }
    (ran, failed)
}

struct Bisect<'a> {
    lab: &'a Lab,
    args: &'a Options,
    clone: PathBuf,
    out: PathBuf,
    progress: &'a Progress,
    steps: Vec<serde_json::Value>,
}

impl Bisect<'_> {
    /// One attempt at a commit: build, load, deploy the component, run the selection.
    async fn attempt(&self, commit: &str, dir: &Path) -> (Verdict, String) {
        let mut scenario = self.lab.scenario.clone();
        if let Some(c) = scenario.components.iter_mut().find(|c| c.name == self.args.component) {
            c.source = Source::Path(self.clone.display().to_string());
        }
        let lab = Lab::with_state(scenario, self.lab.state.clone());
        let component = Some(self.args.component.as_str());
        let plans = [lab.build_plan(component), lab.load_plan(component), lab.deploy_plan()];
        for plan in plans {
            let done = match plan {
                Ok(plan) => crate::plan::execute(&plan, lab.provider.as_ref(), self.progress, &lab.state).await,
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                return (Verdict::Skip, format!("{commit}: could not build, load or deploy it: {e:#}"));
            }
        }
        let report = dir.join("cucumber.json");
        let options = crate::suite::TestOptions {
            tags: self.args.tags.clone(),
            name: self.args.name.clone(),
            json: Some(report.clone()),
            artifacts: Some(dir.join("artifacts")),
            ..Default::default()
        };
        match crate::suite::run(&lab.scenario, &lab.state, &options).await {
            Err(e) => (Verdict::Skip, format!("the selection could not run: {e:#}")),
            Ok(passed) => match scenarios_in(&report) {
                (0, _) => (Verdict::Skip, "the selection ran no scenario".into()),
                (ran, 0) if passed => (Verdict::Good, format!("{ran} scenario(s) passed")),
                (ran, failed) => (Verdict::Bad, format!("{failed} of {ran} scenario(s) failed")),
            },
        }
    }

    /// A commit judged: up to 1 + retries attempts; attempts that disagree make it flaky, skipped.
    async fn judge(&mut self, commit: &str, subject: &str) -> anyhow::Result<Verdict> {
        git(&self.clone, &["checkout", "--force", "--quiet", commit])?;
        git(&self.clone, &["clean", "-fdxq"])?;
        let mut seen = Vec::new();
        for attempt in 0..=self.args.retries {
            let dir = self.out.join(format!("{}-{}", &commit[..12], attempt + 1));
            std::fs::create_dir_all(&dir)?;
            let (verdict, evidence) = self.attempt(commit, &dir).await;
            eprintln!("bisect: {} {subject}: attempt {}: {} ({evidence})", &commit[..12], attempt + 1, verdict.word());
            seen.push((verdict, evidence));
            if verdict != Verdict::Bad {
                break;
            }
        }
        let verdicts: Vec<Verdict> = seen.iter().map(|(v, _)| *v).collect();
        let verdict = if verdicts.contains(&Verdict::Skip) {
            Verdict::Skip
        } else if verdicts.contains(&Verdict::Good) && verdicts.contains(&Verdict::Bad) {
            eprintln!("bisect: {} is flaky (failed, then passed): skipped", &commit[..12]);
            Verdict::Skip
        } else {
            verdicts[0]
        };
        self.steps.push(json!({"commit": commit, "subject": subject, "verdict": verdict.word(),
            "attempts": seen.iter().map(|(v, e)| json!({"verdict": v.word(), "evidence": e})).collect::<Vec<_>>()}));
        Ok(verdict)
    }
}

/// Search `lab`'s component history (see the module); with `dry_run`, the
/// commits between good and bad are the candidates and nothing runs.
pub async fn run(lab: &Lab, args: &Options, progress: &Progress) -> anyhow::Result<Outcome> {
    let component = lab
        .scenario
        .components
        .iter()
        .find(|c| c.name == args.component)
        .with_context(|| format!("scenario {} has no component `{}`", lab.scenario.name(), args.component))?;
    let Source::Path(path) = &component.source else {
        bail!("component {} is built from a git URL; bisect needs a local checkout (`source: PATH`)", args.component);
    };
    let checkout = lab.scenario.path_of(path);
    let good = git(&checkout, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.good)])
        .with_context(|| format!("--good {} is not a commit of {}", args.good, checkout.display()))?;
    let bad = git(&checkout, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.bad)])
        .with_context(|| format!("--bad {} is not a commit of {}", args.bad, checkout.display()))?;
    if git(&checkout, &["merge-base", "--is-ancestor", &good, &bad]).is_err() {
        bail!("--good {} is not an ancestor of --bad {}: nothing lies between them to bisect", args.good, args.bad);
    }
    let listed = git(&checkout, &["rev-list", "--reverse", "--ancestry-path", &format!("{good}..{bad}")])?;
    let commits: Vec<String> = listed.lines().map(str::to_string).collect();
    let subject = |c: &str| git(&checkout, &["log", "-1", "--format=%s", c]).unwrap_or_default();
    let steps_needed = (commits.len() as f64).log2().ceil() as usize;
    eprintln!(
        "bisect: {} commit(s) after {} up to {}, about {steps_needed} step(s), each: build {}, load, deploy, {}",
        commits.len(),
        &good[..12],
        &bad[..12],
        args.component,
        args.name
            .as_deref()
            .map(|n| format!("scenarios matching /{n}/"))
            .or(args.tags.clone())
            .unwrap_or("every scenario".into())
    );
    if args.dry_run {
        let candidates = commits.iter().map(|c| (c.clone(), subject(c))).collect();
        return Ok(Outcome { candidates, evidence: None });
    }
    if !lab.provider.exists().await? {
        bail!(
            "lab {} is not up: `lab up` first (bisect keeps it up across the steps and leaves it up)",
            lab.scenario.name()
        );
    }
    let _held = lab.hold("bisect")?;
    let stamped = crate::artifacts::default_dir(&lab.scenario);
    let out = stamped.with_file_name(format!("{}-bisect", stamped.file_name().unwrap_or_default().to_string_lossy()));
    let clone = lab.state.absolute().join("bisect").join(&args.component);
    if !clone.join(".git").is_dir() {
        std::fs::create_dir_all(clone.parent().unwrap_or(Path::new(".")))?;
        let cloned = std::process::Command::new("git")
            .args(["clone", "--quiet", "--shared", "--no-checkout"])
            .arg(&checkout)
            .arg(&clone)
            .status()?;
        if !cloned.success() {
            bail!("cannot clone {} into {}", checkout.display(), clone.display());
        }
    }
    let mut bisect = Bisect { lab, args, clone, out: out.clone(), progress, steps: Vec::new() };
    let (mut lo, mut hi) = (None::<usize>, commits.len() - 1);
    let mut skipped = Vec::new();
    while let Some(probe) = next_probe(lo, hi, &skipped) {
        match bisect.judge(&commits[probe], &subject(&commits[probe])).await? {
            Verdict::Good => lo = Some(probe),
            Verdict::Bad => hi = probe,
            Verdict::Skip => skipped.push(probe),
        }
    }
    let start = lo.map_or(0, |l| l + 1);
    let candidates: Vec<&String> = (start..=hi).map(|i| &commits[i]).collect();
    let found = candidates.len() == 1;
    let summary = json!({
        "component": args.component, "good": good, "bad": bad,
        "first_bad": found.then(|| candidates[0]),
        "candidates": candidates, "steps": bisect.steps,
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("bisect.json"), serde_json::to_string_pretty(&summary)?)?;
    eprintln!("bisect: every step's log, report and artifacts: {}", out.display());
    if let Some(last) = bisect.steps.last().and_then(|s| s["commit"].as_str()) {
        eprintln!(
            "bisect: the lab now runs {} at {}; `lab build`, `lab load`, `lab deploy` put your checkout's back",
            args.component,
            &last[..12]
        );
    }
    let candidates = candidates.into_iter().map(|c| (c.clone(), subject(c))).collect();
    Ok(Outcome { candidates, evidence: Some(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_halve_the_range_and_step_around_skipped_commits() {
        // commits 0..=4, 4 known bad, nothing known good: the middle of 0..4.
        assert_eq!(next_probe(None, 4, &[]), Some(2));
        assert_eq!(next_probe(Some(2), 4, &[]), Some(3));
        assert_eq!(next_probe(Some(2), 3, &[]), None);
        assert_eq!(next_probe(None, 4, &[2]), Some(1));
        assert_eq!(next_probe(Some(0), 4, &[1, 2, 3]), None);
    }
}

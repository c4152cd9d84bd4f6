//! The contributor's loop on the local CSI lab (`scenarios/local.yaml`: a
//! real Kubernetes as local processes, the hostpath CSI stack built from Go
//! sources), in one run on this machine, as ratios (these machines are
//! noisy; absolute times mean little).
//!
//! Baseline: `lab test` on the lab already running the build — the
//! scenario's own time to a verdict. Against it, the contributor's cycle
//! after a one-line change in the plugin's source (a log line added, in a
//! scratch copy), on the running lab: `lab build` (the changed component
//! only: the others are cached by their content), `lab load`, `lab deploy`
//! (apply, rollout of what changed, ready), `lab test`. Printed per round:
//! each phase, the cycle over the baseline, and the same from the end of the
//! build (what lab adds once the compiler is done; goal ≤ 1.5×). Rounds
//! interleave baseline and cycle, so drift touches both.
//!
//! Run: `cargo bench --bench cycle` as root, with Docker and the Kubernetes
//! binaries (`export LAB_KUBE_BIN=$(bash .ci/kube/build | tail -n 1)`);
//! fails without them. About 12 minutes here.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::local::{ONE_CLUSTER, binaries, down_on_drop, lab_in, repo};

const ROUNDS: usize = 2;

/// The scenario in `dir`, its plugin (and the dependency it overrides) a
/// scratch copy there, everything else still read from this repository.
fn scenario_in(dir: &Path) -> std::path::PathBuf {
    let repo = repo();
    let fixtures = repo.join("tests/fixtures/csi-hostpath");
    let options = fs_extra::dir::CopyOptions::new().content_only(true);
    for part in ["plugin", "driverinfo-local"] {
        fs_extra::dir::copy(fixtures.join(part), dir.join(part), &options)
            .unwrap_or_else(|e| panic!("copying the fixture {part}: {e}"));
    }
    let text = std::fs::read_to_string(repo.join("scenarios/local.yaml")).unwrap();
    let text = text
        .replace("../tests/fixtures/csi-hostpath/plugin", &dir.join("plugin").display().to_string())
        .replace("../tests/fixtures/csi-hostpath/driverinfo-local", &dir.join("driverinfo-local").display().to_string())
        .replace("../tests/", &format!("{}/tests/", repo.display()))
        .replace("../manifests/", &format!("{}/manifests/", repo.display()))
        .replace("../features/", &format!("{}/features/", repo.display()));
    let scenario = dir.join("local.yaml");
    std::fs::write(&scenario, text).unwrap();
    scenario
}

/// The one-line change: the plugin logs one more line at start.
fn change_plugin(dir: &Path, round: usize) {
    let main = dir.join("plugin/main.go");
    let text = std::fs::read_to_string(&main).unwrap();
    let anchor = "\tlog.Printf(\"csi-hostpath %s (%s), driver %s on node %q\"";
    assert!(text.contains(anchor), "the fixture plugin's start-up log line changed");
    let changed = text.replacen(anchor, &format!("\tlog.Printf(\"lab cycle round {round}\")\n{anchor}"), 1);
    std::fs::write(&main, changed).unwrap();
}

/// Runs lab with `args` in `dir` and returns how long it took; fails with its output.
fn timed(dir: &Path, binaries: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = lab_in(dir, binaries).args(args).output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "lab {}: exit {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let binaries = binaries();
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(dir.path());
    let _down = down_on_drop(dir.path(), scenario.clone());
    let scenario = scenario.display().to_string();

    let cold = timed(dir.path(), &binaries, &["up", &scenario]);
    println!("cold `lab up` (cluster, three builds, load, deploy): {:.0}s", cold.as_secs_f64());
    for round in 1..=ROUNDS {
        let baseline = timed(dir.path(), &binaries, &["test", &scenario]);
        change_plugin(dir.path(), round);
        let phases: Vec<(&str, Duration)> = ["build", "load", "deploy", "test"]
            .into_iter()
            .map(|command| (command, timed(dir.path(), &binaries, &[command, &scenario])))
            .collect();
        let cycle: f64 = phases.iter().map(|(_, d)| d.as_secs_f64()).sum();
        let after_build: f64 = phases.iter().filter(|(c, _)| *c != "build").map(|(_, d)| d.as_secs_f64()).sum();
        let listed: Vec<String> = phases.iter().map(|(c, d)| format!("{c} {:.1}s", d.as_secs_f64())).collect();
        println!(
            "round {round}: baseline `lab test` {:.1}s; cycle {cycle:.1}s: {}",
            baseline.as_secs_f64(),
            listed.join(" · ")
        );
        println!(
            "  cycle / baseline: {:.2}× in all, {:.2}× from the end of the build (goal ≤ 1.5×)",
            cycle / baseline.as_secs_f64(),
            after_build / baseline.as_secs_f64()
        );
    }
}

//! `lab test` for real: the host-perf features run fio on loop devices this
//! test's scenario makes and removes; reports are written; a failing check
//! names what it measured and what was expected; an unknown step fails.
//! Needs root (losetup, mount), fio, xfsprogs; `.ci/run` installs them.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod support;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One at a time: fio measurements must not compete, and the leftover check
/// must not see the other test's devices.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// No loop device or mount of lab's may be left behind.
fn lab_loops() -> Vec<String> {
    let out = std::process::Command::new("losetup").arg("-a").output().unwrap();
    // lab's test devices live in folders `test-devices/loop-*` of a lab's state.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("/test-devices/loop-"))
        .map(str::to_string)
        .collect()
}

/// The shipped host-perf scenario, its features and profiles, with results kept in `dir`.
fn scenario_in(dir: &Path, features: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("scenarios/host-perf.yaml")).unwrap();
    let text = text
        .replace("features: ../features/host", &format!("features: {}", features.display()))
        .replace("results: ../results", &format!("results: {}", dir.join("results").display()));
    let path = dir.join("lab.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lab_test(dir: &Path, scenario: &Path, extra: &[&str]) -> support::Run {
    support::run(Command::cargo_bin("lab").unwrap().current_dir(dir).arg("test").arg(scenario).args(extra))
}

#[test]
#[ignore = "needs root (loop devices, hugepages) and fio: bash .ci/run runs it"]
fn host_perf_features_run_fio_on_loop_devices_and_write_junit_json_and_html() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(dir.path(), &repo().join("features/host"));
    let reports = ["--junit", "out.xml", "--json", "out.json", "--html", "out.html"];

    let first = lab_test(dir.path(), &scenario, &reports);
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    assert!(first.stdout.contains("3 scenarios (3 passed)"), "{}", first.stdout);
    assert!(
        first.stdout.contains("read IOPS: 0 earlier session(s) of comparable runs; 3 are needed"),
        "{}",
        first.stdout
    );
    // With no history the regression check cannot be judged, and says so everywhere: never "passed".
    assert!(first.stdout.contains("? [randread-4k] 4k random reads on xfs meet"), "{}", first.stdout);
    assert!(first.stdout.contains("    not judged: read IOPS: 0 earlier session(s)"), "{}", first.stdout);
    assert!(first.stdout.contains(", 0 failed, 3 not judged"), "{}", first.stdout);
    let junit = std::fs::read_to_string(dir.path().join("out.xml")).unwrap();
    assert!(
        junit.starts_with("<?xml") && junit.matches("<testcase ").count() == 3 && junit.contains("failures=\"0\""),
        "{junit}"
    );
    assert_eq!(junit.matches("<skipped message=\"not judged: ").count(), 2, "two scenarios hold such checks: {junit}");
    assert!(junit.contains("<skipped message=\"not judged: read IOPS: 0 earlier session(s)"), "{junit}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(json[0]["elements"].as_array().unwrap().len(), 3, "{json}");
    let skipped: Vec<&serde_json::Value> = json[0]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["steps"].as_array().unwrap())
        .filter(|s| s["result"]["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 3, "{json}");
    assert_eq!(skipped[0]["name"], "read IOPS has not regressed against the history");
    assert!(skipped[0]["result"]["error_message"].as_str().unwrap().starts_with("not judged: read IOPS: 0 earlier"));
    let html = std::fs::read_to_string(dir.path().join("out.html")).unwrap();
    assert!(html.contains("class=\"unjudged\"") && html.contains("<b>not judged:</b>"), "{html}");
    // The interleaved scenario: settled verdicts on the same pairs, both arms in the history.
    for expected in ["read IOPS", "p99 read latency"] {
        let line = first
            .stdout
            .lines()
            .find(|l| l.contains(&format!("[randread-4k-quick] 4k random reads on xfs keep up with the raw device, measured interleaved: {expected}:")))
            .unwrap_or_else(|| panic!("no {expected} verdict: {}", first.stdout));
        assert!(line.contains("interleaved pairs)") && line.contains("settled after"), "{line}");
    }
    let quick = std::fs::read_to_string(dir.path().join("results/host-perf/randread-4k-quick.jsonl")).unwrap();
    assert!(quick.contains("\"device\":\"loop (raw) baseline\"") && quick.contains("\"device\":\"loop (xfs)\""));
    assert!(
        html.contains("<svg") && html.contains("randread-4k") && html.contains("read completion latency percentiles")
    );
    assert!(html.contains("loop (raw) baseline"), "the two arms are plotted as two lines");
    // Latency per device as IOPS is, and each run named by its date and label (time and commit).
    assert!(html.contains("read completion latency percentiles per run on loop (raw) baseline"), "latency per arm");
    assert!(html.contains("read completion latency percentiles per run on loop (xfs)"), "latency per arm");
    let year = lab::artifacts::utc_stamp(std::time::SystemTime::now())[..4].to_string();
    assert!(html.contains("<th>runs</th><th>date</th><th>label</th><th>commit</th>"), "no table of runs");
    assert!(html.contains(&format!("<tr><td>1–3</td><td>{year}-")), "the first session's runs, dated");
    assert!(html.contains(&format!("<title>run 1 ({year}-")), "a point's title names its run's date");
    // Every run is in the history, before any check read it.
    let history = std::fs::read_to_string(dir.path().join("results/host-perf/randread-4k.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3);
    assert!(lab_loops().is_empty(), "loop devices left behind: {:?}", lab_loops());

    // Two more sessions of the 4k scenario say how many they have, then the
    // fourth is judged against the three before it: a verdict with its
    // numbers, and an exit status that agrees with it.
    let randread = ["-n", "4k random reads on xfs meet"];
    let second = lab_test(dir.path(), &scenario, &randread);
    assert!(second.stdout.contains("read IOPS: 1 earlier session(s) of comparable runs"), "{}", second.stdout);
    // Strict, a check that cannot be judged fails the run.
    let strict = lab_test(dir.path(), &scenario, &[&randread[..], &["--strict"]].concat());
    assert_eq!(strict.code, Some(1), "{}", strict.stdout);
    assert!(
        strict.stdout.contains("not judged, and the run is strict: read IOPS: 2 earlier session(s)"),
        "{}",
        strict.stdout
    );
    // The history the strict run needs is now seeded (three earlier sessions): CI's check is strict.
    let fourth = lab_test(dir.path(), &scenario, &[&randread[..], &["--junit", "fourth.xml", "--strict"]].concat());
    let verdict = fourth
        .stdout
        .lines()
        .find(|l| l.contains("read IOPS: ") && l.contains("N=3 runs against 3 earlier sessions"))
        .unwrap_or_else(|| panic!("{}", fourth.stdout));
    // Three real sessions on a noisy machine often leave the interval wide:
    // then the check is not judged (never passed), and strict makes it fail.
    let regressed = fourth.stdout.contains("regression beyond");
    // (Of any of its history checks: read IOPS, or the p99 latency.)
    let unsettled =
        fourth.stdout.lines().any(|l| l.contains("not judged, and the run is strict:") && l.contains(": unsettled,"));
    assert!(verdict.contains("95% CI"), "{verdict}");
    assert_eq!(fourth.code, Some(if regressed || unsettled { 1 } else { 0 }), "{}", fourth.stdout);
    let junit = std::fs::read_to_string(dir.path().join("fourth.xml")).unwrap();
    assert_eq!(junit.contains("<failure"), regressed || unsettled, "{junit}");
    assert!(!junit.contains("<skipped"), "a failed case is never marked skipped: {junit}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("results/host-perf/randread-4k.jsonl")).unwrap().lines().count(),
        12
    );
    assert!(lab_loops().is_empty());
}

#[test]
#[ignore = "needs root (loop devices, hugepages) and fio: bash .ci/run runs it"]
fn failing_checks_name_what_was_measured_and_unknown_steps_fail() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    std::fs::write(
        features.join("strict.feature"),
        "Feature: strict\n\n  Scenario: an impossible floor\n    Given a 64 MiB loop device\n    When I run the fio profile \"randread-4k\" 1 time\n    Then read IOPS is at least 1000000000\n\n  Scenario: a step nobody wrote\n    Given a 64 MiB loop device\n    When the disk sings\n\n  Scenario: a profile the scenario lacks\n    Given a 64 MiB loop device\n    When I run the fio profile \"nope\" 1 time\n",
    )
    .unwrap();
    let scenario = scenario_in(dir.path(), &features);
    let run = lab_test(dir.path(), &scenario, &["--junit", "out.xml"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stdout.contains("3 scenarios (3 failed)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("read IOPS is ")
            && run.stdout.contains("(mean of 1 run(s) of randread-4k); expected at least 1000000000"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("When the disk sings"), "{}", run.stdout);
    assert!(
        run.stdout.contains("no fio profile `nope`") && run.stdout.contains("it has: randread-4k, seqwrite-128k"),
        "{}",
        run.stdout
    );
    let junit = std::fs::read_to_string(dir.path().join("out.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 3, "{junit}");
    assert!(lab_loops().is_empty(), "loop devices left behind: {:?}", lab_loops());

    // A bad tag expression stops before anything runs.
    let bad = Command::cargo_bin("lab")
        .unwrap()
        .current_dir(dir.path())
        .args(["test", "-t", "@a and"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tag expression `@a and`"));

    // A selection of no scenario is an error naming the filter, never a pass.
    for (filter, named) in [
        (["-n", "no such scenario"], "the name filter `no such scenario`"),
        (["-t", "@nothing"], "the tag expression `@nothing`"),
    ] {
        let none = Command::cargo_bin("lab")
            .unwrap()
            .current_dir(dir.path())
            .arg("test")
            .args(filter)
            .arg(&scenario)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&none.stderr);
        assert_eq!(none.status.code(), Some(1), "{filter:?} passed with no scenario:\n{stderr}");
        assert!(
            stderr.contains(&format!("no scenario ran: none in {} matches {named}", features.display())),
            "{stderr}"
        );
    }
}

/// `lab run` on the host: prepare (64 hugepages), test, and restore — the
/// whole CI job in one command. The host's page count is put back even if
/// an assertion fails.
#[test]
#[ignore = "needs root (loop devices, hugepages) and fio: bash .ci/run runs it"]
fn lab_run_prepares_tests_and_restores_the_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const PAGES: &str = "/proc/sys/vm/nr_hugepages";
    let saved = support::HostState::save();
    let before = saved.pages.to_string();
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(dir.path(), &repo().join("features/host"));
    let run = Command::cargo_bin("lab")
        .unwrap()
        .current_dir(dir.path())
        .args(["run", "-n", "4k random reads on xfs meet"])
        .arg(&scenario)
        .args(["--junit", "out.xml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("reserve 64 2 MiB hugepages on host"), "{stderr}");
    assert!(stdout.contains("1 scenario (1 passed)"), "{stdout}");
    assert!(std::fs::read_to_string(dir.path().join("out.xml")).unwrap().contains("failures=\"0\""));
    assert_eq!(std::fs::read_to_string(PAGES).unwrap().trim(), before, "lab down did not restore the pages");
    assert!(!dir.path().join(".lab/host-perf").exists(), "the state directory was not removed");
    assert!(lab_loops().is_empty());
}

/// Ctrl-C in the middle of `lab test`: the run stops, its loop devices (and
/// their mounts) are gone at once, and `lab down` has nothing left to fail on.
#[test]
#[ignore = "needs root (loop devices, hugepages) and fio: bash .ci/run runs it"]
fn ctrl_c_during_lab_test_leaves_no_loop_device_and_down_finishes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(dir.path(), &repo().join("features/host"));
    let mut test = std::process::Command::new(assert_cmd::cargo::cargo_bin("lab"))
        .current_dir(dir.path())
        .args(["test", "-q", "-n", "4k random reads on xfs meet"])
        .arg(&scenario)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until fio runs on the lab's loop device, then interrupt.
    let started = std::time::Instant::now();
    while lab_loops().is_empty() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!lab_loops().is_empty(), "lab test never made its loop device");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = std::process::Command::new("kill").args(["-INT", &test.id().to_string()]).status();
    let status = test.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(test.stderr.as_mut().unwrap(), &mut said).unwrap();
    assert!(!status.success(), "lab test reported success after Ctrl-C:\n{said}");
    assert!(said.contains("lab test was interrupted (SIGINT)"), "{said}");
    assert_eq!(lab_loops(), Vec::<String>::new(), "Ctrl-C left loop devices:\n{said}");
    let down = Command::cargo_bin("lab").unwrap().current_dir(dir.path()).arg("down").arg(&scenario).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!dir.path().join(".lab/host-perf").exists(), "the state is left after lab down");
}

//! Reports people would rather look at than read: a terminal table of every
//! measured check, and an HTML page with SVG plots per fio profile — the
//! metric's history with regressions marked, and latency percentiles per run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::world::{Check, Context, Judged};
use crate::fio::history::{History, Record, Shifts};
use crate::fio::{Metric, Outcome};

/// The mark and HTML class of each result: passed, failed, not judged.
fn mark(result: &Judged) -> (&'static str, &'static str) {
    match result {
        Judged::Passed => ("✓", "pass"),
        Judged::Failed => ("✗", "fail"),
        Judged::NotJudged(_) => ("?", "unjudged"),
    }
}

/// One line per check: passed, failed or not judged (with why), where, what was measured.
pub fn table(checks: &[Check]) -> String {
    let mut out = String::from("\nmeasured checks (✓ passed, ✗ failed, ? not judged):\n");
    for check in checks {
        let (mark, _) = mark(&check.result);
        let _ = writeln!(out, "{mark} [{}] {}: {}", check.profile, check.scenario, check.text);
        if let Judged::NotJudged(reason) = &check.result {
            let _ = writeln!(out, "    not judged: {reason}");
        }
    }
    let count = |f: fn(&Judged) -> bool| checks.iter().filter(|c| f(&c.result)).count();
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} not judged",
        count(|r| *r == Judged::Passed),
        count(|r| *r == Judged::Failed),
        count(|r| matches!(r, Judged::NotJudged(_)))
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A tick's value as people read it: `1.2k`, `350`, `0.42`.
fn tick_label(value: f64) -> String {
    match value {
        v if v >= 10_000.0 => format!("{:.0}k", v / 1000.0),
        v if v >= 1000.0 => format!("{:.1}k", v / 1000.0),
        v if v >= 10.0 || v == 0.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

/// A line chart: x is the run's position in the history, one polyline per series.
/// `marked` runs get a red ring (a regression was decided on them); each
/// `breaks` run gets a dashed line before it (a change point), titled;
/// `runs_named` names each run (its date and label) in its points' titles.
pub fn line_chart(
    title: &str,
    unit: &str,
    series: &[(&str, &str, Vec<Option<f64>>)],
    marked: &BTreeSet<usize>,
    breaks: &[(usize, String)],
    runs_named: &[String],
) -> String {
    let (width, height, left, bottom, top) = (640.0, 240.0, 70.0, 30.0, 28.0);
    let runs = series.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    let values: Vec<f64> = series.iter().flat_map(|(_, _, v)| v.iter().flatten().copied()).collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\"><title>{}</title>\
         <text x=\"{left}\" y=\"18\" font-family=\"sans-serif\" font-size=\"14\">{}</text>",
        escape(title),
        escape(title)
    );
    if values.is_empty() || runs == 0 {
        svg.push_str("<text x=\"70\" y=\"120\" font-family=\"sans-serif\" font-size=\"12\">no data</text></svg>");
        return svg;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max) * 1.1;
    let min = 0.0;
    let x = |i: usize| left + (width - left - 20.0) * if runs > 1 { i as f64 / (runs - 1) as f64 } else { 0.5 };
    let y = |v: f64| height - bottom - (height - bottom - top) * (v - min) / (max - min).max(f64::EPSILON);
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"{left}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\">run, oldest first ({runs})</text>",
        height - 2.0,
        b = height - bottom,
        r = width - 20.0,
    );
    // Ticks with their values and the unit on the y axis, light grid lines across.
    for tick in 0..=4 {
        let value = max * tick as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{r}\" y2=\"{ty:.1}\" stroke=\"#eee\"/>\
             <line x1=\"{}\" y1=\"{ty:.1}\" x2=\"{left}\" y2=\"{ty:.1}\" stroke=\"#999\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-family=\"sans-serif\" font-size=\"10\">{} {}</text>",
            left - 4.0,
            left - 6.0,
            y(value) + 3.0,
            tick_label(value),
            escape(unit),
            ty = y(value),
            r = width - 20.0,
        );
    }
    // Ticks on the x axis: each run's number (every few runs when there are many).
    let every = runs.div_ceil(10).max(1);
    for run in (0..runs).filter(|i| i % every == 0 || *i == runs - 1) {
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"10\">{}</text>",
            height - bottom + 4.0,
            height - bottom + 14.0,
            run + 1,
            x = x(run),
            b = height - bottom,
        );
    }
    for (run, text) in breaks {
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{b}\" stroke=\"#d00\" stroke-dasharray=\"4 3\"><title>{}</title></line>",
            escape(text),
            x = x(*run) - if *run > 0 { (x(*run) - x(run - 1)) / 2.0 } else { 0.0 },
            b = height - bottom,
        );
    }
    for (legend, (name, color, points)) in series.iter().enumerate() {
        let path: Vec<String> =
            points.iter().enumerate().filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v)))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (i, v) in points.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>run {}{}: {v:.1} {}</title></circle>",
                    x(i),
                    y(*v),
                    i + 1,
                    runs_named.get(i).map(|n| format!(" ({})", escape(n))).unwrap_or_default(),
                    escape(unit)
                );
                if marked.contains(&i) {
                    let _ = write!(
                        svg,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"none\" stroke=\"#d00\" stroke-width=\"2\"/>",
                        x(i),
                        y(*v)
                    );
                }
            }
        }
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\">{}</text>",
            width - 150.0,
            top + 14.0 * legend as f64,
            width - 136.0,
            top + 9.0 + 14.0 * legend as f64,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The HTML report: the checks, then per profile its history and latency plots.
pub fn html(ctx: &Context, checks: &[Check]) -> anyhow::Result<String> {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lab test: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:980px;margin:auto}}.fail{{color:#b00}}.pass{{color:#070}}.unjudged{{color:#a60}}td{{padding:2px 8px;vertical-align:top}}</style></head>\
         <body><h1>lab test: {name}</h1><p>run {label}</p><h2>Checks</h2><table>",
        name = escape(ctx.scenario.name()),
        label = escape(&ctx.label)
    );
    for check in checks {
        let (mark, class) = mark(&check.result);
        let why = match &check.result {
            Judged::NotJudged(reason) => format!("<br><b>not judged:</b> {}", escape(reason)),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{mark}</td><td>{}</td><td>{}</td><td>{}{why}</td></tr>",
            escape(&check.scenario),
            escape(&check.profile),
            escape(&check.text)
        );
    }
    out.push_str("</table>");
    let profiles: BTreeSet<&str> = checks.iter().map(|c| c.profile.as_str()).collect();
    for profile in profiles {
        let records = History::new(&ctx.results, ctx.scenario.name(), profile).records()?;
        let regressed = checks
            .iter()
            .any(|c| c.profile == profile && c.verdict.as_ref().is_some_and(|v| v.outcome == Outcome::Regression));
        let this_run: BTreeSet<usize> =
            records.iter().enumerate().filter(|(_, r)| r.label == ctx.label).map(|(i, _)| i).collect();
        let marked = if regressed { this_run } else { BTreeSet::new() };
        let _ = write!(out, "<h2>{}</h2>", escape(profile));
        // One series per device: an interleaved comparison's two arms side by side.
        let mut devices: Vec<&str> = Vec::new();
        for r in &records {
            if !devices.contains(&r.env.device.as_str()) {
                devices.push(&r.env.device);
            }
        }
        let this_env = crate::fio::history::session_env(&records, &ctx.label);
        let named: Vec<String> = records.iter().map(|r| format!("{}, {}", when(r.time), r.label)).collect();
        let mut shift_lines = Vec::new();
        for write in [false, true] {
            let side = if write { "write" } else { "read" };
            let Ok(metric) = Metric::parse(&format!("{side} IOPS")) else { continue };
            if records.iter().all(|r| metric.of(&r.result).is_none()) {
                continue;
            }
            let colors = ["#1f77b4", "#9467bd", "#8c564b", "#17becf"];
            let iops: Vec<(&str, &str, Vec<Option<f64>>)> = devices
                .iter()
                .zip(colors.iter().cycle())
                .map(|(device, color)| {
                    let name = if devices.len() == 1 || device.is_empty() { "IOPS" } else { device };
                    let values = records.iter().map(|r| metric.of(&r.result).filter(|_| r.env.device == *device));
                    (name, *color, values.collect())
                })
                .collect();
            let shifts = Shifts::find(&records, &this_env, metric);
            let breaks = shift_marks(&records, &shifts);
            shift_lines.extend(shifts.lines());
            out.push_str(&line_chart(&format!("{side} IOPS per run"), "IOPS", &iops, &marked, &breaks, &named));
            // Latency per device, as IOPS: two arms' percentiles in one chart would read as one line.
            for device in &devices {
                let on = |r: &&Record| r.env.device == *device;
                let series = [
                    ("p50", "#2ca02c", values(&records, &format!("p50 {side} latency"), on)),
                    ("p99", "#ff7f0e", values(&records, &format!("p99 {side} latency"), on)),
                    ("p99.9", "#d62728", values(&records, &format!("p99.9 {side} latency"), on)),
                ];
                let title = if devices.len() == 1 || device.is_empty() {
                    format!("{side} completion latency percentiles per run")
                } else {
                    format!("{side} completion latency percentiles per run on {device}")
                };
                out.push_str(&line_chart(&title, "us", &series, &marked, &[], &named));
            }
        }
        out.push_str(&sessions_table(&records));
        for line in shift_lines {
            let _ = write!(out, "<p>change point: {}</p>", escape(&line));
        }
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

/// The change points at the first run of the session after each.
fn shift_marks(records: &[Record], shifts: &Shifts) -> Vec<(usize, String)> {
    shifts
        .points
        .iter()
        .zip(shifts.lines())
        .filter_map(|((label, _), line)| Some((records.iter().position(|r| &r.label == label)?, line)))
        .collect()
}

/// A metric's value per run, `None` for runs that `keep` leaves out.
fn values(records: &[Record], metric: &str, keep: impl Fn(&&Record) -> bool) -> Vec<Option<f64>> {
    let Ok(metric) = Metric::parse(metric) else { return Vec::new() };
    records.iter().map(|r| metric.of(&r.result).filter(|_| keep(&r))).collect()
}

/// A run's time, UTC, to the minute: `2026-12-04 17:16Z`.
fn when(secs: u64) -> String {
    let stamp = crate::artifacts::utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    // `20261204T171600Z`
    match (stamp.get(0..4), stamp.get(4..6), stamp.get(6..8), stamp.get(9..11), stamp.get(11..13)) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi)) => format!("{y}-{mo}-{d} {h}:{mi}Z"),
        _ => stamp,
    }
}

/// The runs as the x axis numbers them, by session: which runs, when, and
/// the label (`lab test`'s holds the time and the git commit it ran at).
fn sessions_table(records: &[Record]) -> String {
    let mut out =
        String::from("<table><tr><th>runs</th><th>date</th><th>label</th><th>commit</th><th>device</th></tr>");
    let mut start = 0;
    for i in 1..=records.len() {
        if i < records.len()
            && records[i].label == records[start].label
            && records[i].env.device == records[start].env.device
        {
            continue;
        }
        let first = &records[start];
        let runs = if i - start == 1 { format!("{}", start + 1) } else { format!("{}–{}", start + 1, i) };
        // `lab test`'s labels are `<unix time>-<commit>`; others (`--label`) are shown as given.
        let commit = first.label.split_once('-').filter(|(t, _)| t.parse::<u64>().is_ok()).map_or("", |(_, c)| c);
        let _ = write!(
            out,
            "<tr><td>{runs}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(first.time),
            escape(&first.label),
            escape(commit),
            escape(&first.env.device)
        );
        start = i;
    }
    out.push_str("</table>");
    out
}

/// The checks that ended "not judged", by scenario.
fn unjudged(checks: &[Check]) -> Vec<(&Check, &str)> {
    checks
        .iter()
        .filter_map(|c| match &c.result {
            Judged::NotJudged(reason) => Some((c, reason.as_str())),
            _ => None,
        })
        .collect()
}

/// Whether a report's feature path names the check's feature file (one may
/// be relative, the other absolute).
fn same_feature(reported: &str, check: &Check) -> bool {
    let (a, b) = (std::path::Path::new(reported), std::path::Path::new(&check.feature));
    a.ends_with(b) || b.ends_with(a)
}

/// cucumber's JUnit file knows steps only as passed or failed: a scenario
/// whose check could not be judged gets `<skipped message="not judged: …"/>`,
/// unless it failed (a failure is never hidden as skipped). Test cases are
/// matched by name, feature file and line.
pub fn mark_unjudged_junit(xml: &str, checks: &[Check]) -> String {
    let mut out = xml.to_string();
    // One `<skipped>` per test case, with every reason of its scenario.
    let mut reasons: Vec<(&Check, Vec<&str>)> = Vec::new();
    for (check, reason) in unjudged(checks) {
        let same = |c: &&Check| c.scenario == check.scenario && c.feature == check.feature && c.line == check.line;
        match reasons.iter_mut().find(|(c, _)| same(c)) {
            Some((_, all)) => all.push(reason),
            None => reasons.push((check, vec![reason])),
        }
    }
    for (check, reasons) in reasons {
        let prefix = format!("Scenario: {}: ", escape(&check.scenario).replace('\'', "&apos;"));
        let mut search = 0;
        let found = loop {
            let Some(at) = out[search..].find("<testcase name=\"").map(|i| search + i) else { break None };
            let value_start = at + "<testcase name=\"".len();
            let Some(value_end) = out[value_start..].find('"').map(|i| value_start + i) else { break None };
            search = value_end;
            let Some(place) = out[value_start..value_end].strip_prefix(&prefix) else { continue };
            // `path:line:column`
            let mut parts = place.rsplitn(3, ':');
            let (_column, line, path) = (parts.next(), parts.next(), parts.next());
            if line.and_then(|l| l.parse::<usize>().ok()) == Some(check.line)
                && path.is_some_and(|p| same_feature(p, check))
            {
                break Some(at);
            }
        };
        let Some(at) = found else { continue };
        let Some(end) = out[at..].find('>').map(|e| at + e) else { continue };
        let self_closing = out[..end].ends_with('/');
        let body_end = if self_closing { end } else { out[end..].find("</testcase>").map_or(end, |e| end + e) };
        if out[end..body_end].contains("<failure") || out[end..body_end].contains("<error") {
            continue;
        }
        let skipped = format!("<skipped message=\"not judged: {}\"/>", escape(&reasons.join("; ")));
        if self_closing {
            out.replace_range(end - 1..=end, &format!(">{skipped}</testcase>"));
        } else {
            out.insert_str(end + 1, &skipped);
        }
    }
    out
}

/// In cucumber's JSON, the step of a check that could not be judged is
/// `skipped`, with the reason as its error message; a failed step stays
/// failed. Scenarios are matched by feature file, line and name.
pub fn mark_unjudged_json(json: &str, checks: &[Check]) -> anyhow::Result<String> {
    let mut features: serde_json::Value = serde_json::from_str(json)?;
    for (check, reason) in unjudged(checks) {
        let features = features.as_array_mut().into_iter().flatten();
        let scenarios = features
            .filter(|f| f["uri"].as_str().is_none_or(|uri| same_feature(uri, check)))
            .flat_map(|f| f.get_mut("elements").and_then(|e| e.as_array_mut()).into_iter().flatten());
        let ours = |s: &serde_json::Value| {
            s["name"] == check.scenario.as_str() && s["line"].as_u64().is_none_or(|l| l as usize == check.line)
        };
        for scenario in scenarios.filter(|s| ours(s)) {
            for step in scenario.get_mut("steps").and_then(|s| s.as_array_mut()).into_iter().flatten() {
                let text = format!("{}{}", step["keyword"].as_str().unwrap_or(""), step["name"].as_str().unwrap_or(""));
                if text == check.step && step["result"]["status"] != "failed" {
                    step["result"]["status"] = "skipped".into();
                    step["result"]["error_message"] = format!("not judged: {reason}").into();
                }
            }
        }
    }
    Ok(serde_json::to_string(&features)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_every_point_and_rings_the_marked_runs() {
        let marked = BTreeSet::from([2]);
        let breaks = [(2, "read IOPS shifted at session s2 (2 of 2): 10 → 5 (-50.0%, p=0.0005)".to_string())];
        let series = [("IOPS", "#123", vec![Some(10.0), None, Some(5.0)])];
        let svg = line_chart("read IOPS <per run>", "IOPS", &series, &marked, &breaks, &["then".into()]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3, "two points and one ring: {svg}");
        assert!(svg.contains("read IOPS &lt;per run&gt;"), "titles are escaped");
        assert!(svg.contains("stroke-dasharray=\"4 3\"><title>read IOPS shifted at session s2"), "{svg}");
        assert!(line_chart("empty", "", &[], &BTreeSet::new(), &[], &[]).contains("no data"));
        // Axes with ticks: five values with the unit on y, each run's number on x.
        assert_eq!(svg.matches(" IOPS</text>").count(), 5, "{svg}");
        assert!(svg.contains(">11 IOPS</text>") && svg.contains(">0 IOPS</text>"), "{svg}");
        for run in ["1", "2", "3"] {
            assert!(svg.contains(&format!("font-size=\"10\">{run}</text>")), "run {run} unmarked: {svg}");
        }
        assert_eq!(
            (tick_label(12_500.0), tick_label(1250.0), tick_label(350.0), tick_label(0.42)),
            ("12k".into(), "1.2k".into(), "350".into(), "0.42".into())
        );
    }
}

#[cfg(test)]
mod unjudged_tests {
    use super::*;

    fn check(scenario: &str, line: usize, result: Judged) -> Check {
        Check {
            scenario: scenario.into(),
            feature: "f.feature".into(),
            line,
            step: "Then read IOPS has not regressed against the history".into(),
            profile: "p".into(),
            text: "t".into(),
            result,
            verdict: None,
        }
    }

    #[test]
    fn an_unjudged_check_is_a_skipped_test_case_and_a_skipped_step() {
        let checks = [
            check("drift & noise", 3, Judged::NotJudged("2 earlier sessions, 3 needed".into())),
            check("judged", 9, Judged::Passed),
            check("open", 12, Judged::NotJudged("not settled by 40 pairs".into())),
        ];
        let xml = "<testsuites><testsuite><testcase name=\"Scenario: drift &amp; noise: f.feature:3:3\" time=\"1\"/>\
                   <testcase name=\"Scenario: judged: f.feature:9:3\" time=\"1\"/>\
                   <testcase name=\"Scenario: open: f.feature:12:3\" time=\"1\"><system-out>x</system-out></testcase></testsuite></testsuites>";
        assert_eq!(
            mark_unjudged_junit(xml, &checks),
            "<testsuites><testsuite><testcase name=\"Scenario: drift &amp; noise: f.feature:3:3\" time=\"1\"><skipped message=\"not judged: 2 earlier sessions, 3 needed\"/></testcase>\
             <testcase name=\"Scenario: judged: f.feature:9:3\" time=\"1\"/>\
             <testcase name=\"Scenario: open: f.feature:12:3\" time=\"1\"><skipped message=\"not judged: not settled by 40 pairs\"/><system-out>x</system-out></testcase></testsuite></testsuites>"
        );
        let json = r#"[{"uri":"f.feature","elements":[{"name":"drift & noise","line":3,"steps":[
            {"keyword":"When ","name":"I run the fio profile \"p\" 3 times","result":{"status":"passed"}},
            {"keyword":"Then ","name":"read IOPS has not regressed against the history","result":{"status":"passed"}}]}]}]"#;
        let marked: serde_json::Value = serde_json::from_str(&mark_unjudged_json(json, &checks).unwrap()).unwrap();
        let steps = &marked[0]["elements"][0]["steps"];
        assert_eq!(steps[0]["result"]["status"], "passed");
        assert_eq!(steps[1]["result"]["status"], "skipped");
        assert_eq!(steps[1]["result"]["error_message"], "not judged: 2 earlier sessions, 3 needed");
    }

    #[test]
    fn a_failed_case_is_never_skipped_and_a_namesake_is_not_marked() {
        let checks = [check("open", 12, Judged::NotJudged("not settled".into()))];
        let xml = "<testcase name=\"Scenario: open: f.feature:12:3\" time=\"1\"><failure message=\"x\"/></testcase>\
                   <testcase name=\"Scenario: open: f.feature:30:3\" time=\"1\"/>\
                   <testcase name=\"Scenario: open thing: f.feature:12:3\" time=\"1\"/>";
        assert_eq!(mark_unjudged_junit(xml, &checks), xml, "failed stays failed; another line or name is another case");
        let json = r#"[{"uri":"f.feature","elements":[{"name":"open","line":30,"steps":[
            {"keyword":"Then ","name":"read IOPS has not regressed against the history","result":{"status":"passed"}}]},
            {"name":"open","line":12,"steps":[
            {"keyword":"Then ","name":"read IOPS has not regressed against the history","result":{"status":"failed"}}]}]}]"#;
        let marked: serde_json::Value = serde_json::from_str(&mark_unjudged_json(json, &checks).unwrap()).unwrap();
        assert_eq!(marked[0]["elements"][0]["steps"][0]["result"]["status"], "passed", "another line");
        assert_eq!(marked[0]["elements"][1]["steps"][0]["result"]["status"], "failed", "failed stays failed");
    }
}

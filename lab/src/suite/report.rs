//! Reports people would rather look at than read: a terminal table of every
//! measured check, and an HTML page with SVG plots per fio profile — the
//! metric's history with regressions marked, and latency percentiles per run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::world::{Check, Context};
use crate::fio::history::{History, Record, Shifts};
use crate::fio::{Metric, Outcome};

/// One line per check: pass or fail, where, what was measured.
pub fn table(checks: &[Check]) -> String {
    let mut out = String::from("\nmeasured checks:\n");
    for check in checks {
        let mark = if check.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "{mark} [{}] {}: {}", check.profile, check.scenario, check.text);
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart: x is the run's position in the history, one polyline per series.
/// `marked` runs get a red ring (a regression was decided on them); each
/// `breaks` run gets a dashed line before it (a change point), titled.
pub fn line_chart(
    title: &str,
    unit: &str,
    series: &[(&str, &str, Vec<Option<f64>>)],
    marked: &BTreeSet<usize>,
    breaks: &[(usize, String)],
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
         <text x=\"4\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\">{:.0} {}</text>\
         <text x=\"4\" y=\"{b}\" font-family=\"sans-serif\" font-size=\"11\">0</text>\
         <text x=\"{left}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\">runs, oldest first ({runs})</text>",
        top + 10.0,
        max,
        escape(unit),
        height - 8.0,
        b = height - bottom,
        r = width - 20.0,
    );
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
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>run {}: {v:.1}</title></circle>",
                    x(i),
                    y(*v),
                    i + 1
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
         <style>body{{font-family:sans-serif;max-width:980px;margin:auto}}.fail{{color:#b00}}.pass{{color:#070}}td{{padding:2px 8px;vertical-align:top}}</style></head>\
         <body><h1>lab test: {name}</h1><p>run {label}</p><h2>Checks</h2><table>",
        name = escape(ctx.scenario.name()),
        label = escape(&ctx.label)
    );
    for check in checks {
        let (class, mark) = if check.passed { ("pass", "✓") } else { ("fail", "✗") };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{mark}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
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
            out.push_str(&line_chart(&format!("{side} IOPS per run"), "IOPS", &iops, &marked, &breaks));
            let series = [
                ("p50", "#2ca02c", values(&records, &format!("p50 {side} latency"))),
                ("p99", "#ff7f0e", values(&records, &format!("p99 {side} latency"))),
                ("p99.9", "#d62728", values(&records, &format!("p99.9 {side} latency"))),
            ];
            out.push_str(&line_chart(
                &format!("{side} completion latency percentiles per run"),
                "us",
                &series,
                &marked,
                &[],
            ));
        }
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

fn values(records: &[Record], metric: &str) -> Vec<Option<f64>> {
    let Ok(metric) = Metric::parse(metric) else { return Vec::new() };
    records.iter().map(|r| metric.of(&r.result)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_every_point_and_rings_the_marked_runs() {
        let marked = BTreeSet::from([2]);
        let breaks = [(2, "read IOPS shifted at session s2 (2 of 2): 10 → 5 (-50.0%, p=0.0005)".to_string())];
        let series = [("IOPS", "#123", vec![Some(10.0), None, Some(5.0)])];
        let svg = line_chart("read IOPS <per run>", "IOPS", &series, &marked, &breaks);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3, "two points and one ring: {svg}");
        assert!(svg.contains("read IOPS &lt;per run&gt;"), "titles are escaped");
        assert!(svg.contains("stroke-dasharray=\"4 3\"><title>read IOPS shifted at session s2"), "{svg}");
        assert!(line_chart("empty", "", &[], &BTreeSet::new(), &[]).contains("no data"));
    }
}

//! fio's JSON output, read robustly: lines before the JSON (`fio: pid=…,
//! err=…`), several documents (`--status-interval`), and missing sections
//! (no `percentile` without samples, no latency at all with `gtod_reduce`,
//! no `disk_util` in containers) are all expected. Nothing here panics; a
//! broken document is an error naming the line it breaks on.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One direction (read or write) of a job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    pub iops: f64,
    /// Bytes per second.
    pub bw_bytes: f64,
    /// Completion latency in microseconds; `None` when fio did not measure it.
    pub clat_mean_us: Option<f64>,
    pub clat_p50_us: Option<f64>,
    pub clat_p99_us: Option<f64>,
    pub clat_p999_us: Option<f64>,
    /// Bytes moved; absent from records written before it was kept.
    #[serde(default)]
    pub io_bytes: u64,
}

/// What one fio job measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub name: String,
    /// fio's error number for the job (0: none).
    pub error: i64,
    pub read: Option<Direction>,
    pub write: Option<Direction>,
    pub usr_cpu: f64,
    pub sys_cpu: f64,
}

/// One JSON document of fio's output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub fio_version: String,
    pub jobs: Vec<JobResult>,
    /// Lines fio printed outside the JSON (errors, warnings), kept for messages.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of fio's output where the problem is; 0 when none applies.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "fio output: {}", self.message)
        } else {
            write!(f, "fio output line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// Every JSON document in fio's output, in order; the last is the final result.
pub fn parse_all(text: &str) -> Result<Vec<Report>, ParseError> {
    let mut reports = Vec::new();
    let mut notes = Vec::new();
    let mut at = 0;
    while at < text.len() {
        // Text up to the next line that opens a document is fio talking, not JSON.
        let Some(start) = next_document(text, at) else {
            notes.extend(text[at..].lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
            break;
        };
        notes.extend(text[at..start].lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                at = start + stream.byte_offset();
                let mut report =
                    report_from(&value).map_err(|message| ParseError { line: line_of(text, start), message })?;
                report.notes = std::mem::take(&mut notes);
                reports.push(report);
            }
            Some(Err(e)) => {
                let line = line_of(text, start) + e.line().saturating_sub(1);
                return Err(ParseError { line, message: format!("broken JSON: {e}") });
            }
            None => break,
        }
    }
    if reports.is_empty() {
        let said = notes.first().map(|n| format!("; fio said: {n}")).unwrap_or_default();
        return Err(ParseError { line: 0, message: format!("no JSON result in fio's output{said}") });
    }
    Ok(reports)
}

/// The final report (fio's last document).
pub fn parse(text: &str) -> Result<Report, ParseError> {
    let mut reports = parse_all(text)?;
    // parse_all never returns an empty list.
    Ok(reports.pop().unwrap_or_default())
}

fn next_document(text: &str, from: usize) -> Option<usize> {
    let mut offset = from;
    for line in text[from..].split_inclusive('\n') {
        if line.trim_start().starts_with('{') {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

fn report_from(value: &Value) -> Result<Report, String> {
    let version = value.get("fio version").and_then(Value::as_str).unwrap_or_default().to_string();
    let jobs = value.get("jobs").and_then(Value::as_array).ok_or("the document has no `jobs` list")?;
    let jobs = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| job_from(job).map_err(|e| format!("jobs[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report { fio_version: version, jobs, notes: Vec::new() })
}

fn job_from(job: &Value) -> Result<JobResult, String> {
    let name = job.get("jobname").and_then(Value::as_str).ok_or("no `jobname`")?.to_string();
    Ok(JobResult {
        name,
        error: job.get("error").and_then(Value::as_i64).unwrap_or(0),
        read: job.get("read").and_then(direction_from),
        write: job.get("write").and_then(direction_from),
        usr_cpu: job.get("usr_cpu").and_then(Value::as_f64).unwrap_or(0.0),
        sys_cpu: job.get("sys_cpu").and_then(Value::as_f64).unwrap_or(0.0),
    })
}

/// A direction that moved no data is absent (a read job's `write` section).
fn direction_from(d: &Value) -> Option<Direction> {
    let ios = d.get("total_ios").and_then(Value::as_u64).unwrap_or(0);
    let bytes = d.get("io_bytes").and_then(Value::as_u64).unwrap_or(0);
    if ios == 0 && bytes == 0 {
        return None;
    }
    let clat = d.get("clat_ns").filter(|c| c.get("N").and_then(Value::as_u64).unwrap_or(0) > 0);
    let to_us = |ns: f64| ns / 1000.0;
    let percentile =
        |key: &str| clat.and_then(|c| c.get("percentile")).and_then(|p| p.get(key)).and_then(Value::as_f64).map(to_us);
    Some(Direction {
        iops: d.get("iops").and_then(Value::as_f64).unwrap_or(0.0),
        bw_bytes: d.get("bw_bytes").and_then(Value::as_f64).unwrap_or(0.0),
        clat_mean_us: clat.and_then(|c| c.get("mean")).and_then(Value::as_f64).map(to_us),
        clat_p50_us: percentile("50.000000"),
        clat_p99_us: percentile("99.000000"),
        clat_p999_us: percentile("99.900000"),
        io_bytes: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/fixtures/fio").join(name);
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn real_outputs_of_this_machines_fio_give_their_metrics() {
        let read = parse(&fixture("randread-4k.json")).unwrap();
        assert_eq!(read.fio_version, "fio-3.33");
        let job = &read.jobs[0];
        assert_eq!((job.name.as_str(), job.error), ("randread-4k", 0));
        let r = job.read.as_ref().unwrap();
        assert!(r.iops > 0.0 && r.bw_bytes > 0.0);
        let (p50, p99) = (r.clat_p50_us.unwrap(), r.clat_p99_us.unwrap());
        assert!(p50 <= p99 && p99 <= r.clat_p999_us.unwrap(), "{r:?}");
        assert!(job.write.is_none(), "a read job has no write side");

        let write = parse(&fixture("seqwrite-128k.json")).unwrap();
        assert!(write.jobs[0].write.as_ref().unwrap().bw_bytes > 0.0 && write.jobs[0].read.is_none());
        let mixed = parse(&fixture("randrw-2jobs.json")).unwrap();
        assert_eq!(mixed.jobs.len(), 1, "group_reporting folds the two jobs");
        assert!(mixed.jobs[0].read.is_some() && mixed.jobs[0].write.is_some());
    }

    #[test]
    fn missing_latency_error_prefixes_and_several_documents_are_expected() {
        let reduced = parse(&fixture("gtod-reduce.json")).unwrap();
        let r = reduced.jobs[0].read.as_ref().unwrap();
        assert!(r.iops > 0.0);
        assert_eq!((r.clat_mean_us, r.clat_p99_us), (None, None), "gtod_reduce measures no latency");

        let failed = parse(&fixture("error-prefix.txt")).unwrap();
        assert_eq!(failed.jobs[0].error, 1);
        assert_eq!(
            failed.notes,
            ["fio: pid=0, err=1/file:filesetup.c:150, func=unlink, error=Operation not permitted"]
        );

        let all = parse_all(&fixture("status-interval.txt")).unwrap();
        assert_eq!(all.len(), 4, "three status reports and the final one");
        assert!(all.iter().all(|r| r.jobs[0].name == "status"));
    }

    #[test]
    fn malformed_output_is_a_located_error_never_a_panic() {
        let cases = [
            ("", "fio output: no JSON result in fio's output"),
            (
                "fio: engine libaio not loadable\n",
                "fio output: no JSON result in fio's output; fio said: fio: engine libaio not loadable",
            ),
            ("junk\n{\n  \"jobs\": [\n    {\"jobname\": \"x\",, }\n  ]\n}\n", "fio output line 4: broken JSON"),
            ("{\"fio version\": \"fio-3.33\"}\n", "fio output line 1: the document has no `jobs` list"),
            ("{\"jobs\": [{\"read\": {}}]}", "fio output line 1: jobs[0]: no `jobname`"),
            (
                "{\"jobs\": [{\"jobname\": \"x\", \"read\": {\"total_ios\": 5, \"clat_ns\": {\"N\": 5, \"percentile\": \"odd\"}}}]}",
                "",
            ),
        ];
        for (text, want) in cases {
            match parse(text) {
                Ok(report) => assert!(want.is_empty(), "{text:?} parsed: {report:?}"),
                Err(e) => assert!(!want.is_empty() && e.to_string().starts_with(want), "{text:?}: {e}"),
            }
        }
        // Truncated at every byte of a real output: an error or a report, never a panic.
        let real = fixture("randread-4k.json");
        for cut in (0..real.len()).step_by(97) {
            let _ = parse(&real[..cut]);
        }
    }
}

//! A typed fio job, rendered to a job file: what a profile measures, with
//! latency percentiles always on (they are first-class metrics here).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The percentiles every job reports (fio's `percentile_list`).
pub const PERCENTILES: &str = "50:90:99:99.9";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Job {
    pub name: String,
    /// read, write, randread, randwrite, rw, randrw.
    pub rw: String,
    /// Block size, fio's spelling: 4k, 128k.
    pub bs: String,
    #[serde(default = "one")]
    pub iodepth: u32,
    #[serde(default = "one")]
    pub numjobs: u32,
    /// How much of the file or device to use: 256M, 1G.
    pub size: String,
    /// Seconds of measurement (time based).
    pub runtime: u32,
    /// Seconds run before measuring.
    #[serde(default)]
    pub ramp_time: u32,
    #[serde(default = "yes")]
    pub direct: bool,
    #[serde(default = "default_engine")]
    pub ioengine: String,
    /// Cap the rate (per job): how a slowdown is injected on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_iops: Option<u64>,
    /// Read share of a mixed job, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rwmixread: Option<u32>,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_engine() -> String {
    "libaio".into()
}

impl Job {
    /// A job with fio's usual defaults for the rest.
    pub fn new(name: &str, rw: &str, bs: &str, size: &str, runtime: u32) -> Job {
        Job {
            name: name.into(),
            rw: rw.into(),
            bs: bs.into(),
            iodepth: 1,
            numjobs: 1,
            size: size.into(),
            runtime,
            ramp_time: 0,
            direct: true,
            ioengine: default_engine(),
            rate_iops: None,
            rwmixread: None,
        }
    }

    /// What is wrong with the job, before fio is asked.
    pub fn check(&self) -> Result<(), String> {
        const RW: &[&str] =
            &["read", "write", "randread", "randwrite", "rw", "readwrite", "randrw", "trim", "randtrim"];
        if !RW.contains(&self.rw.as_str()) {
            return Err(format!("job {}: rw `{}` is not one of {}", self.name, self.rw, RW.join(", ")));
        }
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(format!("job name `{}`: use letters, digits, '-', '_' and '.'", self.name));
        }
        if self.runtime == 0 {
            return Err(format!("job {}: runtime must be at least 1 second", self.name));
        }
        if self.iodepth == 0 || self.numjobs == 0 {
            return Err(format!("job {}: iodepth and numjobs start at 1", self.name));
        }
        // Each value becomes one `key=value` line of the job file: a newline,
        // `=`, `#` or `;` there would add or hide options of fio's own.
        for (field, value, example) in [
            ("bs", &self.bs, "4k, 4k-16k or 4k,64k"),
            ("size", &self.size, "256M, 1G or 50%"),
            ("ioengine", &self.ioengine, "libaio"),
        ] {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._:/,%-".contains(c);
            if value.is_empty() || !value.chars().all(allowed) {
                return Err(format!(
                    "job {}: {field} `{}` is not a fio value (write it as fio does, e.g. {example}; no spaces, newlines, '=', '#' or ';')",
                    self.name,
                    value.escape_debug()
                ));
            }
            if field != "ioengine" && !value.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "job {}: {field} `{value}` does not start with a number (e.g. {example})",
                    self.name
                ));
            }
        }
        // `external:PATH` makes fio load a library of the scenario's choosing.
        if self.ioengine.starts_with("external") {
            return Err(format!(
                "job {}: ioengine `{}` loads code from a file; lab runs fio's built-in engines only (e.g. libaio, io_uring, psync)",
                self.name, self.ioengine
            ));
        }
        Ok(())
    }

    /// A target is one value of fio's `filename=`: a newline would start another option.
    pub fn check_target(target: &str) -> Result<(), String> {
        if target.is_empty() || target.chars().any(|c| c.is_control()) {
            return Err(format!(
                "target `{}`: a file or device path, without newlines or control characters",
                target.escape_debug()
            ));
        }
        Ok(())
    }

    /// The job file for `filename` (a device, or a file fio creates).
    pub fn job_file(&self, filename: &str) -> String {
        let mut out = String::from("[global]\n");
        // fio splits `filename=` at ':' (several files); a colon of the path is escaped.
        let _ = writeln!(out, "filename={}", filename.replace(':', "\\:"));
        let _ = writeln!(out, "ioengine={}", self.ioengine);
        let _ = writeln!(out, "direct={}", u8::from(self.direct));
        let _ = writeln!(out, "time_based=1\nruntime={}", self.runtime);
        if self.ramp_time > 0 {
            let _ = writeln!(out, "ramp_time={}", self.ramp_time);
        }
        let _ = writeln!(out, "group_reporting=1\npercentile_list={PERCENTILES}");
        let _ = writeln!(out, "\n[{}]", self.name);
        let _ = writeln!(
            out,
            "rw={}\nbs={}\niodepth={}\nnumjobs={}\nsize={}",
            self.rw, self.bs, self.iodepth, self.numjobs, self.size
        );
        if let Some(rate) = self.rate_iops {
            let _ = writeln!(out, "rate_iops={rate}");
        }
        if let Some(mix) = self.rwmixread {
            let _ = writeln!(out, "rwmixread={mix}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_file_carries_every_setting_and_the_percentiles() {
        let mut job = Job::new("randread-4k", "randread", "4k", "256M", 10);
        job.iodepth = 32;
        job.rate_iops = Some(900);
        let file = job.job_file("/dev/loop7");
        assert_eq!(
            file,
            "[global]\nfilename=/dev/loop7\nioengine=libaio\ndirect=1\ntime_based=1\nruntime=10\ngroup_reporting=1\npercentile_list=50:90:99:99.9\n\n[randread-4k]\nrw=randread\nbs=4k\niodepth=32\nnumjobs=1\nsize=256M\nrate_iops=900\n"
        );
        assert!(job.check().is_ok());
        job.rw = "random".into();
        assert!(job.check().unwrap_err().contains("rw `random` is not one of"));
    }

    #[test]
    fn a_value_cannot_smuggle_another_fio_option_into_the_job_file() {
        for (bs, size) in
            [("4k\nfilename=/dev/sda", "1G"), ("4k", "1G\nrw=write"), ("4k=8k", "1G"), ("4k", "1G #"), ("k4", "1G")]
        {
            let job = Job::new("j", "randread", bs, size, 1);
            let err = job.check().unwrap_err();
            assert!(err.starts_with("job j: "), "{bs:?} {size:?}: {err}");
        }
        let mut job = Job::new("j", "randread", "4k-16k", "50%", 1);
        assert!(job.check().is_ok());
        job.ioengine = "io_uring\nverify=0".into();
        assert!(job.check().unwrap_err().contains("ioengine `io_uring\\nverify=0` is not a fio value"));
        job.ioengine = "external:/tmp/evil.so".into();
        assert!(job.check().unwrap_err().contains("loads code from a file"));
        assert!(job.job_file("/mnt/a:b/fio.data").contains("filename=/mnt/a\\:b/fio.data\n"));
        assert!(Job::check_target("/dev/loop7").is_ok());
        assert!(Job::check_target("/tmp/x\nrw=write").is_err());
    }
}

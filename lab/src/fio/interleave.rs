//! A/B comparison that holds up on a noisy machine: baseline and candidate
//! runs alternate A B, B A, A B … (each pair's order flipped, so a steady
//! drift favours neither side), and sampling stops as soon as the verdict
//! is settled, or at the pair or time budget.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::stats::{Verdict, compare_paired};
use super::{JobResult, Judged, Metric, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    Baseline,
    Candidate,
}

/// What runs one side of the comparison once.
#[async_trait(?Send)]
pub trait Arms: Send {
    /// `pair` counts from 0; each pair runs both arms once.
    async fn run(&mut self, arm: Arm, pair: usize) -> anyhow::Result<JobResult>;
}

/// One line per finished pair on stderr: the metric on each side and the change.
pub struct PairLines {
    metric: Metric,
    /// The pair's first run, shown next to its second.
    first: Option<f64>,
}

impl PairLines {
    pub fn new(metric: Metric) -> PairLines {
        PairLines { metric, first: None }
    }

    /// After each run of an arm (the pair's two in the order they ran).
    pub fn show(&mut self, arm: Arm, pair: usize, result: &JobResult) {
        match (self.first.take(), self.metric.of(result)) {
            (Some(first), Some(second)) => {
                let (b, c) = if arm == Arm::Candidate { (first, second) } else { (second, first) };
                eprintln!("pair {}: {} {b:.0} → {c:.0} ({:+.1}%)", pair + 1, self.metric.name(), (c / b - 1.0) * 100.0);
            }
            (None, value) => self.first = value,
            _ => {}
        }
    }
}

/// How long a comparison may keep sampling.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    /// Pairs before the first verdict: fewer give intervals too wide to trust the variance.
    pub min_pairs: usize,
    pub max_pairs: usize,
    /// No new pair starts after this.
    pub budget: Duration,
}

impl Sampling {
    /// Whether these bounds can decide anything, in the words of the options
    /// that set them (`--min-pairs`, `--max-pairs`).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.min_pairs > self.max_pairs {
            anyhow::bail!("--min-pairs {} is more than --max-pairs {}", self.min_pairs, self.max_pairs);
        }
        if self.max_pairs < super::stats::FEWEST_DECISIVE_PAIRS {
            anyhow::bail!(
                "--max-pairs {}: {} pairs are the fewest in which the signed-rank test can find a change (p >= 2/2^pairs)",
                self.max_pairs,
                super::stats::FEWEST_DECISIVE_PAIRS
            );
        }
        Ok(())
    }
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling { min_pairs: 10, max_pairs: 40, budget: Duration::from_secs(300) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Settled,
    MaxPairs,
    Budget,
}

#[derive(Debug)]
pub struct Comparison {
    /// `(baseline, candidate)` per pair, in the order they ran.
    pub pairs: Vec<(JobResult, JobResult)>,
    pub verdict: Verdict,
    pub stopped: Stopped,
    /// Over every call that ran these pairs.
    pub elapsed: Duration,
}

impl Comparison {
    /// The verdict for another metric over the same pairs.
    pub fn verdict_for(&self, metric: Metric, threshold: f64) -> Option<Verdict> {
        paired_verdict(&self.pairs, metric, threshold)
    }

    /// One of this comparison's verdicts, judged: a regression fails; what
    /// did not settle within the pairs or the budget decides nothing.
    pub fn judge(&self, metric: Metric, verdict: &Verdict) -> Judged {
        if verdict.outcome == Outcome::Regression {
            Judged::Failed
        } else if verdict.settled(metric.better()) {
            Judged::Passed
        } else {
            Judged::NotJudged(format!("{}: {}", metric.name(), self.stopped_because()))
        }
    }

    pub fn stopped_because(&self) -> String {
        let n = self.pairs.len();
        let secs = self.elapsed.as_secs_f64();
        match self.stopped {
            Stopped::Settled => format!("settled after {n} pairs in {secs:.0} s"),
            Stopped::MaxPairs => format!("not settled by {n} pairs (the most allowed) in {secs:.0} s"),
            Stopped::Budget => format!("not settled when the time budget ran out: {n} pairs in {secs:.0} s"),
        }
    }
}

fn paired_verdict(pairs: &[(JobResult, JobResult)], metric: Metric, threshold: f64) -> Option<Verdict> {
    let values: Option<Vec<(f64, f64)>> = pairs.iter().map(|(b, c)| Some((metric.of(b)?, metric.of(c)?))).collect();
    Some(compare_paired(&metric.name(), metric.better(), &values?, threshold))
}

/// Run `arms` interleaved until `metric`'s verdict is settled, going on
/// from `earlier` if given (a later question about the same arms starts
/// where the last one stopped; the budget is this call's).
pub async fn compare(
    arms: &mut dyn Arms,
    metric: Metric,
    threshold: f64,
    sampling: Sampling,
    earlier: Option<Comparison>,
) -> anyhow::Result<Comparison> {
    let started = Instant::now();
    let (mut pairs, before) = earlier.map(|c| (c.pairs, c.elapsed)).unwrap_or_default();
    loop {
        if !pairs.is_empty() {
            let verdict = paired_verdict(&pairs, metric, threshold).ok_or_else(|| {
                anyhow::anyhow!("fio did not measure {} (a read-only job has no write side)", metric.name())
            })?;
            let (n, elapsed) = (pairs.len(), started.elapsed());
            let total = before + elapsed;
            let stopped = if n < sampling.min_pairs.max(2) {
                None
            } else if verdict.settled(metric.better()) {
                Some(Stopped::Settled)
            } else if n >= sampling.max_pairs {
                Some(Stopped::MaxPairs)
            } else if elapsed >= sampling.budget {
                Some(Stopped::Budget)
            } else {
                None
            };
            if let Some(stopped) = stopped {
                return Ok(Comparison { pairs, verdict, stopped, elapsed: total });
            }
        }
        let pair = pairs.len();
        let order =
            if pair.is_multiple_of(2) { [Arm::Baseline, Arm::Candidate] } else { [Arm::Candidate, Arm::Baseline] };
        let first = arms.run(order[0], pair).await?;
        let second = arms.run(order[1], pair).await?;
        pairs.push(if order[0] == Arm::Baseline { (first, second) } else { (second, first) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fio::{Direction, Outcome};

    /// Arms with scripted IOPS, recording the order they were asked in.
    struct Scripted {
        baseline: f64,
        candidate: f64,
        asked: Vec<Arm>,
    }

    #[async_trait(?Send)]
    impl Arms for Scripted {
        async fn run(&mut self, arm: Arm, pair: usize) -> anyhow::Result<JobResult> {
            self.asked.push(arm);
            // A machine that speeds up 2% per pair: only the pairing keeps it out of the verdict.
            let drift = 1.0 + 0.02 * pair as f64;
            let wobble = if self.asked.len().is_multiple_of(3) { 1.01 } else { 0.99 };
            let iops = drift * wobble * if arm == Arm::Baseline { self.baseline } else { self.candidate };
            Ok(JobResult {
                read: Some(Direction { iops, bw_bytes: iops * 4096.0, ..Direction::default() }),
                ..JobResult::default()
            })
        }
    }

    fn read_iops() -> Metric {
        Metric::parse("read IOPS").unwrap()
    }

    #[tokio::test]
    async fn interleaves_flipping_the_order_and_stops_once_settled() {
        let mut arms = Scripted { baseline: 1000.0, candidate: 1000.0, asked: vec![] };
        let sampling = Sampling { min_pairs: 4, ..Sampling::default() };
        let same = compare(&mut arms, read_iops(), 0.05, sampling, None).await.unwrap();
        use Arm::{Baseline as A, Candidate as B};
        assert_eq!(arms.asked, [A, B, B, A, A, B, B, A]);
        assert_eq!((same.stopped, same.pairs.len()), (Stopped::Settled, 4));
        assert_eq!(same.verdict.outcome, Outcome::NoChange, "{}", same.verdict);
        assert!(same.verdict.to_string().contains("N=4 interleaved pairs"), "{}", same.verdict);

        let mut arms = Scripted { baseline: 1000.0, candidate: 880.0, asked: vec![] };
        let slower = compare(&mut arms, read_iops(), 0.05, sampling, None).await.unwrap();
        assert_eq!(slower.verdict.outcome, Outcome::Regression, "{}", slower.verdict);
        assert!((slower.verdict.change + 0.12).abs() < 0.01, "{}", slower.verdict);
        // The same pairs judge other metrics; an unmeasured one is None.
        let bw = slower.verdict_for(Metric::parse("read bandwidth").unwrap(), 0.05).unwrap();
        assert_eq!(bw.outcome, Outcome::Regression);
        assert!(slower.verdict_for(Metric::parse("write IOPS").unwrap(), 0.05).is_none());
    }

    #[tokio::test]
    async fn an_unsettled_comparison_stops_at_the_pair_budget_and_says_so() {
        // 5% slower against a 5% threshold: the interval straddles it for good.
        let mut arms = Scripted { baseline: 1000.0, candidate: 950.0, asked: vec![] };
        let sampling = Sampling { min_pairs: 3, max_pairs: 6, budget: Duration::from_secs(300) };
        let c = compare(&mut arms, read_iops(), 0.05, sampling, None).await.unwrap();
        assert_eq!((c.stopped, c.pairs.len()), (Stopped::MaxPairs, 6));
        assert!(c.stopped_because().starts_with("not settled by 6 pairs"), "{}", c.stopped_because());
        // A later question goes on from the pairs already run; one they settle runs nothing more.
        let asked = arms.asked.len();
        let wider = compare(&mut arms, read_iops(), 0.10, sampling, Some(c)).await.unwrap();
        assert_eq!((wider.stopped, wider.pairs.len(), arms.asked.len()), (Stopped::Settled, 6, asked));
        let more = Sampling { max_pairs: 8, ..sampling };
        let longer = compare(&mut arms, read_iops(), 0.05, more, Some(wider)).await.unwrap();
        assert_eq!((longer.stopped, longer.pairs.len(), arms.asked.len()), (Stopped::MaxPairs, 8, asked + 4));
        let err = compare(&mut arms, Metric::parse("write IOPS").unwrap(), 0.05, sampling, None).await.err().unwrap();
        assert!(err.to_string().contains("did not measure write IOPS"), "{err}");
    }
}

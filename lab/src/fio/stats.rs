//! Deciding "regression" soundly, criterion's rule: the change must be
//! statistically significant (Welch's t-test, p < 0.05) *and* its whole 95 %
//! confidence interval must lie beyond a noise threshold in the bad
//! direction. One fio run is one number, so both sides need repeats.

use std::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Regression,
    Improvement,
    /// No significant change, or one within the noise threshold.
    NoChange,
    /// Fewer than 2 samples on a side: nothing can be said.
    TooFewSamples,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub metric: String,
    pub baseline_mean: f64,
    pub current_mean: f64,
    /// Relative change of the mean: -0.10 is 10 % lower.
    pub change: f64,
    /// 95 % confidence interval of the relative change.
    pub ci: (f64, f64),
    pub p_value: f64,
    pub n_baseline: usize,
    pub n_current: usize,
    pub threshold: f64,
    pub outcome: Outcome,
    #[serde(default)]
    pub design: Design,
}

/// How the samples were taken, which decides what N counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Design {
    /// Two groups of runs (`compare`): N counts runs on each side.
    #[default]
    Blocks,
    /// Interleaved pairs (`compare_paired`): N counts pairs.
    Pairs,
    /// This session's runs against earlier sessions (`compare_sessions`):
    /// `n_baseline` counts sessions.
    Sessions,
}

/// The arithmetic mean; NaN for no values.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

/// Compare `current` against `baseline` for a metric.
pub fn compare(metric: &str, better: Better, baseline: &[f64], current: &[f64], threshold: f64) -> Verdict {
    let (nb, nc) = (baseline.len(), current.len());
    let mut verdict = Verdict::unjudged(metric, Design::Blocks, threshold, (baseline, nb), (current, nc));
    if nb < 2 || nc < 2 || verdict.baseline_mean == 0.0 {
        return verdict;
    }
    let (mb, mc) = (verdict.baseline_mean, verdict.current_mean);
    let (vb, vc) = (variance(baseline) / nb as f64, variance(current) / nc as f64);
    let se = (vb + vc).sqrt();
    let diff = mc - mb;
    // Welch–Satterthwaite degrees of freedom.
    let df = (vb + vc).powi(2) / (vb.powi(2) / (nb as f64 - 1.0) + vc.powi(2) / (nc as f64 - 1.0));
    verdict.judge_shift(diff, t_test(diff, se, df), better);
    verdict
}

/// Two-sided p and the 95 % half-width for a shift `diff` with standard error `se`.
fn t_test(diff: f64, se: f64, df: f64) -> (f64, f64) {
    if se == 0.0 {
        return (if diff == 0.0 { 1.0 } else { 0.0 }, 0.0);
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (2.0 * (1.0 - t.cdf((diff / se).abs())), t.inverse_cdf(0.975) * se),
        Err(_) => (f64::NAN, f64::NAN),
    }
}

/// With fewer pairs even a change in every pair has p >= 2/2^5 > 0.05.
pub const FEWEST_DECISIVE_PAIRS: usize = 6;

/// Compare runs made in interleaved pairs, `(baseline, current)` side by
/// side in time. A machine whose speed drifts over minutes (measured here:
/// runs a minute apart still correlate at 0.45) moves both runs of a pair
/// alike, so the ratio within a pair cancels the drift that two blocks of
/// runs, one after the other, would mistake for a change.
///
/// The ratios are heavy-tailed here (a burst of other work hits one run of a
/// pair: kurtosis 7.9 over 250 pairs, against 3 for a normal), which widens
/// a t interval for nothing. So the change is the Hodges–Lehmann estimate
/// on the log ratios (the median of their pairwise averages), its interval
/// and p from Wilcoxon's signed-rank test, exact: robust to those bursts,
/// and as good as the t interval when there are none.
pub fn compare_paired(metric: &str, better: Better, pairs: &[(f64, f64)], threshold: f64) -> Verdict {
    let n = pairs.len();
    let (baseline, current): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let mut verdict = Verdict::unjudged(metric, Design::Pairs, threshold, (&baseline, n), (&current, n));
    // A zero or negative value has no ratio: it says nothing about a change.
    if n < 2 || pairs.iter().any(|&(b, c)| b <= 0.0 || c <= 0.0) {
        return verdict;
    }
    let logs: Vec<f64> = pairs.iter().map(|&(b, c)| (c / b).ln()).collect();
    let (estimate, (low, high), p) = signed_rank(&logs);
    verdict.change = estimate.exp() - 1.0;
    verdict.ci = (low.exp() - 1.0, high.exp() - 1.0);
    verdict.p_value = p;
    verdict.judge(better);
    verdict
}

/// Hodges–Lehmann estimate of the centre of `d`, its 95 % interval and the
/// two-sided p of Wilcoxon's signed-rank test (exact distribution; zeros
/// dropped, ties given their mean rank).
fn signed_rank(d: &[f64]) -> (f64, (f64, f64), f64) {
    let mut walsh: Vec<f64> = Vec::with_capacity(d.len() * (d.len() + 1) / 2);
    for i in 0..d.len() {
        for j in i..d.len() {
            walsh.push((d[i] + d[j]) / 2.0);
        }
    }
    walsh.sort_by(f64::total_cmp);
    let m = walsh.len();
    let estimate = if m % 2 == 1 { walsh[m / 2] } else { (walsh[m / 2 - 1] + walsh[m / 2]) / 2.0 };

    // P(T+ <= t) for T+ the sum of the ranks 1..=n of positive signs, all 2^n sign patterns alike.
    let cdf = |n: usize| -> Vec<f64> {
        let top = n * (n + 1) / 2;
        let mut ways = vec![0.0f64; top + 1];
        ways[0] = 1.0;
        for rank in 1..=n {
            for t in (rank..=top).rev() {
                ways[t] += ways[t - rank];
            }
        }
        let total = 2f64.powi(n as i32);
        ways.iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect()
    };

    // The interval [W(c), W(m+1-c)] (1-based), c the largest with P(T+ <= c-1) <= 2.5 %;
    // with fewer than 6 pairs no c qualifies and the interval is the whole range.
    let all = cdf(d.len());
    let c = (1..all.len()).take_while(|&c| all[c - 1] <= 0.025).last().unwrap_or(1);
    let interval = (walsh[c - 1], walsh[m - c]);

    let nonzero: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    if nonzero.is_empty() {
        return (estimate, interval, 1.0);
    }
    let mut by_size: Vec<usize> = (0..nonzero.len()).collect();
    by_size.sort_by(|&a, &b| nonzero[a].abs().total_cmp(&nonzero[b].abs()));
    let mut ranks = vec![0.0; nonzero.len()];
    let mut i = 0;
    while i < by_size.len() {
        let mut j = i;
        while j + 1 < by_size.len() && nonzero[by_size[j + 1]].abs() == nonzero[by_size[i]].abs() {
            j += 1;
        }
        for k in i..=j {
            ranks[by_size[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    let t_plus: f64 = nonzero.iter().zip(&ranks).filter(|(x, _)| **x > 0.0).map(|(_, r)| r).sum();
    let dist = cdf(nonzero.len());
    let top = dist.len() - 1;
    let at_most = |t: f64| if t < 0.0 { 0.0 } else { dist[(t.floor() as usize).min(top)] };
    // The distribution is symmetric: P(T+ >= t) = P(T+ <= top - t).
    let lower = at_most(t_plus);
    let upper = at_most(top as f64 - t_plus);
    (estimate, interval, (2.0 * lower.min(upper)).min(1.0))
}

/// The fewest earlier sessions whose spread says how far the machine drifts.
pub const MIN_SESSIONS: usize = 3;

/// This session's runs against earlier sessions, one mean per session. Runs
/// of one session share the machine's state of the moment, and a machine's
/// speed drifts over minutes and hours (measured here: runs a minute apart
/// still correlate at 0.45), so the spread that counts is that of session
/// means, not of runs. The interval is where one more session of an
/// unchanged system would fall: t(M-1) · s · √(1 + 1/M) around the change.
pub fn compare_sessions(
    metric: &str,
    better: Better,
    session_means: &[f64],
    current: &[f64],
    threshold: f64,
) -> Verdict {
    let (m, nc) = (session_means.len(), current.len());
    let mut verdict = Verdict::unjudged(metric, Design::Sessions, threshold, (session_means, m), (current, nc));
    if m < MIN_SESSIONS || nc == 0 || verdict.baseline_mean == 0.0 {
        return verdict;
    }
    let diff = verdict.current_mean - verdict.baseline_mean;
    let spread = variance(session_means).sqrt() * (1.0 + 1.0 / m as f64).sqrt();
    verdict.judge_shift(diff, t_test(diff, spread, m as f64 - 1.0), better);
    verdict
}

impl Verdict {
    /// The means and counts of both sides, nothing decided yet. `n` counts
    /// what the design counts (runs, pairs, sessions).
    fn unjudged(
        metric: &str,
        design: Design,
        threshold: f64,
        (baseline, n_baseline): (&[f64], usize),
        (current, n_current): (&[f64], usize),
    ) -> Verdict {
        let mean_of = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { mean(xs) };
        Verdict {
            metric: metric.into(),
            baseline_mean: mean_of(baseline),
            current_mean: mean_of(current),
            change: f64::NAN,
            ci: (f64::NAN, f64::NAN),
            p_value: f64::NAN,
            n_baseline,
            n_current,
            threshold,
            outcome: Outcome::TooFewSamples,
            design,
        }
    }

    /// A shift of the mean by `diff`, with its p and 95 % half-width: the
    /// relative change and interval, then the verdict.
    fn judge_shift(&mut self, diff: f64, (p, half_width): (f64, f64), better: Better) {
        let base = self.baseline_mean;
        self.change = diff / base;
        self.ci = ((diff - half_width) / base, (diff + half_width) / base);
        self.p_value = p;
        self.judge(better);
    }

    /// Criterion's rule: significant, and the whole interval beyond the
    /// threshold. "Worse" is a drop for higher-is-better metrics, a rise
    /// for latencies.
    fn judge(&mut self, better: Better) {
        let (worse, better_side) = match better {
            Better::Higher => (self.ci.1 < -self.threshold, self.ci.0 > self.threshold),
            Better::Lower => (self.ci.0 > self.threshold, self.ci.1 < -self.threshold),
        };
        self.outcome = if self.p_value < 0.05 && worse {
            Outcome::Regression
        } else if self.p_value < 0.05 && better_side {
            Outcome::Improvement
        } else {
            Outcome::NoChange
        };
    }

    /// Whether more runs could still change the answer to "is this a
    /// regression beyond the threshold?": settled once it is one, or once
    /// the interval's worse end stays inside the threshold.
    pub fn settled(&self, better: Better) -> bool {
        match self.outcome {
            Outcome::Regression => true,
            Outcome::TooFewSamples => false,
            Outcome::Improvement | Outcome::NoChange => match better {
                Better::Higher => self.ci.0 >= -self.threshold,
                Better::Lower => self.ci.1 <= self.threshold,
            },
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.outcome == Outcome::TooFewSamples && self.design == Design::Sessions {
            return write!(
                f,
                "{}: {} earlier session(s) of comparable runs; {MIN_SESSIONS} are needed to know how far this machine drifts between sessions",
                self.metric, self.n_baseline
            );
        }
        if self.outcome == Outcome::TooFewSamples {
            return write!(
                f,
                "{}: too few samples to compare (N={}+{}; at least 2 on each side)",
                self.metric, self.n_baseline, self.n_current
            );
        }
        let pct = |x: f64| format!("{:+.1}%", x * 100.0);
        let what = match self.outcome {
            Outcome::Regression => format!("regression beyond the {:.0}% noise threshold", self.threshold * 100.0),
            Outcome::Improvement => format!("improvement beyond the {:.0}% noise threshold", self.threshold * 100.0),
            _ if self.p_value < 0.05 => format!(
                "a significant change whose interval reaches inside the {:.0}% noise threshold: not a regression",
                self.threshold * 100.0
            ),
            _ => "no significant change".to_string(),
        };
        let n = match self.design {
            Design::Blocks => format!("N={}+{}", self.n_baseline, self.n_current),
            Design::Pairs => format!("N={} interleaved pairs", self.n_current),
            Design::Sessions => format!("N={} runs against {} earlier sessions", self.n_current, self.n_baseline),
        };
        write!(
            f,
            "{}: {} → {} ({}{}, 95% CI {} … {}, p={:.4}, {n}): {what}",
            self.metric,
            round(self.baseline_mean),
            round(self.current_mean),
            pct(self.change),
            // The means are each arm's; the change is the pairs' typical ratio.
            if self.design == Design::Pairs { " within pairs" } else { "" },
            pct(self.ci.0),
            pct(self.ci.1),
            self.p_value,
        )
    }
}

pub(crate) fn round(x: f64) -> String {
    if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_drop_is_a_regression_and_noise_is_not() {
        let base = [1000.0, 1010.0, 990.0, 1005.0, 995.0];
        let slow = [900.0, 905.0, 895.0, 910.0, 890.0];
        let v = compare("read IOPS", Better::Higher, &base, &slow, 0.03);
        assert_eq!(v.outcome, Outcome::Regression);
        assert!((v.change + 0.10).abs() < 0.001 && v.ci.1 < -0.03 && v.p_value < 0.001, "{v:?}");
        assert_eq!(
            v.to_string(),
            format!(
                "read IOPS: 1000 → 900 (-10.0%, 95% CI {:+.1}% … {:+.1}%, p={:.4}, N=5+5): regression beyond the 3% noise threshold",
                v.ci.0 * 100.0,
                v.ci.1 * 100.0,
                v.p_value
            )
        );
        let same = [1002.0, 998.0, 1007.0, 993.0, 1000.0];
        assert_eq!(compare("read IOPS", Better::Higher, &base, &same, 0.03).outcome, Outcome::NoChange);
    }

    #[test]
    fn a_significant_change_inside_the_noise_threshold_is_no_regression() {
        let base = [1000.0, 1001.0, 999.0, 1000.5, 999.5];
        let slightly = [990.0, 991.0, 989.0, 990.5, 989.5];
        let v = compare("read IOPS", Better::Higher, &base, &slightly, 0.03);
        assert!(v.p_value < 0.05);
        assert_eq!(v.outcome, Outcome::NoChange, "a 1% drop is inside a 3% threshold");
    }

    #[test]
    fn latency_regresses_upwards_and_few_samples_say_so() {
        let base = [100.0, 102.0, 98.0, 101.0];
        let slower = [130.0, 128.0, 131.0, 129.0];
        assert_eq!(compare("p99 read latency", Better::Lower, &base, &slower, 0.05).outcome, Outcome::Regression);
        assert_eq!(compare("p99 read latency", Better::Lower, &slower, &base, 0.05).outcome, Outcome::Improvement);
        let v = compare("read IOPS", Better::Higher, &[1.0], &[1.0, 2.0], 0.03);
        assert_eq!(v.outcome, Outcome::TooFewSamples);
        assert!(v.to_string().contains("too few samples"));
        // Identical constant samples: no change, and no division by zero.
        assert_eq!(compare("x", Better::Higher, &[5.0, 5.0], &[5.0, 5.0], 0.03).outcome, Outcome::NoChange);
    }

    #[test]
    fn pairs_cancel_a_drift_that_two_blocks_of_runs_mistake_for_a_regression() {
        // The machine slows 2% per run; the candidate is the same job.
        let speed = |i: usize| 1000.0 * (1.0 - 0.02 * i as f64);
        let (block_a, block_b): (Vec<f64>, Vec<f64>) = ((0..6).map(speed).collect(), (6..12).map(speed).collect());
        let blocks = compare("read IOPS", Better::Higher, &block_a, &block_b, 0.05);
        assert_eq!(blocks.outcome, Outcome::Regression, "one block after the other sees the drift: {blocks}");
        // Interleaved A B, B A, …: each pair shares the machine's state.
        let pairs: Vec<(f64, f64)> = (0..6)
            .map(|p| {
                let (x, y) = (speed(2 * p), speed(2 * p + 1));
                if p % 2 == 0 { (x, y) } else { (y, x) }
            })
            .collect();
        let paired = compare_paired("read IOPS", Better::Higher, &pairs, 0.05);
        assert_eq!(paired.outcome, Outcome::NoChange, "{paired}");
        assert!(paired.settled(Better::Higher) && paired.change.abs() < 0.005, "{paired}");
        assert!(paired.to_string().contains("N=6 interleaved pairs"), "{paired}");
        // A 10% slower candidate in the same drift is a regression.
        let slower: Vec<(f64, f64)> = pairs.iter().map(|&(b, c)| (b, c * 0.9)).collect();
        let v = compare_paired("read IOPS", Better::Higher, &slower, 0.05);
        assert_eq!(v.outcome, Outcome::Regression, "{v}");
        // No ratio from a zero: too few samples rather than a division by zero.
        assert_eq!(
            compare_paired("x", Better::Higher, &[(0.0, 1.0), (1.0, 1.0)], 0.05).outcome,
            Outcome::TooFewSamples
        );
    }

    #[test]
    fn a_straddling_interval_is_not_settled() {
        let pairs = [(1000.0, 960.0), (1000.0, 900.0), (1000.0, 1000.0), (1000.0, 930.0)];
        let v = compare_paired("read IOPS", Better::Higher, &pairs, 0.05);
        assert_eq!(v.outcome, Outcome::NoChange);
        assert!(v.ci.0 < -0.05 && v.ci.1 > -0.05 && !v.settled(Better::Higher), "{v}");
        // The history and baseline checks say so too: not judged, never passed.
        let judged = super::super::Judged::of(&v, Better::Higher);
        assert!(matches!(&judged, super::super::Judged::NotJudged(why) if why.contains("unsettled")), "{judged:?}");
        let sure =
            compare_paired("read IOPS", Better::Higher, &[(1000.0, 1001.0), (1000.0, 999.0), (1000.0, 1000.5)], 0.05);
        assert_eq!(super::super::Judged::of(&sure, Better::Higher), super::super::Judged::Passed, "{sure}");
    }

    #[test]
    fn sessions_are_judged_by_how_far_session_means_spread() {
        // Earlier sessions wandered ±8 %: a session 10 % down is inside that.
        let sessions = [1000.0, 1080.0, 930.0, 1050.0, 960.0];
        let v = compare_sessions("read IOPS", Better::Higher, &sessions, &[905.0, 900.0, 895.0], 0.05);
        assert_eq!(v.outcome, Outcome::NoChange, "{v}");
        // sd of the means 6.3 %, × √(1 + 1/5) × t(4) 2.78: ±18.7 % around the change.
        assert!((v.ci.1 - v.ci.0 - 2.0 * 0.187).abs() < 0.002, "the sessions' spread, not the runs': {v}");
        assert!(v.to_string().contains("N=3 runs against 5 earlier sessions"), "{v}");
        // Steady sessions: the same 10 % is a regression.
        let steady = [1000.0, 1004.0, 998.0, 1001.0, 997.0];
        let v = compare_sessions("read IOPS", Better::Higher, &steady, &[905.0, 900.0, 895.0], 0.05);
        assert_eq!(v.outcome, Outcome::Regression, "{v}");
        let v = compare_sessions("read IOPS", Better::Higher, &steady[..2], &[900.0], 0.05);
        assert_eq!(v.outcome, Outcome::TooFewSamples);
        assert!(v.to_string().contains("2 earlier session(s) of comparable runs; 3 are needed"), "{v}");
    }

    #[test]
    fn the_signed_rank_test_gives_the_textbook_answers() {
        // Six positive differences: p = 2/2^6; the interval is the whole range; HL is the middle.
        let (estimate, interval, p) = signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((estimate, interval), (3.5, (1.0, 6.0)));
        assert!((p - 2.0 / 64.0).abs() < 1e-12, "{p}");
        // n = 10: the table's critical value is 8 (P(T+ <= 8) = 0.0244), so the
        // interval is the 9th Walsh average from either end.
        let d: Vec<f64> = (0..10).map(|i| f64::from(i) - 4.0).collect();
        let mut walsh: Vec<f64> =
            (0..10).flat_map(|i| (i..10).map(move |j| (f64::from(i) + f64::from(j)) / 2.0 - 4.0)).collect();
        walsh.sort_by(f64::total_cmp);
        let (_, interval, p) = signed_rank(&d);
        assert_eq!(interval, (walsh[8], walsh[46]));
        assert!(p > 0.2, "{p}");
        let (_, _, p) = signed_rank(&(1..=10).map(f64::from).collect::<Vec<_>>());
        assert!((p - 2.0 / 1024.0).abs() < 1e-12, "{p}");
        // One burst in 20 pairs moves neither the estimate nor the interval's
        // ends: it shifts only 20 of the 210 Walsh averages, and 52 are cut from either end.
        let mut bursty: Vec<f64> = (0..20).map(|i| -0.10 + 0.01 * f64::from(i % 3) - 0.01).collect();
        bursty[7] = 0.60;
        let (estimate, (low, high), _) = signed_rank(&bursty);
        assert!((estimate + 0.10).abs() < 0.01 && high < -0.09 && low > -0.11, "{estimate} {low} {high}");
    }
}

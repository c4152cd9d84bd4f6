//! Change points in a history: where did a metric shift, and was it more
//! than noise? Circular binary segmentation on the shift of the mean, each split
//! accepted only when a permutation test says it is unlikely by chance
//! (p < 0.001) *and* the shift is at least 5 % (Hunter's and MongoDB's rule).
//! The series is one mean per session: runs of one session share the
//! machine's state, sessions are closer to exchangeable.

use serde::Serialize;

use super::stats::mean;

/// Hunter's rule.
pub const ALPHA: f64 = 0.001;
pub const MIN_SHIFT: f64 = 0.05;
/// Points each side of a split: fewer and one odd session is a "shift".
pub const MIN_SEGMENT: usize = 3;
/// Enough for p-values down to 1/2000, below ALPHA.
const PERMUTATIONS: usize = 1999;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangePoint {
    /// The first point after the shift.
    pub index: usize,
    /// Means of the segments either side (as far as the neighbouring change points).
    pub before: f64,
    pub after: f64,
    /// Relative change: -0.12 is 12 % lower after.
    pub change: f64,
    pub p_value: f64,
}

/// The most recent points searched: the search grows with the square of the length.
pub const MAX_POINTS: usize = 200;

/// The change points of `series` (at most its last `MAX_POINTS`), oldest first.
pub fn change_points(series: &[f64]) -> Vec<ChangePoint> {
    let skip = series.len().saturating_sub(MAX_POINTS);
    let mut found = change_points_in(&series[skip..]);
    for c in &mut found {
        c.index += skip;
    }
    found
}

fn change_points_in(series: &[f64]) -> Vec<ChangePoint> {
    let mut found = Vec::new();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    split(series, 0, &mut rng, &mut found);
    found.sort_by_key(|c| c.index);
    // Each shift is reported between its neighbouring change points, not over the whole series.
    let bounds: Vec<usize> = std::iter::once(0).chain(found.iter().map(|c| c.index)).chain([series.len()]).collect();
    for (i, c) in found.iter_mut().enumerate() {
        c.before = mean(&series[bounds[i]..c.index]);
        c.after = mean(&series[c.index..bounds[i + 2]]);
        c.change = c.after / c.before - 1.0;
    }
    found
}

fn split(series: &[f64], offset: usize, rng: &mut XorShift, found: &mut Vec<ChangePoint>) {
    let Some(best) = best_segment(series) else { return };
    let (inside, outside) = best.means(series);
    if outside == 0.0 || (inside / outside - 1.0).abs() < MIN_SHIFT {
        return;
    }
    // How often does a shuffled series split as well? (Shuffling destroys any order.)
    let mut shuffled = series.to_vec();
    let as_good = (0..PERMUTATIONS)
        .filter(|_| {
            rng.shuffle(&mut shuffled);
            best_segment(&shuffled).is_some_and(|s| s.statistic >= best.statistic)
        })
        .count();
    let p_value = (1 + as_good) as f64 / (PERMUTATIONS + 1) as f64;
    if p_value >= ALPHA {
        return;
    }
    let (from, to) = (best.from, best.to);
    for at in [from, to].into_iter().filter(|&at| at > 0 && at < series.len()) {
        // Means and change are filled in once all change points are known.
        found.push(ChangePoint { index: offset + at, before: 0.0, after: 0.0, change: 0.0, p_value });
    }
    split(&series[..from], offset, rng, found);
    split(&series[from..to], offset + from, rng, found);
    split(&series[to..], offset + to, rng, found);
}

/// A stretch `from..to` of a series whose mean differs from the rest's.
struct Segment {
    from: usize,
    to: usize,
    /// Between-groups sum of squares: n_in·n_out/n · (mean_in − mean_out)².
    statistic: f64,
}

impl Segment {
    fn means(&self, series: &[f64]) -> (f64, f64) {
        let inside = mean(&series[self.from..self.to]);
        let rest: Vec<f64> = series[..self.from].iter().chain(&series[self.to..]).copied().collect();
        (inside, mean(&rest))
    }
}

/// The stretch that best separates two means. A stretch reaching either end
/// is one shift; one in the middle is a shift and its return (circular
/// binary segmentation), which a single split would blur.
fn best_segment(series: &[f64]) -> Option<Segment> {
    let n = series.len();
    if n < 2 * MIN_SEGMENT {
        return None;
    }
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for x in series {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + x);
    }
    let total = prefix[n];
    let mut best: Option<Segment> = None;
    for from in 0..=n - MIN_SEGMENT {
        for to in from + MIN_SEGMENT..=n {
            let inside = to - from;
            if n - inside < MIN_SEGMENT || (from == 0 && to == n) {
                continue;
            }
            let (n1, n2) = (inside as f64, (n - inside) as f64);
            let sum = prefix[to] - prefix[from];
            let shift = sum / n1 - (total - sum) / n2;
            let statistic = n1 * n2 / n as f64 * shift * shift;
            if best.as_ref().is_none_or(|b| statistic > b.statistic) {
                best = Some(Segment { from, to, statistic });
            }
        }
    }
    best
}

/// A small fixed-seed generator: the same history always gives the same answer.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle(&mut self, xs: &mut [f64]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ±2 % wobble around `level`, the same for every call.
    fn steady(level: f64, n: usize, phase: usize) -> Vec<f64> {
        (0..n).map(|i| level * (1.0 + 0.02 * (((i + phase) * 7 % 5) as f64 - 2.0) / 2.0)).collect()
    }

    #[test]
    fn a_lasting_drop_is_found_where_it_happened() {
        let series = [steady(1000.0, 12, 0), steady(880.0, 10, 3)].concat();
        let found = change_points(&series);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c.index, 12);
        assert!((c.change + 0.12).abs() < 0.01 && c.p_value < ALPHA, "{c:?}");
        // Two steps: both, each measured against its own neighbours.
        let series = [steady(1000.0, 10, 0), steady(880.0, 10, 1), steady(1000.0, 10, 2)].concat();
        let found: Vec<(usize, i64)> =
            change_points(&series).iter().map(|c| (c.index, (c.change * 100.0).round() as i64)).collect();
        assert_eq!(found, [(10, -12), (20, 14)]);
    }

    #[test]
    fn noise_small_shifts_and_short_histories_are_not_change_points() {
        assert!(change_points(&steady(1000.0, 30, 0)).is_empty());
        // Significant but under 5 %.
        assert!(change_points(&[steady(1000.0, 15, 0), steady(970.0, 15, 0)].concat()).is_empty());
        // Too few points either side to tell a shift from one odd session.
        assert!(change_points(&[1000.0, 1000.0, 800.0, 800.0]).is_empty());
        assert!(change_points(&[]).is_empty());
    }
}

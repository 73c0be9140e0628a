//! How sure a percentile is: a distribution-free 95 % confidence interval from the order
//! statistics of the recorded histogram.
//!
//! If the n recorded values are i.i.d. draws, the number B of them at or below the true
//! q-quantile is Binomial(n, q). So the true quantile lies between the j-th and the k-th smallest
//! recorded values with probability P(j ≤ B < k); we pick the ranks j and k that put at most
//! 2.5 % in each tail (exact binomial tails when n·q·(1−q) is small, where the normal
//! approximation fails; the normal approximation with a one-rank margin otherwise). No shape of
//! the latency distribution is assumed; the i.i.d. assumption is the caveat (docs/ci.md).
//!
//! A rank beyond the recorded values means the data cannot bound the quantile on that side (a
//! p99.99 from 5 000 requests): the bound is `None` and the percentile is *not resolved*, as is
//! one whose interval is wider than [`RESOLVED_WIDTH`] of its estimate.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;
/// Two-sided normal quantile for [`LEVEL`].
const Z: f64 = 1.959_963_984_540_054;
/// A percentile is resolved when its interval is bounded and at most this share of its estimate
/// wide (20 %: a p99 of 100 ms known to within about ±10 ms).
pub const RESOLVED_WIDTH: f64 = 0.20;
/// Below this binomial variance the exact tails are summed (the normal approximation is off).
const EXACT_BELOW_VARIANCE: f64 = 50.0;

/// A percentile with its 95 % interval, in the histogram's unit (µs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// The point estimate (the report's figure).
    pub value: u64,
    /// Lower bound; `None` when the data cannot bound it from below.
    pub low: Option<u64>,
    /// Upper bound; `None` when the data cannot bound it from above.
    pub high: Option<u64>,
    /// Bounded and no wider than [`RESOLVED_WIDTH`] of the estimate.
    pub resolved: bool,
}

impl Interval {
    /// The interval of quantile `q` (0 < q < 1) of `h`; `None` for an empty histogram.
    pub fn of(h: &Histogram<u64>, q: f64) -> Option<Interval> {
        if h.is_empty() {
            return None;
        }
        let n = h.len();
        let (j, k) = rank_bounds(n, q);
        let low = j.map(|r| h.lowest_equivalent(value_at_rank(h, r)));
        let high = k.map(|r| h.highest_equivalent(value_at_rank(h, r)));
        let value = h.value_at_quantile(q);
        Some(Interval {
            value,
            low,
            high,
            resolved: resolved(value, low, high),
        })
    }

    /// The interval's width relative to the estimate (`None` when unbounded).
    pub fn relative_width(&self) -> Option<f64> {
        let (lo, hi) = (self.low?, self.high?);
        Some((hi - lo) as f64 / (self.value.max(1)) as f64)
    }
}

/// The percentiles every report carries, as named in its JSON stats objects.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
];

/// The report's `confidence_us`: every percentile of the three clocks with its interval.
#[derive(Clone, Debug, Serialize)]
pub struct Confidence {
    pub level: f64,
    pub method: &'static str,
    /// The share of its estimate an interval may span and still count as resolved.
    pub resolved_width: f64,
    pub latency: ClockIntervals,
    pub service_time: ClockIntervals,
    pub send_lag: ClockIntervals,
}

/// Intervals of one clock's percentiles (`null` each when nothing was recorded).
#[derive(Clone, Debug, Serialize)]
pub struct ClockIntervals {
    pub p50: Option<Interval>,
    pub p90: Option<Interval>,
    pub p95: Option<Interval>,
    pub p99: Option<Interval>,
    pub p999: Option<Interval>,
    pub p9999: Option<Interval>,
}

impl ClockIntervals {
    pub fn of(h: &Histogram<u64>) -> ClockIntervals {
        ClockIntervals {
            p50: Interval::of(h, 0.50),
            p90: Interval::of(h, 0.90),
            p95: Interval::of(h, 0.95),
            p99: Interval::of(h, 0.99),
            p999: Interval::of(h, 0.999),
            p9999: Interval::of(h, 0.9999),
        }
    }

    /// In the order of [`PERCENTILES`].
    pub fn all(&self) -> [Option<Interval>; 6] {
        [
            self.p50, self.p90, self.p95, self.p99, self.p999, self.p9999,
        ]
    }
}

impl Confidence {
    pub fn of(latency: &Histogram<u64>, service: &Histogram<u64>, lag: &Histogram<u64>) -> Self {
        Confidence {
            level: LEVEL,
            method: "binomial order statistics (distribution-free; assumes i.i.d. samples)",
            resolved_width: RESOLVED_WIDTH,
            latency: ClockIntervals::of(latency),
            service_time: ClockIntervals::of(service),
            send_lag: ClockIntervals::of(lag),
        }
    }
}

fn resolved(value: u64, low: Option<u64>, high: Option<u64>) -> bool {
    match (low, high) {
        (Some(lo), Some(hi)) => (hi.saturating_sub(lo)) as f64 <= RESOLVED_WIDTH * value as f64,
        _ => false,
    }
}

/// 1-based ranks (j, k) of the order statistics bounding the q-quantile of n i.i.d. values with
/// at least [`LEVEL`] confidence; `None` for a side the n values cannot bound.
pub fn rank_bounds(n: u64, q: f64) -> (Option<u64>, Option<u64>) {
    let tail = (1.0 - LEVEL) / 2.0;
    let nf = n as f64;
    let var = nf * q * (1.0 - q);
    let (j, k) = if var >= EXACT_BELOW_VARIANCE {
        let sd = var.sqrt();
        let j = (nf * q - Z * sd).floor();
        let k = (nf * q + Z * sd).ceil() + 1.0;
        (j as i64, k as i64)
    } else {
        exact_ranks(n, q, tail)
    };
    let j = (j >= 1).then_some(j as u64);
    let k = (k >= 1 && k as u64 <= n).then_some(k as u64);
    (j, k)
}

/// Exact binomial ranks: the largest j with P(B < j) ≤ tail and the smallest k with
/// P(B ≥ k) ≤ tail, B ~ Binomial(n, q). Summed from whichever end holds the mass.
fn exact_ranks(n: u64, q: f64, tail: f64) -> (i64, i64) {
    let n_i = n as i64;
    if q <= 0.5 {
        // cdf[i] = P(B ≤ i) for small i, where the mass is.
        let cdf = small_cdf(n, q);
        // j: largest with P(B ≤ j−1) ≤ tail.
        let mut j = 0i64;
        while (j as usize) < cdf.len() && cdf[j as usize] <= tail {
            j += 1;
        }
        // k: smallest with P(B ≥ k) = 1 − P(B ≤ k−1) ≤ tail.
        let mut k = 1i64;
        while ((k - 1) as usize) < cdf.len() && 1.0 - cdf[(k - 1) as usize] > tail {
            k += 1;
        }
        (j, k.min(n_i + 1))
    } else {
        // By symmetry on C = n − B ~ Binomial(n, 1−q).
        let cdf = small_cdf(n, 1.0 - q);
        // P(B < j) = P(C > n − j) = 1 − P(C ≤ n−j) ≤ tail ⇔ P(C ≤ n−j) ≥ 1 − tail.
        let mut m = 0i64; // smallest m with P(C ≤ m) ≥ 1 − tail ⇒ j = n − m
        while (m as usize) < cdf.len() && cdf[m as usize] < 1.0 - tail {
            m += 1;
        }
        let j = n_i - m;
        // P(B ≥ k) = P(C ≤ n − k) ≤ tail: k = n − (largest m with P(C ≤ m) ≤ tail).
        let mut m2 = -1i64;
        while ((m2 + 1) as usize) < cdf.len() && cdf[(m2 + 1) as usize] <= tail {
            m2 += 1;
        }
        let k = n_i - m2;
        (j, k)
    }
}

/// P(B ≤ i) for B ~ Binomial(n, p), p ≤ 0.5, for i from 0 until the mass is all but summed (or n).
fn small_cdf(n: u64, p: f64) -> Vec<f64> {
    let mut cdf = Vec::new();
    if p <= 0.0 {
        cdf.push(1.0);
        return cdf;
    }
    let nf = n as f64;
    // log pmf(0) = n ln(1−p); the ratio pmf(i+1)/pmf(i) = (n−i)/(i+1) · p/(1−p).
    let mut log_pmf = nf * (-p).ln_1p();
    let ratio = p / (1.0 - p);
    let mut acc = 0.0;
    let mut i = 0u64;
    loop {
        acc += log_pmf.exp();
        cdf.push(acc.min(1.0));
        if i >= n || acc >= 1.0 - 1e-12 {
            break;
        }
        log_pmf += ((nf - i as f64) / (i as f64 + 1.0) * ratio).ln();
        i += 1;
    }
    cdf
}

/// The r-th smallest recorded value (1-based rank), at bucket resolution.
fn value_at_rank(h: &Histogram<u64>, r: u64) -> u64 {
    let mut seen = 0u64;
    for v in h.iter_recorded() {
        seen += v.count_at_value();
        if seen >= r {
            return v.value_iterated_to();
        }
    }
    h.max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Rng;

    fn hist() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
    }

    #[test]
    fn ranks_table() {
        // (n, q, lower rank, upper rank); exact ones checked against binomial tables.
        let cases: [(u64, f64, Option<u64>, Option<u64>); 5] = [
            // p99.99 of 5 000: cannot be bounded above.
            (5_000, 0.9999, Some(4_998), None),
            // The median of 10: ranks 2 and 9 (P = 0.979; 3..8 would give only 0.891).
            (10, 0.5, Some(2), Some(9)),
            // p99 of 100: only the lower side is bounded.
            (100, 0.99, Some(97), None),
            // A large n: normal approximation.
            (1_000_000, 0.99, Some(989_804), Some(990_197)),
            (1, 0.5, None, None),
        ];
        for (n, q, j, k) in cases {
            assert_eq!(rank_bounds(n, q), (j, k), "n={n} q={q}");
        }
    }

    #[test]
    fn exact_and_normal_agree_where_both_hold() {
        // Variance just above the switch: exact ranks within one of the normal ones.
        let (n, q) = (6_000u64, 0.99);
        let (jn, kn) = rank_bounds(n, q);
        let (je, ke) = exact_ranks(n, q, (1.0 - LEVEL) / 2.0);
        assert!((jn.unwrap() as i64 - je).abs() <= 2, "{jn:?} vs {je}");
        assert!((kn.unwrap() as i64 - ke).abs() <= 2, "{kn:?} vs {ke}");
    }

    /// On a distribution with a known quantile (exponential, mean 1 ms), over seeded
    /// repetitions, the 95 % interval covers the true quantile about 95 % of the time (at least:
    /// order-statistic intervals are conservative).
    #[test]
    fn coverage_on_a_known_distribution() {
        let mut rng = Rng::new(42);
        for (n, q) in [
            (2_000u64, 0.5f64),
            (2_000, 0.99),
            (300, 0.9),
            (20_000, 0.999),
        ] {
            let truth = -(1.0 - q).ln() * 1000.0; // µs
            let reps = 400;
            let mut covered = 0;
            for _ in 0..reps {
                let mut h = hist();
                for _ in 0..n {
                    let v = (rng.exp1() * 1000.0).max(1.0);
                    h.record(v as u64).unwrap();
                }
                let i = Interval::of(&h, q).unwrap();
                let lo = i.low.map_or(0.0, |x| x as f64);
                let hi = i.high.map_or(f64::INFINITY, |x| x as f64);
                if lo <= truth && truth <= hi {
                    covered += 1;
                }
            }
            let rate = covered as f64 / reps as f64;
            // 95 % nominal; 400 reps ⇒ a binomial s.d. of 1.1 %: 92 % is three below.
            assert!(rate >= 0.92, "n={n} q={q}: coverage {rate}");
            assert!(rate <= 0.995 || n < 1000, "n={n} q={q}: coverage {rate}");
        }
    }

    #[test]
    fn unresolved_when_the_data_cannot_bound_it() {
        let mut h = hist();
        for v in 1..=5_000 {
            h.record(v).unwrap();
        }
        let p9999 = Interval::of(&h, 0.9999).unwrap();
        assert_eq!(p9999.high, None);
        assert!(!p9999.resolved);
        let p50 = Interval::of(&h, 0.5).unwrap();
        assert!(p50.resolved, "{p50:?}");
        assert!(p50.low.unwrap() <= 2_500 && p50.high.unwrap() >= 2_500);
    }
}

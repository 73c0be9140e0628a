//! A report against a baseline: every percentile and share side by side, the change with its
//! confidence, and a regression verdict that needs the change to be both larger than the allowed
//! regression *and* statistically clear, so noise does not fail a build.
//!
//! - **One run each** (`compare BASE NEW`, `run --baseline`): the percentiles come from the
//!   lossless histograms in the reports (never the rounded figures), each with its
//!   distribution-free 95 % interval ([`super::confidence`]). A change is *clear* when the two
//!   intervals do not overlap; the change's interval is the conservative one they imply
//!   (new.low / base.high − 1 to new.high / base.low − 1).
//! - **Replicated runs** (`compare --replicas B1 B2 … -- N1 N2 …`): run-to-run noise (another
//!   process on the CI machine, a cold cache) is larger than any one run's sampling error, and
//!   replicas are how to measure it. The change is the ratio of the replicas' geometric means,
//!   and its interval Welch's t interval over the replicas ([`super::replicas`]: a percentile
//!   bootstrap of 2 or 3 replicas is far too narrow); it is clear when that interval excludes
//!   zero.
//!
//! What is gated by default: latency and service time at p50, p90 and p99 (at 10 %), and the
//! error and rejected shares (at 1 percentage point: a faster target that fails half its
//! requests has regressed, whatever its latency). Any other figure (a higher percentile) can be
//! gated by naming it in `--max-regression`. Shares are compared in percentage points with
//! Wilson intervals.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use super::confidence::Interval;
use super::replicas::diff;
use super::{share, Observed};
use crate::report::format_us;
use crate::report::hist;

/// The allowed regression when `--max-regression` gives none for all figures.
pub const DEFAULT_MAX_REGRESSION: f64 = 0.10;
/// Shares gated by default, each with its allowed rise in percentage points (as a fraction):
/// one point is far above the A/A noise of a healthy target (zero errors both times) and far
/// below a failing deploy's, and a relative allowance would be meaningless from a zero base.
pub const DEFAULT_GATED_SHARES: [(&str, f64); 2] = [("errors.rate", 0.01), ("rejected.rate", 0.01)];
/// Times gated by default (at the global `--max-regression`).
pub const DEFAULT_GATED: [&str; 6] = [
    "latency.p50",
    "latency.p90",
    "latency.p99",
    "service_time.p50",
    "service_time.p90",
    "service_time.p99",
];

const CLOCKS: [&str; 4] = ["latency", "service_time", "send_lag", "latency_ok"];
/// Every percentile a report carries (p50, p90, p95, p99, p999, p9999), compared and gateable.
const QUANTILES: [(&str, f64); 6] = super::confidence::PERCENTILES;
const SHARES: [&str; 4] = ["ok", "rejected", "errors", "dropped"];

/// A report that cannot be compared.
#[derive(Debug, thiserror::Error)]
#[error("cannot compare '{file}': {reason}")]
pub struct CompareError {
    pub file: String,
    pub reason: String,
}

/// `--max-regression`: a global share and per-figure ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub global: f64,
    pub per_metric: Vec<(String, f64)>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global: DEFAULT_MAX_REGRESSION,
            per_metric: Vec::new(),
        }
    }
}

impl Limits {
    /// Parses `10%` (all gated figures) or `latency.p999=20%` (one figure, gated from then on).
    pub fn parse(specs: &[String]) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for spec in specs {
            match spec.split_once('=') {
                None => limits.global = percent(spec)?,
                Some((metric, value)) => {
                    let metric = metric.trim();
                    if !known_metric(metric) {
                        return Err(format!(
                            "unknown figure '{metric}' in '{spec}' (e.g. latency.p99=5%, service_time.p999=20%, errors.rate=1%)"
                        ));
                    }
                    limits
                        .per_metric
                        .push((metric.to_string(), percent(value)?));
                }
            }
        }
        Ok(limits)
    }

    /// The allowed regression of `metric`, if it is gated.
    fn of(&self, metric: &str) -> Option<f64> {
        if let Some((_, x)) = self.per_metric.iter().rev().find(|(m, _)| m == metric) {
            return Some(*x);
        }
        if let Some((_, x)) = DEFAULT_GATED_SHARES.iter().find(|(m, _)| *m == metric) {
            return Some(*x);
        }
        DEFAULT_GATED.contains(&metric).then_some(self.global)
    }
}

fn percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x * scale),
        _ => Err(format!(
            "'{s}' is not a share (write 10% or 0.1, or FIGURE=5%)"
        )),
    }
}

fn known_metric(m: &str) -> bool {
    let Some((head, tail)) = m.split_once('.') else {
        return false;
    };
    (CLOCKS.contains(&head) && QUANTILES.iter().any(|(n, _)| *n == tail))
        || (SHARES.contains(&head) && tail == "rate")
}

/// What a report says, read from its JSON (schema 4 or later).
#[derive(Clone, Debug)]
pub struct Side {
    pub label: String,
    hists: Vec<Histogram<u64>>,
    /// completed, scheduled, and the counts of [`SHARES`].
    completed: u64,
    scheduled: u64,
    counts: [u64; 4],
    achieved: f64,
    trustworthy: bool,
    /// Conditions that should match between the two sides: (name, shown value).
    conditions: Vec<(&'static str, String)>,
}

impl Side {
    pub fn from_json(label: &str, v: &Value) -> Result<Side, CompareError> {
        let err = |reason: String| CompareError {
            file: label.to_string(),
            reason,
        };
        let version = v["schema_version"].as_u64().unwrap_or(0);
        if version < 4 {
            return Err(err(format!(
                "it is not a metronome report of schema version 4 or later (schema_version {}): only those carry the histograms a comparison needs; run the test again with this metronome and --json",
                v["schema_version"]
            )));
        }
        let mut hists = Vec::new();
        for clock in CLOCKS {
            let text = v["histograms"][clock]
                .as_str()
                .ok_or_else(|| err(format!("histograms.{clock} is missing")))?;
            hists.push(hist::decode(text).map_err(|e| err(format!("histograms.{clock}: {e}")))?);
        }
        let c = &v["counts"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        let errors = [
            "http_error",
            "timeout",
            "connect_error",
            "transport_error",
            "local_error",
        ]
        .iter()
        .map(|k| n(k))
        .sum();
        Ok(Side {
            label: label.to_string(),
            hists,
            completed: n("completed"),
            scheduled: n("scheduled"),
            counts: [n("ok"), n("rejected"), errors, n("dropped")],
            achieved: v["rate"]["achieved"].as_f64().unwrap_or(0.0),
            trustworthy: v["verdict"]["trustworthy"].as_bool().unwrap_or(false),
            conditions: conditions(v),
        })
    }

    fn percentile(&self, clock: usize, q: f64) -> Option<Observed> {
        super::clock_figure(&self.hists[clock], super::expr::Stat::Quantile(q))
    }

    fn share(&self, i: usize) -> Option<Observed> {
        let of = if SHARES[i] == "dropped" {
            self.scheduled
        } else {
            self.completed
        };
        (of > 0).then(|| share(self.counts[i], of))
    }
}

/// The conditions of a report that should match between compared runs: (name, shown value).
/// The profile is its shape without the Poisson seed: each run draws its own, and two runs of
/// the same Poisson profile are the same condition (the arrivals process itself still counts).
fn conditions(v: &Value) -> Vec<(&'static str, String)> {
    let show = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut profile = show(&v["profile"]["shape"]);
    if let Some(seed) = v["profile"]["seed"].as_u64() {
        profile = profile.replace(&format!(" seed {seed}"), "");
    }
    vec![
        ("target", show(&v["target"])),
        ("protocol", show(&v["protocol"])),
        ("method", show(&v["method"])),
        ("mode", show(&v["mode"])),
        ("profile", profile),
        ("rate", show(&v["rate"]["target"])),
        ("duration", show(&v["duration_s"])),
        ("connections", show(&v["settings"]["connections"])),
        ("max connections", show(&v["settings"]["max_connections"])),
    ]
}

/// One figure compared.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `latency.p99`, `errors.rate`, `rate.achieved`.
    pub metric: String,
    /// `us`, `share` or `per_second`.
    pub unit: &'static str,
    pub base: Option<f64>,
    pub base_low: Option<f64>,
    pub base_high: Option<f64>,
    pub new: Option<f64>,
    pub new_low: Option<f64>,
    pub new_high: Option<f64>,
    /// Relative change for times and rates (0.2 = +20 %); difference in shares for shares.
    pub change: Option<f64>,
    pub change_low: Option<f64>,
    pub change_high: Option<f64>,
    /// The interval of the change excludes zero.
    pub clear: bool,
    /// The allowed regression, if this figure is gated.
    pub max_regression: Option<f64>,
    /// Gated, worse by more than allowed, and clear.
    pub regressed: bool,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub base: Vec<String>,
    pub new: Vec<String>,
    /// `intervals` (one run each) or `welch` (replicas: Welch's t interval).
    pub method: &'static str,
    pub rows: Vec<Row>,
    /// Conditions that differ between the runs, and untrustworthy inputs.
    pub warnings: Vec<String>,
    /// A gated figure regressed.
    pub regressed: bool,
    /// Every input's generator kept its schedule.
    pub trustworthy: bool,
}

impl Comparison {
    /// Exit code: 3 if an input was untrustworthy, 1 on a regression, else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.trustworthy {
            crate::report::EXIT_UNTRUSTWORTHY
        } else if self.regressed {
            super::EXIT_BREACHED
        } else {
            0
        }
    }
}

/// Compares replicated runs (one each is the common case).
pub fn compare(base: &[Side], new: &[Side], limits: &Limits) -> Comparison {
    let replicated = base.len() > 1 || new.len() > 1;
    let mut rows = Vec::new();
    for (ci, clock) in CLOCKS.iter().enumerate() {
        for (qn, q) in QUANTILES {
            let metric = format!("{clock}.{qn}");
            let b: Vec<_> = base.iter().map(|s| s.percentile(ci, q)).collect();
            let n: Vec<_> = new.iter().map(|s| s.percentile(ci, q)).collect();
            rows.push(row(&metric, "us", &b, &n, limits, replicated, false));
        }
    }
    for (i, name) in SHARES.iter().enumerate() {
        let metric = format!("{name}.rate");
        let b: Vec<_> = base.iter().map(|s| s.share(i)).collect();
        let n: Vec<_> = new.iter().map(|s| s.share(i)).collect();
        // A lower ok share is the regression.
        let worse_down = *name == "ok";
        let mut r = row(&metric, "share", &b, &n, limits, replicated, true);
        if worse_down {
            r.regressed = r.max_regression.is_some_and(|m| {
                r.clear
                    && r.change.is_some_and(|c| -c > m)
                    && r.change_high.is_some_and(|h| h < 0.0)
            });
        }
        rows.push(r);
    }
    let achieved = |s: &[Side]| -> Vec<Option<Observed>> {
        s.iter()
            .map(|x| Some(Observed::exact(x.achieved)))
            .collect()
    };
    rows.push(row(
        "rate.achieved",
        "per_second",
        &achieved(base),
        &achieved(new),
        &Limits {
            global: 0.0,
            per_metric: Vec::new(),
        },
        replicated,
        false,
    ));
    let mut warnings = condition_warnings(base, new);
    let mut trustworthy = true;
    for s in base.iter().chain(new) {
        if !s.trustworthy {
            trustworthy = false;
            warnings.push(format!(
                "{} is an UNTRUSTWORTHY measurement (the generator did not keep its schedule): its figures are not the target's",
                s.label
            ));
        }
    }
    Comparison {
        base: base.iter().map(|s| s.label.clone()).collect(),
        new: new.iter().map(|s| s.label.clone()).collect(),
        method: if replicated { "welch" } else { "intervals" },
        regressed: rows.iter().any(|r| r.regressed),
        rows,
        warnings,
        trustworthy,
    }
}

/// One figure: the change and whether it is a gated, clear regression (higher is worse).
#[allow(clippy::too_many_arguments)]
fn row(
    metric: &str,
    unit: &'static str,
    base: &[Option<Observed>],
    new: &[Option<Observed>],
    limits: &Limits,
    replicated: bool,
    absolute: bool,
) -> Row {
    let max_regression = limits.of(metric);
    let mut r = Row {
        metric: metric.to_string(),
        unit,
        base: None,
        base_low: None,
        base_high: None,
        new: None,
        new_low: None,
        new_high: None,
        change: None,
        change_low: None,
        change_high: None,
        clear: false,
        max_regression,
        regressed: false,
    };
    let (Some(b), Some(n)) = (all(base), all(new)) else {
        return r;
    };
    let (change, low, high) = if replicated {
        let Some(c) = super::replicas::change(&b, &n, absolute) else {
            return r;
        };
        r.base = Some(c.base);
        r.new = Some(c.new);
        (Some(c.change), c.low, c.high)
    } else {
        let (b, n) = (b[0], n[0]);
        r.base = Some(b.value);
        r.base_low = b.low;
        r.base_high = b.high;
        r.new = Some(n.value);
        r.new_low = n.low;
        r.new_high = n.high;
        let low = match (n.low, b.high) {
            (Some(nl), Some(bh)) => diff(bh, nl, absolute),
            _ => None,
        };
        let high = match (n.high, b.low) {
            (Some(nh), Some(bl)) => diff(bl, nh, absolute),
            _ => None,
        };
        (diff(b.value, n.value, absolute), low, high)
    };
    r.change = change.map(round6);
    r.change_low = low.map(round6);
    r.change_high = high.map(round6);
    r.clear = low.is_some_and(|l| l > 0.0) || high.is_some_and(|h| h < 0.0);
    r.regressed = max_regression
        .is_some_and(|m| change.is_some_and(|c| c > m) && low.is_some_and(|l| l > 0.0));
    r
}

fn all(v: &[Option<Observed>]) -> Option<Vec<Observed>> {
    v.iter().copied().collect()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn condition_warnings(base: &[Side], new: &[Side]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(first) = base.first() else {
        return out;
    };
    for other in base.iter().skip(1).chain(new) {
        for ((name, a), (_, b)) in first.conditions.iter().zip(&other.conditions) {
            if a != b {
                out.push(format!(
                    "conditions differ: {name} is {a} in {} but {b} in {}; the comparison may measure the change of conditions, not of the target",
                    first.label, other.label
                ));
            }
        }
    }
    out
}

/// Reads a report file for comparison.
pub fn load(path: &std::path::Path) -> Result<Side, CompareError> {
    let label = path.display().to_string();
    let err = |reason: String| CompareError {
        file: label.clone(),
        reason,
    };
    let text = crate::input::read_text(path, 256 << 20, "report")
        .map_err(|e| err(format!("{e} (give a report written with --json)")))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| err(format!("not JSON ({e}); give a report written with --json")))?;
    Side::from_json(&label, &v)
}

/// The side-by-side table.
pub fn render(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "compare: {} → {} ({})",
        c.base.join(", "),
        c.new.join(", "),
        if c.method == "welch" {
            "replicas: geometric means (shares: means), 95% Welch t interval of the change"
        } else {
            "95% distribution-free intervals"
        }
    );
    for w in &c.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    let _ = writeln!(
        s,
        "  {:<18} {:>26} {:>26} {:>26}  gate",
        "figure", "base", "new", "change"
    );
    for r in &c.rows {
        let _ = writeln!(
            s,
            "  {:<18} {:>26} {:>26} {:>26}  {}",
            r.metric,
            value_cell(r.unit, r.base, r.base_low, r.base_high),
            value_cell(r.unit, r.new, r.new_low, r.new_high),
            change_cell(r),
            gate_cell(r)
        );
    }
    let _ = writeln!(
        s,
        "  verdict    {}",
        match (c.trustworthy, c.regressed) {
            (false, _) => "UNTRUSTWORTHY input (see the warnings): no verdict",
            (true, true) => "REGRESSION: a gated figure got worse by more than allowed, clearly",
            (true, false) => "no clear regression beyond the allowed",
        }
    );
    s
}

fn fmt_value(unit: &str, x: f64) -> String {
    match unit {
        "us" => format_us(x.round() as u64),
        "share" => format!("{:.2}%", x * 100.0),
        _ => format!("{x:.1}/s"),
    }
}

fn value_cell(unit: &str, v: Option<f64>, lo: Option<f64>, hi: Option<f64>) -> String {
    let Some(v) = v else { return "-".into() };
    let b = |x: Option<f64>| x.map_or("?".to_string(), |x| fmt_value(unit, x));
    if lo.is_none() && hi.is_none() {
        return fmt_value(unit, v);
    }
    format!("{} [{}, {}]", fmt_value(unit, v), b(lo), b(hi))
}

fn change_cell(r: &Row) -> String {
    let Some(c) = r.change else { return "-".into() };
    let f = |x: f64| {
        if r.unit == "share" {
            format!("{:+.2}pp", x * 100.0)
        } else {
            format!("{:+.1}%", x * 100.0)
        }
    };
    let b = |x: Option<f64>| x.map_or("?".to_string(), f);
    format!("{} [{}, {}]", f(c), b(r.change_low), b(r.change_high))
}

fn gate_cell(r: &Row) -> String {
    let Some(m) = r.max_regression else {
        return String::new();
    };
    let allowed = if r.unit == "share" {
        format!("{:.2}pp", m * 100.0)
    } else {
        format!("{:.0}%", m * 100.0)
    };
    if r.regressed {
        format!("REGRESSION (> {allowed}, clear)")
    } else if r.change.is_none() {
        format!("not judged (≤ {allowed})")
    } else {
        format!("ok (≤ {allowed} or within noise)")
    }
}

/// An interval for a percentile of one histogram (for tests and tools).
pub fn percentile(h: &Histogram<u64>, q: f64) -> Option<Interval> {
    Interval::of(h, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Rng;

    fn side(label: &str, scale: f64, n: usize, seed: u64) -> Side {
        let mut rng = Rng::new(seed);
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for _ in 0..n {
            h.record(((5_000.0 + rng.exp1() * 500.0) * scale) as u64)
                .unwrap();
        }
        Side {
            label: label.into(),
            hists: vec![h.clone(), h.clone(), h.clone(), h],
            completed: n as u64,
            scheduled: n as u64,
            counts: [n as u64, 0, 0, 0],
            achieved: 100.0,
            trustworthy: true,
            conditions: vec![("rate", "100".into())],
        }
    }

    #[test]
    fn a_clear_regression_is_flagged_and_noise_is_not() {
        let limits = Limits::default();
        let same = compare(
            &[side("a", 1.0, 5000, 1)],
            &[side("b", 1.0, 5000, 2)],
            &limits,
        );
        assert!(!same.regressed, "{}", render(&same));
        let slow = compare(
            &[side("a", 1.0, 5000, 1)],
            &[side("b", 1.2, 5000, 2)],
            &limits,
        );
        assert!(slow.regressed, "{}", render(&slow));
        let p50 = slow
            .rows
            .iter()
            .find(|r| r.metric == "latency.p50")
            .unwrap();
        assert!(p50.regressed && p50.clear);
        assert!((p50.change.unwrap() - 0.2).abs() < 0.03, "{p50:?}");
        // +20 % but only 20 requests: not clear, so not a regression.
        let few = compare(&[side("a", 1.0, 20, 1)], &[side("b", 1.2, 20, 2)], &limits);
        let p99 = few.rows.iter().find(|r| r.metric == "latency.p99").unwrap();
        assert!(!p99.regressed, "{p99:?}");
    }

    #[test]
    fn replicas_use_welch_intervals() {
        let limits = Limits::default();
        let base: Vec<Side> = (0..3).map(|i| side("b", 1.0, 3000, i)).collect();
        let same: Vec<Side> = (10..13).map(|i| side("n", 1.0, 3000, i)).collect();
        let slow: Vec<Side> = (10..13).map(|i| side("n", 1.25, 3000, i)).collect();
        let c = compare(&base, &same, &limits);
        assert!(c.rows.iter().any(|r| r.metric == "service_time.p95"));
        assert_eq!(c.method, "welch");
        assert!(!c.regressed, "{}", render(&c));
        assert!(compare(&base, &slow, &limits).regressed);
    }

    #[test]
    fn a_rise_in_errors_or_rejections_is_a_regression_by_default() {
        let limits = Limits::default();
        let with = |label: &str, rejected: u64, errors: u64, seed: u64| {
            let mut s = side(label, 1.0, 5000, seed);
            s.counts = [5000 - rejected - errors, rejected, errors, 0];
            s
        };
        let gated = |c: &Comparison, m: &str| {
            c.rows
                .iter()
                .find(|r| r.metric == m)
                .is_some_and(|r| r.regressed)
        };
        // Half the requests fail: flagged, though latency did not change.
        let c = compare(&[with("a", 0, 0, 1)], &[with("b", 0, 2500, 2)], &limits);
        assert!(c.regressed && gated(&c, "errors.rate"), "{}", render(&c));
        let c = compare(&[with("a", 0, 0, 1)], &[with("b", 400, 0, 2)], &limits);
        assert!(c.regressed && gated(&c, "rejected.rate"), "{}", render(&c));
        // A few errors either way (0.1 % against 0.3 %) are within the allowance.
        let c = compare(&[with("a", 0, 5, 1)], &[with("b", 0, 15, 2)], &limits);
        assert!(!c.regressed, "{}", render(&c));
        // Replicas of a healthy target, zero errors each: never flagged.
        let base: Vec<Side> = (0..3).map(|i| with("b", 0, 0, i)).collect();
        let new: Vec<Side> = (10..13).map(|i| with("n", 0, 0, i)).collect();
        assert!(!compare(&base, &new, &limits).regressed);
    }

    #[test]
    fn mismatched_conditions_warn() {
        let a = side("a", 1.0, 100, 1);
        let mut b = side("b", 1.0, 100, 2);
        b.conditions = vec![("rate", "200".into())];
        let c = compare(&[a], &[b], &Limits::default());
        assert!(
            c.warnings.iter().any(|w| w.contains("rate is 100")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn the_poisson_seed_is_no_condition() {
        let report = |seed: u64, arrivals: &str| {
            serde_json::json!({
                "target": "http://127.0.0.1:8080/",
                "profile": {
                    "shape": if arrivals == "poisson" {
                        format!("constant 50/s for 1s, poisson seed {seed}")
                    } else {
                        "constant 50/s for 1s".to_string()
                    },
                    "seed": seed,
                },
            })
        };
        assert_eq!(
            conditions(&report(6340350899637469206, "poisson")),
            conditions(&report(17, "poisson"))
        );
        // Poisson against uniform arrivals is still a difference of conditions.
        assert_ne!(
            conditions(&report(17, "poisson")),
            conditions(&report(17, "uniform"))
        );
    }

    #[test]
    fn limits_parse() {
        let l = Limits::parse(&[
            "5%".into(),
            "latency.p999=20%".into(),
            "errors.rate=1%".into(),
        ])
        .unwrap();
        assert_eq!(l.global, 0.05);
        assert_eq!(l.of("latency.p99"), Some(0.05));
        assert_eq!(l.of("latency.p999"), Some(0.2));
        assert_eq!(l.of("errors.rate"), Some(0.01));
        assert_eq!(l.of("send_lag.p99"), None);
        // The shares' default allowance is in points, not the global share of the times.
        let l = Limits::parse(&["50%".into(), "errors.rate=5%".into()]).unwrap();
        assert_eq!(l.of("rejected.rate"), Some(0.01));
        assert_eq!(l.of("errors.rate"), Some(0.05));
        assert_eq!(l.of("ok.rate"), None);
        assert!(Limits::parse(&["latncy.p99=5%".into()]).is_err());
        // Every percentile a report carries can be gated, p95 included.
        for (name, _) in super::super::confidence::PERCENTILES {
            let spec = format!("latency.{name}=3%");
            let l = Limits::parse(std::slice::from_ref(&spec)).expect(&spec);
            assert_eq!(l.of(&format!("latency.{name}")), Some(0.03));
        }
        assert!(Limits::parse(&["ten".into()]).is_err());
    }
}

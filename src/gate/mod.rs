//! CI performance gates: thresholds over the report (with their confidence), per-window checks
//! while the run goes, baseline comparison and JUnit output.
//!
//! - [`expr`]: the threshold language, parsed and checked before anything is sent;
//! - [`confidence`]: distribution-free percentile intervals;
//! - [`windows`]: `for each 1s` thresholds, judged on every snapshot the run publishes;
//! - [`compare`]: a report against a baseline (or replicated runs against replicated runs);
//! - [`junit`]: the verdicts as JUnit XML for CI systems;
//! - [`until`]: `--until-confident`, a run that stops once a percentile is known well enough.
//!
//! A threshold passes or fails on the point estimate (as k6 and Nighthawk judge); its interval
//! is shown beside it, and `clear` says whether the whole interval is on the verdict's side, so
//! a pass by a hair on 300 requests reads differently from a pass by a mile.

pub mod compare;
pub mod confidence;
pub mod expr;
pub mod junit;
pub mod replicas;
pub mod until;
pub mod windows;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::record::{Group, Tally};
use crate::report::{Report, StageReport};
pub use expr::{parse, ExprError, Metric, Op, Operand, Scope, Threshold};
use expr::{Clock, Counter, Kind, Stat};

/// Exit code of a run whose thresholds (or baseline comparison) failed.
pub const EXIT_BREACHED: u8 = 1;

/// A threshold that cannot be used, and where it was written.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{origin}: {error}")]
    Threshold { origin: String, error: ExprError },
    #[error("{origin}: threshold '{threshold}' names stage '{stage}', which the load shape does not have (its stages: {known})")]
    UnknownStage {
        origin: String,
        threshold: String,
        stage: String,
        known: String,
    },
}

/// The thresholds of a run, each with where it was written (for messages).
#[derive(Clone, Debug, Default)]
pub struct Gate {
    pub thresholds: Vec<Threshold>,
    /// Where each threshold was written: `--threshold` or `FILE:LINE:COL`.
    pub origins: Vec<String>,
    /// Stop the run (gracefully, full report) as soon as a threshold that can be judged early
    /// has failed.
    pub abort_on_fail: bool,
}

impl Gate {
    /// Parses `(origin, text)` pairs: origin is `--threshold` or `FILE:LINE:COL`.
    pub fn parse<'a>(
        items: impl IntoIterator<Item = (String, &'a str)>,
        abort_on_fail: bool,
    ) -> Result<Gate, GateError> {
        let mut gate = Gate {
            abort_on_fail,
            ..Gate::default()
        };
        for (origin, text) in items {
            let t = match parse(text) {
                Ok(t) => t,
                Err(error) => return Err(GateError::Threshold { origin, error }),
            };
            gate.thresholds.push(t);
            gate.origins.push(origin);
        }
        Ok(gate)
    }

    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// Every `stage=NAME` must name a stage of the shape, and the shape must keep per-stage
    /// results (2 to [`crate::record::MAX_STAGES`] stages); checked before the run.
    pub fn check_stages(&self, stages: &[String]) -> Result<(), GateError> {
        for (i, t) in self.thresholds.iter().enumerate() {
            if let Scope::Stage(name) = &t.scope {
                if let Err(known) = stages_known(name, stages) {
                    return Err(GateError::UnknownStage {
                        origin: self
                            .origins
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| "--threshold".into()),
                        threshold: t.text.clone(),
                        stage: name.clone(),
                        known,
                    });
                }
            }
        }
        Ok(())
    }

    /// Judges every threshold on the finished report; `windows` holds what the window watcher
    /// saw (one entry per `for each` threshold, in order).
    pub fn judge(&self, report: &Report, windows: &windows::Seen) -> GateVerdict {
        let results = self
            .thresholds
            .iter()
            .enumerate()
            .map(|(i, t)| match &t.scope {
                Scope::Run => judge_one(t, report),
                Scope::Stage(name) => {
                    match report.profile.stages.iter().find(|s| &s.name == name) {
                        Some(st) => judge_one(t, &StageFigures(st)),
                        None => missing(t, "the stage was not run"),
                    }
                }
                Scope::Each(_) => windows.judged(i, t),
            })
            .collect::<Vec<_>>();
        GateVerdict {
            passed: results.iter().all(|r| r.passed),
            results,
            aborted_by: windows.aborted_by.clone(),
        }
    }
}

/// Whether `stage=NAME` can be judged on a shape of `stages`: it must name one of them, and the
/// shape must keep per-stage results (2 to [`crate::record::MAX_STAGES`] stages). The error
/// lists the stages (or says why there are none to judge).
fn stages_known(name: &str, stages: &[String]) -> Result<(), String> {
    let kept = (2..=crate::record::MAX_STAGES).contains(&stages.len());
    if kept && stages.iter().any(|s| s == name) {
        return Ok(());
    }
    Err(if kept {
        stages.join(", ")
    } else {
        format!(
            "per-stage results are kept for shapes of 2 to {} stages; this one has {}",
            crate::record::MAX_STAGES,
            stages.len()
        )
    })
}

/// [`stages_known`] for a profile's stages, as a message (for `profile check`).
pub fn stage_known(name: &str, stages: &[crate::schedule::StageSpan]) -> Result<(), String> {
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    stages_known(name, &names).map_err(|known| {
        format!("it names stage '{name}', which the profile does not have (its stages: {known})")
    })
}

/// An observed figure and its 95 % interval (in the metric's base unit).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Observed {
    pub value: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Observed {
    fn exact(value: f64) -> Observed {
        Observed {
            value,
            low: Some(value),
            high: Some(value),
        }
    }

    fn rough(value: f64) -> Observed {
        Observed {
            value,
            low: None,
            high: None,
        }
    }
}

/// Something thresholds can read figures from: the whole run, a stage, a window.
pub trait Figures {
    fn figure(&self, m: Metric) -> Option<Observed>;
}

/// The verdict on one threshold.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    /// As written.
    pub threshold: String,
    /// `run`, `stage NAME` or `each 1s`.
    pub scope: String,
    /// `us`, `share`, `requests` or `per_second`.
    pub unit: &'static str,
    /// The figure (for windows: the first failing window's, else the worst window's).
    pub observed: Option<f64>,
    /// Its 95 % interval, where there is one.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// The limit (for `0.99 * rate.target`: the product).
    pub limit: Option<f64>,
    pub passed: bool,
    /// Whether the whole interval lies on the verdict's side (`null` without an interval).
    pub clear: Option<bool>,
    /// For `for each` thresholds.
    pub windows: Option<windows::WindowCount>,
    /// Why there is no figure, or what to know about it.
    pub note: Option<String>,
}

/// Every threshold's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct GateVerdict {
    pub passed: bool,
    pub results: Vec<Judged>,
    /// The threshold whose failure stopped the run early (`--abort-on-fail`).
    pub aborted_by: Option<String>,
}

fn unit(k: Kind) -> &'static str {
    match k {
        Kind::Time => "us",
        Kind::Share => "share",
        Kind::Count => "requests",
        Kind::PerSecond => "per_second",
    }
}

fn scope_name(s: &Scope) -> String {
    match s {
        Scope::Run => "run".into(),
        Scope::Stage(n) => format!("stage {n}"),
        Scope::Each(d) => format!("each {}s", d.as_secs()),
    }
}

/// A threshold with no figure to judge fails: a gate must not pass on nothing measured.
fn missing(t: &Threshold, why: &str) -> Judged {
    Judged {
        threshold: t.text.clone(),
        scope: scope_name(&t.scope),
        unit: unit(t.metric.kind()),
        observed: None,
        low: None,
        high: None,
        limit: None,
        passed: false,
        clear: None,
        windows: None,
        note: Some(why.to_string()),
    }
}

/// The limit a threshold compares with, read from the same figures.
pub fn limit(t: &Threshold, f: &dyn Figures) -> Option<f64> {
    match t.operand {
        Operand::Const(x) => Some(x),
        Operand::Scaled(k, m) => f.figure(m).map(|o| k * o.value),
    }
}

/// Judges `t` on `f` (the scope already chosen).
pub fn judge_one(t: &Threshold, f: &dyn Figures) -> Judged {
    let Some(obs) = f.figure(t.metric) else {
        return missing(t, "nothing was recorded for this figure");
    };
    let Some(lim) = limit(t, f) else {
        return missing(t, "nothing was recorded for the figure on the right");
    };
    let passed = t.op.holds(obs.value, lim);
    let clear = match (obs.low, obs.high) {
        (Some(lo), Some(hi)) => {
            Some(t.op.holds(lo, lim) == passed && t.op.holds(hi, lim) == passed)
        }
        _ => None,
    };
    Judged {
        threshold: t.text.clone(),
        scope: scope_name(&t.scope),
        unit: unit(t.metric.kind()),
        observed: Some(round3(obs.value)),
        low: obs.low.map(round3),
        high: obs.high.map(round3),
        limit: Some(round3(lim)),
        passed,
        clear,
        windows: None,
        note: None,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A clock's statistic with its interval (percentiles only).
pub fn clock_figure(h: &Histogram<u64>, s: Stat) -> Option<Observed> {
    if h.is_empty() {
        return None;
    }
    Some(match s {
        Stat::Min => Observed::exact(h.min() as f64),
        Stat::Max => Observed::exact(h.max() as f64),
        Stat::Mean => Observed::rough(h.mean()),
        Stat::Quantile(q) => {
            let i = confidence::Interval::of(h, q)?;
            Observed {
                value: i.value as f64,
                low: i.low.map(|x| x as f64),
                high: i.high.map(|x| x as f64),
            }
        }
    })
}

/// Counts of a scope, for `COUNTER.count` and `COUNTER.rate`.
struct CountsView {
    completed: u64,
    scheduled: u64,
    ok: u64,
    rejected: u64,
    errors: u64,
    http_errors: u64,
    timeouts: u64,
    dropped: u64,
    cancelled: u64,
}

impl CountsView {
    fn count(&self, c: Counter) -> u64 {
        match c {
            Counter::Requests => self.completed,
            Counter::Ok => self.ok,
            Counter::Rejected => self.rejected,
            Counter::Errors => self.errors,
            Counter::HttpErrors => self.http_errors,
            Counter::Timeouts => self.timeouts,
            Counter::Dropped => self.dropped,
            Counter::Cancelled => self.cancelled,
        }
    }

    fn figure(&self, m: Metric) -> Option<Observed> {
        match m {
            Metric::Count(c) => Some(Observed::exact(self.count(c) as f64)),
            Metric::Share(c) => {
                let of = if c.of_scheduled() {
                    self.scheduled
                } else {
                    self.completed
                };
                (of > 0).then(|| share(self.count(c), of))
            }
            _ => None,
        }
    }
}

/// A share with its 95 % Wilson score interval.
pub fn share(k: u64, n: u64) -> Observed {
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z = 1.959_963_984_540_054_f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Observed {
        value: p,
        low: Some((centre - half).max(0.0)),
        high: Some((centre + half).min(1.0)),
    }
}

impl Figures for Report {
    fn figure(&self, m: Metric) -> Option<Observed> {
        let h = &self.histograms;
        match m {
            Metric::Clock(clock, stat) => clock_figure(
                match clock {
                    Clock::Latency => &h.latency,
                    Clock::ServiceTime => &h.service_time,
                    Clock::SendLag => &h.send_lag,
                    Clock::LatencyOk => &h.latency_ok,
                },
                stat,
            ),
            Metric::RateAchieved => Some(Observed::exact(self.rate.achieved)),
            Metric::RateTarget => self.rate.target.map(Observed::exact),
            _ => {
                let c = &self.counts;
                CountsView {
                    completed: c.completed,
                    scheduled: c.scheduled,
                    ok: c.ok,
                    rejected: c.rejected,
                    errors: c.http_error
                        + c.timeout
                        + c.connect_error
                        + c.transport_error
                        + c.local_error,
                    http_errors: c.http_error,
                    timeouts: c.timeout,
                    dropped: c.dropped,
                    cancelled: c.cancelled + c.unsent_at_stop,
                }
                .figure(m)
            }
        }
    }
}

/// A stage's short summary (values at 2 significant digits, no intervals).
struct StageFigures<'a>(&'a StageReport);

impl Figures for StageFigures<'_> {
    fn figure(&self, m: Metric) -> Option<Observed> {
        let st = self.0;
        let r = st.results.as_ref()?;
        let b = &r.latency_us;
        let v = |x: u64| Some(Observed::rough(x as f64));
        let close = |q: f64, x: f64| (q - x).abs() < 1e-9;
        match m {
            Metric::Clock(Clock::Latency, Stat::Max) => v(b.max),
            Metric::Clock(Clock::Latency, Stat::Quantile(q)) if close(q, 0.5) => v(b.p50),
            Metric::Clock(Clock::Latency, Stat::Quantile(q)) if close(q, 0.9) => v(b.p90),
            Metric::Clock(Clock::Latency, Stat::Quantile(q)) if close(q, 0.99) => v(b.p99),
            Metric::Clock(Clock::Latency, Stat::Quantile(q)) if close(q, 0.999) => v(b.p999),
            Metric::Clock(Clock::SendLag, Stat::Quantile(q)) if close(q, 0.99) => {
                v(r.send_lag_p99_us)
            }
            Metric::Count(_) | Metric::Share(_) => {
                if r.completed + r.dropped == 0 {
                    return None;
                }
                CountsView {
                    completed: r.completed,
                    scheduled: r.completed + r.dropped,
                    ok: r.ok,
                    rejected: r.rejected,
                    errors: r.errors,
                    http_errors: 0,
                    timeouts: 0,
                    dropped: r.dropped,
                    cancelled: 0,
                }
                .figure(m)
            }
            _ => None,
        }
    }
}

/// One window of the run (a snapshot's interval, or several merged), for `for each` thresholds.
pub struct WindowFigures<'a> {
    pub tally: &'a Tally,
    pub sent: u64,
    pub dropped: u64,
    pub seconds: f64,
    pub target_rate: f64,
}

impl Figures for WindowFigures<'_> {
    fn figure(&self, m: Metric) -> Option<Observed> {
        let clocks = &self.tally.clocks;
        let c = &self.tally.counts;
        match m {
            Metric::Clock(clock, stat) => clock_figure(
                match clock {
                    Clock::Latency => &clocks.latency,
                    Clock::ServiceTime => &clocks.service_time,
                    Clock::SendLag => &clocks.send_lag,
                    Clock::LatencyOk => &clocks.latency_by_group[Group::Ok as usize],
                },
                stat,
            ),
            Metric::RateAchieved => Some(Observed::exact(self.sent as f64 / self.seconds)),
            Metric::RateTarget => self
                .target_rate
                .is_finite()
                .then(|| Observed::exact(self.target_rate)),
            _ => CountsView {
                completed: c.completed,
                scheduled: c.completed + self.dropped,
                ok: c.ok,
                rejected: c.rejected,
                errors: c.errors(),
                http_errors: c.http_error,
                timeouts: c.timeout,
                dropped: self.dropped,
                cancelled: 0,
            }
            .figure(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(Metric, Observed)>);

    impl Figures for Fixed {
        fn figure(&self, m: Metric) -> Option<Observed> {
            self.0.iter().find(|(k, _)| *k == m).map(|(_, o)| *o)
        }
    }

    #[test]
    fn judging_table() {
        let p99 = Metric::Clock(Clock::Latency, Stat::Quantile(0.99));
        let obs = |v, lo, hi| Observed {
            value: v,
            low: Some(lo),
            high: Some(hi),
        };
        let figs = Fixed(vec![
            (p99, obs(200_000.0, 190_000.0, 260_000.0)),
            (Metric::RateAchieved, Observed::exact(990.0)),
            (Metric::RateTarget, Observed::exact(1000.0)),
            (Metric::Count(Counter::Errors), Observed::exact(3.0)),
        ]);
        // (threshold, passed, clear)
        let cases = [
            ("latency.p99 < 250ms", true, Some(false)),
            ("latency.p99 < 300ms", true, Some(true)),
            ("latency.p99 < 150ms", false, Some(true)),
            ("rate.achieved >= 0.99 * rate.target", true, Some(true)),
            ("rate.achieved >= rate.target", false, Some(true)),
            ("errors.count == 0", false, Some(true)),
        ];
        for (text, passed, clear) in cases {
            let j = judge_one(&parse(text).unwrap(), &figs);
            assert_eq!((j.passed, j.clear), (passed, clear), "{text}: {j:?}");
        }
        let j = judge_one(&parse("service_time.p50 < 1s").unwrap(), &figs);
        assert!(!j.passed, "no figure, no pass");
        assert!(j.note.is_some());
    }

    #[test]
    fn wilson_share() {
        let s = share(0, 1000);
        assert_eq!(s.value, 0.0);
        assert!(s.high.unwrap() > 0.0 && s.high.unwrap() < 0.01);
        let s = share(50, 100);
        assert!(s.low.unwrap() < 0.5 && s.high.unwrap() > 0.5);
    }
}

//! Load shapes: what the schedule inverts.
//!
//! A [`Shape`] is either an open-loop rate curve ([`Curve`]: a constant rate from `-r`, or any
//! profile of ramps, steps, bursts, sines, tables and replays with overlays, arrivals and
//! scales) or closed-loop saturation (`--rate max`), which has no schedule.
//!
//! Request `n` (zero-based) is due when the area under the rate curve reaches `n`:
//! `t_n = N⁻¹(n)` where `N(t) = ∫₀ᵗ r(s) ds`. For a constant rate `r` this is `t_n = n / r`,
//! computed directly from `n` (never by accumulating intervals), so there is no drift however
//! long the run; [`super::curve`] documents the closed forms and the numeric inverse for the
//! other shapes. A constant shape ends after `count = ⌊r · d⌋` requests for a duration `d` (uniform
//! arrivals; Poisson arrivals on the same window give a random count).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::curve::{secs, Arrivals, Cursor, Curve, StageSpan};
use super::stage::{Overlay, Stage, StageError, StageKind, MAX_RATE};

/// A closed set of load shapes.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// An open-loop schedule: every request's intended start comes from the rate curve.
    Curve(Arc<Curve>),
    /// No schedule: closed-loop saturation for a duration (`--rate max -d`). Each slot sends its
    /// next request as soon as the previous one completes, so latency equals service time and is
    /// subject to coordinated omission; reports say so.
    MaxFor(Duration),
    /// Closed-loop saturation for a number of requests (`--rate max -n`).
    MaxCount(u64),
}

/// Slack for float noise when turning `rate × duration` into a whole count: 1000/s for 2 s must
/// give 2000 requests, not 1999.
const COUNT_EPSILON: f64 = 1e-6;

/// Why a constant-rate or closed-loop shape was refused. It names the quantity (rate, duration,
/// request count), never the flag or key it came from: the caller says where it was written.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeError {
    /// The rate is not a finite number of requests per second above zero.
    RateNotPositive(f64),
    /// The rate is above [`MAX_RATE`].
    RateTooHigh(f64),
    /// The duration is zero.
    ZeroDuration,
    /// `rate × duration` is below one request.
    NoRequest { rate: f64, duration: Duration },
    /// The request count is zero.
    ZeroCount,
    /// The constant stage for this duration was refused (e.g. longer than 366 days).
    DurationRefused {
        duration: Duration,
        cause: StageError,
    },
    /// The constant stage for this request count was refused (e.g. longer than 366 days).
    CountRefused { count: u64, cause: StageError },
}

/// The quantity a [`ShapeError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeParam {
    Rate,
    Duration,
    Count,
}

impl ShapeError {
    /// The quantity that was refused.
    pub fn param(&self) -> ShapeParam {
        match self {
            ShapeError::RateNotPositive(_) | ShapeError::RateTooHigh(_) => ShapeParam::Rate,
            ShapeError::ZeroDuration
            | ShapeError::NoRequest { .. }
            | ShapeError::DurationRefused { .. } => ShapeParam::Duration,
            ShapeError::ZeroCount | ShapeError::CountRefused { .. } => ShapeParam::Count,
        }
    }

    /// The refused value as the user would have written it (`0s`, `1e308`, `5000`).
    pub fn value(&self) -> String {
        match self {
            ShapeError::RateNotPositive(rate) | ShapeError::RateTooHigh(rate) => shown_rate(*rate),
            ShapeError::ZeroDuration => "0s".to_string(),
            ShapeError::NoRequest { duration, .. }
            | ShapeError::DurationRefused { duration, .. } => {
                humantime::format_duration(*duration).to_string()
            }
            ShapeError::ZeroCount => "0".to_string(),
            ShapeError::CountRefused { count, .. } => count.to_string(),
        }
    }

    /// Why it was refused and how to fix it, without naming where the value was written.
    pub fn reason(&self) -> String {
        match self {
            ShapeError::RateNotPositive(_) => {
                "the rate must be a finite number of requests per second above zero".to_string()
            }
            ShapeError::RateTooHigh(_) => {
                "rates above 10,000,000/s are beyond what one generator can honour; split the load"
                    .to_string()
            }
            ShapeError::ZeroDuration => "the run must last longer than zero".to_string(),
            ShapeError::NoRequest { rate, .. } => format!(
                "at {rate}/s this schedules no request at all; raise the rate or the duration"
            ),
            ShapeError::ZeroCount => "give at least one request".to_string(),
            ShapeError::DurationRefused { cause, .. } | ShapeError::CountRefused { cause, .. } => {
                cause.to_string()
            }
        }
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.param() {
            ShapeParam::Rate => "rate",
            ShapeParam::Duration => "duration",
            ShapeParam::Count => "request count",
        };
        write!(f, "{what} {}: {}", self.value(), self.reason())
    }
}

impl std::error::Error for ShapeError {}

impl Shape {
    /// A constant rate for a duration: `⌊rate · duration⌋` requests.
    pub fn constant(rate: f64, duration: Duration) -> Result<Shape, ShapeError> {
        check_rate(rate)?;
        if duration.is_zero() {
            return Err(ShapeError::ZeroDuration);
        }
        let count = (rate * duration.as_secs_f64() + COUNT_EPSILON).floor();
        if count < 1.0 {
            return Err(ShapeError::NoRequest { rate, duration });
        }
        // A duration-limited run is the rate over that window: uniform arrivals give exactly
        // ⌊rate · duration⌋ requests, Poisson arrivals a random count (only `-n` fixes it).
        // Blame the duration (not the count derived from it) if the stage is refused.
        let stage = Stage {
            name: "constant".to_string(),
            kind: StageKind::Constant {
                rate,
                duration: duration.as_secs_f64(),
            },
        };
        Curve::new(vec![stage], Vec::new())
            .map(|c| Shape::Curve(Arc::new(c)))
            .map_err(|cause| ShapeError::DurationRefused { duration, cause })
    }

    /// A constant rate for an exact number of requests.
    pub fn constant_count(rate: f64, count: u64) -> Result<Shape, ShapeError> {
        check_rate(rate)?;
        if count == 0 {
            return Err(ShapeError::ZeroCount);
        }
        constant_stage(rate, count).map_err(|cause| ShapeError::CountRefused { count, cause })
    }

    /// Stages in sequence with overlays on top (uniform arrivals, seed 0, no scaling; see
    /// [`Shape::with_arrivals`] and [`Shape::with_scales`]).
    pub fn from_stages(stages: Vec<Stage>, overlays: Vec<Overlay>) -> Result<Shape, StageError> {
        Curve::new(stages, overlays).map(|c| Shape::Curve(Arc::new(c)))
    }

    /// Closed-loop saturation for a duration or a request count (10 s when neither is given).
    pub fn max(duration: Option<Duration>, count: Option<u64>) -> Result<Shape, ShapeError> {
        match (duration, count) {
            (_, Some(0)) => Err(ShapeError::ZeroCount),
            (_, Some(n)) => Ok(Shape::MaxCount(n)),
            (Some(d), None) if d.is_zero() => Err(ShapeError::ZeroDuration),
            (Some(d), None) => Ok(Shape::MaxFor(d)),
            (None, None) => Ok(Shape::MaxFor(Duration::from_secs(10))),
        }
    }

    /// The same curve with another arrival process and seed (no-op for closed-loop shapes).
    pub fn with_arrivals(mut self, arrivals: Arrivals, seed: u64) -> Shape {
        if let Shape::Curve(c) = &mut self {
            Arc::make_mut(c).set_arrivals(arrivals, seed);
        }
        self
    }

    /// The same curve run `time_scale` times faster and with every rate multiplied by
    /// `rate_scale`: `r′(t) = rate_scale · r(time_scale · t)`. Scales replace (not compound)
    /// earlier ones. No-op for closed-loop shapes.
    pub fn with_scales(mut self, time_scale: f64, rate_scale: f64) -> Result<Shape, StageError> {
        if let Shape::Curve(c) = &mut self {
            Arc::make_mut(c).set_scales(time_scale, rate_scale)?;
        }
        Ok(self)
    }

    /// [`Shape::with_scales`] keeping the current rate scale (for `--time-scale`).
    pub fn with_time_scale(self, time_scale: f64) -> Result<Shape, StageError> {
        let rs = self.rate_scale();
        self.with_scales(time_scale, rs)
    }

    /// [`Shape::with_scales`] keeping the current time scale (for `--rate-scale`).
    pub fn with_rate_scale(self, rate_scale: f64) -> Result<Shape, StageError> {
        let ts = self.time_scale();
        self.with_scales(ts, rate_scale)
    }

    /// Names the curve (a profile's name), for reports.
    pub fn with_label(mut self, label: Option<String>) -> Shape {
        if let Shape::Curve(c) = &mut self {
            Arc::make_mut(c).set_label(label);
        }
        self
    }

    /// True for the closed-loop `max` shapes, which have no schedule.
    pub fn is_closed_loop(&self) -> bool {
        matches!(self, Shape::MaxFor(_) | Shape::MaxCount(_))
    }

    /// The compiled curve, unless closed-loop.
    pub fn curve(&self) -> Option<&Curve> {
        match self {
            Shape::Curve(c) => Some(c),
            _ => None,
        }
    }

    /// Offset from the start at which request `n` is due under *uniform* arrivals (random access
    /// by binary search), or `None` past the end (always `None` for closed-loop shapes, which have
    /// no schedule). Poisson times are drawn in sequence by [`super::Schedule`].
    pub fn offset_of(&self, n: u64) -> Option<Duration> {
        let c = self.curve()?;
        if n >= c.uniform_total() {
            return None;
        }
        let x = n as f64;
        let mut cursor = Cursor::at(c.seg_for_area(x));
        c.time_of_area(x, &mut cursor).map(secs)
    }

    /// Requests in the whole shape (0 when unknown in advance). For Poisson arrivals this is the
    /// expected count (or the `-n` cap).
    pub fn total(&self) -> u64 {
        match self {
            Shape::Curve(c) => c.total(),
            Shape::MaxCount(count) => *count,
            Shape::MaxFor(_) => 0,
        }
    }

    /// Length of the shape: the end of the last request's interval (zero when unknown).
    pub fn duration(&self) -> Duration {
        match self {
            Shape::Curve(c) => secs(c.duration_secs()),
            Shape::MaxFor(d) => *d,
            Shape::MaxCount(_) => Duration::ZERO,
        }
    }

    /// The target rate at offset `t` (requests per second); infinite for closed-loop shapes.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match self {
            Shape::Curve(c) => c.rate_at(t.as_secs_f64()),
            Shape::MaxFor(_) | Shape::MaxCount(_) => f64::INFINITY,
        }
    }

    /// The highest target rate (per second), or `None` for closed-loop shapes.
    pub fn peak_rate(&self) -> Option<f64> {
        self.curve().map(Curve::peak)
    }

    /// The requests due in `[0, t)`, i.e. the cumulative count `⌈N(t)⌉` clipped to the total
    /// (uniform arrivals).
    pub fn due_before(&self, t: Duration) -> u64 {
        self.curve().map_or(0, |c| c.due_before(t.as_secs_f64()))
    }

    /// The mean target rate over the whole shape, or `None` for closed-loop shapes.
    pub fn mean_rate(&self) -> Option<f64> {
        let d = self.duration().as_secs_f64();
        (!self.is_closed_loop() && d > 0.0).then(|| self.total() as f64 / d)
    }

    /// The stage running at offset `t`: its index and name (`None` before/after the curve and
    /// for closed-loop shapes). For the progress line and the report.
    pub fn stage_at(&self, t: Duration) -> Option<(usize, &str)> {
        self.curve()?.stage_at(t.as_secs_f64())
    }

    /// Every stage with its span, expected requests and peak (empty for closed-loop shapes).
    pub fn stages(&self) -> &[StageSpan] {
        self.curve().map_or(&[], Curve::stages)
    }

    /// The arrival process (uniform for closed-loop shapes, which have none).
    pub fn arrivals(&self) -> Arrivals {
        self.curve().map_or(Arrivals::Uniform, Curve::arrivals)
    }

    /// The seed for Poisson arrivals and the request mix.
    pub fn seed(&self) -> u64 {
        self.curve().map_or(0, Curve::seed)
    }

    pub fn time_scale(&self) -> f64 {
        self.curve().map_or(1.0, Curve::time_scale)
    }

    pub fn rate_scale(&self) -> f64 {
        self.curve().map_or(1.0, Curve::rate_scale)
    }

    /// A short human description for reports, e.g. `constant 5000/s`.
    pub fn describe(&self) -> String {
        match self {
            Shape::Curve(c) => c.describe(),
            Shape::MaxFor(_) | Shape::MaxCount(_) => "max (closed loop)".to_string(),
        }
    }
}

/// One constant stage of exactly `count` requests at `rate`.
fn constant_stage(rate: f64, count: u64) -> Result<Shape, StageError> {
    let stage = Stage {
        name: "constant".to_string(),
        kind: StageKind::Constant {
            rate,
            duration: count as f64 / rate,
        },
    };
    Curve::new(vec![stage], Vec::new())
        .and_then(|c| c.with_limit(count))
        .map(|c| Shape::Curve(Arc::new(c)))
}

fn check_rate(rate: f64) -> Result<(), ShapeError> {
    if !rate.is_finite() || rate <= 0.0 {
        return Err(ShapeError::RateNotPositive(rate));
    }
    if rate > MAX_RATE {
        return Err(ShapeError::RateTooHigh(rate));
    }
    Ok(())
}

/// A rate as the user wrote it: `5000`, `0.5`, or `1e308` for huge ones.
fn shown_rate(rate: f64) -> String {
    if rate.abs() < 1e15 {
        trim_float(rate)
    } else {
        format!("{rate:e}")
    }
}

/// Formats `5000.0` as `5000` and `0.5` as `0.5`.
pub(crate) fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(d: Duration) -> u128 {
        d.as_micros()
    }

    #[test]
    fn constant_intended_times_table() {
        // (rate, duration, n, expected offset µs)
        let table: &[(f64, u64, u64, u128)] = &[
            (1000.0, 2, 0, 0),
            (1000.0, 2, 1, 1_000),
            (1000.0, 2, 1999, 1_999_000),
            (3.0, 10, 1, 333_333),
            (3.0, 10, 29, 9_666_666),
            (5000.0, 20, 99_999, 19_999_800),
            (0.5, 10, 4, 8_000_000),
        ];
        for &(rate, secs, n, want) in table {
            let s = Shape::constant(rate, Duration::from_secs(secs)).unwrap();
            assert_eq!(us(s.offset_of(n).unwrap()), want, "rate {rate} n {n}");
        }
    }

    #[test]
    fn constant_counts_table() {
        // (rate, duration ms, expected count)
        let table: &[(f64, u64, u64)] = &[
            (1000.0, 2000, 2000),
            (0.1, 30_000, 3),
            (3.0, 1000, 3),
            (7.0, 999, 6),
            (5000.0, 20_000, 100_000),
            (0.3, 10_000, 3),
        ];
        for &(rate, ms, want) in table {
            let s = Shape::constant(rate, Duration::from_millis(ms)).unwrap();
            assert_eq!(s.total(), want, "rate {rate} for {ms} ms");
            assert!(s.offset_of(want).is_none());
            assert!(s.offset_of(want - 1).is_some());
        }
    }

    #[test]
    fn no_drift_over_a_day() {
        let s = Shape::constant(10_000.0, Duration::from_secs(86_400)).unwrap();
        assert_eq!(s.total(), 864_000_000);
        let last = s.offset_of(863_999_999).unwrap();
        assert_eq!(last.as_micros(), 86_399_999_900);
    }

    #[test]
    fn due_before_counts_requests_in_window() {
        let s = Shape::constant(1000.0, Duration::from_secs(2)).unwrap();
        assert_eq!(s.due_before(Duration::ZERO), 0);
        assert_eq!(s.due_before(Duration::from_micros(1)), 1);
        assert_eq!(s.due_before(Duration::from_millis(1)), 1);
        assert_eq!(s.due_before(Duration::from_micros(1001)), 2);
        assert_eq!(s.due_before(Duration::from_secs(1)), 1000);
        assert_eq!(s.due_before(Duration::from_secs(5)), 2000);
    }

    #[test]
    fn bad_rates_and_durations_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert!(
                Shape::constant(rate, Duration::from_secs(1)).is_err(),
                "{rate}"
            );
        }
        assert_eq!(
            Shape::constant(10.0, Duration::ZERO),
            Err(ShapeError::ZeroDuration)
        );
        let e = Shape::constant(0.5, Duration::from_secs(1)).unwrap_err();
        assert_eq!((e.param(), e.value()), (ShapeParam::Duration, "1s".into()));
        assert_eq!(Shape::constant_count(10.0, 0), Err(ShapeError::ZeroCount));
        let e = Shape::constant(1e308, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "rate 1e308: rates above 10,000,000/s are beyond what one generator can honour; split the load");
    }

    #[test]
    fn max_shapes_have_no_schedule() {
        let s = Shape::max(Some(Duration::from_secs(3)), None).unwrap();
        assert!(s.is_closed_loop());
        assert_eq!(s.offset_of(0), None);
        assert_eq!(s.duration(), Duration::from_secs(3));
        assert_eq!(s.mean_rate(), None);
        assert_eq!(Shape::max(None, Some(5)).unwrap(), Shape::MaxCount(5));
        assert!(Shape::max(None, Some(0)).is_err());
        assert!(Shape::max(Some(Duration::ZERO), None).is_err());
        let c = Shape::constant(100.0, Duration::from_secs(2)).unwrap();
        assert_eq!(c.mean_rate(), Some(100.0));
    }

    #[test]
    fn describe_is_short() {
        let s = Shape::constant(5000.0, Duration::from_secs(1)).unwrap();
        assert_eq!(s.describe(), "constant 5000/s for 1s");
        assert_eq!(s.duration(), Duration::from_secs(1));
        assert_eq!(s.rate_at(Duration::from_millis(500)), 5000.0);
        assert_eq!(s.rate_at(Duration::from_secs(2)), 0.0);
    }
}

//! Stages: the typed building blocks of a load profile, in *profile time* (seconds, before
//! `time_scale` and `rate_scale` are applied), and their compilation into pieces of the rate
//! curve.
//!
//! Every stage compiles into a run of [`Piece`]s, each of the form
//!
//! ```text
//! r(τ) = a + b·τ + A·sin(ω·τ + φ)        τ ∈ [0, end − start)
//! ```
//!
//! which covers a constant (`b = A = 0`), a linear ramp (`A = 0`), a sine (`b = 0`) and, after
//! overlays are added, their sums. Steps, bursts, tables and replays are runs of constant and
//! linear pieces, so their inverse is closed form too; only pieces with a sine term need a
//! numeric inverse (see [`super::curve`]).

use std::f64::consts::{FRAC_PI_2, PI, TAU};
use std::fmt;

use super::shape::trim_float;

/// The highest rate one generator is asked to honour (per second).
pub const MAX_RATE: f64 = 10_000_000.0;
/// The longest profile accepted: 366 days.
pub const MAX_DURATION: f64 = 366.0 * 86_400.0;
/// The most requests one schedule may hold: a trillion (a year at about 32 000/s). Together with
/// [`MAX_RATE`] and [`MAX_DURATION`], which the *scaled* curve must also respect, this keeps every
/// count and instant far from overflow, whatever `time_scale` and `rate_scale` say.
pub const MAX_REQUESTS: f64 = 1e12;
/// The most pieces a compiled curve may hold (periodic bursts and tables make one to four per
/// period); beyond this the profile is refused rather than eating memory.
pub const MAX_PIECES: usize = 500_000;

/// How a table or replay curve moves between its points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interpolate {
    /// Straight lines between points (the default).
    #[default]
    Linear,
    /// Each point's rate holds until the next point.
    Step,
}

impl Interpolate {
    pub fn name(self) -> &'static str {
        match self {
            Interpolate::Linear => "linear",
            Interpolate::Step => "step",
        }
    }
}

/// One stage of a profile. Times are seconds and rates are requests per second, in profile
/// time (before scaling).
#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    /// `r(t) = rate`.
    Constant { rate: f64, duration: f64 },
    /// `r(t) = from + (to − from)·t/duration`.
    Ramp { from: f64, to: f64, duration: f64 },
    /// A staircase: `rates[i]` for `hold` seconds each.
    Step { rates: Vec<f64>, hold: f64 },
    /// `base`, with bursts to `peak`: a linear rise over `rise`, `hold` at the peak and a linear
    /// fall over `fall`. The first burst starts at `at`; with `every` they repeat with that
    /// period, otherwise there is one.
    Burst {
        base: f64,
        peak: f64,
        hold: f64,
        rise: f64,
        fall: f64,
        every: Option<f64>,
        at: f64,
        duration: f64,
    },
    /// `r(t) = base + amplitude·sin(2π·t/period + phase)` (phase in radians).
    Sine {
        base: f64,
        amplitude: f64,
        period: f64,
        phase: f64,
        duration: f64,
    },
    /// A periodic table: point `i` (rate `rates[i mod m]`) sits at `i·every`; the table repeats
    /// every `m·every`, so 24 hourly rates make a day that wraps smoothly into the next.
    Table {
        rates: Vec<f64>,
        every: f64,
        interpolate: Interpolate,
        duration: f64,
    },
    /// A recorded rate curve: `(time, rate)` points with strictly increasing times starting at
    /// 0; the curve runs from the first point to the last.
    Replay {
        points: Vec<(f64, f64)>,
        interpolate: Interpolate,
    },
}

/// A named stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: String,
    pub kind: StageKind,
}

/// A stage added on top of the sequence, from `start` for its own duration (clipped at the end
/// of the profile): a burst on top of a diurnal curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub start: f64,
    pub stage: Stage,
}

/// Which part of a profile an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageRef {
    Stage(usize),
    Overlay(usize),
    /// The profile as a whole (scales, totals).
    Profile,
}

/// A semantic error in a stage: which stage, which field, why, and how to fix it. The profile
/// parser maps `field` back to a line and column in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct StageError {
    pub at: StageRef,
    pub field: &'static str,
    pub reason: String,
    pub hint: String,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            StageRef::Stage(i) => write!(f, "stage {}: ", i + 1)?,
            StageRef::Overlay(i) => write!(f, "overlay {}: ", i + 1)?,
            StageRef::Profile => {}
        }
        write!(f, "`{}`: {} ({})", self.field, self.reason, self.hint)
    }
}

impl std::error::Error for StageError {}

pub(crate) fn err(
    field: &'static str,
    reason: impl Into<String>,
    hint: impl Into<String>,
) -> StageError {
    StageError {
        at: StageRef::Profile,
        field,
        reason: reason.into(),
        hint: hint.into(),
    }
}

/// A piece of the rate curve in absolute profile time: `r(t) = a + b·τ + A·sin(ω·τ + φ)` with
/// `τ = t − start`, on `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Piece {
    pub start: f64,
    pub end: f64,
    pub a: f64,
    pub b: f64,
    pub amp: f64,
    pub omega: f64,
    pub phase: f64,
}

impl Piece {
    fn linear(start: f64, end: f64, r0: f64, slope: f64) -> Piece {
        Piece {
            start,
            end,
            a: r0,
            b: slope,
            amp: 0.0,
            omega: 0.0,
            phase: 0.0,
        }
    }
}

fn check_rate(field: &'static str, r: f64) -> Result<(), StageError> {
    if !r.is_finite() || r < 0.0 {
        return Err(err(
            field,
            format!("rate {r} is not a finite number ≥ 0"),
            "rates are requests per second, e.g. 500 or \"30000/m\"",
        ));
    }
    if r > MAX_RATE {
        return Err(err(
            field,
            format!("rate {}/s is above the limit", trim_float(r)),
            "one generator honours at most 10,000,000/s; split the load across machines",
        ));
    }
    Ok(())
}

fn check_len(field: &'static str, d: f64, zero_ok: bool) -> Result<(), StageError> {
    if !d.is_finite() || d < 0.0 || (d == 0.0 && !zero_ok) {
        return Err(err(
            field,
            format!("{field} must be a length above zero, got {d}s"),
            "give a duration such as \"30s\", \"2m\" or \"1h 30m\"",
        ));
    }
    if d > MAX_DURATION {
        return Err(err(
            field,
            format!("{field} of {}s is longer than 366 days", trim_float(d)),
            "profiles are limited to 366 days; use time_scale to stretch or compress",
        ));
    }
    Ok(())
}

impl StageKind {
    /// The shape's name as written in profiles: `constant`, `ramp`, `step`, `burst`, `sine`,
    /// `table`, `replay`.
    pub fn shape_name(&self) -> &'static str {
        match self {
            StageKind::Constant { .. } => "constant",
            StageKind::Ramp { .. } => "ramp",
            StageKind::Step { .. } => "step",
            StageKind::Burst { .. } => "burst",
            StageKind::Sine { .. } => "sine",
            StageKind::Table { .. } => "table",
            StageKind::Replay { .. } => "replay",
        }
    }

    /// Length in profile seconds.
    pub fn duration(&self) -> f64 {
        match self {
            StageKind::Constant { duration, .. }
            | StageKind::Ramp { duration, .. }
            | StageKind::Burst { duration, .. }
            | StageKind::Sine { duration, .. }
            | StageKind::Table { duration, .. } => *duration,
            StageKind::Step { rates, hold } => rates.len() as f64 * hold,
            StageKind::Replay { points, .. } => points.last().map_or(0.0, |p| p.0),
        }
    }

    /// Sets the duration of a stage that has one (used for overlays running to the end).
    pub fn set_duration(&mut self, d: f64) {
        match self {
            StageKind::Constant { duration, .. }
            | StageKind::Ramp { duration, .. }
            | StageKind::Burst { duration, .. }
            | StageKind::Sine { duration, .. }
            | StageKind::Table { duration, .. } => *duration = d,
            StageKind::Step { .. } | StageKind::Replay { .. } => {}
        }
    }

    /// Checks every parameter: rates finite and ≥ 0, lengths above zero, a sine that never goes
    /// negative, bursts that fit their period, replay times strictly increasing.
    pub fn validate(&self) -> Result<(), StageError> {
        match self {
            StageKind::Constant { rate, duration } => {
                check_rate("rate", *rate)?;
                check_len("duration", *duration, false)
            }
            StageKind::Ramp { from, to, duration } => {
                check_rate("from", *from)?;
                check_rate("to", *to)?;
                check_len("duration", *duration, false)
            }
            StageKind::Step { rates, hold } => {
                if rates.is_empty() {
                    return Err(err(
                        "rates",
                        "a step stage needs at least one rate",
                        "give from/to/steps or rates = [100, 200, 400]",
                    ));
                }
                if rates.len() > MAX_PIECES {
                    return Err(err(
                        "steps",
                        format!("{} steps is too many", rates.len()),
                        "use at most 500,000 steps, or a ramp",
                    ));
                }
                for r in rates {
                    check_rate("rates", *r)?;
                }
                check_len("hold", *hold, false)?;
                check_len("hold", self.duration(), false)
            }
            StageKind::Burst {
                base,
                peak,
                hold,
                rise,
                fall,
                every,
                at,
                duration,
            } => {
                check_rate("base", *base)?;
                check_rate("peak", *peak)?;
                check_len("hold", *hold, true)?;
                check_len("rise", *rise, true)?;
                check_len("fall", *fall, true)?;
                check_len("duration", *duration, false)?;
                check_len("at", *at, true)?;
                let width = rise + hold + fall;
                if width <= 0.0 {
                    return Err(err(
                        "hold",
                        "the burst has no length (rise + hold + fall = 0)",
                        "give the time at the peak, e.g. hold = \"30s\"",
                    ));
                }
                if *at >= *duration {
                    return Err(err(
                        "at",
                        format!(
                            "the first burst starts at {}s, after the stage ends ({}s)",
                            trim_float(*at),
                            trim_float(*duration)
                        ),
                        "start the burst within the stage's duration",
                    ));
                }
                if let Some(p) = every {
                    check_len("every", *p, false)?;
                    if width > *p {
                        return Err(err(
                            "every",
                            format!(
                                "bursts of {}s (rise + hold + fall) do not fit a period of {}s",
                                trim_float(width),
                                trim_float(*p)
                            ),
                            "make `every` at least rise + hold + fall",
                        ));
                    }
                    let n = ((duration - at) / p).ceil() * 4.0;
                    if n > MAX_PIECES as f64 {
                        return Err(err(
                            "every",
                            format!("{} bursts in one stage is too many", (n / 4.0) as u64),
                            "use a longer period (at most 125,000 bursts per stage)",
                        ));
                    }
                }
                Ok(())
            }
            StageKind::Sine {
                base,
                amplitude,
                period,
                phase,
                duration,
            } => {
                check_rate("base", *base)?;
                check_rate("amplitude", *amplitude)?;
                if amplitude > base {
                    return Err(err(
                        "amplitude",
                        format!(
                            "amplitude {} is above the base {}, so the rate would go negative",
                            trim_float(*amplitude),
                            trim_float(*base)
                        ),
                        "keep amplitude ≤ base (the rate swings between base − amplitude and base + amplitude)",
                    ));
                }
                check_len("period", *period, false)?;
                if !phase.is_finite() {
                    return Err(err("phase", "phase is not finite", "give degrees, e.g. 90"));
                }
                check_len("duration", *duration, false)
            }
            StageKind::Table {
                rates,
                every,
                duration,
                ..
            } => {
                if rates.is_empty() {
                    return Err(err(
                        "rates",
                        "a table needs at least one rate",
                        "e.g. rates = [100, 80, 60, 120] with every = \"1h\"",
                    ));
                }
                for r in rates {
                    check_rate("rates", *r)?;
                }
                check_len("every", *every, false)?;
                check_len("duration", *duration, false)?;
                if duration / every > MAX_PIECES as f64 {
                    return Err(err(
                        "every",
                        "the table repeats too many times over the duration",
                        "use a longer `every` (at most 500,000 points per stage)",
                    ));
                }
                Ok(())
            }
            StageKind::Replay { points, .. } => {
                if points.len() < 2 {
                    return Err(err(
                        "file",
                        format!("a replay needs at least two points, got {}", points.len()),
                        "the CSV needs rows `time,rate` covering the span to replay",
                    ));
                }
                if points.len() > MAX_PIECES {
                    return Err(err(
                        "file",
                        format!("{} points is too many", points.len()),
                        "resample the CSV to at most 500,000 points",
                    ));
                }
                if points[0].0 != 0.0 {
                    return Err(err(
                        "file",
                        "replay times must start at 0",
                        "rebase the times so that the first row is at 0 (the profile loader does this)",
                    ));
                }
                let mut last = f64::NEG_INFINITY;
                for &(t, r) in points {
                    if !t.is_finite() || t <= last {
                        return Err(err(
                            "file",
                            "replay times must increase strictly",
                            "sort the CSV by time and remove duplicates",
                        ));
                    }
                    last = t;
                    check_rate("file", r)?;
                }
                check_len("file", self.duration(), false)
            }
        }
    }

    /// Appends this stage's pieces, starting at absolute profile time `t0`.
    pub(crate) fn pieces(&self, t0: f64, out: &mut Vec<Piece>) {
        let end = t0 + self.duration();
        let push = |p: Piece, out: &mut Vec<Piece>| {
            let e = p.end.min(end);
            if e > p.start {
                out.push(Piece { end: e, ..p });
            }
        };
        match self {
            StageKind::Constant { rate, .. } => push(Piece::linear(t0, end, *rate, 0.0), out),
            StageKind::Ramp { from, to, duration } => {
                push(Piece::linear(t0, end, *from, (to - from) / duration), out)
            }
            StageKind::Step { rates, hold } => {
                for (i, r) in rates.iter().enumerate() {
                    let s = t0 + i as f64 * hold;
                    let e = if i + 1 == rates.len() {
                        end
                    } else {
                        t0 + (i + 1) as f64 * hold
                    };
                    push(Piece::linear(s, e, *r, 0.0), out);
                }
            }
            StageKind::Burst {
                base,
                peak,
                hold,
                rise,
                fall,
                every,
                at,
                ..
            } => {
                // Each burst k starts at `at + k·every` (computed from k, never accumulated).
                let mut cursor = t0;
                let mut k = 0u64;
                loop {
                    let s = t0 + at + every.map_or(0.0, |p| k as f64 * p);
                    if s >= end {
                        break;
                    }
                    push(Piece::linear(cursor, s, *base, 0.0), out);
                    let (r1, h1, f1) = (s + rise, s + rise + hold, s + rise + hold + fall);
                    if *rise > 0.0 {
                        push(Piece::linear(s, r1, *base, (peak - base) / rise), out);
                    }
                    push(Piece::linear(r1, h1, *peak, 0.0), out);
                    if *fall > 0.0 {
                        push(Piece::linear(h1, f1, *peak, (base - peak) / fall), out);
                    }
                    cursor = f1;
                    k += 1;
                    if every.is_none() || cursor >= end {
                        break;
                    }
                }
                if cursor < end {
                    push(Piece::linear(cursor, end, *base, 0.0), out);
                }
            }
            StageKind::Sine {
                base,
                amplitude,
                period,
                phase,
                ..
            } => push(
                Piece {
                    start: t0,
                    end,
                    a: *base,
                    b: 0.0,
                    amp: *amplitude,
                    omega: TAU / period,
                    phase: phase.rem_euclid(TAU),
                },
                out,
            ),
            StageKind::Table {
                rates,
                every,
                interpolate,
                duration,
            } => {
                let m = rates.len();
                let n = (duration / every).ceil() as usize;
                for i in 0..n {
                    let s = t0 + i as f64 * every;
                    let e = if i + 1 == n {
                        end
                    } else {
                        t0 + (i + 1) as f64 * every
                    };
                    let r0 = rates[i % m];
                    let slope = match interpolate {
                        Interpolate::Linear => (rates[(i + 1) % m] - r0) / every,
                        Interpolate::Step => 0.0,
                    };
                    push(Piece::linear(s, e, r0, slope), out);
                }
            }
            StageKind::Replay {
                points,
                interpolate,
            } => {
                for w in points.windows(2) {
                    let ((ta, ra), (tb, rb)) = (w[0], w[1]);
                    let slope = match interpolate {
                        Interpolate::Linear => (rb - ra) / (tb - ta),
                        Interpolate::Step => 0.0,
                    };
                    push(Piece::linear(t0 + ta, t0 + tb, ra, slope), out);
                }
            }
        }
    }

    /// A short description with rates multiplied by `rs` and times divided by `ts`.
    pub fn describe(&self, ts: f64, rs: f64) -> String {
        let r = |x: f64| format!("{}/s", fmt_rate(x * rs));
        let d = |x: f64| fmt_secs(x / ts);
        match self {
            StageKind::Constant { rate, duration } => {
                format!("constant {} for {}", r(*rate), d(*duration))
            }
            StageKind::Ramp { from, to, duration } => format!(
                "ramp {}→{} over {}",
                fmt_rate(from * rs),
                r(*to),
                d(*duration)
            ),
            StageKind::Step { rates, hold } => {
                let even = rates.len() > 2
                    && rates.windows(3).all(|w| {
                        ((w[1] - w[0]) - (w[2] - w[1])).abs() < 1e-9 * w[2].abs().max(1.0)
                    });
                if even || rates.len() > 6 {
                    format!(
                        "step {}→{} in {} steps of {}",
                        fmt_rate(rates[0] * rs),
                        r(*rates.last().unwrap_or(&0.0)),
                        rates.len(),
                        d(*hold)
                    )
                } else {
                    let levels: Vec<String> = rates.iter().map(|x| fmt_rate(x * rs)).collect();
                    format!("step {}/s, {} each", levels.join(" | "), d(*hold))
                }
            }
            StageKind::Burst {
                base,
                peak,
                hold,
                every,
                duration,
                ..
            } => format!(
                "burst {}→{} for {}{} over {}",
                fmt_rate(base * rs),
                r(*peak),
                d(*hold),
                every.map_or(String::new(), |p| format!(" every {}", d(p))),
                d(*duration)
            ),
            StageKind::Sine {
                base,
                amplitude,
                period,
                duration,
                ..
            } => format!(
                "sine {}±{} period {} over {}",
                fmt_rate(base * rs),
                r(*amplitude),
                d(*period),
                d(*duration)
            ),
            StageKind::Table {
                rates,
                every,
                duration,
                ..
            } => format!(
                "table of {} rates every {} over {}",
                rates.len(),
                d(*every),
                d(*duration)
            ),
            StageKind::Replay { points, .. } => format!(
                "replay of {} points over {}",
                points.len(),
                d(self.duration())
            ),
        }
    }
}

/// Rates for humans: `5000`, `0.5`, `333.3`.
pub fn fmt_rate(x: f64) -> String {
    if x.fract() == 0.0 || x >= 1000.0 {
        trim_float(x.round())
    } else {
        let s = format!("{x:.1}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Seconds for humans: `250ms`, `30s`, `2m`, `1h 30m`, `1d 2h`.
pub fn fmt_secs(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}s");
    }
    if x < 1.0 && x > 0.0 {
        let ms = x * 1000.0;
        return if ms.fract() == 0.0 {
            format!("{ms}ms")
        } else {
            format!("{ms:.1}ms")
        };
    }
    if x.fract() != 0.0 && x < 60.0 {
        return format!("{}s", fmt_rate(x));
    }
    let total = x.round() as u64;
    let (d, h, m, s) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

/// `degrees → radians`.
pub fn degrees(x: f64) -> f64 {
    x * PI / 180.0
}

/// The phase (radians) that puts a sine's crest at `peak_at` seconds, so users can say "busiest
/// at 14:00" rather than work out an angle:
/// `base + A·cos(2π(t − peak_at)/P) = base + A·sin(2πt/P + π/2 − 2π·peak_at/P)`.
pub fn phase_peaking_at(peak_at: f64, period: f64) -> f64 {
    FRAC_PI_2 - TAU * peak_at / period
}

/// `steps` evenly spaced levels from `from` to `to`, both included (`steps` ≥ 2): the staircase
/// that profile files (`from`, `to`, `steps`) and the shorthand (`FROM->TO/s@NxHOLD`) both mean.
pub fn staircase(from: f64, to: f64, steps: u32) -> Vec<f64> {
    let last = f64::from(steps.max(2) - 1);
    (0..steps)
        .map(|i| from + (to - from) * f64::from(i) / last)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(k: &StageKind) -> Vec<Piece> {
        k.validate().unwrap();
        let mut v = Vec::new();
        k.pieces(0.0, &mut v);
        v
    }

    #[test]
    fn burst_pieces_tile_the_stage() {
        let k = StageKind::Burst {
            base: 10.0,
            peak: 110.0,
            hold: 2.0,
            rise: 1.0,
            fall: 1.0,
            every: Some(10.0),
            at: 3.0,
            duration: 30.0,
        };
        let p = pieces(&k);
        // base, rise, hold, fall, base ×3 bursts, clipped at 30.
        assert_eq!(p.first().unwrap().start, 0.0);
        assert_eq!(p.last().unwrap().end, 30.0);
        for w in p.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let area: f64 = p
            .iter()
            .map(|q| {
                let d = q.end - q.start;
                q.a * d + 0.5 * q.b * d * d
            })
            .sum();
        // 30 s at 10/s plus 3 bursts of (1 + 2 + 1 → trapezoid area 100·3) = 300 + 900.
        assert!((area - 1200.0).abs() < 1e-9, "{area}");
    }

    #[test]
    fn table_wraps_around() {
        let k = StageKind::Table {
            rates: vec![100.0, 200.0],
            every: 10.0,
            interpolate: Interpolate::Linear,
            duration: 40.0,
        };
        let p = pieces(&k);
        assert_eq!(p.len(), 4);
        assert_eq!((p[1].a, p[1].b), (200.0, -10.0));
        assert_eq!((p[3].a, p[3].b), (200.0, -10.0));
    }

    #[test]
    fn validation_table() {
        let bad: Vec<(StageKind, &str)> = vec![
            (
                StageKind::Constant {
                    rate: -1.0,
                    duration: 1.0,
                },
                "rate",
            ),
            (
                StageKind::Constant {
                    rate: f64::NAN,
                    duration: 1.0,
                },
                "rate",
            ),
            (
                StageKind::Constant {
                    rate: 1.0,
                    duration: 0.0,
                },
                "duration",
            ),
            (
                StageKind::Ramp {
                    from: 1.0,
                    to: 2e7,
                    duration: 1.0,
                },
                "to",
            ),
            (
                StageKind::Sine {
                    base: 10.0,
                    amplitude: 11.0,
                    period: 1.0,
                    phase: 0.0,
                    duration: 1.0,
                },
                "amplitude",
            ),
            (
                StageKind::Burst {
                    base: 1.0,
                    peak: 2.0,
                    hold: 5.0,
                    rise: 1.0,
                    fall: 1.0,
                    every: Some(6.0),
                    at: 0.0,
                    duration: 60.0,
                },
                "every",
            ),
            (
                StageKind::Replay {
                    points: vec![(0.0, 1.0), (0.0, 2.0)],
                    interpolate: Interpolate::Linear,
                },
                "file",
            ),
        ];
        for (k, field) in bad {
            let e = k.validate().unwrap_err();
            assert_eq!(e.field, field, "{k:?}: {e}");
        }
    }

    #[test]
    fn human_formats() {
        assert_eq!(fmt_secs(0.25), "250ms");
        assert_eq!(fmt_secs(90.0), "1m 30s");
        assert_eq!(fmt_secs(86_400.0 + 7200.0), "1d 2h");
        assert_eq!(fmt_secs(2.5), "2.5s");
        assert_eq!(fmt_rate(333.333), "333.3");
        assert_eq!(fmt_rate(5000.0), "5000");
    }
}

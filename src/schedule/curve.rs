//! The compiled rate curve and its inverse cumulative count.
//!
//! # The math
//!
//! A profile is a rate curve `r(t) ≥ 0`. The expected number of requests due by `t` is the area
//! under it, `N(t) = ∫₀ᵗ r(s) ds`, and request `n` (zero-based) is due when that area reaches `n`:
//!
//! ```text
//!  rate                                   N(t)
//!   │      ╱‾‾‾‾╲                          │            ╭────
//!   │     ╱      ╲      area = n  ⇒        │          ╭─╯
//!   │ ___╱        ╲___  request n          n ┼ ─ ─ ─ ─╭╯
//!   │                                      │      ╭─╯ ┆
//!   └────────────────── t                  └──────────┴──── t
//!                                                     tₙ = N⁻¹(n)
//! ```
//!
//! The curve is a sequence of segments `k` on `[t₀ₖ, t₀ₖ + dₖ)`, each of the form
//! `rₖ(τ) = a + b·τ + A·sin(ω·τ + φ)`, `τ = t − t₀ₖ`, whose area is closed form:
//!
//! ```text
//! Nₖ(τ) = a·τ + b·τ²/2 + (A/ω)·(cos φ − cos(ω·τ + φ))
//! ```
//!
//! Each segment stores `Cₖ = N(t₀ₖ)`, the (Neumaier-summed) area of everything before it. To place
//! request `n` we find the segment with `Cₖ ≤ n < Cₖ₊₁` and solve `Nₖ(τ) = n − Cₖ` for `τ`. The
//! fractional part of `Cₖ` is the count carried across the boundary (k6 `cal`'s `doneSoFar`):
//! a stage that ends at area 2.5 puts its successor's first request at area 3, half a request
//! into it. Every time is computed from the absolute `n` and the segment's absolute `Cₖ` and
//! `t₀ₖ`, never by accumulating gaps, so a 24-hour run has no drift.
//!
//! - **Constant** (`b = A = 0`): `τ = y / a`.
//! - **Linear** (`A = 0`): `a·τ + b·τ²/2 = y` has the root `τ = 2y / (a + √(a² + 2b·y))`, the
//!   cancellation-free form of `(−a + √(a² + 2by)) / b`, valid for rising and falling ramps and
//!   for `b = 0`. The discriminant is clamped at zero: a ramp down to exactly 0/s has
//!   `a² + 2b·y = 0` at its end, which float noise can push slightly negative (k6's
//!   `noNegativeSqrt`).
//! - **Sine** (`A ≠ 0`): no closed form. Newton's method on `f(τ) = Nₖ(τ) − y` (with
//!   `f′ = rₖ ≥ 0`) inside a shrinking bisection bracket `[0, dₖ]`, started from the previous
//!   request's solution extrapolated by its rate. It stops when the next Newton correction is
//!   provably below 0.1 ns (from `|f″| = |r′| ≤ |b| + |A|·ω`), usually after one evaluation per
//!   request.
//!
//! Steps, bursts, tables and replays are runs of constant and linear segments, so they are closed
//! form too. Overlays are summed segment by segment (sum of linear parts, and of sines of the same
//! period by phasor addition).
//!
//! **Uniform arrivals** put request `n` at area exactly `n`. **Poisson arrivals** are a
//! non-homogeneous Poisson process by time transformation: the areas `Aᵢ = E₁ + … + Eᵢ`, with
//! `Eᵢ` unit-rate exponential, form a homogeneous unit-rate process, and `tᵢ = N⁻¹(Aᵢ)` is then a
//! Poisson process with intensity `r(t)` (Çinlar's theorem). The mean count in any window equals
//! the uniform schedule's; the variance equals the mean.
//!
//! **Scaling.** With `time_scale k` and `rate_scale s` the curve run is `r′(t) = s·r(k·t)`: every
//! length is divided by `k`, every rate multiplied by `s`, so `a′ = s·a`, `b′ = s·k·b`,
//! `A′ = s·A`, `ω′ = k·ω`, `d′ = d/k` and the count becomes `N′ = (s/k)·N`.

use std::f64::consts::TAU;
use std::time::Duration;

use super::stage::{
    err, fmt_rate, Overlay, Piece, Stage, StageError, StageKind, StageRef, MAX_DURATION,
    MAX_PIECES, MAX_RATE, MAX_REQUESTS,
};

/// How requests are spread under the rate curve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arrivals {
    /// Deterministic spacing: request `n` exactly when the area reaches `n` (the default).
    #[default]
    Uniform,
    /// A (non-homogeneous) Poisson process with the same mean rate curve: exponential gaps in
    /// area space, seeded.
    Poisson,
}

impl Arrivals {
    pub fn name(self) -> &'static str {
        match self {
            Arrivals::Uniform => "uniform",
            Arrivals::Poisson => "poisson",
        }
    }

    /// `uniform` or `poisson`.
    pub fn parse(s: &str) -> Option<Arrivals> {
        match s {
            "uniform" => Some(Arrivals::Uniform),
            "poisson" => Some(Arrivals::Poisson),
            _ => None,
        }
    }
}

/// One segment of the compiled curve, in run time (after scaling). See the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Segment {
    /// Start (s).
    pub t0: f64,
    /// End (s): exactly the next segment's `t0`.
    pub t1: f64,
    /// `N(t0)` and `N(t1)`.
    pub c0: f64,
    pub c1: f64,
    pub a: f64,
    pub b: f64,
    pub amp: f64,
    pub omega: f64,
    pub phase: f64,
    /// `A/ω` and `cos φ`, precomputed for the area.
    k: f64,
    cos_phase: f64,
}

/// A solution inside a segment: area `y` is reached at offset `tau`, where the rate is `rate`.
/// Newton starts the next solve from it, extrapolated by the rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Solution {
    pub y: f64,
    pub tau: f64,
    pub rate: f64,
}

/// Where the solver left off: the segment of the previous request and, when it was solved
/// numerically with a positive rate, its solution there. Requests come in order, so the next
/// one is almost always in the same segment or the next.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cursor {
    seg: usize,
    prev: Option<Solution>,
}

impl Cursor {
    /// A cursor in segment `seg` with no previous solution.
    pub(crate) fn at(seg: usize) -> Cursor {
        Cursor { seg, prev: None }
    }
}

/// Newton stops once the next correction is below this (seconds).
const NEWTON_TOL: f64 = 1e-10;

impl Segment {
    fn new(p: &Piece) -> Segment {
        let (k, cos_phase) = if p.amp != 0.0 {
            (p.amp / p.omega, p.phase.cos())
        } else {
            (0.0, 1.0)
        };
        Segment {
            t0: p.start,
            t1: p.end,
            c0: 0.0,
            c1: 0.0,
            a: p.a,
            b: p.b,
            amp: p.amp,
            omega: p.omega,
            phase: p.phase,
            k,
            cos_phase,
        }
    }

    #[inline]
    pub fn len(&self) -> f64 {
        self.t1 - self.t0
    }

    /// `r(τ)`.
    #[inline]
    pub fn rate(&self, tau: f64) -> f64 {
        let lin = self.a + self.b * tau;
        if self.amp == 0.0 {
            lin
        } else {
            lin + self.amp * (self.omega * tau + self.phase).sin()
        }
    }

    /// `∫₀^τ r`.
    #[inline]
    pub fn area(&self, tau: f64) -> f64 {
        let lin = tau * (self.a + 0.5 * self.b * tau);
        if self.amp == 0.0 {
            lin
        } else {
            lin + self.k * (self.cos_phase - (self.omega * tau + self.phase).cos())
        }
    }

    /// Solves `area(τ) = y` for `τ ∈ [0, len]`, starting near `prev` when given; returns `τ` and
    /// `r(τ)` (the latter only meaningful for sine segments, as the start of the next solve).
    #[inline]
    pub fn solve(&self, y: f64, prev: Option<Solution>) -> (f64, f64) {
        let d = self.len();
        if y <= 0.0 {
            return (0.0, 0.0);
        }
        if self.amp == 0.0 {
            let tau = if self.b == 0.0 {
                y / self.a
            } else {
                let disc = (self.a * self.a + 2.0 * self.b * y).max(0.0);
                2.0 * y / (self.a + disc.sqrt())
            };
            return (tau.min(d), 0.0);
        }
        self.solve_newton(y, prev)
    }

    #[cold]
    fn bisect_start(&self, y: f64) -> f64 {
        // Mean rate over the segment is a fair first guess.
        let mean = (self.c1 - self.c0) / self.len();
        if mean > 0.0 {
            y / mean
        } else {
            0.5 * self.len()
        }
    }

    fn solve_newton(&self, y: f64, prev: Option<Solution>) -> (f64, f64) {
        let d = self.len();
        let (mut lo, mut hi) = (0.0, d);
        let mut tau = match prev {
            Some(p) if p.rate > 0.0 => p.tau + (y - p.y) / p.rate,
            _ => self.bisect_start(y),
        };
        if !(tau > 0.0 && tau < d) {
            tau = self.bisect_start(y).clamp(0.0, d);
        }
        // |r′| ≤ |b| + |A|·ω bounds f″ on the whole segment.
        let curv = self.b.abs() + self.amp.abs() * self.omega;
        for _ in 0..200 {
            let (s, c) = (self.omega * tau + self.phase).sin_cos();
            let f = tau * (self.a + 0.5 * self.b * tau) + self.k * (self.cos_phase - c) - y;
            let r = self.a + self.b * tau + self.amp * s;
            if f == 0.0 {
                return (tau, r);
            }
            if f < 0.0 {
                lo = tau;
            } else {
                hi = tau;
            }
            let step = f / r;
            let next = tau - step;
            if r > 0.0 && next >= lo && next <= hi {
                // Newton's error after this step is at most |f″|·step²/(2·r(ξ)); with r(ξ) no
                // lower than r − |f″|·|step| we can stop without evaluating again.
                let rmin = r - curv * step.abs();
                if step.abs() < NEWTON_TOL
                    || (rmin > 0.0 && curv * step * step < 2.0 * rmin * NEWTON_TOL)
                {
                    return (next, r);
                }
                tau = next;
            } else {
                if hi - lo < NEWTON_TOL {
                    return (0.5 * (lo + hi), r);
                }
                tau = 0.5 * (lo + hi);
            }
        }
        (tau, self.rate(tau))
    }

    /// The highest rate on the segment (exact: endpoints and the last/first crest).
    fn peak(&self) -> f64 {
        let d = self.len();
        let mut best = self.rate(0.0).max(self.rate(d));
        if self.amp == 0.0 {
            return best;
        }
        // Local maxima of r: r′ = b + A·ω·cos θ = 0 with sin θ > 0, θ = ω·τ + φ.
        let c = -self.b / (self.amp * self.omega);
        if c.abs() > 1.0 {
            return best;
        }
        let theta_m = c.acos(); // in [0, π]: sin ≥ 0
        let (lo, hi) = (self.phase, self.phase + self.omega * d);
        // With b > 0 the last crest is the highest, with b < 0 the first, with b = 0 any.
        let k = if self.b > 0.0 {
            ((hi - theta_m) / TAU).floor()
        } else {
            ((lo - theta_m) / TAU).ceil()
        };
        let theta = theta_m + k * TAU;
        if theta >= lo && theta <= hi {
            best = best.max(self.rate((theta - self.phase) / self.omega));
        }
        best
    }

    /// `(min, max)` of the rate over `[τ0, τ1]` by sampling (for plots).
    fn range(&self, tau0: f64, tau1: f64) -> (f64, f64) {
        let (r0, r1) = (self.rate(tau0), self.rate(tau1));
        let (mut lo, mut hi) = (r0.min(r1), r0.max(r1));
        if self.amp != 0.0 {
            let n = (((tau1 - tau0) * self.omega / TAU) * 16.0).clamp(2.0, 64.0) as usize;
            for i in 1..n {
                let r = self.rate(tau0 + (tau1 - tau0) * i as f64 / n as f64);
                lo = lo.min(r);
                hi = hi.max(r);
            }
        }
        (lo, hi)
    }
}

/// A stage as run: its name, shape, span in run time, expected requests and peak rate.
#[derive(Clone, Debug, PartialEq)]
pub struct StageSpan {
    pub name: String,
    /// `constant`, `ramp`, …
    pub shape: &'static str,
    /// Seconds from the start of the run.
    pub start: f64,
    pub end: f64,
    /// Requests due in the stage (exact for uniform arrivals, the mean for Poisson).
    pub requests: u64,
    /// Highest target rate in the stage, overlays included (per second).
    pub peak: f64,
    /// Human description with scaling applied, e.g. `ramp 50→400/s over 3s`.
    pub description: String,
}

/// Slack for float noise when turning an area into a whole count: 1000/s for 2 s must give 2000
/// requests, not 1999. Grows with the count, whose float error grows with it.
/// A scale for a message: plain when ordinary, in exponent form when tiny or huge (`1e-30`, not
/// `0`).
fn fmt_scale(x: f64) -> String {
    if (1e-3..1e7).contains(&x) {
        fmt_rate(x)
    } else {
        format!("{x:e}")
    }
}

fn count_epsilon(area: f64) -> f64 {
    1e-6 + area.abs() * 1e-12
}

/// A compiled load profile: stages and overlays, arrival process, seed and scales, with the
/// segments that the schedule inverts. Built by [`super::Shape::from_stages`] and friends.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    stages: Vec<Stage>,
    overlays: Vec<Overlay>,
    label: Option<String>,
    arrivals: Arrivals,
    seed: u64,
    time_scale: f64,
    rate_scale: f64,
    /// A cap on requests (`-n`); count-limited Poisson runs may go past the end at the final
    /// rate until the cap is reached.
    limit: Option<u64>,
    // Compiled:
    segs: Vec<Segment>,
    spans: Vec<StageSpan>,
    duration: f64,
    area: f64,
    total: u64,
    peak: f64,
}

/// Neumaier's compensated sum: keeps the cumulative counts exact to a few ulp over any number of
/// segments.
#[derive(Default)]
struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }
    fn value(&self) -> f64 {
        self.s + self.c
    }
}

impl Curve {
    /// Compiles stages (in sequence) and overlays (on top). Uniform arrivals, seed 0, no scaling.
    pub fn new(stages: Vec<Stage>, overlays: Vec<Overlay>) -> Result<Curve, StageError> {
        let mut c = Curve {
            stages,
            overlays,
            label: None,
            arrivals: Arrivals::Uniform,
            seed: 0,
            time_scale: 1.0,
            rate_scale: 1.0,
            limit: None,
            segs: Vec::new(),
            spans: Vec::new(),
            duration: 0.0,
            area: 0.0,
            total: 0,
            peak: 0.0,
        };
        c.compile()?;
        Ok(c)
    }

    pub(crate) fn with_limit(mut self, limit: u64) -> Result<Curve, StageError> {
        self.limit = Some(limit);
        self.compile()?;
        Ok(self)
    }

    pub(crate) fn set_label(&mut self, label: Option<String>) {
        self.label = label;
    }

    pub(crate) fn set_arrivals(&mut self, arrivals: Arrivals, seed: u64) {
        self.arrivals = arrivals;
        self.seed = seed;
    }

    pub(crate) fn set_scales(
        &mut self,
        time_scale: f64,
        rate_scale: f64,
    ) -> Result<(), StageError> {
        for (field, v) in [("time_scale", time_scale), ("rate_scale", rate_scale)] {
            if !v.is_finite() || v <= 0.0 || v > 1e6 {
                return Err(err(
                    field,
                    format!("{field} {v} is not a finite number above zero"),
                    "e.g. time_scale = 60 runs a 24 h profile in 24 min; rate_scale = 0.3 runs it at 30 %",
                ));
            }
        }
        let (old_t, old_r) = (self.time_scale, self.rate_scale);
        self.time_scale = time_scale;
        self.rate_scale = rate_scale;
        if let Err(e) = self.compile() {
            self.time_scale = old_t;
            self.rate_scale = old_r;
            self.compile()?;
            return Err(e);
        }
        Ok(())
    }

    fn compile(&mut self) -> Result<(), StageError> {
        let at = |r: StageRef| {
            move |mut e: StageError| {
                e.at = r;
                e
            }
        };
        if self.stages.is_empty() {
            return Err(err(
                "stage",
                "the profile has no stage",
                "add at least one [[stage]], e.g. shape = \"constant\", rate = 100, duration = \"1m\"",
            ));
        }
        // Base pieces, stage after stage; stage starts are sums of exact durations.
        let mut base = Vec::new();
        let mut bounds = Vec::with_capacity(self.stages.len() + 1);
        let mut t = 0.0;
        for (i, s) in self.stages.iter().enumerate() {
            s.kind.validate().map_err(at(StageRef::Stage(i)))?;
            bounds.push(t);
            s.kind.pieces(t, &mut base);
            t += s.kind.duration();
            if base.len() > MAX_PIECES {
                return Err(at(StageRef::Stage(i))(too_many()));
            }
        }
        bounds.push(t);
        let profile_len = t;
        if profile_len > MAX_DURATION {
            return Err(err(
                "duration",
                format!(
                    "the stages last {} in all, longer than 366 days",
                    super::stage::fmt_secs(profile_len)
                ),
                "shorten the stages, or compress with time_scale",
            ));
        }
        // Overlays.
        let mut layers = Vec::with_capacity(self.overlays.len());
        for (i, o) in self.overlays.iter().enumerate() {
            let e = at(StageRef::Overlay(i));
            o.stage.kind.validate().map_err(e)?;
            if !(o.start.is_finite() && o.start >= 0.0 && o.start < profile_len) {
                return Err(e(err(
                    "start",
                    format!(
                        "the overlay starts at {}s, outside the profile (0 to {}s)",
                        fmt_rate(o.start),
                        fmt_rate(profile_len)
                    ),
                    "start overlays within the stages' total duration",
                )));
            }
            let mut v = Vec::new();
            o.stage.kind.pieces(o.start, &mut v);
            v.retain_mut(|p| {
                p.end = p.end.min(profile_len);
                p.end > p.start
            });
            if v.len() > MAX_PIECES {
                return Err(e(too_many()));
            }
            layers.push(v);
        }
        let pieces = if layers.is_empty() {
            base
        } else {
            merge(&base, &layers)?
        };
        // Scale and accumulate. The scaled curve is bounded like the written one, so that no
        // scale can make a run that never ends or a count that overflows.
        let (k, s) = (self.time_scale, self.rate_scale);
        if profile_len / k > MAX_DURATION {
            return Err(err(
                "time_scale",
                format!(
                    "at time_scale {} the profile would last {:.3e} days, longer than 366",
                    fmt_scale(k),
                    profile_len / k / 86_400.0
                ),
                "raise time_scale (below 1 stretches the profile) or shorten the stages",
            ));
        }
        let mut sum = Sum::default();
        let mut segs: Vec<Segment> = pieces
            .iter()
            .map(|p| {
                let scaled = Piece {
                    start: p.start / k,
                    end: p.end / k,
                    a: p.a * s,
                    b: p.b * s * k,
                    amp: p.amp * s,
                    omega: p.omega * k,
                    phase: p.phase,
                };
                let mut seg = Segment::new(&scaled);
                seg.c0 = sum.value();
                sum.add(seg.area(seg.len()));
                seg.c1 = sum.value();
                seg
            })
            .collect();
        // Segments tile the time line exactly.
        for i in 1..segs.len() {
            segs[i].t0 = segs[i - 1].t1;
        }
        self.duration = profile_len / k;
        if let Some(last) = segs.last_mut() {
            last.t1 = self.duration;
        }
        self.area = sum.value();
        self.peak = segs.iter().map(Segment::peak).fold(0.0, f64::max);
        self.segs = segs;
        if self.peak > MAX_RATE {
            return Err(err(
                "rate_scale",
                format!("the peak rate {}/s is above the limit", fmt_rate(self.peak)),
                "one generator honours at most 10,000,000/s; lower rate_scale or split the load",
            ));
        }
        if self.area > MAX_REQUESTS {
            return Err(err(
                "rate_scale",
                format!(
                    "the profile schedules {:.3e} requests, more than the limit of {MAX_REQUESTS:.0e}",
                    self.area
                ),
                "lower rate_scale or the rates, or shorten the stages",
            ));
        }
        let uniform = (self.area + count_epsilon(self.area)).floor() as u64;
        self.total = self.limit.map_or(uniform, |l| l.min(uniform));
        if self.total == 0 {
            return Err(err(
                "rate",
                format!(
                    "the profile schedules no request (expected {:.3} in all)",
                    self.area
                ),
                "raise the rates or lengthen the stages",
            ));
        }
        // Stage spans in run time.
        self.spans = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let (a, b) = (bounds[i] / k, bounds[i + 1] / k);
                let lo = self.segs.partition_point(|g| g.t1 <= a);
                let hi = self.segs.partition_point(|g| g.t0 < b);
                let peak = self.segs[lo..hi.max(lo)]
                    .iter()
                    .map(Segment::peak)
                    .fold(0.0, f64::max);
                StageSpan {
                    name: st.name.clone(),
                    shape: st.kind.shape_name(),
                    start: a,
                    end: b,
                    requests: self.due_before(b) - self.due_before(a),
                    peak,
                    description: st.kind.describe(k, s),
                }
            })
            .collect();
        Ok(())
    }

    pub fn stages(&self) -> &[StageSpan] {
        &self.spans
    }

    /// The stage specs as written (profile time, unscaled).
    pub fn stage_specs(&self) -> &[Stage] {
        &self.stages
    }

    pub fn overlays(&self) -> &[Overlay] {
        &self.overlays
    }

    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    pub fn arrivals(&self) -> Arrivals {
        self.arrivals
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    pub fn rate_scale(&self) -> f64 {
        self.rate_scale
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Length in run seconds.
    pub fn duration_secs(&self) -> f64 {
        self.duration
    }

    /// `N(T)`: the expected number of requests in the whole run.
    pub fn area(&self) -> f64 {
        self.area
    }

    /// Requests in the run: exact for uniform arrivals; for Poisson the mean (or the cap).
    pub fn total(&self) -> u64 {
        match (self.arrivals, self.limit) {
            (Arrivals::Poisson, Some(l)) => l,
            (Arrivals::Poisson, None) => self.area.round().max(1.0) as u64,
            (Arrivals::Uniform, _) => self.total,
        }
    }

    /// Exact uniform count (`⌊N(T)⌋`, capped by the limit).
    pub(crate) fn uniform_total(&self) -> u64 {
        self.total
    }

    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// Number of compiled segments.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Count-limited curves continue at their final rate (Poisson only).
    pub(crate) fn extends(&self) -> bool {
        self.limit.is_some()
    }

    fn seg_at_time(&self, t: f64) -> Option<&Segment> {
        if t.is_nan() || t < 0.0 || t >= self.duration {
            return None;
        }
        let i = self.segs.partition_point(|g| g.t0 <= t).saturating_sub(1);
        self.segs.get(i)
    }

    /// `r(t)` in requests per second (0 outside the curve).
    pub fn rate_at(&self, t: f64) -> f64 {
        self.seg_at_time(t)
            .map_or(0.0, |g| g.rate(t - g.t0).max(0.0))
    }

    /// `(min, max)` of `r` over `[t0, t1]` (for plots; sine segments are sampled).
    pub fn rate_range(&self, t0: f64, t1: f64) -> (f64, f64) {
        let t1 = t1.min(self.duration);
        if t0.is_nan() || t1.is_nan() || t1 <= t0 {
            let r = self.rate_at(t0);
            return (r, r);
        }
        let lo_i = self.segs.partition_point(|g| g.t1 <= t0);
        let mut out: Option<(f64, f64)> = None;
        for g in &self.segs[lo_i..] {
            if g.t0 >= t1 {
                break;
            }
            let (a, b) = (t0.max(g.t0) - g.t0, t1.min(g.t1) - g.t0);
            let (lo, hi) = g.range(a, b);
            out = Some(out.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
        }
        let (lo, hi) = out.unwrap_or((0.0, 0.0));
        (lo.max(0.0), hi.max(0.0))
    }

    /// `N(t)`: expected requests due before `t` seconds.
    pub fn cumulative(&self, t: f64) -> f64 {
        if t.is_nan() || t <= 0.0 {
            return 0.0;
        }
        match self.seg_at_time(t) {
            Some(g) => g.c0 + g.area(t - g.t0),
            None => self.area,
        }
    }

    /// Uniform requests due in `[0, t)`: `⌈N(t)⌉` less float noise, capped at the total.
    pub fn due_before(&self, t: f64) -> u64 {
        let n = self.cumulative(t);
        ((n - count_epsilon(n)).ceil().max(0.0) as u64).min(self.total)
    }

    /// Index of the segment holding area `x` (`c0 ≤ x < c1`), by binary search.
    pub(crate) fn seg_for_area(&self, x: f64) -> usize {
        self.segs
            .partition_point(|g| g.c1 <= x)
            .min(self.segs.len() - 1)
    }

    /// The time (s) at which the area reaches `x`, searching from the cursor's segment onwards
    /// (the schedule's cursor, moved to the solution); `None` past the end of the curve.
    #[inline]
    pub(crate) fn time_of_area(&self, x: f64, cursor: &mut Cursor) -> Option<f64> {
        if x >= self.area {
            return self.extrapolate(x);
        }
        let segs = &self.segs;
        let i = cursor.seg;
        if segs[i].c1 <= x || segs[i].c0 > x {
            let next = if segs.get(i + 1).is_some_and(|g| g.c1 > x && g.c0 <= x) {
                i + 1
            } else {
                self.seg_for_area(x)
            };
            *cursor = Cursor::at(next);
        }
        let g = &segs[cursor.seg];
        let y = x - g.c0;
        let (tau, rate) = g.solve(y, cursor.prev);
        cursor.prev = (rate > 0.0).then_some(Solution { y, tau, rate });
        Some((g.t0 + tau).min(g.t1))
    }

    #[cold]
    fn extrapolate(&self, x: f64) -> Option<f64> {
        let last = self.segs.last()?;
        let r = last.rate(last.len());
        (self.extends() && r > 0.0).then(|| self.duration + (x - self.area) / r)
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        let mut s = match self.spans.as_slice() {
            [one] if self.label.is_none() && self.limit.is_some() => {
                // `-r 5000 -d 10s` → "constant 5000/s", as before profiles existed.
                match &self.stages[0].kind {
                    StageKind::Constant { rate, .. } => {
                        format!("constant {}/s", fmt_rate(rate * self.rate_scale))
                    }
                    _ => one.description.clone(),
                }
            }
            [one] => one.description.clone(),
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.name.as_str()).collect();
                format!("{} stages: {}", many.len(), names.join(" → "))
            }
        };
        if let Some(l) = &self.label {
            s = format!("{l} ({s})");
        }
        if !self.overlays.is_empty() {
            s.push_str(&format!(" + {} overlay(s)", self.overlays.len()));
        }
        if self.arrivals == Arrivals::Poisson {
            s.push_str(&format!(", poisson seed {}", self.seed));
        }
        if self.time_scale != 1.0 {
            s.push_str(&format!(", time ×{}", fmt_rate(self.time_scale)));
        }
        if self.rate_scale != 1.0 {
            s.push_str(&format!(", rate ×{}", self.rate_scale));
        }
        s
    }

    /// The stage running at `t` seconds: index and name.
    pub fn stage_at(&self, t: f64) -> Option<(usize, &str)> {
        if t.is_nan() || t < 0.0 || t >= self.duration {
            return None;
        }
        let i = self
            .spans
            .partition_point(|s| s.start <= t)
            .saturating_sub(1);
        self.spans.get(i).map(|s| (i, s.name.as_str()))
    }
}

fn too_many() -> StageError {
    err(
        "every",
        "the profile compiles to more than 500,000 pieces",
        "use longer burst periods or table steps, or fewer stages",
    )
}

/// Sums the base pieces and the overlay layers on every elementary interval between their
/// breakpoints.
fn merge(base: &[Piece], layers: &[Vec<Piece>]) -> Result<Vec<Piece>, StageError> {
    let mut cuts: Vec<f64> = base
        .iter()
        .chain(layers.iter().flatten())
        .flat_map(|p| [p.start, p.end])
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    if cuts.len() > MAX_PIECES {
        return Err(too_many());
    }
    let mut out = Vec::with_capacity(cuts.len());
    let mut bi = 0;
    let mut li = vec![0usize; layers.len()];
    for w in cuts.windows(2) {
        let (u, v) = (w[0], w[1]);
        let mut acc = Piece {
            start: u,
            end: v,
            a: 0.0,
            b: 0.0,
            amp: 0.0,
            omega: 0.0,
            phase: 0.0,
        };
        let mut add = |p: &Piece, who: StageRef| -> Result<(), StageError> {
            let dt = u - p.start;
            acc.a += p.a + p.b * dt;
            acc.b += p.b;
            if p.amp != 0.0 {
                let phase = (p.phase + p.omega * dt).rem_euclid(TAU);
                if acc.amp == 0.0 {
                    (acc.amp, acc.omega, acc.phase) = (p.amp, p.omega, phase);
                } else if acc.omega == p.omega {
                    // A₁·sin(θ+φ₁) + A₂·sin(θ+φ₂) = |z|·sin(θ + arg z), z = A₁e^{iφ₁} + A₂e^{iφ₂}.
                    let re = acc.amp * acc.phase.cos() + p.amp * phase.cos();
                    let im = acc.amp * acc.phase.sin() + p.amp * phase.sin();
                    acc.amp = re.hypot(im);
                    acc.phase = im.atan2(re).rem_euclid(TAU);
                } else {
                    let mut e = err(
                        "shape",
                        "two sines with different periods overlap",
                        "overlay a table or a burst on a sine instead, or give both the same period",
                    );
                    e.at = who;
                    return Err(e);
                }
            }
            Ok(())
        };
        while bi < base.len() && base[bi].end <= u {
            bi += 1;
        }
        if let Some(p) = base.get(bi).filter(|p| p.start <= u) {
            add(p, StageRef::Profile)?;
        }
        for (j, layer) in layers.iter().enumerate() {
            while li[j] < layer.len() && layer[li[j]].end <= u {
                li[j] += 1;
            }
            if let Some(p) = layer.get(li[j]).filter(|p| p.start <= u) {
                add(p, StageRef::Overlay(j))?;
            }
        }
        if acc.amp == 0.0 {
            acc.omega = 0.0;
            acc.phase = 0.0;
        }
        out.push(acc);
    }
    Ok(out)
}

/// Seconds (≥ 0, finite) → `Duration`, rounded to the nanosecond and saturating instead of
/// panicking. Splitting off the whole seconds first keeps nanosecond precision at any offset and
/// costs a few ns, against ~20 ns for `Duration::from_secs_f64`.
#[inline]
pub(crate) fn secs(x: f64) -> Duration {
    if x.is_nan() || x <= 0.0 {
        return Duration::ZERO;
    }
    if x >= 1e15 {
        return Duration::MAX;
    }
    let whole = x.trunc();
    let nanos = ((x - whole) * 1e9).round() as u32; // ≤ 1e9: Duration::new carries it over
    Duration::new(whole as u64, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_matches_std_to_the_nanosecond() {
        let mut x = 1e-9;
        while x < 1e8 {
            for y in [x, x * 1.000_000_7, x * 3.3] {
                let ours = secs(y).as_nanos() as i128;
                let std = Duration::from_secs_f64(y).as_nanos() as i128;
                assert!((ours - std).abs() <= 1, "{y}: {ours} vs {std}");
            }
            x *= 1.37;
        }
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(f64::INFINITY), Duration::MAX);
        assert_eq!(secs(0.999_999_999_9), Duration::from_secs(1));
        assert_eq!(secs(2.5), Duration::from_millis(2500));
    }
}

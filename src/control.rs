//! Steering a running schedule from outside (the terminal UI, a test): pause and resume, and
//! live rate changes. The schedule itself stays pure; what changes is the map from *schedule
//! time* (the shape's own clock, where request `n` is due at `N⁻¹(n)`) to *wall time*.
//!
//! ```text
//! wall = piece.wall + (s − piece.sched) / piece.factor      for the last piece with sched ≤ s
//! ```
//!
//! - A **pause** freezes schedule time: nothing is due while paused, and at the resume a new
//!   piece starts at the schedule time reached at the pause, so every later intended start
//!   shifts by the paused time. A pause therefore never turns into a burst of "late" requests.
//! - A **rate change** to factor `f` starts a new piece at the schedule time reached now: the rest
//!   of the schedule runs `f` times as fast (a ramp ramps `f` times as fast too); the number of
//!   requests is unchanged, the run ends sooner or later.
//!
//! The coordinated-omission guarantee is untouched: an intended start is still a pure function
//! of the schedule and of these recorded changes, never of a response. Every change is logged
//! with its time so the report can show it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

/// One `+`/`-` step: 10 percentage points of the planned rate.
pub const STEP: f64 = 0.1;
/// The lowest rate factor (10 % of the plan).
pub const MIN_FACTOR: f64 = 0.1;
/// The highest rate factor (10 × the plan).
pub const MAX_FACTOR: f64 = 10.0;
/// Changes kept per run: the log and the warp stay bounded; later changes are refused.
pub const MAX_CHANGES: usize = 1000;

/// From schedule offset `sched` on, wall time runs `1 / factor` as fast as schedule time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Piece {
    sched: Duration,
    wall: Instant,
    factor: f64,
}

/// The map from schedule time to wall time: the identity from the start until a change.
#[derive(Clone, Debug, PartialEq)]
pub struct Warp {
    pieces: Vec<Piece>,
}

impl Warp {
    /// Schedule time `s` is wall time `start + s`.
    pub fn identity(start: Instant) -> Warp {
        Warp {
            pieces: vec![Piece {
                sched: Duration::ZERO,
                wall: start,
                factor: 1.0,
            }],
        }
    }

    fn piece_for_sched(&self, s: Duration) -> &Piece {
        let i = self.pieces.partition_point(|p| p.sched <= s);
        &self.pieces[i.saturating_sub(1)]
    }

    /// The wall instant at which schedule offset `s` is due.
    pub fn wall(&self, s: Duration) -> Instant {
        let p = self.piece_for_sched(s);
        let ahead = s.saturating_sub(p.sched).as_secs_f64() / p.factor;
        p.wall + Duration::try_from_secs_f64(ahead).unwrap_or(Duration::MAX / 4)
    }

    /// The schedule offset reached at wall instant `w` (not across a pause: see
    /// [`State::position`]).
    pub fn sched(&self, w: Instant) -> Duration {
        let i = self.pieces.partition_point(|p| p.wall <= w);
        let p = &self.pieces[i.saturating_sub(1)];
        let ran = w.saturating_duration_since(p.wall).as_secs_f64() * p.factor;
        p.sched + Duration::try_from_secs_f64(ran).unwrap_or(Duration::ZERO)
    }

    fn push(&mut self, piece: Piece) {
        self.pieces.push(piece);
    }
}

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pause,
    Resume,
    Rate,
}

/// One logged change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Wall time since the schedule's start.
    pub at: Duration,
    pub action: Action,
    /// The rate factor in force after the change.
    pub factor: f64,
    /// The schedule time reached at the change.
    pub sched: Duration,
}

/// The steering state, published to the pacer and read by the collector.
#[derive(Clone, Debug)]
pub struct State {
    start: Instant,
    warp: Warp,
    /// Since when, and the schedule time reached then.
    paused: Option<(Instant, Duration)>,
    factor: f64,
    paused_total: Duration,
    log: Vec<Change>,
}

impl State {
    fn new(start: Instant) -> State {
        State {
            start,
            warp: Warp::identity(start),
            paused: None,
            factor: 1.0,
            paused_total: Duration::ZERO,
            log: Vec::new(),
        }
    }

    pub fn warp(&self) -> &Warp {
        &self.warp
    }

    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// The rate factor in force (1 = as planned).
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The schedule time reached at `now` (frozen while paused).
    pub fn position(&self, now: Instant) -> Duration {
        match self.paused {
            Some((_, s)) => s,
            None => self.warp.sched(now),
        }
    }

    /// Time spent paused up to `now` (a pause still running included).
    pub fn paused_for(&self, now: Instant) -> Duration {
        let running = self
            .paused
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(at));
        self.paused_total + running
    }

    /// Every change so far, oldest first.
    pub fn changes(&self) -> &[Change] {
        &self.log
    }

    fn log(&mut self, now: Instant, action: Action, sched: Duration) {
        self.log.push(Change {
            at: now.saturating_duration_since(self.start),
            action,
            factor: self.factor,
            sched,
        });
    }

    fn toggle(&mut self, now: Instant) {
        match self.paused.take() {
            None => {
                let s = self.warp.sched(now);
                self.paused = Some((now, s));
                self.log(now, Action::Pause, s);
            }
            Some((at, s)) => {
                self.paused_total += now.saturating_duration_since(at);
                self.warp.push(Piece {
                    sched: s,
                    wall: now,
                    factor: self.factor,
                });
                self.log(now, Action::Resume, s);
            }
        }
    }

    fn set_factor(&mut self, factor: f64, now: Instant) {
        self.factor = factor;
        let s = self.position(now);
        if self.paused.is_none() {
            self.warp.push(Piece {
                sched: s,
                wall: now,
                factor,
            });
        }
        self.log(now, Action::Rate, s);
    }
}

/// The steering at one moment, as a snapshot carries it to views.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Status {
    pub paused: bool,
    /// The rate factor in force (1 = as planned).
    pub factor: f64,
    /// Schedule time reached (the shape's own clock; frozen while paused).
    pub position: Duration,
    /// Time spent paused so far.
    pub paused_for: Duration,
    /// Changes made so far.
    pub changes: usize,
}

impl State {
    /// The steering at `now`.
    pub fn status(&self, now: Instant) -> Status {
        Status {
            paused: self.is_paused(),
            factor: self.factor,
            position: self.position(now),
            paused_for: self.paused_for(now),
            changes: self.log.len(),
        }
    }
}

/// Why a change was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the rate is already at its {0} (10 % to 10 × the plan)")]
    Bound(&'static str),
    #[error("{MAX_CHANGES} changes made already; no more in this run")]
    TooMany,
}

/// The handle a UI or a test steers a run with; cheap to clone. The pacer subscribes to it
/// (through [`crate::schedule::Schedule::steered_by`]).
#[derive(Clone, Debug)]
pub struct Control {
    tx: Arc<watch::Sender<State>>,
}

impl Control {
    /// A control for a run whose schedule starts at `start` (re-anchored by the run itself).
    pub fn new() -> Control {
        Control {
            tx: Arc::new(watch::Sender::new(State::new(Instant::now()))),
        }
    }

    /// Anchors the warp at the schedule's start. Called once by the run before pacing.
    pub fn anchor(&self, start: Instant) {
        self.tx.send_replace(State::new(start));
    }

    /// A copy of the current state.
    pub fn state(&self) -> State {
        self.tx.borrow().clone()
    }

    /// For the pacer: wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.tx.subscribe()
    }

    /// Pauses, or resumes a pause. Returns whether the run is now paused.
    pub fn toggle_pause(&self, now: Instant) -> Result<bool, Refused> {
        self.change(|s| {
            s.toggle(now);
            Ok(s.is_paused())
        })
    }

    /// Changes the rate factor by `steps` of [`STEP`] (negative: slower), within
    /// [`MIN_FACTOR`]..=[`MAX_FACTOR`]. Returns the new factor.
    pub fn step_rate(&self, steps: i32, now: Instant) -> Result<f64, Refused> {
        self.change(|s| {
            let wanted = (s.factor + f64::from(steps) * STEP).clamp(MIN_FACTOR, MAX_FACTOR);
            // Whole percent, so that ten steps up and ten down come back to exactly 1.
            let wanted = (wanted * 100.0).round() / 100.0;
            if wanted == s.factor {
                return Err(Refused::Bound(if steps > 0 { "highest" } else { "lowest" }));
            }
            s.set_factor(wanted, now);
            Ok(wanted)
        })
    }

    fn change<T>(&self, f: impl FnOnce(&mut State) -> Result<T, Refused>) -> Result<T, Refused> {
        let mut out = Err(Refused::TooMany);
        self.tx.send_if_modified(|s| {
            if s.log.len() >= MAX_CHANGES {
                return false;
            }
            out = f(s);
            out.is_ok()
        });
        out
    }
}

impl Default for Control {
    fn default() -> Self {
        Control::new()
    }
}

/// What the report says about steering.
#[derive(Clone, Debug)]
pub struct Summary {
    pub changes: Vec<Change>,
    pub paused: Duration,
    pub factor: f64,
    /// Schedule time reached when the schedule ended or was stopped.
    pub position: Duration,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            changes: Vec::new(),
            paused: Duration::ZERO,
            factor: 1.0,
            position: Duration::ZERO,
        }
    }
}

impl Summary {
    /// The summary at `end` (the schedule's end or the stop).
    pub fn at(state: &State, end: Instant) -> Summary {
        Summary {
            changes: state.log.clone(),
            paused: state.paused_for(end),
            factor: state.factor,
            position: state.position(end),
        }
    }

    /// Whether anything was changed during the run.
    pub fn steered(&self) -> bool {
        !self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn identity_until_a_change() {
        let t0 = Instant::now();
        let w = Warp::identity(t0);
        assert_eq!(w.wall(ms(1500)), t0 + ms(1500));
        assert_eq!(w.sched(t0 + ms(700)), ms(700));
    }

    #[test]
    fn a_pause_shifts_the_rest_of_the_schedule_by_its_length() {
        let t0 = Instant::now();
        let c = Control::new();
        c.anchor(t0);
        assert_eq!(c.toggle_pause(t0 + ms(1000)), Ok(true));
        let s = c.state();
        assert_eq!(s.position(t0 + ms(1400)), ms(1000), "frozen while paused");
        assert_eq!(c.toggle_pause(t0 + ms(1500)), Ok(false));
        let s = c.state();
        assert_eq!(s.warp().wall(ms(999)), t0 + ms(999), "before the pause");
        assert_eq!(s.warp().wall(ms(1000)), t0 + ms(1500));
        assert_eq!(s.warp().wall(ms(2000)), t0 + ms(2500));
        assert_eq!(s.paused_for(t0 + ms(9000)), ms(500));
        let actions: Vec<_> = s.changes().iter().map(|c| c.action).collect();
        assert_eq!(actions, [Action::Pause, Action::Resume]);
    }

    #[test]
    fn a_rate_change_rescales_only_what_is_left() {
        let t0 = Instant::now();
        let c = Control::new();
        c.anchor(t0);
        assert_eq!(c.step_rate(10, t0 + ms(1000)), Ok(2.0));
        let s = c.state();
        assert_eq!(s.warp().wall(ms(500)), t0 + ms(500));
        assert_eq!(
            s.warp().wall(ms(3000)),
            t0 + ms(2000),
            "2 s of schedule in 1 s"
        );
        assert_eq!(s.position(t0 + ms(2000)), ms(3000));
    }

    #[test]
    fn a_change_while_paused_applies_at_the_resume() {
        let t0 = Instant::now();
        let c = Control::new();
        c.anchor(t0);
        c.toggle_pause(t0 + ms(1000)).unwrap();
        assert_eq!(c.step_rate(-5, t0 + ms(1100)), Ok(0.5));
        c.toggle_pause(t0 + ms(2000)).unwrap();
        let s = c.state();
        assert_eq!(s.warp().wall(ms(1500)), t0 + ms(3000));
    }

    #[test]
    fn steps_are_bounded_and_return_exactly() {
        let c = Control::new();
        let now = Instant::now();
        for _ in 0..5 {
            c.step_rate(1, now).unwrap();
        }
        for _ in 0..5 {
            c.step_rate(-1, now).unwrap();
        }
        assert_eq!(c.state().factor(), 1.0);
        assert_eq!(c.step_rate(-100, now), Ok(MIN_FACTOR));
        assert_eq!(c.step_rate(-1, now), Err(Refused::Bound("lowest")));
        assert_eq!(c.step_rate(1000, now), Ok(MAX_FACTOR));
    }

    #[test]
    fn the_log_is_bounded() {
        let c = Control::new();
        let now = Instant::now();
        for _ in 0..MAX_CHANGES {
            c.toggle_pause(now).unwrap();
        }
        assert_eq!(c.toggle_pause(now), Err(Refused::TooMany));
        assert_eq!(c.state().changes().len(), MAX_CHANGES);
    }
}

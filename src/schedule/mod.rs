//! The schedule: when each request *should* start.
//!
//! This is where the coordinated-omission guarantee is anchored. A [`Ticket`]'s intended start is
//! computed from the load shape and the run's start instant alone: it never depends on responses,
//! workers or timers, and nothing else in the crate can create a ticket or change its intended
//! time. Latency is later measured from that instant (see [`crate::record::Outcome`]), so a
//! generator that falls behind shows its lateness as send lag instead of hiding it.
//!
//! - [`shape`](Shape): the closed set of shapes and their public API;
//! - `stage`: typed stages (constant, ramp, step, burst, sine, table, replay) and their pieces;
//! - `curve`: the compiled rate curve, its inverse cumulative count and the math behind it;
//! - `rng`: the seeded PRNG behind Poisson arrivals and the request mix.

mod curve;
mod rng;
mod shape;
mod stage;
#[cfg(test)]
mod table_tests;

pub use curve::{Arrivals, Curve, StageSpan};
pub use rng::{fresh_seed, splitmix64, Rng};
pub use shape::{Shape, ShapeError, ShapeParam};
pub use stage::{
    degrees, fmt_rate, fmt_secs, phase_peaking_at, staircase, Interpolate, Overlay, Stage,
    StageError, StageKind, StageRef, MAX_DURATION, MAX_PIECES, MAX_RATE, MAX_REQUESTS,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use curve::{secs, Cursor};
use tokio::sync::watch;

use crate::control::{self, Control, Warp};

/// One scheduled request: its sequence number, the instant it is due, and which request of the
/// profile's mix to send. A retry (see [`crate::retry`]) is a ticket too: it keeps the first
/// attempt's sequence number and intended start (its *origin*, from which end-to-end latency is
/// measured) and has its own intended start, the due time its backoff gave it.
///
/// Fields are private and the only constructors are [`Schedule::next_ticket`] and
/// [`Ticket::retry`], so the intended time cannot be replaced by "now" anywhere downstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    seq: u64,
    intended: Instant,
    /// The first attempt's intended start (equal to `intended` for a first attempt).
    origin: Instant,
    /// Where the ticket sits on the shape's own clock (equals `intended − start` unless the run
    /// was paused or its rate changed, see [`crate::control`]).
    offset: Duration,
    request: u32,
    /// 0 for the first attempt, 1 for the first retry…
    attempt: u16,
    /// The backoff (µs) that preceded this attempt, for decorrelated jitter.
    backoff_us: u32,
    /// Why a retry was made (an index the retry module gives meaning to); 0 for a first attempt.
    reason: u8,
}

impl Ticket {
    /// A ticket for closed-loop `max` mode only, where there is no schedule: its intended time
    /// is the moment a slot became free, so latency equals service time. This is the one place a
    /// ticket's time comes from "now"; reports of such runs say they are closed-loop.
    pub fn unscheduled(seq: u64) -> Ticket {
        let now = Instant::now();
        Ticket {
            seq,
            intended: now,
            origin: now,
            offset: Duration::ZERO,
            request: 0,
            attempt: 0,
            backoff_us: 0,
            reason: 0,
        }
    }

    /// The next attempt of the same logical request, due at `due` after a backoff of `backoff`.
    /// Its intended start is that due time: the retry is measured from when the client meant to
    /// send it, like any ticket; the logical request is measured from [`Ticket::origin`].
    pub fn retry(&self, due: Instant, backoff: Duration, reason: u8) -> Ticket {
        Ticket {
            intended: due,
            attempt: self.attempt.saturating_add(1),
            backoff_us: u32::try_from(backoff.as_micros()).unwrap_or(u32::MAX),
            reason,
            ..*self
        }
    }

    /// Why this retry was made, as given to [`Ticket::retry`] (0 for a first attempt).
    pub fn reason(&self) -> u8 {
        self.reason
    }

    /// The first attempt's intended start: end-to-end latency is measured from here.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// 0 for a first attempt, n for the n-th retry.
    pub fn attempt(&self) -> u16 {
        self.attempt
    }

    /// Whether this ticket is a retry.
    pub fn is_retry(&self) -> bool {
        self.attempt > 0
    }

    /// The backoff that preceded this attempt (zero for a first attempt).
    pub fn backoff(&self) -> Duration {
        Duration::from_micros(u64::from(self.backoff_us))
    }

    /// Zero-based position in the schedule.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The instant the request was due to start; latency is measured from here.
    pub fn intended(&self) -> Instant {
        self.intended
    }

    /// Offset on the shape's own clock: which stage the ticket belongs to.
    pub fn offset(&self) -> Duration {
        self.offset
    }

    /// Index into the profile's request list (0 without a mix).
    pub fn request(&self) -> u32 {
        self.request
    }
}

/// A seeded weighted pick among the profile's requests.
#[derive(Clone, Debug)]
struct Mix {
    /// Cumulative weights.
    cum: Vec<u64>,
    rng: Rng,
}

impl Mix {
    #[inline]
    fn pick(&mut self) -> u32 {
        let total = *self.cum.last().unwrap_or(&1);
        let r = self.rng.below(total);
        self.cum.partition_point(|&c| c <= r) as u32
    }
}

/// An iterator of tickets anchored to a start instant. Pure: two schedules built from the same
/// shape (same seed) and start yield identical tickets.
///
/// The next ticket's offset is computed once, ahead, so [`Schedule::peek`] is free and the
/// solver can start from the previous solution (a cursor into the curve's segments).
#[derive(Clone, Debug)]
pub struct Schedule {
    shape: Shape,
    curve: Option<Arc<Curve>>,
    start: Instant,
    next: u64,
    /// Offset of ticket `next`, or `None` when the shape has ended.
    due: Option<Duration>,
    /// Where the solver left off, so the next solve starts there.
    cursor: Cursor,
    /// Last offset (s): times never go backwards, whatever the float noise.
    last: f64,
    /// Poisson: area reached so far and the arrival stream.
    area: f64,
    rng: Option<Rng>,
    mix: Option<Mix>,
    /// Pause and rate changes from outside, if the run can be steered.
    steering: Option<Steering>,
}

/// The schedule's view of a [`Control`]: the warp as of the last [`Schedule::hold`].
#[derive(Clone, Debug)]
struct Steering {
    rx: watch::Receiver<control::State>,
    warp: Warp,
    /// While paused: the schedule offset reached at the pause; nothing from there on is due.
    frozen: Option<Duration>,
}

impl Steering {
    fn refresh(&mut self) {
        let state = self.rx.borrow_and_update();
        self.warp = state.warp().clone();
        self.frozen = state.is_paused().then(|| state.position(Instant::now()));
    }
}

impl Schedule {
    pub fn new(shape: Shape, start: Instant) -> Self {
        let curve = match &shape {
            Shape::Curve(c) => Some(c.clone()),
            _ => None,
        };
        let rng = curve
            .as_ref()
            .filter(|c| c.arrivals() == Arrivals::Poisson)
            .map(|c| Rng::stream(c.seed(), rng::STREAM_ARRIVALS));
        let mut s = Schedule {
            shape,
            curve,
            start,
            next: 0,
            due: None,
            cursor: Cursor::default(),
            last: 0.0,
            area: 0.0,
            rng,
            mix: None,
            steering: None,
        };
        s.due = s.compute();
        s
    }

    /// Picks each ticket's request from `weights` (relative, e.g. `[3, 1]` sends request 0 three
    /// times as often as request 1), seeded by the shape's seed. Fewer than two positive weights
    /// means no mix: every ticket carries request 0.
    pub fn with_mix(mut self, weights: &[u32]) -> Self {
        let mut acc = 0u64;
        let cum: Vec<u64> = weights
            .iter()
            .map(|&w| {
                acc += u64::from(w);
                acc
            })
            .collect();
        self.mix = (weights.len() > 1 && acc > 0).then(|| Mix {
            cum,
            rng: Rng::stream(self.shape.seed(), rng::STREAM_MIX),
        });
        self
    }

    /// Lets `control` pause the schedule and change its rate while it runs (see
    /// [`crate::control`]): intended starts then follow the control's warp of schedule time.
    pub fn steered_by(mut self, control: &Control) -> Self {
        let mut steering = Steering {
            rx: control.subscribe(),
            warp: Warp::identity(self.start),
            frozen: None,
        };
        steering.refresh();
        self.steering = Some(steering);
        self
    }

    /// Takes in the latest pause or rate change; whether the schedule is paused now. Tickets
    /// due before the pause are still due (see [`Schedule::peek`]).
    pub fn paused(&mut self) -> bool {
        let Some(st) = self.steering.as_mut() else {
            return false;
        };
        if st.rx.has_changed().unwrap_or(false) {
            st.refresh();
        }
        st.frozen.is_some()
    }

    /// For the pacer, once per round: takes in the latest pause or rate change. While paused it
    /// returns a future that completes at the next change (then call `hold` again); nothing is
    /// due meanwhile.
    pub fn hold(&mut self) -> Option<impl std::future::Future<Output = ()> + '_> {
        let st = self.steering.as_mut()?;
        if st.rx.has_changed().unwrap_or(false) {
            st.refresh();
        }
        st.frozen?;
        Some(async move {
            if st.rx.changed().await.is_err() {
                // The control is gone: nobody can resume; stay paused until stopped.
                std::future::pending::<()>().await;
            }
            st.refresh();
        })
    }

    /// Completes at the next pause or rate change (never without a control), so a pacer asleep
    /// until the next due time can re-time it.
    pub fn steered(&self) -> impl std::future::Future<Output = ()> + 'static {
        let rx = self.steering.as_ref().map(|s| s.rx.clone());
        async move {
            let changed = match rx {
                Some(mut rx) => rx.changed().await.is_ok(),
                None => false,
            };
            if !changed {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The wall instant of schedule offset `offset`; `None` while paused at or before it.
    #[inline]
    fn at(&self, offset: Duration) -> Option<Instant> {
        match &self.steering {
            None => Some(self.start + offset),
            Some(s) if s.frozen.is_some_and(|f| offset >= f) => None,
            Some(s) => Some(s.warp.wall(offset)),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Tickets handed out so far.
    pub fn issued(&self) -> u64 {
        self.next
    }

    /// Offset of ticket `self.next`.
    #[inline]
    fn compute(&mut self) -> Option<Duration> {
        let c = self.curve.as_deref()?;
        let x = match &mut self.rng {
            None => {
                if self.next >= c.uniform_total() {
                    return None;
                }
                self.next as f64
            }
            Some(rng) => {
                if c.limit().is_some_and(|l| self.next >= l) {
                    return None;
                }
                self.area += rng.exp1();
                self.area
            }
        };
        let t = c.time_of_area(x, &mut self.cursor)?;
        self.last = self.last.max(t);
        Some(secs(self.last))
    }

    /// The next ticket, or `None` when the shape has ended (or, steered, while it is paused).
    #[inline]
    pub fn next_ticket(&mut self) -> Option<Ticket> {
        let offset = self.due?;
        let intended = self.at(offset)?;
        let request = self.mix.as_mut().map_or(0, Mix::pick);
        let ticket = Ticket {
            seq: self.next,
            intended,
            origin: intended,
            offset,
            request,
            attempt: 0,
            backoff_us: 0,
            reason: 0,
        };
        self.next += 1;
        self.due = self.compute();
        Some(ticket)
    }

    /// The intended instant of the next ticket without consuming it (`None` at the end, or while
    /// paused).
    #[inline]
    pub fn peek(&self) -> Option<Instant> {
        self.due.and_then(|o| self.at(o))
    }

    /// The instant at which the shape ends: the end of the last interval, not the last ticket
    /// (or the last ticket, for a count-limited Poisson run that went past the curve).
    pub fn end(&self) -> Instant {
        let offset = self.shape.duration().max(secs(self.last));
        match &self.steering {
            None => self.start + offset,
            Some(s) => s.warp.wall(offset),
        }
    }

    /// Offset of the schedule's end from the start.
    pub fn duration(&self) -> Duration {
        self.shape.duration()
    }
}

impl Iterator for Schedule {
    type Item = Ticket;
    fn next(&mut self) -> Option<Ticket> {
        self.next_ticket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_anchored_to_start_and_ordered() {
        let start = Instant::now();
        let shape = Shape::constant(1000.0, Duration::from_millis(5)).unwrap();
        let tickets: Vec<_> = Schedule::new(shape, start).collect();
        assert_eq!(tickets.len(), 5);
        for (i, t) in tickets.iter().enumerate() {
            assert_eq!(t.seq(), i as u64);
            assert_eq!(t.intended() - start, Duration::from_millis(i as u64));
        }
    }

    #[test]
    fn same_shape_same_start_same_tickets() {
        let start = Instant::now();
        let shape = Shape::constant(333.0, Duration::from_secs(3)).unwrap();
        let a: Vec<_> = Schedule::new(shape.clone(), start).collect();
        let b: Vec<_> = Schedule::new(shape, start).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn peek_matches_next() {
        let start = Instant::now();
        let mut s = Schedule::new(
            Shape::constant(10.0, Duration::from_secs(1)).unwrap(),
            start,
        );
        while let Some(p) = s.peek() {
            assert_eq!(s.next_ticket().unwrap().intended(), p);
        }
        assert!(s.next_ticket().is_none());
        assert_eq!(s.issued(), 10);
    }
}

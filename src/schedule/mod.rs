//! The schedule: when each request *should* start.
//!
//! This is where the coordinated-omission guarantee is anchored. A [`Ticket`]'s intended start is
//! computed from the load shape and the run's start instant alone: it never depends on responses,
//! workers or timers, and nothing else in the crate can create a ticket or change its intended
//! time. Latency is later measured from that instant (see [`crate::record::Outcome`]), so a
//! generator that falls behind shows its lateness as send lag instead of hiding it.

mod shape;

pub use shape::Shape;

use std::time::{Duration, Instant};

/// One scheduled request: its sequence number and the instant it is due.
///
/// Fields are private and the only constructor is [`Schedule::next_ticket`], so the intended
/// time cannot be replaced by "now" anywhere downstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    seq: u64,
    intended: Instant,
}

impl Ticket {
    /// A ticket for closed-loop `max` mode only, where there is no schedule: its intended time
    /// is the moment a slot became free, so latency equals service time. This is the one place a
    /// ticket's time comes from "now"; reports of such runs say they are closed-loop.
    pub fn unscheduled(seq: u64) -> Ticket {
        Ticket {
            seq,
            intended: Instant::now(),
        }
    }

    /// Zero-based position in the schedule.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The instant the request was due to start; latency is measured from here.
    pub fn intended(&self) -> Instant {
        self.intended
    }
}

/// An iterator of tickets anchored to a start instant. Pure: two schedules built from the same
/// shape and start yield identical tickets.
#[derive(Clone, Debug)]
pub struct Schedule {
    shape: Shape,
    start: Instant,
    next: u64,
}

impl Schedule {
    pub fn new(shape: Shape, start: Instant) -> Self {
        Schedule {
            shape,
            start,
            next: 0,
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

    /// The next ticket, or `None` when the shape has ended.
    pub fn next_ticket(&mut self) -> Option<Ticket> {
        let offset = self.shape.offset_of(self.next)?;
        let ticket = Ticket {
            seq: self.next,
            intended: self.start + offset,
        };
        self.next += 1;
        Some(ticket)
    }

    /// The intended instant of the next ticket without consuming it.
    pub fn peek(&self) -> Option<Instant> {
        self.shape.offset_of(self.next).map(|o| self.start + o)
    }

    /// The instant at which the shape ends (the end of the last interval, not the last ticket).
    pub fn end(&self) -> Instant {
        self.start + self.shape.duration()
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

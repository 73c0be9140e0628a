//! One request's result and its three clocks.
//!
//! This is the only place that computes latency. An [`Outcome`] can only be built from a
//! [`Ticket`], so the intended start cannot be forgotten:
//!
//! - **latency** = done − intended: what a user arriving on schedule would have waited;
//! - **service time** = done − sent: what the target (and the network) took once asked;
//! - **send lag** = sent − intended: the generator's own lateness.

use std::time::{Duration, Instant};

use crate::schedule::Ticket;

/// The closed set of request outcomes, counted separately in every report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// 2xx or 3xx.
    Ok,
    /// A status the target uses to shed load (429 and 503 unless configured otherwise).
    Rejected,
    /// Any other 4xx/5xx (or 1xx) status.
    HttpError,
    /// No complete response within the request timeout.
    Timeout,
    /// The TCP connect, TLS handshake or HTTP handshake failed.
    ConnectError,
    /// The connection broke mid-request (reset, protocol error).
    TransportError,
}

impl Class {
    /// Whether the target answered with a status line, so the request's timing is a real
    /// response time. Timeouts also enter the latency figures (at the moment we gave up);
    /// connect and transport failures do not, since they never got an answer to time.
    pub fn is_timed(self) -> bool {
        !matches!(self, Class::ConnectError | Class::TransportError)
    }
}

/// What a transport reports for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub class: Class,
    /// HTTP status, or 0 when there was none.
    pub status: u16,
}

impl Completion {
    pub fn failed(class: Class) -> Self {
        Completion { class, status: 0 }
    }
}

/// A finished request, ready to be recorded.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    ticket: Ticket,
    sent_at: Instant,
    done_at: Instant,
    completion: Completion,
}

impl Outcome {
    pub fn new(ticket: Ticket, sent_at: Instant, done_at: Instant, completion: Completion) -> Self {
        Outcome {
            ticket,
            sent_at,
            done_at,
            completion,
        }
    }

    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    pub fn class(&self) -> Class {
        self.completion.class
    }

    pub fn status(&self) -> u16 {
        self.completion.status
    }

    /// done − intended.
    pub fn latency(&self) -> Duration {
        self.done_at
            .saturating_duration_since(self.ticket.intended())
    }

    /// done − sent.
    pub fn service_time(&self) -> Duration {
        self.done_at.saturating_duration_since(self.sent_at)
    }

    /// sent − intended.
    pub fn send_lag(&self) -> Duration {
        self.sent_at
            .saturating_duration_since(self.ticket.intended())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, Shape};

    #[test]
    fn three_clocks_are_kept_apart() {
        let start = Instant::now();
        let shape = Shape::constant(10.0, Duration::from_secs(1)).unwrap();
        let ticket = Schedule::new(shape, start).nth(3).unwrap(); // due at +300 ms
        let sent = start + Duration::from_millis(350);
        let done = start + Duration::from_millis(1350);
        let o = Outcome::new(
            ticket,
            sent,
            done,
            Completion {
                class: Class::Ok,
                status: 200,
            },
        );
        assert_eq!(o.latency(), Duration::from_millis(1050));
        assert_eq!(o.service_time(), Duration::from_millis(1000));
        assert_eq!(o.send_lag(), Duration::from_millis(50));
        assert_eq!(o.latency(), o.service_time() + o.send_lag());
    }

    #[test]
    fn timed_classes() {
        assert!(Class::Ok.is_timed());
        assert!(Class::Rejected.is_timed());
        assert!(Class::Timeout.is_timed());
        assert!(!Class::ConnectError.is_timed());
        assert!(!Class::TransportError.is_timed());
    }
}

//! One request's result and its three clocks.
//!
//! This is the only place that computes latency. An [`Outcome`] can only be built from a
//! [`Ticket`], so the intended start cannot be forgotten:
//!
//! - **latency** = done − intended: what a user arriving on schedule would have waited;
//! - **service time** = done − sent: what the target (and the network) took once asked;
//! - **send lag** = sent − intended: the generator's own lateness.
//!
//! Every request that took time is in the tail: failures enter the histograms at the moment they
//! were known, and a request cut at the end of the run is *censored* there (see [`Outcome::cut`]).

use std::time::{Duration, Instant};

use crate::schedule::Ticket;

/// The closed set of request outcomes, counted separately in every report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// 2xx or 3xx.
    Ok,
    /// A status the target uses to shed load (429 and 503 unless configured otherwise).
    Rejected,
    /// Any other status.
    HttpError,
    /// No complete response within the request timeout.
    Timeout,
    /// The TCP connect, TLS handshake or HTTP handshake failed.
    ConnectError,
    /// The connection broke mid-request (reset, protocol error).
    TransportError,
    /// The generator's own host ran out of something (file descriptors, ports, buffers): not the
    /// target's fault, and it makes the measurement untrustworthy.
    LocalError,
    /// Still unanswered (in flight, or queued in the generator) when the run stopped waiting: the
    /// latency is censored at that moment (it was at least this long).
    Cancelled,
}

/// Latency is also kept per outcome group, so fast rejections cannot flatter the headline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Ok = 0,
    Rejected = 1,
    /// HTTP errors, connect, transport and local errors.
    Error = 2,
    Timeout = 3,
    Cancelled = 4,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Ok,
        Group::Rejected,
        Group::Error,
        Group::Timeout,
        Group::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Group::Ok => "ok",
            Group::Rejected => "rejected",
            Group::Error => "error",
            Group::Timeout => "timeout",
            Group::Cancelled => "cancelled",
        }
    }
}

impl Class {
    pub fn group(self) -> Group {
        match self {
            Class::Ok => Group::Ok,
            Class::Rejected => Group::Rejected,
            Class::Timeout => Group::Timeout,
            Class::Cancelled => Group::Cancelled,
            Class::HttpError | Class::ConnectError | Class::TransportError | Class::LocalError => {
                Group::Error
            }
        }
    }

    /// Short name used in error samples and reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Rejected => "rejected",
            Class::HttpError => "http_error",
            Class::Timeout => "timeout",
            Class::ConnectError => "connect_error",
            Class::TransportError => "transport_error",
            Class::LocalError => "local_error",
            Class::Cancelled => "cancelled",
        }
    }
}

/// What a transport reports for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub class: Class,
    /// HTTP status, or 0 when there was none.
    pub status: u16,
    /// Time spent opening a connection for this request (TCP + TLS + HTTP handshake), when it
    /// needed a new one. Part of its service time.
    pub connect: Option<Duration>,
    /// What went wrong, in words, for failures (kept as a bounded sample in the report).
    pub error: Option<String>,
    /// How long the server asked the client to wait before retrying (`Retry-After`, or
    /// gRPC's `grpc-retry-pushback-ms`).
    pub retry_after: Option<Duration>,
    /// The server said not to retry this call (gRPC: a negative or unparsable
    /// `grpc-retry-pushback-ms`); the retrier then ends its logical request as failed.
    pub no_retry: bool,
    /// The gRPC status of a gRPC call that got an answer (`None` for HTTP, and for gRPC calls
    /// that failed before one).
    pub grpc: Option<crate::grpc::Code>,
    /// Response messages received (gRPC), counted from their length prefixes.
    pub messages: u32,
    /// When the first response message was complete (gRPC), for time to first message.
    pub first_message: Option<Instant>,
    /// gRPC client streaming: how long each of the call's request messages waited for HTTP/2
    /// flow control (a full stream or connection window) before hyper took it.
    pub flow: Option<crate::transport::grpc::FlowWaits>,
}

impl Completion {
    /// A response with a status.
    pub fn status(class: Class, status: u16) -> Self {
        Completion {
            class,
            status,
            connect: None,
            error: None,
            retry_after: None,
            no_retry: false,
            grpc: None,
            messages: 0,
            first_message: None,
            flow: None,
        }
    }

    /// A failure without a status, with a message saying what it was.
    pub fn failed(class: Class, error: impl Into<String>) -> Self {
        Completion {
            class,
            status: 0,
            connect: None,
            error: Some(error.into()),
            retry_after: None,
            no_retry: false,
            grpc: None,
            messages: 0,
            first_message: None,
            flow: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Response messages counted, and when the first one was complete (gRPC).
    pub fn with_messages(mut self, messages: u32, first: Option<Instant>) -> Self {
        self.messages = messages;
        self.first_message = first;
        self
    }

    /// The flow-control waits a client-streaming call's body measured.
    pub fn with_flow(mut self, flow: crate::transport::grpc::FlowWaits) -> Self {
        self.flow = Some(flow);
        self
    }

    pub fn with_connect(mut self, connect: Option<Duration>) -> Self {
        if connect.is_some() {
            self.connect = connect;
        }
        self
    }
}

/// A finished (or cut) request, ready to be recorded.
#[derive(Clone, Debug)]
pub struct Outcome {
    ticket: Ticket,
    /// `None`: never sent (cut while still queued in the generator).
    sent_at: Option<Instant>,
    done_at: Instant,
    completion: Completion,
}

impl Outcome {
    pub fn new(ticket: Ticket, sent_at: Instant, done_at: Instant, completion: Completion) -> Self {
        Outcome {
            ticket,
            sent_at: Some(sent_at),
            done_at,
            completion,
        }
    }

    /// A request still unanswered at `cut` (sent at `sent_at`, or still queued if `None`): its
    /// latency is censored at the cut.
    pub fn cut(ticket: Ticket, sent_at: Option<Instant>, cut: Instant) -> Self {
        Outcome {
            ticket,
            sent_at,
            done_at: cut,
            completion: Completion::status(Class::Cancelled, 0),
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

    pub fn completion(&self) -> &Completion {
        &self.completion
    }

    /// Whether the request went on the wire (it has a service time and a send lag).
    pub fn was_sent(&self) -> bool {
        self.sent_at.is_some()
    }

    /// done − intended.
    pub fn latency(&self) -> Duration {
        self.done_at
            .saturating_duration_since(self.ticket.intended())
    }

    /// first response message − sent, for gRPC calls that got one.
    pub fn time_to_first_message(&self) -> Option<Duration> {
        let first = self.completion.first_message?;
        Some(first.saturating_duration_since(self.sent_at?))
    }

    /// done − sent (zero if never sent).
    pub fn service_time(&self) -> Duration {
        self.sent_at.map_or(Duration::ZERO, |s| {
            self.done_at.saturating_duration_since(s)
        })
    }

    /// sent − intended (zero if never sent).
    pub fn send_lag(&self) -> Duration {
        self.sent_at.map_or(Duration::ZERO, |s| {
            s.saturating_duration_since(self.ticket.intended())
        })
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
        let o = Outcome::new(ticket, sent, done, Completion::status(Class::Ok, 200));
        assert_eq!(o.latency(), Duration::from_millis(1050));
        assert_eq!(o.service_time(), Duration::from_millis(1000));
        assert_eq!(o.send_lag(), Duration::from_millis(50));
        assert_eq!(o.latency(), o.service_time() + o.send_lag());
    }

    #[test]
    fn a_cut_request_is_censored_at_the_cut() {
        let start = Instant::now();
        let shape = Shape::constant(10.0, Duration::from_secs(1)).unwrap();
        let ticket = Schedule::new(shape, start).nth(1).unwrap(); // due at +100 ms
        let cut = start + Duration::from_secs(5);
        let queued = Outcome::cut(ticket, None, cut);
        assert!(!queued.was_sent());
        assert_eq!(queued.latency(), Duration::from_millis(4900));
        assert_eq!(queued.class(), Class::Cancelled);
        let in_flight = Outcome::cut(ticket, Some(start + Duration::from_millis(200)), cut);
        assert_eq!(in_flight.service_time(), Duration::from_millis(4800));
        assert_eq!(in_flight.send_lag(), Duration::from_millis(100));
    }

    #[test]
    fn groups() {
        assert_eq!(Class::ConnectError.group(), Group::Error);
        assert_eq!(Class::LocalError.group(), Group::Error);
        assert_eq!(Class::HttpError.group(), Group::Error);
        assert_eq!(Class::Timeout.group(), Group::Timeout);
        assert_eq!(Class::Cancelled.group(), Group::Cancelled);
    }
}

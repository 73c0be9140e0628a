//! Transports: how a ticket becomes a request on the wire.
//!
//! A transport is a [`Client`] that owns its connections and opens them **on demand**, as newly
//! arriving users would: when a request is due and every connection is busy (HTTP/1.1) or at its
//! stream limit (HTTP/2), it opens another, up to `--max-connections`. The right to use a
//! connection is a [`Lease`]; waiting for one happens only at the connection cap, and that wait
//! is the generator's own (send lag). Opening a connection is part of the request's service time,
//! reported apart as `connect`. gRPC calls ride the same HTTP/2 connections and differ only in how
//! an answer is read ([`grpc`]).

pub mod grpc;
pub mod http;
pub mod peer;
pub mod tls;

use std::future::Future;

use crate::record::{Class, Completion};

/// The right to put one request on a connection (one HTTP/1.1 connection, or one stream of an
/// HTTP/2 connection). Dropped when the request ends, however it ends.
pub type Lease = tokio::sync::OwnedSemaphorePermit;

/// Sends requests over connections it owns.
pub trait Client: Send + Sync + 'static {
    /// Waits until a request may use a connection (immediate below the connection cap).
    fn lease(&self) -> impl Future<Output = Lease> + Send;

    /// Sends request `request` of the plan's mix ([`crate::schedule::Ticket::request`]) under
    /// `lease`, opening a connection if none is free, and waits for the whole response. Dropping
    /// the future (a timeout, a cancel) closes the connection it was using. `deadline` is when
    /// the caller will give up (`--timeout`); a transport may end the call itself at that
    /// instant to say more about why, and otherwise ignores it.
    fn call(
        &self,
        lease: Lease,
        request: u32,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Completion> + Send;
}

/// Maps an HTTP status to an outcome class.
#[derive(Clone, Debug)]
pub struct Classifier {
    rejected: [bool; 1000],
}

impl Classifier {
    /// `rejected`: statuses that mean "shed", counted apart from errors.
    pub fn new(rejected: &[u16]) -> Self {
        let mut table = [false; 1000];
        for &code in rejected {
            if let Some(slot) = table.get_mut(usize::from(code)) {
                *slot = true;
            }
        }
        Classifier { rejected: table }
    }

    pub fn classify(&self, status: u16) -> Class {
        if self
            .rejected
            .get(usize::from(status))
            .copied()
            .unwrap_or(false)
        {
            Class::Rejected
        } else if (200..400).contains(&status) {
            Class::Ok
        } else {
            Class::HttpError
        }
    }

    pub fn completion(&self, status: u16) -> Completion {
        Completion::status(self.classify(status), status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let c = Classifier::new(&[429, 503]);
        let table = [
            (200, Class::Ok),
            (204, Class::Ok),
            (302, Class::Ok),
            (404, Class::HttpError),
            (429, Class::Rejected),
            (500, Class::HttpError),
            (503, Class::Rejected),
            (101, Class::HttpError),
        ];
        for (status, class) in table {
            assert_eq!(c.classify(status), class, "{status}");
        }
        let none = Classifier::new(&[]);
        assert_eq!(none.classify(503), Class::HttpError);
    }
}

//! Transports: how a ticket becomes a request on the wire.
//!
//! A transport hands out *slots*. A slot can carry one request at a time (an HTTP/1.1
//! connection, or one stream's worth of an HTTP/2 connection), so the number of slots is the
//! in-flight limit. Workers own slots; connection ownership and reconnects stay inside each
//! transport. gRPC will be a second implementation of [`Slot`].

pub mod http;
pub mod tls;

use std::future::Future;

use crate::record::{Class, Completion};

/// One request's worth of transport capacity.
pub trait Slot: Send + 'static {
    /// Sends request `request` of the plan's mix ([`crate::schedule::Ticket::request`]) and
    /// waits for its whole response.
    fn call(&mut self, request: u32) -> impl Future<Output = Completion> + Send;

    /// Called after a call was abandoned (timeout or cancel) so the slot can drop a connection
    /// left in an unknown state.
    fn abandon(&mut self);
}

/// Maps an HTTP status to an outcome class.
#[derive(Clone, Debug)]
pub struct Classifier {
    rejected: [bool; 600],
}

impl Classifier {
    /// `rejected`: statuses that mean "shed", counted apart from errors.
    pub fn new(rejected: &[u16]) -> Self {
        let mut table = [false; 600];
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
        Completion {
            class: self.classify(status),
            status,
        }
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

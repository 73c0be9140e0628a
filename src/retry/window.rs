//! A sliding window of time kept as a fixed ring of buckets: memory is fixed, and at any instant
//! the window covers between `window − window/BUCKETS` and `window` of the past. Shared by the
//! retry budget and the circuit breaker.

use std::time::{Duration, Instant};

/// Buckets per window.
pub const BUCKETS: usize = 10;

#[derive(Debug)]
pub struct Window<T> {
    start: Instant,
    bucket_len: Duration,
    buckets: [T; BUCKETS],
    /// Index (since `start`) of the newest bucket.
    newest: u64,
}

impl<T: Copy + Default> Window<T> {
    pub fn new(window: Duration, start: Instant) -> Self {
        Window {
            start,
            bucket_len: (window / BUCKETS as u32).max(Duration::from_micros(1)),
            buckets: [T::default(); BUCKETS],
            newest: 0,
        }
    }

    /// The bucket for `now`, emptying those that fell out of the window on the way.
    pub fn at(&mut self, now: Instant) -> &mut T {
        let idx = (now.saturating_duration_since(self.start).as_nanos()
            / self.bucket_len.as_nanos().max(1)) as u64;
        if idx > self.newest {
            let stale = (idx - self.newest).min(BUCKETS as u64);
            for k in 0..stale {
                self.buckets[((idx - k) % BUCKETS as u64) as usize] = T::default();
            }
            self.newest = idx;
        }
        &mut self.buckets[(self.newest % BUCKETS as u64) as usize]
    }

    /// Every bucket in the window.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.buckets.iter()
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        self.buckets = [T::default(); BUCKETS];
    }
}

//! The retry budget: retries allowed as a share of first attempts over a sliding window, plus a
//! floor per second, so that retries can never multiply the offered load by more than
//! `1 + ratio` once the floor is exceeded (Finagle's `RetryBudget`, gRPC's retry throttling).
//!
//! The window is a fixed ring of buckets (see [`super::window`]).

use std::time::Instant;

use super::policy::BudgetSpec;

use super::window::Window;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    firsts: u64,
    retries: u64,
}

/// A sliding-window retry budget.
#[derive(Debug)]
pub struct Budget {
    spec: BudgetSpec,
    window: Window<Bucket>,
    /// Retries refused for want of budget.
    pub denied: u64,
}

impl Budget {
    pub fn new(spec: BudgetSpec, start: Instant) -> Self {
        Budget {
            spec,
            window: Window::new(spec.window, start),
            denied: 0,
        }
    }

    /// A first attempt was sent at `now`: it earns `ratio` of a retry.
    pub fn deposit(&mut self, now: Instant) {
        self.window.at(now).firsts += 1;
    }

    /// Whether one more retry fits the budget at `now`; if so it is counted against it.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        self.window.at(now);
        let (firsts, retries) = self.totals();
        let allowed = self.spec.ratio * firsts as f64
            + self.spec.min_per_sec * self.spec.window.as_secs_f64();
        if (retries + 1) as f64 <= allowed {
            self.window.at(now).retries += 1;
            true
        } else {
            self.denied += 1;
            false
        }
    }

    /// First attempts and retries in the window.
    pub fn totals(&self) -> (u64, u64) {
        self.window
            .iter()
            .fold((0, 0), |(f, r), b| (f + b.firsts, r + b.retries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Rng;
    use std::time::Duration;

    fn spec(ratio: f64, min: f64, window_s: u64) -> BudgetSpec {
        BudgetSpec {
            ratio,
            min_per_sec: min,
            window: Duration::from_secs(window_s),
        }
    }

    #[test]
    fn retries_never_exceed_the_budget_over_a_window() {
        // Random first attempts and a flood of retry requests: at every instant the retries in
        // the window stay within ratio × firsts + floor, and the budget is actually used.
        let start = Instant::now();
        let s = spec(0.1, 2.0, 10);
        let mut b = Budget::new(s, start);
        let mut rng = Rng::new(42);
        let mut granted = 0u64;
        let mut deposits = 0u64;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(60) {
            t += Duration::from_micros(100 + rng.below(2000));
            let now = start + t;
            if rng.next_f64() < 0.5 {
                b.deposit(now);
                deposits += 1;
            } else if b.try_withdraw(now) {
                granted += 1;
                // Each retry is granted only within the budget of the window at that moment.
                let (firsts, retries) = b.totals();
                assert!(
                    retries as f64 <= 0.1 * firsts as f64 + 20.0 + 1e-9,
                    "at {t:?}: {retries} retries for {firsts} first attempts"
                );
            }
        }
        // Over the whole run: the ratio, the floor, and at most one window's worth of slack
        // (retries earned by first attempts that have since left the window).
        let bound = 0.1 * deposits as f64 + 2.0 * 60.0 + (0.1 * deposits as f64 / 6.0 + 20.0);
        assert!(
            granted as f64 <= bound,
            "{granted} retries for {deposits} first attempts"
        );
        assert!(granted > 100, "the budget let retries through: {granted}");
        assert!(b.denied > 1000, "and refused the excess: {}", b.denied);
    }

    #[test]
    fn the_floor_allows_retries_without_traffic_and_the_window_forgets() {
        let start = Instant::now();
        let mut b = Budget::new(spec(0.0, 1.0, 10), start);
        let granted = (0..50).filter(|_| b.try_withdraw(start)).count();
        assert_eq!(granted, 10, "1/s over a 10 s window");
        assert!(!b.try_withdraw(start + Duration::from_secs(5)));
        // Eleven seconds later the old retries have left the window.
        assert!(b.try_withdraw(start + Duration::from_secs(11)));
    }

    #[test]
    fn ratio_of_first_attempts() {
        let start = Instant::now();
        let mut b = Budget::new(spec(0.2, 0.0, 10), start);
        for _ in 0..100 {
            b.deposit(start);
        }
        let granted = (0..100).filter(|_| b.try_withdraw(start)).count();
        assert_eq!(granted, 20);
        assert_eq!(b.denied, 80);
    }
}

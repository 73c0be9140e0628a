//! A client circuit breaker. Closed, it counts attempts and failures over a sliding window and
//! opens when the failure ratio reaches its threshold with enough volume. Open, it fails every
//! attempt fast (never sent, counted as short-circuited) for the cool-down. Then it is half-open:
//! a few probes go through; if they all succeed it closes, if one fails it opens again.

use std::time::Instant;

use super::policy::BreakerSpec;
use super::window::Window;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { sent: u32, passed: u32 },
}

/// What the breaker says about an attempt about to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send it.
    Pass,
    /// Send it as a half-open probe; its result decides the breaker's state.
    Probe,
    /// Fail fast: do not send.
    Refuse,
}

/// Counters the report shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BreakerCounts {
    /// Times it opened (from closed or from half-open).
    pub opened: u64,
    /// Probes sent while half-open.
    pub probes: u64,
    /// Times it closed again after successful probes.
    pub closed: u64,
}

#[derive(Debug)]
pub struct Breaker {
    spec: BreakerSpec,
    state: State,
    /// (attempts, failures) per bucket.
    window: Window<(u64, u64)>,
    pub counts: BreakerCounts,
}

impl Breaker {
    pub fn new(spec: BreakerSpec, start: Instant) -> Self {
        Breaker {
            spec,
            state: State::Closed,
            window: Window::new(spec.window, start),
            counts: BreakerCounts::default(),
        }
    }

    /// Whether an attempt may be sent at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed => Admission::Pass,
            State::Open { until } if now < until => Admission::Refuse,
            State::Open { .. } => {
                self.state = State::HalfOpen { sent: 1, passed: 0 };
                self.counts.probes += 1;
                Admission::Probe
            }
            State::HalfOpen { sent, passed } if sent < self.spec.probes => {
                self.state = State::HalfOpen {
                    sent: sent + 1,
                    passed,
                };
                self.counts.probes += 1;
                Admission::Probe
            }
            State::HalfOpen { .. } => Admission::Refuse,
        }
    }

    /// The result of an attempt admitted with `admission`, known at `now`.
    pub fn record(&mut self, now: Instant, admission: Admission, failed: bool) {
        match (self.state, admission) {
            (State::HalfOpen { sent, passed }, Admission::Probe) => {
                if failed {
                    self.open(now);
                } else if passed + 1 >= self.spec.probes {
                    self.state = State::Closed;
                    self.window.clear();
                    self.counts.closed += 1;
                } else {
                    self.state = State::HalfOpen {
                        sent,
                        passed: passed + 1,
                    };
                }
            }
            (State::Closed, _) => {
                let b = self.window.at(now);
                b.0 += 1;
                b.1 += u64::from(failed);
                let (n, f) = self
                    .window
                    .iter()
                    .fold((0, 0), |(n, f), b| (n + b.0, f + b.1));
                if n >= self.spec.min_volume && f as f64 >= self.spec.ratio * n as f64 {
                    self.open(now);
                }
            }
            // Results of attempts sent before the breaker opened say nothing about now.
            _ => {}
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.spec.cooldown,
        };
        self.counts.opened += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn opens_fails_fast_probes_and_closes() {
        let t0 = Instant::now();
        let spec = BreakerSpec {
            ratio: 0.5,
            window: Duration::from_secs(10),
            min_volume: 10,
            cooldown: Duration::from_secs(2),
            probes: 2,
        };
        let mut b = Breaker::new(spec, t0);
        // 9 failures: not enough volume yet.
        for _ in 0..9 {
            assert_eq!(b.admit(t0), Admission::Pass);
            b.record(t0, Admission::Pass, true);
        }
        assert_eq!(b.admit(t0), Admission::Pass);
        b.record(t0, Admission::Pass, true);
        assert_eq!(b.counts.opened, 1, "10 of 10 failed");
        assert_eq!(b.admit(t0 + ms(1999)), Admission::Refuse);
        // Cool-down over: two probes, then refusals until they report.
        let t1 = t0 + ms(2000);
        assert_eq!(b.admit(t1), Admission::Probe);
        assert_eq!(b.admit(t1), Admission::Probe);
        assert_eq!(b.admit(t1), Admission::Refuse);
        b.record(t1, Admission::Probe, false);
        assert_eq!(b.admit(t1), Admission::Refuse, "one probe of two passed");
        b.record(t1, Admission::Probe, false);
        assert_eq!(b.admit(t1), Admission::Pass, "closed");
        assert_eq!(b.counts.closed, 1);
        // A late result from before the opening changes nothing; a failed probe reopens.
        for _ in 0..20 {
            b.record(t1, Admission::Pass, true);
        }
        assert_eq!(b.counts.opened, 2);
        let t2 = t1 + ms(2000);
        assert_eq!(b.admit(t2), Admission::Probe);
        b.record(t2, Admission::Probe, true);
        assert_eq!(b.counts.opened, 3);
        assert_eq!(b.admit(t2 + ms(10)), Admission::Refuse);
    }

    #[test]
    fn a_healthy_ratio_keeps_it_closed_and_old_failures_leave_the_window() {
        let t0 = Instant::now();
        let spec = BreakerSpec {
            ratio: 0.5,
            window: Duration::from_secs(1),
            min_volume: 4,
            cooldown: Duration::from_secs(1),
            probes: 1,
        };
        let mut b = Breaker::new(spec, t0);
        for i in 0..100 {
            b.record(t0 + ms(i * 10), Admission::Pass, i % 3 == 1);
        }
        assert_eq!(b.counts.opened, 0, "a third failing is below half");
        let mut b = Breaker::new(spec, t0);
        b.record(t0, Admission::Pass, true);
        b.record(t0, Admission::Pass, true);
        b.record(t0, Admission::Pass, true);
        // 1.5 s later the three failures are gone: one failure in 4 is fine.
        let later = t0 + ms(1500);
        b.record(later, Admission::Pass, true);
        for _ in 0..3 {
            b.record(later, Admission::Pass, false);
        }
        assert_eq!(b.counts.opened, 0);
    }
}

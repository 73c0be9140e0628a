//! `--until-confident 'latency.p99 ±2%'`: a constant-rate run that goes on until a percentile is
//! known well enough, then stops gracefully (capped by `--max-duration`). The stopping rule is
//! Lancet's: confidence, not a guessed duration, decides how long to measure.
//!
//! A watcher thread subscribes to the snapshots like any other view: after each interval it
//! computes the figure's 95 % interval from the run's totals (see [`super::confidence`]) and,
//! once both bounds are within the asked share of the estimate, asks the run to stop (the same
//! graceful stop as a first Ctrl-C: nothing more is sent, what is in flight is awaited). It
//! never touches the hot path.

use std::ops::ControlFlow;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::confidence::Interval;
use crate::record::Clocks;
use crate::run::{Stop, Views};

/// Default `--max-duration`.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

/// Which clock the figure is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Latency,
    ServiceTime,
    SendLag,
}

/// The stopping rule: `CLOCK.pNN ±X%`.
#[derive(Clone, Debug, PartialEq)]
pub struct UntilConfident {
    /// As written, e.g. `latency.p99`.
    pub figure: String,
    clock: Clock,
    quantile: f64,
    /// Both bounds within this share of the estimate (0.02 for ±2 %).
    pub within: f64,
}

const HINT: &str = "write CLOCK.PERCENTILE ±SHARE, e.g. 'latency.p99 ±2%' (clocks: latency, service_time, send_lag; percentiles p50, p90, p95, p99, p999, p9999)";

impl UntilConfident {
    pub fn parse(text: &str) -> Result<UntilConfident, String> {
        let t = text.trim();
        let (figure, share) = t
            .split_once('±')
            .or_else(|| t.split_once("+-"))
            .ok_or_else(|| format!("no ± share ({HINT})"))?;
        let figure = figure.trim();
        let (clock, stat) = figure
            .split_once('.')
            .ok_or_else(|| format!("'{figure}' is not CLOCK.PERCENTILE ({HINT})"))?;
        let clock = match clock {
            "latency" => Clock::Latency,
            "service_time" => Clock::ServiceTime,
            "send_lag" => Clock::SendLag,
            _ => return Err(format!("unknown clock '{clock}' ({HINT})")),
        };
        let quantile = super::confidence::PERCENTILES
            .iter()
            .find(|(name, _)| *name == stat)
            .map(|(_, q)| *q)
            .ok_or_else(|| format!("unknown percentile '{stat}' ({HINT})"))?;
        let share = share.trim();
        let within = share
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|x| x / 100.0)
            .filter(|x| x.is_finite() && *x > 0.0 && *x < 1.0)
            .ok_or_else(|| format!("'{share}' is not a share above 0% and below 100% ({HINT})"))?;
        Ok(UntilConfident {
            figure: figure.to_string(),
            clock,
            quantile,
            within,
        })
    }

    /// The figure's interval in `clocks` (`None` before anything was recorded).
    pub fn interval(&self, clocks: &Clocks) -> Option<Interval> {
        let h = match self.clock {
            Clock::Latency => &clocks.latency,
            Clock::ServiceTime => &clocks.service_time,
            Clock::SendLag => &clocks.send_lag,
        };
        Interval::of(h, self.quantile)
    }

    /// Whether `i` is narrow enough: both bounds known and within `±within` of the estimate.
    pub fn narrow_enough(&self, i: &Interval) -> bool {
        let v = i.value as f64;
        match (i.low, i.high) {
            (Some(lo), Some(hi)) => {
                lo as f64 >= v * (1.0 - self.within) && hi as f64 <= v * (1.0 + self.within)
            }
            _ => false,
        }
    }

    /// Watches the snapshots of `views`; stops the run through `stop` once the figure is
    /// known well enough. The thread returns when it was reached (seconds since the start).
    pub fn spawn(&self, views: &Views, stop: Stop) -> std::io::Result<JoinHandle<Option<f64>>> {
        let rule = self.clone();
        views.follow(
            "metronome-until-confident",
            None,
            move |reached_at, snap| {
                let reached = rule
                    .interval(&snap.totals.clocks)
                    .is_some_and(|i| rule.narrow_enough(&i));
                if !reached {
                    return ControlFlow::Continue(());
                }
                stop.graceful.cancel();
                *reached_at = Some(snap.at.as_secs_f64());
                ControlFlow::Break(())
            },
        )
    }
}

/// The report's `until_confident`.
#[derive(Clone, Debug, Serialize)]
pub struct UntilReport {
    /// The figure, e.g. `latency.p99`.
    pub figure: String,
    /// The asked half-width, as a share of the estimate.
    pub within: f64,
    /// Whether the interval got that narrow (during the run or by its end).
    pub reached: bool,
    /// When the watcher saw it narrow enough and stopped the run (seconds since the start).
    pub reached_at_s: Option<f64>,
    /// The figure's interval at the end of the run (µs).
    pub interval: Option<Interval>,
    pub max_duration_s: f64,
}

impl UntilReport {
    pub fn new(
        rule: &UntilConfident,
        clocks_at_end: Option<Interval>,
        reached_at: Option<f64>,
        max: Duration,
    ) -> UntilReport {
        UntilReport {
            figure: rule.figure.clone(),
            within: rule.within,
            reached: reached_at.is_some() || clocks_at_end.is_some_and(|i| rule.narrow_enough(&i)),
            reached_at_s: reached_at,
            interval: clocks_at_end,
            max_duration_s: max.as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_refuse() {
        let r = UntilConfident::parse("latency.p99 ±2%").unwrap();
        assert_eq!(
            (r.clock, r.quantile, r.within),
            (Clock::Latency, 0.99, 0.02)
        );
        let r = UntilConfident::parse("service_time.p999 +- 5%").unwrap();
        assert_eq!((r.clock, r.quantile), (Clock::ServiceTime, 0.999));
        for (bad, words) in [
            ("latency.p99", "no ± share"),
            ("latency.p98 ±2%", "unknown percentile"),
            ("lat.p99 ±2%", "unknown clock"),
            ("latency.p99 ±0%", "above 0%"),
            ("latency.p99 ±2", "above 0%"),
            ("p99 ±2%", "CLOCK.PERCENTILE"),
        ] {
            let e = UntilConfident::parse(bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    #[test]
    fn more_samples_make_the_interval_narrow_enough() {
        // Latency uniform over 1..10 ms: a few hundred samples do not pin p99 to ±2 %, a few
        // hundred thousand do.
        let rule = UntilConfident::parse("latency.p99 ±2%").unwrap();
        let mut clocks = Clocks::default();
        let mut rng = crate::schedule::Rng::new(3);
        for _ in 0..300 {
            clocks.latency.record(1000 + rng.below(9000)).unwrap();
        }
        let i = rule.interval(&clocks).unwrap();
        assert!(!rule.narrow_enough(&i), "{i:?}");
        for _ in 0..300_000 {
            clocks.latency.record(1000 + rng.below(9000)).unwrap();
        }
        let i = rule.interval(&clocks).unwrap();
        assert!(rule.narrow_enough(&i), "{i:?}");
    }
}

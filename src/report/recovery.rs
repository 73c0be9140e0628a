//! Recovery time: after a fault (a trigger) ends, how long until the target's success ratio is
//! back above a threshold and stays there. A retry storm shows here as "did not recover": the
//! trigger is long gone and the retries keep the target down (a metastable failure).
//!
//! Judged on the run's [`Timeline`]: the success ratio of a bucket is its ok attempts over its
//! ended attempts (the target's view; a bucket where attempts were sent and none ended counts as
//! zero). The target has recovered at the first bucket, at or after the trigger's end, from which
//! the ratio stays at or above the threshold for `hold`. Without a known trigger, the clock starts
//! at the first degraded bucket. A run too short to tell says so rather than guess: `not_judged`
//! when its window ended before the trigger did, `unconfirmed` when the ratio came back but the
//! window ended before it had held for `hold`.

use std::time::Duration;

use serde::Serialize;

use crate::record::Timeline;
use crate::retry::policy::{share, split_pairs, SettingError};
use crate::schedule::Shape;

/// When the trigger ended.
#[derive(Clone, Debug, PartialEq)]
pub enum After {
    /// This long after the schedule's start.
    At(Duration),
    /// At the end of the profile stage with this name.
    Stage(String),
}

/// How recovery is judged (`--recovery 'after=burst threshold=99% hold=3s'`, or a profile's
/// `[recovery]` table).
#[derive(Clone, Debug, PartialEq)]
pub struct RecoverySpec {
    pub after: Option<After>,
    pub threshold: f64,
    pub hold: Duration,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec {
            after: None,
            threshold: 0.99,
            hold: Duration::from_secs(3),
        }
    }
}

impl RecoverySpec {
    /// Parses `key=value` pairs separated by spaces.
    pub fn parse(spec: &str) -> Result<RecoverySpec, SettingError> {
        let pairs = split_pairs(spec)?;
        RecoverySpec::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RecoverySpec, SettingError> {
        let mut r = RecoverySpec::default();
        for (key, value) in pairs {
            let v = value.trim();
            let err = |reason: &str| SettingError::new(key, value, reason);
            match key {
                "after" => {
                    r.after = Some(if v.starts_with(|c: char| c.is_ascii_digit()) {
                        After::At(humantime::parse_duration(v).map_err(|e| {
                            err(&format!(
                                "{e} (give a time since the start such as 30s, or a stage name)"
                            ))
                        })?)
                    } else if v.is_empty() || v.starts_with('-') {
                        return Err(err(
                            "give a time since the start such as 30s, or a stage name",
                        ));
                    } else {
                        After::Stage(v.to_string())
                    })
                }
                "threshold" => {
                    r.threshold = share(v).map_err(|e| err(&e))?;
                    if r.threshold <= 0.0 {
                        return Err(err("must be above 0% (e.g. 99%)"));
                    }
                }
                "hold" => {
                    r.hold = humantime::parse_duration(v)
                        .ok()
                        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(86_400))
                        .ok_or_else(|| err("give a duration from 1s to 1d (e.g. 3s)"))?
                }
                _ => {
                    return Err(err(
                        "unknown recovery setting (known: after, threshold, hold)",
                    ))
                }
            }
        }
        Ok(r)
    }

    /// The trigger's end in seconds from the start, resolved against the shape's stages. An
    /// unknown stage name is an error naming the stages there are.
    pub fn trigger_end(&self, shape: &Shape) -> Result<Option<f64>, SettingError> {
        match &self.after {
            None => Ok(None),
            Some(After::At(d)) => {
                let planned = shape.duration();
                if !planned.is_zero() && *d >= planned {
                    return Err(SettingError::new(
                        "after",
                        &humantime::format_duration(*d).to_string(),
                        format!(
                            "the trigger must end before the schedule does ({}): recovery is judged inside it",
                            humantime::format_duration(planned)
                        ),
                    ));
                }
                Ok(Some(d.as_secs_f64()))
            }
            Some(After::Stage(name)) => shape
                .stages()
                .iter()
                .find(|s| &s.name == name)
                .map(|s| Some(s.end))
                .ok_or_else(|| {
                    let names: Vec<&str> = shape.stages().iter().map(|s| s.name.as_str()).collect();
                    SettingError::new(
                        "after",
                        name,
                        format!(
                            "no stage has this name (stages: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    )
                }),
        }
    }
}

/// Whether and when the target recovered.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Recovery {
    /// `never_degraded`, `recovered`, `not_recovered`, `unconfirmed` (back above the threshold
    /// when the window ended, for less than `hold`) or `not_judged` (the window ended before the
    /// trigger did: a stopped run).
    pub status: &'static str,
    pub threshold: f64,
    pub hold_s: f64,
    /// When the trigger ended (given with `after`), in seconds from the start.
    pub trigger_end_s: Option<f64>,
    /// Start of the first bucket below the threshold.
    pub degraded_at_s: Option<f64>,
    /// Start of the bucket from which the ratio stayed above the threshold (for `unconfirmed`,
    /// to the end of the window).
    pub recovered_at_s: Option<f64>,
    /// `recovered_at − trigger_end` (or `− degraded_at` without a trigger).
    pub recovery_time_s: Option<f64>,
    /// Timeline resolution the judgement was made at.
    pub resolution_s: f64,
}

/// Judges recovery over the schedule's window (`window_s` seconds).
pub fn assess(
    timeline: &Timeline,
    window_s: f64,
    spec: &RecoverySpec,
    trigger_end: Option<f64>,
) -> Recovery {
    let width = timeline.width().as_secs_f64();
    // Only buckets wholly inside the window: the drain after it is not the schedule's traffic.
    let full = ((window_s + 1e-9) / width).floor() as usize;
    let buckets = &timeline.buckets()[..timeline.buckets().len().min(full)];
    let healthy = |i: usize| {
        buckets[i]
            .success_ratio()
            .is_none_or(|r| r >= spec.threshold - 1e-12)
    };
    let mut r = Recovery {
        status: "never_degraded",
        threshold: spec.threshold,
        hold_s: spec.hold.as_secs_f64(),
        trigger_end_s: trigger_end,
        degraded_at_s: None,
        recovered_at_s: None,
        recovery_time_s: None,
        resolution_s: width,
    };
    let Some(degraded) = (0..buckets.len()).find(|&i| !healthy(i)) else {
        return r;
    };
    r.degraded_at_s = Some(degraded as f64 * width);
    let from_s = trigger_end.unwrap_or(degraded as f64 * width);
    let first = ((from_s - 1e-9) / width).ceil().max(0.0) as usize;
    if first >= buckets.len() {
        // The window ended before the trigger did (a stopped run): nothing to judge.
        r.status = "not_judged";
        return r;
    }
    let hold = ((spec.hold.as_secs_f64() / width).ceil() as usize).max(1);
    let recovered = (first..buckets.len()).find(|&k| (k..buckets.len().min(k + hold)).all(healthy));
    match recovered {
        Some(k) => {
            let at = k as f64 * width;
            r.recovered_at_s = Some(at);
            if k + hold <= buckets.len() {
                r.status = "recovered";
                r.recovery_time_s = Some((at - from_s).max(0.0));
            } else {
                r.status = "unconfirmed";
            }
        }
        None => r.status = "not_recovered",
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Tally, Tickets};

    /// A timeline from per-second success ratios in percent (`None`: an idle second).
    fn timeline(ratios: &[Option<u64>]) -> Timeline {
        let mut tl = Timeline::default();
        let mut tickets = Tickets::default();
        for (s, r) in ratios.iter().enumerate() {
            let mut t = Tally::default();
            if let Some(pct) = r {
                tickets.sent += 100;
                t.counts.completed = 100;
                t.counts.ok = *pct;
                t.counts.rejected = 100 - pct;
            }
            tl.add(
                Duration::from_millis(s as u64 * 1000 + 500),
                Duration::from_secs(1),
                &t,
                &tickets,
                100.0,
                None,
            );
        }
        tl
    }

    #[test]
    fn recovery_table() {
        let spec = RecoverySpec {
            hold: Duration::from_secs(2),
            ..RecoverySpec::default()
        };
        let ok = Some(100);
        let bad = Some(10);
        type Case = (
            &'static str,
            Vec<Option<u64>>,
            Option<f64>,
            &'static str,
            Option<f64>,
        );
        let table: Vec<Case> = vec![
            ("healthy", vec![ok; 10], None, "never_degraded", None),
            (
                "dip and back, no trigger",
                vec![ok, ok, bad, bad, ok, ok, ok, ok],
                None,
                "recovered",
                Some(2.0),
            ),
            (
                "after the trigger at 4 s",
                vec![ok, ok, bad, bad, bad, bad, ok, ok, ok, ok],
                Some(4.0),
                "recovered",
                Some(2.0),
            ),
            (
                "a flap does not count",
                vec![ok, bad, ok, bad, bad, ok, ok, ok],
                None,
                "recovered",
                Some(4.0),
            ),
            (
                "storm to the end",
                vec![ok, ok, bad, bad, bad, bad, bad, bad],
                Some(3.0),
                "not_recovered",
                None,
            ),
            (
                "healthy at the trigger's end",
                vec![ok, bad, ok, ok, ok, ok],
                Some(3.0),
                "recovered",
                Some(0.0),
            ),
            (
                "idle seconds are not failures",
                vec![ok, None, ok, ok],
                None,
                "never_degraded",
                None,
            ),
            (
                "back for less than hold when the window ends",
                vec![bad, bad, bad, ok],
                None,
                "unconfirmed",
                None,
            ),
            (
                "a window that ended before the trigger did",
                vec![ok, bad, bad, bad],
                Some(6.0),
                "not_judged",
                None,
            ),
        ];
        for (name, ratios, trigger, status, time) in table {
            let tl = timeline(&ratios);
            let r = assess(&tl, ratios.len() as f64, &spec, trigger);
            assert_eq!(r.status, status, "{name}: {r:?}");
            assert_eq!(r.recovery_time_s, time, "{name}: {r:?}");
        }
    }

    #[test]
    fn specs_parse_and_refuse() {
        let s = RecoverySpec::parse("after=burst threshold=95% hold=5s").unwrap();
        assert_eq!(s.after, Some(After::Stage("burst".into())));
        assert_eq!((s.threshold, s.hold), (0.95, Duration::from_secs(5)));
        assert_eq!(
            RecoverySpec::parse("after=7s").unwrap().after,
            Some(After::At(Duration::from_secs(7)))
        );
        for (bad, key) in [
            ("threshold=150%", "threshold"),
            ("hold=0s", "hold"),
            ("after=-3s", "after"),
            ("since=3s", "since"),
            ("threshold=0", "threshold"),
        ] {
            assert_eq!(RecoverySpec::parse(bad).unwrap_err().key, key, "{bad}");
        }
    }
}

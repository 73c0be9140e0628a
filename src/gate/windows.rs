//! `for each Ns` thresholds and `--abort-on-fail`: a view that subscribes to the run's snapshots
//! and judges every window on its own, so a short spike is not averaged away by a long run.
//!
//! Snapshots come on a `watch` channel, which keeps only the newest: a view that is not scheduled
//! for a whole interval misses one. The watcher runs on its own thread (like the progress line)
//! so it is rarely late, and it notices every miss (a gap between one snapshot's start and the
//! previous one's end, or fewer snapshots than the run's length called for, see [`Seen::finish`]): a window with a
//! missed interval is not judged and is counted as `missed`, never guessed. Windows are made of
//! whole intervals as the recorder closes them (by completion time); the last part of the run
//! after the final snapshot (under a second, mostly the drain) is in the whole-run figures only.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::expr::{Metric, Op, Operand, Scope, Threshold};
use super::{judge_one, missing, Figures, Judged, WindowFigures};
use crate::record::{Snapshot, Tally};
use crate::run::{Stop, Views};

/// How the windows of one `for each` threshold went.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowCount {
    /// Windows judged.
    pub judged: u64,
    pub failed: u64,
    /// Windows not judged because a snapshot was missed.
    pub missed: u64,
    /// Windows not judged because nothing of the run had completed yet (they ended before its
    /// first response: with a 1.5 s service time, the first second has no latency to judge).
    pub pending: u64,
    /// End of the first failing window, seconds from the start.
    pub first_failed_at_s: Option<f64>,
}

/// What the watcher saw, per threshold index.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    per: BTreeMap<usize, State>,
    /// The threshold whose failure stopped the run.
    pub aborted_by: Option<String>,
    /// End of the last snapshot seen, seconds from the start.
    last_at_s: f64,
    /// Window lengths (seconds) per `for each` threshold index.
    lengths: Vec<(usize, u64)>,
}

#[derive(Clone, Debug, Default)]
struct State {
    count: WindowCount,
    /// The first failing window's verdict, else the worst passing one's.
    shown: Option<Judged>,
}

impl Seen {
    /// The verdict of `for each` threshold `i`.
    pub fn judged(&self, i: usize, t: &Threshold) -> Judged {
        let Some(s) = self.per.get(&i).filter(|s| s.count.judged > 0) else {
            let pending = self.per.get(&i).map_or(0, |s| s.count.pending);
            let mut j = missing(
                t,
                &if pending > 0 {
                    format!("no window was judged: nothing completed in the first {pending} window(s), and no whole window was seen after that")
                } else {
                    "no whole window was seen (a run shorter than one window, or every snapshot missed)".to_string()
                },
            );
            j.windows = self.per.get(&i).map(|s| s.count.clone());
            return j;
        };
        let mut j = s.shown.clone().unwrap_or_else(|| missing(t, "no window"));
        j.threshold = t.text.clone();
        j.passed = s.count.failed == 0;
        j.windows = Some(s.count.clone());
        let mut notes = Vec::new();
        if s.count.pending > 0 {
            notes.push(format!(
                "{} window(s) before the first response not judged (nothing had completed yet)",
                s.count.pending
            ));
        }
        if s.count.missed > 0 {
            notes.push(format!(
                "{} window(s) not judged: the watcher missed a snapshot (their requests are in the whole-run figures)",
                s.count.missed
            ));
        }
        if !notes.is_empty() {
            j.note = Some(notes.join("; "));
        }
        j
    }

    /// Once the run is over: intervals after the last snapshot seen, up to the run's `elapsed`
    /// seconds, were published but missed (or never published: the final partial interval is
    /// not), so their windows count as missed.
    pub fn finish(&mut self, elapsed_s: f64) {
        let lost = (elapsed_s - self.last_at_s).floor().max(0.0) as u64;
        for (i, secs) in self.lengths.clone() {
            for _ in 0..lost / secs.max(1) {
                self.missed(i);
            }
        }
    }

    fn record(&mut self, i: usize, t: &Threshold, j: Judged, at_s: f64) {
        let s = self.per.entry(i).or_default();
        s.count.judged += 1;
        if !j.passed {
            s.count.failed += 1;
            if s.count.first_failed_at_s.is_none() {
                s.count.first_failed_at_s = Some((at_s * 1000.0).round() / 1000.0);
                s.shown = Some(j);
            }
            return;
        }
        if s.count.failed > 0 {
            return;
        }
        let worse = match (&s.shown, j.observed) {
            (None, _) => true,
            (Some(old), Some(new)) => match (old.observed, t.op) {
                (Some(o), Op::Lt | Op::Le) => new > o,
                (Some(o), Op::Gt | Op::Ge) => new < o,
                _ => false,
            },
            _ => false,
        };
        if worse {
            s.shown = Some(j);
        }
    }

    fn missed(&mut self, i: usize) {
        self.per.entry(i).or_default().count.missed += 1;
    }

    fn pending(&mut self, i: usize) {
        self.per.entry(i).or_default().count.pending += 1;
    }
}

/// What became of one window for one threshold.
enum Window {
    /// A snapshot of it was missed.
    Missed,
    /// It ended before anything of the run had completed.
    Pending,
    Judged(Box<Judged>),
}

/// Windows of one length being filled.
struct Filling {
    secs: u64,
    tally: Tally,
    intervals: u64,
    seconds: f64,
    sent: u64,
    dropped: u64,
    target_sum: f64,
    /// A missed snapshot fell in this window: it is not judged.
    broken: bool,
}

impl Filling {
    fn new(secs: u64) -> Self {
        Filling {
            secs,
            tally: Tally::default(),
            intervals: 0,
            seconds: 0.0,
            sent: 0,
            dropped: 0,
            target_sum: 0.0,
            broken: false,
        }
    }

    fn reset(&mut self) {
        self.tally.reset();
        self.intervals = 0;
        self.seconds = 0.0;
        self.sent = 0;
        self.dropped = 0;
        self.target_sum = 0.0;
        self.broken = false;
    }
}

/// Judges windows and early-failing thresholds as snapshots arrive.
pub struct Watcher {
    thresholds: Vec<Threshold>,
    abort_on_fail: bool,
    stop: Stop,
    /// The schedule's length: rate figures are judged only on windows inside it.
    schedule: Duration,
    interval: Duration,
    fills: Vec<Filling>,
    seen: Seen,
    last_at: Option<Duration>,
    /// Something of the run has completed (answered, failed or cut): from then on an empty
    /// window is a stall and fails; before, it is only early.
    responding: bool,
    prev_sent: u64,
    prev_dropped: u64,
}

impl Watcher {
    pub fn new(gate: &super::Gate, stop: Stop, schedule: Duration, interval: Duration) -> Self {
        let mut lengths: Vec<u64> = gate
            .thresholds
            .iter()
            .filter_map(|t| match t.scope {
                Scope::Each(d) => Some(d.as_secs()),
                _ => None,
            })
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let seen = Seen {
            lengths: gate
                .thresholds
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match t.scope {
                    Scope::Each(d) => Some((i, d.as_secs())),
                    _ => None,
                })
                .collect(),
            ..Seen::default()
        };
        Watcher {
            thresholds: gate.thresholds.clone(),
            abort_on_fail: gate.abort_on_fail,
            stop,
            schedule,
            interval,
            fills: lengths.into_iter().map(Filling::new).collect(),
            seen,
            last_at: None,
            responding: false,
            prev_sent: 0,
            prev_dropped: 0,
        }
    }

    /// Whether anything needs watching.
    pub fn needed(gate: &super::Gate) -> bool {
        gate.thresholds
            .iter()
            .any(|t| matches!(t.scope, Scope::Each(_)) || (gate.abort_on_fail && early(t)))
    }

    /// Watches `views` on its own thread until the run is over; join, then
    /// [`Watcher::into_seen`] for what it saw.
    pub fn spawn(self, views: &Views) -> std::io::Result<JoinHandle<Watcher>> {
        views.follow("metronome-gate", self, |w, snap| {
            w.see(snap);
            ControlFlow::Continue(())
        })
    }

    /// What the watcher saw.
    pub fn into_seen(self) -> Seen {
        self.seen
    }

    /// One snapshot: note any gap, feed every window length, judge the full ones.
    pub fn see(&mut self, snap: &Snapshot) {
        let start = snap.at.saturating_sub(snap.interval_len);
        let prev = self.last_at.unwrap_or(Duration::ZERO);
        let gap = start.saturating_sub(prev);
        if gap > self.interval / 2 {
            let lost = (gap.as_secs_f64() / self.interval.as_secs_f64()).round() as u64;
            self.lost(lost.max(1), start);
        }
        self.last_at = Some(snap.at);
        self.seen.last_at_s = snap.at.as_secs_f64();
        self.responding |= snap.totals.counts.completed > 0;
        // First attempts sent in the schedule's window, as the report's `rate.achieved` counts.
        let on_time = snap.tickets.first_on_time();
        let sent = on_time.saturating_sub(self.prev_sent);
        let dropped = snap.tickets.dropped.saturating_sub(self.prev_dropped);
        self.prev_sent = on_time;
        self.prev_dropped = snap.tickets.dropped;
        let per_window = (1.0 / self.interval.as_secs_f64()).round().max(1.0) as u64;
        for f in 0..self.fills.len() {
            let fill = &mut self.fills[f];
            fill.tally.add(&snap.interval);
            fill.intervals += 1;
            fill.seconds += snap.interval_len.as_secs_f64();
            fill.sent += sent;
            fill.dropped += dropped;
            fill.target_sum += snap.target_rate;
            if fill.intervals >= fill.secs * per_window {
                self.close(f, snap.at);
            }
        }
        if self.abort_on_fail {
            self.judge_early(snap);
        }
    }

    /// `n` intervals were missed: each counts in its windows as a hole, so a window with a hole
    /// is not judged (counted as missed) and the windows after it stay aligned.
    fn lost(&mut self, n: u64, at: Duration) {
        let per_window = (1.0 / self.interval.as_secs_f64()).round().max(1.0) as u64;
        for _ in 0..n {
            for f in 0..self.fills.len() {
                let fill = &mut self.fills[f];
                fill.broken = true;
                fill.intervals += 1;
                if fill.intervals >= fill.secs * per_window {
                    self.close(f, at);
                }
            }
        }
    }

    fn close(&mut self, f: usize, at: Duration) {
        let fill = &self.fills[f];
        let secs = fill.secs;
        let inside = at.as_secs_f64() <= self.schedule.as_secs_f64() + 0.1;
        // The achieved rate is over the part of the window inside the schedule: a window that
        // ends a few milliseconds after the schedule (a late tick) had nothing to send there.
        let past_end = at.saturating_sub(self.schedule).as_secs_f64();
        let figures = WindowFigures {
            tally: &fill.tally,
            sent: fill.sent,
            dropped: fill.dropped,
            seconds: (fill.seconds - past_end).max(1e-3),
            target_rate: fill.target_sum / fill.intervals.max(1) as f64,
        };
        let mut verdicts = Vec::new();
        for (i, t) in self.thresholds.iter().enumerate() {
            if t.scope != Scope::Each(Duration::from_secs(secs)) {
                continue;
            }
            if fill.broken {
                verdicts.push((i, Window::Missed));
                continue;
            }
            if uses_rate(t) && !inside {
                continue;
            }
            // Before the first completion a window has no latency or outcome yet to judge (the
            // rates count sends, which have started): not judged, counted as pending.
            if !self.responding && !uses_rate(t) {
                verdicts.push((i, Window::Pending));
                continue;
            }
            verdicts.push((i, Window::Judged(Box::new(judge_one(t, &figures)))));
        }
        for (i, v) in verdicts {
            match v {
                Window::Missed => self.seen.missed(i),
                Window::Pending => self.seen.pending(i),
                Window::Judged(j) => {
                    let failed = !j.passed;
                    let t = self.thresholds[i].clone();
                    self.seen.record(i, &t, *j, at.as_secs_f64());
                    if failed && self.abort_on_fail {
                        self.abort(&t.text);
                    }
                }
            }
        }
        self.fills[f].reset();
    }

    /// Whole-run thresholds that can only get worse (counts kept below a limit) fail for good.
    fn judge_early(&mut self, snap: &Snapshot) {
        let figures = WindowFigures {
            tally: &snap.totals,
            sent: snap.tickets.sent,
            dropped: snap.tickets.dropped,
            seconds: snap.at.as_secs_f64().max(1e-3),
            target_rate: snap.target_rate,
        };
        let failed = self
            .thresholds
            .iter()
            .find(|t| failed_for_good(t, &figures))
            .map(|t| t.text.clone());
        if let Some(text) = failed {
            self.abort(&text);
        }
    }

    fn abort(&mut self, text: &str) {
        if self.seen.aborted_by.is_none() {
            self.seen.aborted_by = Some(text.to_string());
            self.stop.graceful.cancel();
        }
    }
}

/// Whether `t` can fail for good before the run is over: a whole-run count (counts only grow)
/// held at or below a constant. Percentiles, shares and rates can move either way; a count held
/// above a constant (`>`, `>=`) or away from one (`!=`) can still be met by the rest of the run.
fn early(t: &Threshold) -> bool {
    t.scope == Scope::Run
        && matches!(t.metric, Metric::Count(_))
        && matches!(t.op, Op::Lt | Op::Le | Op::Eq)
        && matches!(t.operand, Operand::Const(_))
}

/// Whether an [`early`] threshold has failed on the run so far in a way the rest of the run
/// cannot undo: `< N` once N is reached, `<= N` and `== N` once N is passed. A count still below
/// the N of `== N` fails *now* but may reach N by the end, so it does not stop the run.
fn failed_for_good(t: &Threshold, so_far: &WindowFigures) -> bool {
    if !early(t) {
        return false;
    }
    let (Some(count), Operand::Const(limit)) = (so_far.figure(t.metric), t.operand) else {
        return false;
    };
    match t.op {
        Op::Lt => count.value >= limit,
        Op::Le | Op::Eq => count.value > limit,
        Op::Gt | Op::Ge | Op::Ne => false,
    }
}

fn uses_rate(t: &Threshold) -> bool {
    let rate = |m: Metric| matches!(m, Metric::RateAchieved | Metric::RateTarget);
    rate(t.metric) || matches!(t.operand, Operand::Scaled(_, m) if rate(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;

    fn snap(at_s: u64, latency_us: &[u64]) -> Snapshot {
        let mut interval = Tally::default();
        for &v in latency_us {
            interval.clocks.latency.record(v).unwrap();
        }
        interval.counts.completed = latency_us.len() as u64;
        Snapshot::fixture(at_s, interval)
    }

    fn watcher(exprs: &[&str]) -> Watcher {
        watcher_stopping(exprs, false, Stop::new())
    }

    /// A watcher over a 10 s run, aborting on failure if `abort`, that stops `stop`.
    fn watcher_stopping(exprs: &[&str], abort: bool, stop: Stop) -> Watcher {
        let gate = Gate::parse(exprs.iter().map(|e| ("t".to_string(), *e)), abort).unwrap();
        Watcher::new(&gate, stop, Duration::from_secs(10), Duration::from_secs(1))
    }

    #[test]
    fn a_spike_in_one_window_fails_each_window_and_gaps_are_missed() {
        let mut w = watcher(&[
            "latency.max < 10ms for each 1s",
            "latency.max < 10ms for each 2s",
        ]);
        w.see(&snap(1, &[1000, 2000]));
        w.see(&snap(2, &[50_000]));
        w.see(&snap(3, &[1000]));
        // The 4 s snapshot is missed.
        w.see(&snap(5, &[1000]));
        let t1 = parse_t("latency.max < 10ms for each 1s");
        let j = w.seen.judged(0, &t1);
        assert!(!j.passed);
        let c = j.windows.unwrap();
        assert_eq!((c.judged, c.failed, c.missed), (4, 1, 1));
        assert_eq!(c.first_failed_at_s, Some(2.0));
        let max = j.observed.unwrap();
        assert!((50_000.0..50_100.0).contains(&max), "{max}");
        let j2 = w.seen.judged(1, &parse_t("latency.max < 10ms for each 2s"));
        let c2 = j2.windows.unwrap();
        // [1,2] fails; [3,4] is broken by the miss and not judged; 5 starts a new window.
        assert_eq!((c2.judged, c2.failed, c2.missed), (1, 1, 1));
    }

    #[test]
    fn windows_before_the_first_response_wait_and_a_later_empty_one_fails() {
        // Every request takes 1.5 s: nothing completes in the first second.
        let mut w = watcher(&[
            "latency.p99 < 5s for each 1s",
            "rate.achieved >= 0 for each 1s",
        ]);
        let mut s = snap(1, &[]);
        s.totals.counts.completed = 0;
        w.see(&s);
        let mut s = snap(2, &[1_500_000]);
        s.totals.counts.completed = 1;
        w.see(&s);
        let t = parse_t("latency.p99 < 5s for each 1s");
        let j = w.seen.judged(0, &t);
        let c = j.windows.clone().unwrap();
        assert!(j.passed, "{j:?}");
        assert_eq!((c.judged, c.failed, c.pending, c.missed), (1, 0, 1, 0));
        assert!(j
            .note
            .as_deref()
            .unwrap_or("")
            .contains("before the first response"));
        // Rates count sends, which had started: judged in the first window too.
        let r = w.seen.judged(1, &parse_t("rate.achieved >= 0 for each 1s"));
        assert_eq!(r.windows.unwrap().judged, 2);
        // Then the target stalls: an empty window after responses have started fails.
        let mut s = snap(3, &[]);
        s.totals.counts.completed = 1;
        w.see(&s);
        let j = w.seen.judged(0, &t);
        assert!(!j.passed, "{j:?}");
        assert_eq!(j.windows.unwrap().failed, 1);
        // A target that never answers is not passed on pending windows alone.
        let mut w = watcher(&["latency.p99 < 5s for each 1s"]);
        w.see(&snap(1, &[]));
        w.see(&snap(2, &[]));
        let j = w.seen.judged(0, &t);
        assert!(
            !j.passed && j.windows.as_ref().unwrap().pending == 2,
            "{j:?}"
        );
    }

    #[test]
    fn the_achieved_rate_of_a_window_is_over_its_part_inside_the_schedule() {
        // 1 000/s for 3 s, exactly; the last snapshot comes 50 ms after the schedule's end.
        let mut w = watcher(&["rate.achieved >= 0.999 * rate.target for each 1s"]);
        w.schedule = Duration::from_secs(3);
        for (at_ms, sent) in [(1000, 1000), (2000, 2000), (3050, 3000)] {
            let mut s = snap(1, &[1000]);
            s.at = Duration::from_millis(at_ms);
            s.interval_len = Duration::from_millis(if at_ms == 3050 { 1050 } else { 1000 });
            s.target_rate = 1000.0;
            s.tickets.sent = sent;
            w.see(&s);
        }
        let j = w.seen.judged(
            0,
            &parse_t("rate.achieved >= 0.999 * rate.target for each 1s"),
        );
        assert!(j.passed, "{j:?}");
        assert_eq!(j.windows.unwrap().judged, 3);
        assert_eq!(j.observed, Some(1000.0));
    }

    fn parse_t(s: &str) -> Threshold {
        crate::gate::parse(s).unwrap()
    }

    #[test]
    fn early_failure_stops_the_run() {
        let stop = Stop::new();
        let mut w = watcher_stopping(&["requests.count < 3"], true, stop.clone());
        let mut s = snap(1, &[1]);
        s.totals.counts.completed = 2;
        w.see(&s);
        assert!(!stop.graceful.is_cancelled());
        s.totals.counts.completed = 5;
        w.see(&s);
        assert!(stop.graceful.is_cancelled());
        assert_eq!(w.seen.aborted_by.as_deref(), Some("requests.count < 3"));
    }

    #[test]
    fn only_failures_the_rest_of_the_run_cannot_undo_stop_it() {
        // (threshold, completed requests so far, stops the run)
        let cases = [
            ("requests.count == 600", 201, false),
            ("requests.count == 600", 600, false),
            ("requests.count == 600", 601, true),
            ("requests.count == 0", 1, true),
            ("requests.count < 600", 599, false),
            ("requests.count < 600", 600, true),
            ("requests.count <= 600", 600, false),
            ("requests.count <= 600", 601, true),
            ("requests.count > 600", 10, false),
            ("requests.count >= 600", 10, false),
            ("requests.count != 10", 10, false),
            ("requests.rate < 1%", 10, false),
            ("latency.p99 < 1us", 10, false),
        ];
        for (text, completed, stops) in cases {
            let stop = Stop::new();
            let mut w = watcher_stopping(&[text], true, stop.clone());
            let mut s = snap(1, &[1000]);
            s.totals.counts.completed = completed;
            w.see(&s);
            assert_eq!(stop.graceful.is_cancelled(), stops, "{text} at {completed}");
        }
    }
}

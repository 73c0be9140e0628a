//! The dispatcher: releases tickets when they are due and hands them to workers without ever
//! waiting on a response.
//!
//! ```text
//! Schedule ──► pacer ──try_send──► backlog (bounded) ──► workers (one per slot) ──► Recorder
//!                 └── backlog full: ticket dropped and counted
//! ```
//!
//! The in-flight limit is the number of workers (one slot each). A ticket that is due while every
//! worker is busy waits in the backlog; when the backlog is full the ticket is **dropped** and
//! counted. Lateness is never hidden: a worker stamps `sent_at` when it starts on a ticket, so
//! time spent in the backlog shows up as send lag and, because latency is measured from the
//! intended start, in the latency too.
//!
//! ## Pacing below tokio's 1 ms timer
//! tokio's timer wheel has 1 ms resolution, which alone puts ~0.6–1 ms of lateness on every
//! request. On Linux the pacer instead arms a `timerfd` (CLOCK_MONOTONIC, absolute, nanosecond
//! resolution) registered with tokio's reactor: the epoll wake-up happens at the due instant and
//! the pacer runs as an ordinary task, so releasing a ticket to a worker is a local task wake-up
//! rather than a cross-thread hand-off. At each wake-up it releases *every* ticket already due;
//! it never sleeps once per ticket when behind. Elsewhere it falls back to tokio's timer.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::record::{Class, Completion, Outcome, Recorder};
use crate::schedule::{Schedule, Ticket};
use crate::transport::Slot;

/// Why the pacer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceEnd {
    /// Every ticket in the schedule was released.
    Completed,
    /// A stop was requested; later tickets were never scheduled.
    Stopped,
}

/// Releases every ticket at its intended time into the backlog. Returns when the schedule ends
/// or `stop` fires, with the instant scheduling ended.
///
/// Spawn it as a task (as [`crate::run::run`] does) rather than awaiting it from `block_on`: on a
/// runtime worker thread, waking a worker task is a local queue push; from the `block_on` thread
/// it is a cross-thread futex wake-up per ticket.
///
/// `quantum` is the shortest time between two wake-ups. Zero (the default) wakes at every due
/// instant; a larger quantum releases tickets in batches, trading up to `quantum` of send lag
/// (which is measured and reported) for fewer wake-ups and less CPU.
pub async fn pace(
    mut schedule: Schedule,
    backlog: Sender<Ticket>,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
    quantum: Duration,
) -> (PaceEnd, Instant) {
    let mut timer = match PreciseTimer::new() {
        Ok(t) => t,
        Err(_) => PreciseTimer::fallback(),
    };
    let mut last_wake = schedule.start();
    // One waiter for the whole run, not one per wake-up (see [`Bounds`]).
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let Some(due) = schedule.peek() else {
            return (PaceEnd::Completed, schedule.end());
        };
        let wake = due.max(last_wake + quantum);
        if wake > Instant::now() {
            tokio::select! {
                biased;
                _ = &mut stopped => return (PaceEnd::Stopped, Instant::now()),
                _ = timer.sleep_until(wake) => {}
            }
        } else if stop.is_cancelled() {
            return (PaceEnd::Stopped, Instant::now());
        }
        // Release everything that is due now, not one ticket per wake-up.
        let now = Instant::now();
        last_wake = now;
        while schedule.peek().is_some_and(|d| d <= now) {
            let Some(ticket) = schedule.next_ticket() else {
                break;
            };
            recorder.scheduled();
            match backlog.try_send(ticket) {
                Ok(()) => {}
                Err(TrySendError::Full(t)) | Err(TrySendError::Closed(t)) => recorder.dropped(&t),
            }
        }
    }
}

/// Takes tickets from the backlog and runs them on its slot until the backlog is closed and
/// empty, or `cancel` fires (then an in-flight request is counted as cancelled).
pub async fn work<S: Slot>(
    mut slot: S,
    backlog: Receiver<Ticket>,
    recorder: Arc<Recorder>,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let mut bounds = Bounds::new(timeout, cancel);
    loop {
        let ticket = tokio::select! {
            biased;
            _ = bounds.cancelled.as_mut() => return,
            t = backlog.recv() => match t {
                Ok(t) => t,
                Err(_) => return,
            },
        };
        if !execute(&mut slot, ticket, &recorder, &mut bounds).await {
            return;
        }
    }
}

/// The request budget of a closed-loop (`--rate max`) run, shared by all its workers.
#[derive(Debug)]
pub struct Saturation {
    end: Option<Instant>,
    remaining: AtomicU64,
    next_seq: AtomicU64,
    /// Fires when no more requests may start (budget spent, time up, or stopped).
    pub done: CancellationToken,
}

impl Saturation {
    pub fn new(end: Option<Instant>, count: Option<u64>) -> Self {
        Saturation {
            end,
            remaining: AtomicU64::new(count.unwrap_or(u64::MAX)),
            next_seq: AtomicU64::new(0),
            done: CancellationToken::new(),
        }
    }

    /// Claims the next request, if the budget allows one.
    fn take(&self) -> Option<u64> {
        if self.done.is_cancelled() || self.end.is_some_and(|e| Instant::now() >= e) {
            self.done.cancel();
            return None;
        }
        let claimed = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match claimed {
            Ok(1) => self.done.cancel(),
            Ok(_) => {}
            Err(_) => {
                self.done.cancel();
                return None;
            }
        }
        Some(self.next_seq.fetch_add(1, Ordering::Relaxed))
    }
}

/// Closed-loop worker: sends its next request as soon as the previous one completed, until the
/// budget is spent. No schedule, so latency equals service time (see [`Ticket::unscheduled`]).
pub async fn saturate<S: Slot>(
    mut slot: S,
    budget: Arc<Saturation>,
    recorder: Arc<Recorder>,
    timeout: Duration,
    cancel: CancellationToken,
) {
    let mut bounds = Bounds::new(timeout, cancel);
    while let Some(seq) = budget.take() {
        recorder.scheduled();
        if !execute(&mut slot, Ticket::unscheduled(seq), &recorder, &mut bounds).await {
            return;
        }
    }
}

/// What ends a request early: its timeout, and the run's abort. The abort's waiter is made
/// once per worker: a fresh `cancelled()` per request joined and left the token's waiter list
/// under its lock every time, ~10 % of metronome's CPU per request at maximum rate. The timeout
/// stays a fresh `timeout_at` per request: reusing one re-armed `Sleep` per worker measured
/// slower at 5 000/s (68 vs 55 µs of CPU per request), see docs/performance.md.
struct Bounds {
    timeout: Duration,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Bounds {
    fn new(timeout: Duration, cancel: CancellationToken) -> Self {
        Bounds {
            timeout,
            cancelled: Box::pin(cancel.cancelled_owned()),
        }
    }
}

/// Sends one ticket and records its outcome. Returns false if `cancel` fired mid-request (the
/// request is then counted as cancelled).
async fn execute<S: Slot>(
    slot: &mut S,
    ticket: Ticket,
    recorder: &Recorder,
    bounds: &mut Bounds,
) -> bool {
    let sent_at = Instant::now();
    recorder.sent();
    let deadline = tokio::time::Instant::from_std(sent_at + bounds.timeout);
    let completion = tokio::select! {
        biased;
        _ = bounds.cancelled.as_mut() => {
            slot.abandon();
            recorder.cancelled(1);
            return false;
        }
        r = tokio::time::timeout_at(deadline, slot.call(ticket.request())) => match r {
            Ok(c) => c,
            Err(_) => {
                slot.abandon();
                Completion::failed(Class::Timeout)
            }
        },
    };
    recorder.record(&Outcome::new(ticket, sent_at, Instant::now(), completion));
    true
}

/// A sleep with sub-millisecond resolution (Linux `timerfd`), or tokio's timer elsewhere.
struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: Option<linux::TimerFd>,
}

impl PreciseTimer {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Self> {
        Ok(PreciseTimer {
            fd: Some(linux::TimerFd::new()?),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Self> {
        Ok(PreciseTimer {})
    }

    fn fallback() -> Self {
        PreciseTimer {
            #[cfg(target_os = "linux")]
            fd: None,
        }
    }

    async fn sleep_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &mut self.fd {
            if fd.sleep_until(deadline).await.is_ok() {
                return;
            }
            // The timerfd failed (should not happen); fall back for good.
            self.fd = None;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! A non-blocking CLOCK_MONOTONIC timerfd driven by tokio's reactor. `std::time::Instant` is
    //! CLOCK_MONOTONIC on Linux, so an `Instant` maps onto the timerfd clock by a fixed offset
    //! taken once.

    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    pub struct TimerFd {
        fd: AsyncFd<OwnedFd>,
        base_instant: Instant,
        base_ts: Duration,
    }

    fn monotonic_now() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    impl TimerFd {
        pub fn new() -> io::Result<Self> {
            // SAFETY: plain syscall; the result is checked before use.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a freshly created fd that nothing else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
            let base_instant = Instant::now();
            let base_ts = monotonic_now();
            // SAFETY: `owned` is a valid open fd and the AsyncFd owns it for its whole life.
            let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(TimerFd {
                fd,
                base_instant,
                base_ts,
            })
        }

        fn arm(&self, deadline: Instant) -> io::Result<()> {
            let at = self.base_ts + deadline.saturating_duration_since(self.base_instant);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: at.as_secs() as libc::time_t,
                    // A zero it_value would disarm the timer; deadlines are never at the epoch.
                    tv_nsec: (at.subsec_nanos().max(1)) as libc::c_long,
                },
            };
            // SAFETY: valid fd and a fully initialised itimerspec.
            let rc = unsafe {
                libc::timerfd_settime(
                    self.fd.as_raw_fd(),
                    libc::TFD_TIMER_ABSTIME,
                    &spec,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
            self.arm(deadline)?;
            loop {
                let mut guard = self.fd.readable().await?;
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer from a valid fd.
                let n = unsafe {
                    libc::read(guard.get_inner().as_raw_fd(), buf.as_mut_ptr().cast(), 8)
                };
                if n == 8 {
                    // The fd is drained; forget the readiness now rather than paying an EAGAIN
                    // read at the next sleep.
                    guard.clear_ready();
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                    continue;
                }
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Shape;

    /// A slot that "answers" after a fixed delay, to test the dispatcher without a network.
    struct Delay(Duration);
    impl Slot for Delay {
        async fn call(&mut self, _request: u32) -> Completion {
            tokio::time::sleep(self.0).await;
            Completion {
                class: Class::Ok,
                status: 200,
            }
        }
        fn abandon(&mut self) {}
    }

    async fn run(
        rate: f64,
        ms: u64,
        workers: usize,
        backlog: usize,
        delay_ms: u64,
    ) -> crate::record::Flow {
        let recorder = Arc::new(Recorder::new());
        let (tx, rx) = async_channel::bounded(backlog);
        let cancel = CancellationToken::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            handles.push(tokio::spawn(work(
                Delay(Duration::from_millis(delay_ms)),
                rx.clone(),
                recorder.clone(),
                Duration::from_secs(10),
                cancel.clone(),
            )));
        }
        let shape = Shape::constant(rate, Duration::from_millis(ms)).unwrap();
        let (end, _) = pace(
            Schedule::new(shape, Instant::now()),
            tx,
            recorder.clone(),
            CancellationToken::new(),
            Duration::ZERO,
        )
        .await;
        assert_eq!(end, PaceEnd::Completed);
        for h in handles {
            h.await.unwrap();
        }
        recorder.flow()
    }

    #[tokio::test]
    async fn every_ticket_is_sent_when_capacity_suffices() {
        let f = run(1000.0, 200, 50, 100, 5).await;
        assert_eq!(f.scheduled, 200);
        assert_eq!(f.sent, 200);
        assert_eq!(f.dropped, 0);
    }

    #[tokio::test]
    async fn full_backlog_drops_and_counts() {
        // 1 worker busy 100 ms per request, backlog 2: most of 50 tickets must be dropped.
        let f = run(500.0, 100, 1, 2, 100).await;
        assert_eq!(f.scheduled, 50);
        assert!(f.dropped >= 40, "{f:?}");
        assert_eq!(f.sent + f.dropped, f.scheduled);
    }

    #[tokio::test]
    async fn saturation_budget_is_exact() {
        let recorder = Arc::new(Recorder::new());
        let budget = Arc::new(Saturation::new(None, Some(37)));
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(tokio::spawn(saturate(
                Delay(Duration::from_millis(1)),
                budget.clone(),
                recorder.clone(),
                Duration::from_secs(1),
                CancellationToken::new(),
            )));
        }
        for h in handles {
            h.await.unwrap();
        }
        let f = recorder.flow();
        assert_eq!((f.scheduled, f.sent), (37, 37));
        assert!(budget.done.is_cancelled());
    }

    #[tokio::test]
    async fn precise_timer_wakes_close_to_deadline() {
        let mut t = PreciseTimer::new().unwrap();
        let mut worst = Duration::ZERO;
        for i in 1..=20u64 {
            let due = Instant::now() + Duration::from_micros(300 * i);
            t.sleep_until(due).await;
            let late = Instant::now().saturating_duration_since(due);
            assert!(Instant::now() >= due);
            worst = worst.max(late);
        }
        // Generous: the point is "not tokio's whole-millisecond rounding" on an idle machine,
        // but a busy CI box can preempt us, so only catch gross failures here.
        assert!(
            worst < Duration::from_millis(50),
            "worst lateness {worst:?}"
        );
    }
}

//! The terminal UI and what it steers: pause and live rate changes as the target sees them
//! (`serve`'s per-100 ms received counts), and the real binary in a real terminal (tmux).

use std::time::{Duration, Instant};

use metronome::{Control, Stop, Views};

use crate::common::*;

/// Requests the server received in the 100 ms slots that lie wholly inside `[from, to)`.
fn received_between(timeline: &[u64], origin: Instant, from: Instant, to: Instant) -> (u64, usize) {
    let slot = |t: Instant| t.saturating_duration_since(origin).as_millis() as usize / 100;
    let (first, last) = (slot(from) + 1, slot(to));
    let n: u64 = (first..last)
        .map(|i| timeline.get(i).copied().unwrap_or(0))
        .sum();
    (n, last.saturating_sub(first))
}

/// Starts a steerable run of `args` on a task; returns its handle.
fn start_run(args: &[&str], control: &Control) -> tokio::task::JoinHandle<metronome::Report> {
    let mut plan = plan(args);
    plan.progress = false;
    let control = control.clone();
    tokio::spawn(async move {
        metronome::run_steered(&plan, Stop::new(), Views::default(), control)
            .await
            .expect("run succeeds")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_sends_nothing_and_shifts_the_schedule_without_late_requests() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let control = Control::new();
    let run = start_run(&[&url(&server), "-r", "200", "-d", "2s"], &control);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let paused = Instant::now();
    assert_eq!(control.toggle_pause(paused), Ok(true));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let resumed = Instant::now();
    assert_eq!(control.toggle_pause(resumed), Ok(false));
    let report = run.await.expect("run task");

    let timeline = server.received_timeline();
    let (during, slots) = received_between(&timeline, server.started_at(), paused, resumed);
    assert!(slots >= 5, "the pause covers whole slots: {slots}");
    assert_eq!(
        during, 0,
        "nothing reaches the target while paused: {timeline:?}"
    );
    let (before, _) = received_between(
        &timeline,
        server.started_at(),
        paused - Duration::from_millis(400),
        paused,
    );
    assert!(
        before >= 30,
        "it was sending before the pause: {timeline:?}"
    );

    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(
        (c.scheduled, c.ok),
        (400, 400),
        "the pause loses no request"
    );
    assert_eq!(server.stats().received, 400);
    // Intended starts shifted by the pause: nobody was sent late by anything like the pause
    // (800 ms); a busy host's few ms are not the claim.
    assert!(
        report.send_lag_us.max < 200_000,
        "max send lag {}: {:?}",
        report.send_lag_us.max,
        report.verdict.reasons
    );
    assert!(
        report.send_lag_us.p99 < 50_000,
        "p99 send lag {}",
        report.send_lag_us.p99
    );
    let k = &report.control;
    assert_eq!(k.pauses, 1);
    assert!((0.75..1.0).contains(&k.paused_s), "paused {}", k.paused_s);
    assert!(
        report.duration_s > 2.7,
        "the schedule ran 2 s plus the pause: {}",
        report.duration_s
    );
    let rate = report.rate.target.expect("open loop");
    assert!(
        (195.0..=205.0).contains(&rate),
        "paused time is not in the rate: {rate}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_change_rescales_the_rest_of_the_schedule() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let control = Control::new();
    let run = start_run(&[&url(&server), "-r", "100", "-d", "3s"], &control);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let changed = Instant::now();
    assert_eq!(control.step_rate(10, changed), Ok(2.0));
    let report = run.await.expect("run task");

    let timeline = server.received_timeline();
    let origin = server.started_at();
    let ms = Duration::from_millis;
    let (before, n0) = received_between(&timeline, origin, changed - ms(800), changed);
    let (after, n1) = received_between(&timeline, origin, changed + ms(100), changed + ms(900));
    let (per0, per1) = (before as f64 / n0 as f64, after as f64 / n1 as f64);
    assert!(
        (8.0..=12.0).contains(&per0),
        "10 per slot before: {timeline:?}"
    );
    assert!(
        (17.0..=23.0).contains(&per1),
        "20 per slot after: {timeline:?}"
    );

    assert_accounting(&report);
    assert_eq!(report.counts.ok, 300, "the same requests, sooner");
    assert!(
        (1.8..=2.3).contains(&report.duration_s),
        "1 s at 100/s, then 2 s of schedule in 1 s: {}",
        report.duration_s
    );
    // Rescaled, not a burst of late requests: a busy host's few ms of send lag are not the
    // claim here, a late schedule would put hundreds of ms there.
    assert!(
        report.send_lag_us.p99 < 50_000,
        "p99 send lag {}",
        report.send_lag_us.p99
    );
    let k = &report.control;
    assert_eq!(k.rate_factor, 2.0);
    assert_eq!(k.changes.len(), 1);
    assert!(
        (0.9..1.3).contains(&k.changes[0].at_s),
        "{:?}",
        k.changes[0]
    );
}

/// A tmux server of our own (its own socket), with one session running a command in a
/// 100×30 terminal; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `None` (and a loud note) when tmux is not installed.
    fn start(command: &str) -> Option<Tmux> {
        let socket = format!(
            "metronome-test-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        let started = std::process::Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "100", "-y", "30", command])
            .env_remove("TMUX")
            .status();
        match started {
            Ok(s) if s.success() => Some(Tmux { socket }),
            _ => {
                eprintln!("SKIPPED: tmux is not installed; the real-terminal test needs it");
                None
            }
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", keys]);
    }

    /// Waits (up to `limit`) until the screen shows every one of `needles`; returns the screen.
    fn wait_for(&self, needles: &[&str], limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "waited {limit:?} for {needles:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_terminal_the_ui_shows_rates_and_percentiles_and_q_restores_it() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    let json = dir.join("r.json");
    let command = format!(
        "{} run {} -r 200 -d 20s --json {}; echo \"exit $?\"; sleep 30",
        bin().display(),
        url(&server),
        json.display()
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let wait = Duration::from_secs(10);
    let screen = tmux.wait_for(
        &["target 200/s", "latency p99", "p99.9", "on schedule"],
        wait,
    );
    assert!(screen.contains("achieved"), "{screen}");
    assert_eq!(tmux.tmux(&["display", "-p", "#{alternate_on}"]).trim(), "1");

    tmux.keys("Space");
    tmux.wait_for(&["PAUSED"], wait);
    tmux.keys("Space");
    tmux.keys("+");
    tmux.wait_for(&["rate ×1.10"], wait);
    tmux.keys("q");
    let after = tmux.wait_for(&["exit ", "verdict"], wait);
    let flags = tmux.tmux(&["display", "-p", "#{alternate_on} #{cursor_flag}"]);
    assert_eq!(
        flags.trim(),
        "0 1",
        "alternate screen left, cursor shown:\n{after}"
    );
    assert!(after.contains("exit 0"), "{after}");

    let report = read_json(&json);
    assert_eq!(report["control"]["pauses"], 1, "{}", report["control"]);
    crate::report_schema::assert_valid(&report);
    assert_eq!(report["ending"], "interrupted");
    assert!(
        report["counts"]["ok"].as_u64().unwrap_or(0) > 100,
        "{report}"
    );
    assert_eq!(report["control"]["pauses"], 1);
    assert_eq!(report["control"]["rate_factor"], 1.1);
    assert_eq!(
        report["counts"]["sent"].as_u64(),
        Some(server.stats().received),
        "the target saw exactly what was sent"
    );
}

//! Profiles against the real engine and `serve`: a ramp, a burst and a Poisson run, built with
//! the library (`profile::parse_shorthand` and `profile::check`), driven by `metronome::run`, and
//! checked against what the *server* received per second.
//!
//! Tolerance: each one-second window must hold the curve's expected count `N(i+1) − N(i)` within
//! 10 % + 10 requests. The server's 100 ms slots are aligned to the schedule's start (the
//! report's `start_time`, after connection set-up), so a window can be misaligned by up to
//! ~50 ms (half a slot, plus the wall clock's drift from the monotonic one); at the steepest edge
//! below (a jump of 500/s) that moves up to ~25 requests across a window boundary, inside the
//! tolerance for windows of ≥ 200 requests.

use std::path::Path;
use std::time::{Duration, Instant};

use metronome::profile;
use metronome::schedule::{Arrivals, Shape};
use metronome::serve::Server;

use crate::common::*;

/// Per-second counts the server saw, starting at the slot where the run began.
fn per_second(server: &Server, launched: Instant, seconds: usize) -> Vec<u64> {
    let timeline = server.received_timeline();
    let offset = launched.saturating_duration_since(server.started_at());
    let first = ((offset.as_secs_f64() * 10.0).round() as usize).min(timeline.len());
    (0..seconds)
        .map(|i| timeline.iter().skip(first + 10 * i).take(10).sum::<u64>())
        .collect()
}

/// Expected requests in each whole second of the shape.
fn expected_per_second(shape: &Shape) -> Vec<f64> {
    let c = shape.curve().expect("an open-loop shape");
    let secs = c.duration_secs().ceil() as usize;
    (0..secs)
        .map(|i| c.cumulative(i as f64 + 1.0) - c.cumulative(i as f64))
        .collect()
}

fn assert_follows(got: &[u64], want: &[f64], what: &str) {
    eprintln!("{what}: server per second {got:?}, curve {want:.1?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 0.10 * w + 10.0;
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{what}: second {i}: server got {g}, curve says {w:.1} (±{tol:.0}); all: {got:?} vs {want:.1?}"
        );
    }
}

async fn drive(shape: Shape) -> (metronome::Report, Vec<u64>, u64) {
    let server = serve_default().await;
    let mut p = plan(&[&url(&server), "-c", "20", "-r", "1", "-d", "1s"]);
    p.shape = shape.clone();
    let secs = shape.duration().as_secs_f64().ceil() as usize;
    let (launched, launched_wall) = (Instant::now(), std::time::SystemTime::now());
    let report = run(p).await;
    // Let the last answers land in the server's timeline.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The schedule starts once the run is set up (connections, workers): the report says when.
    let started = humantime::parse_rfc3339(&report.start_time).expect("an RFC 3339 start time");
    let set_up = started.duration_since(launched_wall).unwrap_or_default();
    let seen = per_second(&server, launched + set_up, secs);
    let stats = server.shutdown().await;
    (report, seen, stats.received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_reaches_the_server_as_a_ramp() {
    let _t = timing_lock().await;
    let shape = profile::parse_shorthand("50->400/s@3s").unwrap();
    assert_eq!(shape.total(), 675);
    let want = expected_per_second(&shape);
    assert_eq!(
        want.iter().map(|w| w.round() as u64).collect::<Vec<_>>(),
        [108, 225, 342]
    );
    let (report, got, received) = drive(shape.clone()).await;
    assert_accounting(&report);
    assert_eq!(report.counts.scheduled, 675);
    assert_eq!(report.counts.ok, 675);
    assert_eq!(received, 675, "the server saw every request");
    assert_eq!(report.profile.shape, "ramp 50→400/s over 3s");
    assert_eq!(report.counts.dropped, 0);
    assert_follows(&got, &want, "ramp 50→400/s");
    // Rising: each second busier than the last.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_the_server_as_a_burst() {
    let _t = timing_lock().await;
    // 100/s, bursting to 600/s from 1 s: 200 ms rise, 1 s at the peak, 200 ms fall.
    let shape = profile::parse_shorthand("burst:100->600/s@4s,at=1s,rise=200ms,hold=1s").unwrap();
    let want = expected_per_second(&shape);
    assert_eq!(
        want.iter().map(|w| w.round() as u64).collect::<Vec<_>>(),
        [100, 550, 250, 100]
    );
    assert_eq!(shape.total(), 1000);
    let (report, got, received) = drive(shape.clone()).await;
    assert_accounting(&report);
    assert_eq!(report.counts.scheduled, 1000);
    assert_eq!(received, 1000);
    assert_eq!(report.counts.dropped, 0);
    assert_follows(&got, &want, "burst 100→600/s");
    assert_eq!(
        shape.stage_at(Duration::from_millis(1500)),
        Some((0, "burst"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_file_with_poisson_arrivals_runs() {
    let _t = timing_lock().await;
    // A short two-stage profile, Poisson arrivals with a fixed seed: the schedule is
    // reproducible, the server's count is the schedule's, and the mean follows the curve
    // (Poisson counts per second have sd √N ≈ 15 at 200/s, inside the tolerance).
    let dir = tempdir();
    let path = dir.join("short.toml");
    std::fs::write(
        &path,
        r#"
name = "short"
arrivals = "poisson"
seed = 99

[[stage]]
name = "low"
shape = "constant"
rate = 200
duration = "1s"

[[stage]]
name = "high"
shape = "ramp"
from = 200
to = 400
duration = "2s"
"#,
    )
    .unwrap();
    let prof = profile::check(Path::new(&path)).unwrap();
    assert_eq!(prof.shape.arrivals(), Arrivals::Poisson);
    assert_eq!(prof.shape.seed(), 99);
    let sched = |s: &Shape| {
        let t0 = Instant::now();
        metronome::schedule::Schedule::new(s.clone(), t0)
            .map(|t| t.intended() - t0)
            .collect::<Vec<_>>()
    };
    let planned = sched(&prof.shape);
    assert_eq!(planned, sched(&prof.shape), "same seed, same schedule");
    let want = expected_per_second(&prof.shape);
    let (report, got, received) = drive(prof.shape.clone()).await;
    assert_accounting(&report);
    assert_eq!(report.counts.scheduled, planned.len() as u64);
    assert_eq!(received, planned.len() as u64);
    assert!(
        report
            .profile
            .shape
            .starts_with("short (2 stages: low → high)"),
        "{}",
        report.profile.shape
    );
    assert_eq!(report.profile.arrivals, "poisson");
    assert_eq!(report.profile.seed, 99);
    // Per-stage results add up to the whole run, stage by stage.
    let done: u64 = report
        .profile
        .stages
        .iter()
        .map(|s| {
            s.results
                .as_ref()
                .expect("two stages have results")
                .completed
        })
        .sum();
    assert_eq!(done, report.counts.completed);
    assert_follows(&got, &want, "poisson 200 then 200→400/s");
}

/// A profile file with two stages and a weighted mix of two requests, run by the real binary:
/// the server sees the mix by path, the report names the profile and breaks results down by
/// stage, and the progress lines name the stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_a_profile_with_a_request_mix_and_reports_each_stage() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    let file = dir.join("mix.toml");
    std::fs::write(
        &file,
        r#"
name = "two-step"
seed = 11

[[stage]]
name = "warm"
shape = "constant"
rate = 100
duration = "1s"

[[stage]]
name = "peak"
shape = "constant"
rate = 300
duration = "1500ms"

[[request]]
name = "list"
weight = 3
path = "/a"

[[request]]
name = "order"
weight = 1
method = "POST"
path = "/b?x=1"
body = "{}"
"#,
    )
    .unwrap();
    let json = dir.join("r.json");
    let out = metronome(&[
        "run",
        "--profile",
        file.to_str().unwrap(),
        &url(&server),
        "-c",
        "20",
        "-H",
        "X-Test: 1",
        // About the mix and the stages, not pacing: a busy host's send lag must not exit 3.
        "--max-send-lag",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let by_path = server.received_by_path();
    server.shutdown().await;

    // 550 requests picked 3:1 by a seeded draw: binomial sd ≈ 10, allow ±5 sd.
    let count = |p: &str| by_path.iter().find(|(k, _)| k == p).map_or(0, |(_, n)| *n);
    let (a, b) = (count("/a"), count("/b?x=1"));
    assert_eq!(
        a + b,
        550,
        "every request went to one of the two paths: {by_path:?}"
    );
    assert!((a as i64 - 412).abs() <= 50, "3:1 mix, got /a {a}, /b {b}");

    let v = read_json(&json);
    crate::report_schema::assert_valid(&v);
    let p = &v["profile"];
    assert_eq!(p["name"], "two-step");
    assert_eq!(p["file"], file.to_str().unwrap());
    assert_eq!(p["seed"], 11);
    assert_eq!(p["stage_at_end"], "peak");
    assert_eq!(v["method"], "mixed");
    let stages = p["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    for (st, (name, n)) in stages.iter().zip([("warm", 100), ("peak", 450)]) {
        assert_eq!(st["name"], name);
        assert_eq!(st["target_requests"], n);
        assert_eq!(st["results"]["completed"], n, "{st}");
        assert_eq!(st["results"]["ok"], n, "{st}");
    }
    let reqs = p["requests"].as_array().unwrap();
    assert_eq!(reqs[1]["method"], "POST");
    assert_eq!(reqs[1]["path"], "/b?x=1");
    assert_eq!(reqs[0]["weight"], 3);
    // Progress names the stage running in each second (the last partial second is in the
    // final report only).
    assert!(stderr.contains("] warm target 100/s"), "{stderr}");
    assert!(stderr.contains("] peak target 300/s"), "{stderr}");
}

/// `profile show` works on every example and `profile check` accepts them all; a broken
/// profile is refused with file, line and column, exit 2.
#[test]
fn profile_show_and_check_work_on_every_example_and_refuse_a_broken_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for f in &files {
        let out = metronome(&["profile", "show", f]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("peak"), "{f}: {stdout}");
    }
    let mut args = vec!["profile", "check"];
    args.extend(files.iter().map(String::as_str));
    let out = metronome(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(": ok (")
            .count(),
        files.len()
    );

    let dir = tempdir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[stage]]\nshape = \"constant\"\nrate = 100\nduraton = \"1m\"\n",
    )
    .unwrap();
    let out = metronome(&["profile", "check", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");

    let out = metronome(&[
        "profile",
        "show",
        "--shape",
        "50->1000/s@2m",
        "--time-scale",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1m"), "scaled to one minute: {stdout}");
}

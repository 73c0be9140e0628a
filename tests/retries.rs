//! Retry storms against `serve`: immediate retries amplify the offered load and keep the target
//! down after the trigger (a metastable failure); backoff, jitter and a budget keep
//! amplification near 1 and let it recover. Retry-After is honoured; a breaker fails fast.

use std::time::Duration;

use metronome::serve::{ServeConfig, ServiceTime};

use crate::common::*;

/// Capacity ~450/s (5 workers × 10 ms, plus tokio's timer rounding), a queue of 200 (more than
/// 300 ms of work): a 1.5 s burst to 1500/s fills it, and then a queued request waits longer
/// than the client's 300 ms timeout.
fn fragile() -> ServeConfig {
    ServeConfig {
        workers: 5,
        queue: 200,
        service_time: ServiceTime::Fixed(Duration::from_millis(10)),
        ..ServeConfig::default()
    }
}

/// 300/s for 3 s, 1500/s for 1.5 s (the trigger, ending at 4.5 s), 300/s for 5.5 s.
const STORM_SHAPE: &str = "300@3s; 1500@1.5s; 300@5.5s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_retries_amplify_and_the_target_does_not_recover() {
    let _t = timing_lock().await;
    let server = serve(fragile()).await;
    let r = run(plan(&[
        &url(&server),
        "--shape",
        STORM_SHAPE,
        "--timeout",
        "300ms",
        "--retry",
        "on=rejected,timeout attempts=4 backoff=none",
        "--recovery",
        "after=4.5s threshold=99% hold=2s",
        // The claim here is the storm's, not the pacer's precision: a busy CI host may add a few
        // ms of send lag to a debug build sending thousands of attempts a second.
        "--max-send-lag",
        "50ms",
    ]))
    .await;
    assert_accounting(&r);
    let x = r.retry.as_ref().expect("a retry report");
    let stats = server.stats();
    let first = r
        .profile
        .stages
        .iter()
        .map(|s| s.target_requests)
        .sum::<u64>();
    assert_eq!(
        x.logical.started, first,
        "one logical request per scheduled one"
    );
    assert!(
        stats.received > 2 * first,
        "the server received {} requests for {first} scheduled",
        stats.received
    );
    assert!(x.amplification > 2.0, "amplification ×{}", x.amplification);
    // Retries by reason add up to the retries sent, over the run and over the timeline.
    let by = &x.retries_by_reason;
    let sum = by.rejected + by.timeout + by.connect_error + by.transport_error + by.http_error;
    assert_eq!(sum, x.retries, "{by:?}");
    let b = &r.timeline.buckets;
    let per_second: u64 = b
        .iter()
        .map(|b| b.retries_rejected + b.retries_timeout + b.retries_other)
        .sum();
    assert_eq!(per_second, b.iter().map(|b| b.retries).sum::<u64>());
    assert_eq!(r.recovery.status, "not_recovered", "{:?}", r.recovery);
    assert!(
        stats.abandoned > 0,
        "the target worked for clients that had left"
    );
    // The storm is the clients', not the generator's: it kept its own schedule.
    assert!(r.verdict.trustworthy, "{:?}", r.verdict.reasons);
    // After the trigger, most attempts are retries.
    let after: Vec<_> = r
        .timeline
        .buckets
        .iter()
        .filter(|b| b.t >= 6.0 && b.t < 10.0)
        .collect();
    assert!(
        after.iter().all(|b| b.amplification.unwrap_or(0.0) > 2.0),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_jitter_and_a_budget_keep_amplification_low_and_the_target_recovers() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        retry_after: Some(Duration::from_secs(1)),
        ..fragile()
    })
    .await;
    let r = run(plan(&[
        &url(&server),
        "--shape",
        STORM_SHAPE,
        "--timeout",
        "300ms",
        "--retry",
        "on=rejected,timeout attempts=4 backoff=exp:100ms..5s jitter=full budget=10% budget_min=5/s",
        "--recovery",
        "after=4.5s threshold=99% hold=2s",
        // The claim here is the storm's, not the pacer's precision: a busy CI host may add a few
        // ms of send lag to a debug build sending thousands of attempts a second.
        "--max-send-lag",
        "50ms",
    ]))
    .await;
    assert_accounting(&r);
    let x = r.retry.as_ref().expect("a retry report");
    assert!(x.amplification <= 1.1, "amplification ×{}", x.amplification);
    assert!(x.retries > 0, "the policy did retry");
    assert!(
        x.logical.gave_up.budget > 0,
        "the budget refused the excess"
    );
    assert_eq!(r.recovery.status, "recovered", "{:?}", r.recovery);
    let t = r.recovery.recovery_time_s.expect("a recovery time");
    assert!(t <= 4.0, "recovered {t} s after the trigger");
    assert!(r.verdict.trustworthy, "{:?}", r.verdict.reasons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    // A token bucket of 50/s answers 429 with Retry-After: 1 to the other half of 100/s.
    let limited = || ServeConfig {
        rate_limit: Some(50.0),
        rate_burst: 1.0,
        ..ServeConfig::default()
    };
    let policy = |ra: &str| {
        format!("on=rejected attempts=2 backoff=fixed:10ms jitter=none retry_after={ra}")
    };
    let server = serve(limited()).await;
    let honour = run(plan(&[
        &url(&server),
        "-r",
        "100",
        "-d",
        "2s",
        "--retry",
        &policy("honour"),
    ]))
    .await;
    assert_accounting(&honour);
    let b = &honour.timeline.buckets;
    assert!(honour.retry.as_ref().unwrap().retries > 20);
    // The first second holds no retry but for the few that an interval closing a little late
    // (a busy host) counts in it: those due just after 1 s.
    assert!(
        b[0].retries <= 5,
        "every retry waited the second it was asked to: {b:?}"
    );
    assert!(b[1].retries > 0);
    let server = serve(limited()).await;
    let ignore = run(plan(&[
        &url(&server),
        "-r",
        "100",
        "-d",
        "2s",
        "--retry",
        &policy("ignore"),
    ]))
    .await;
    assert!(
        ignore.timeline.buckets[0].retries > 20,
        "ignored, retries come 10 ms later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_fails_fast_without_sending() {
    // One worker and no queue, 50 ms per request, 200/s: nearly everything is shed.
    let server = serve(ServeConfig {
        workers: 1,
        queue: 0,
        service_time: ServiceTime::Fixed(Duration::from_millis(50)),
        ..ServeConfig::default()
    })
    .await;
    let r = run(plan(&[
        &url(&server),
        "-r",
        "200",
        "-d",
        "2s",
        "--retry",
        "on=rejected attempts=2 backoff=fixed:20ms breaker=50% breaker_window=1s breaker_min=20 breaker_cooldown=500ms",
    ]))
    .await;
    assert_accounting(&r);
    let x = r.retry.as_ref().unwrap();
    let b = x.breaker.expect("breaker counts");
    assert!(b.opened >= 1 && b.probes >= 1, "{b:?}");
    assert!(r.counts.short_circuited > 100, "{:?}", r.counts);
    assert_eq!(x.logical.short_circuited, r.counts.short_circuited);
    // Amplification is attempts sent per logical request: the breaker held load back.
    let sent = (x.first_attempts + x.retries) as f64;
    assert!(x.amplification < 1.0, "×{}", x.amplification);
    assert!((x.amplification - sent / x.logical.started as f64).abs() < 0.001);
    assert_eq!(
        server.stats().received,
        r.counts.sent,
        "short-circuited attempts never reached the target"
    );
}

#[test]
fn bad_retry_settings_are_refused_before_anything_is_sent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(serve_default());
    let u = url(&server);
    let dir = tempdir();
    let profile = dir.join("bad.toml");
    std::fs::write(
        &profile,
        "[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n\n[retry]\nattempts = 4\nbackof = \"none\"\n",
    )
    .unwrap();
    let profile = profile.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--retry", "attempts=0"], "from 1 to 100"),
        (vec!["--retry", "backoff=fixed:-1s"], "negative"),
        (vec!["--retry", "multiplier=0.5"], "multiplier"),
        (vec!["--retry", "budget=1.5"], "share from 0 to 1"),
        (
            vec!["--retry", "on=rejected,sometimes"],
            "unknown outcome 'sometimes'",
        ),
        (vec!["--retry", "atempts=3"], "did you mean attempts"),
        (
            vec!["--recovery", "after=nosuchstage"],
            "no stage has this name",
        ),
        (vec!["--profile", &profile], "did you mean backoff"),
        (vec!["--retry", "on=200"], "not a failure"),
        (vec!["--retry", "on=rejected on=timeout"], "given twice"),
        (vec!["--recovery", "after=5s"], "before the schedule does"),
    ];
    for (extra, words) in cases {
        let mut args = vec!["run", &u, "-r", "10", "-d", "1s"];
        if extra[0] == "--profile" {
            args = vec!["run", &u];
        }
        args.extend(extra.iter().copied());
        let out = metronome(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let prof_err = String::from_utf8_lossy(&metronome(&["run", &u, "--profile", &profile]).stderr)
        .into_owned();
    assert!(
        prof_err.contains(":8:"),
        "the profile error names the line: {prof_err}"
    );
    let out = metronome(&[
        "run",
        &u,
        "--rate",
        "max",
        "-d",
        "1s",
        "--retry",
        "attempts=2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(server.stats().received, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_the_trigger_ended_does_not_judge_recovery() {
    use std::process::{Command, Stdio};
    // Half the requests fail from the start: degraded at once; the trigger would end at 5 s.
    let server = serve(ServeConfig {
        error_rate: 0.5,
        ..ServeConfig::default()
    })
    .await;
    let dir = tempdir();
    let json = dir.join("stopped.json");
    let child = Command::new(bin())
        .args(["run", &url(&server), "-r", "50", "-d", "10s", "-q"])
        .args(["--recovery", "after=5s", "--json"])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.code().is_some());
    let v = read_json(&json);
    assert_eq!(v["ending"], "interrupted");
    assert_eq!(v["recovery"]["status"], "not_judged", "{}", v["recovery"]);
    assert!(v["recovery"]["recovery_time_s"].is_null());
    server.shutdown().await;
}

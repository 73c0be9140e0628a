//! The engine against `serve`: rate accuracy, drops, outcome classes, h2c, a target that dies.

use std::time::Duration;

use metronome::serve::{ServeConfig, Server, ServiceTime};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_is_accurate_and_server_sees_every_request() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let report = run(plan(&[&url(&server), "-r", "1000", "-d", "3s", "-c", "20"])).await;
    let stats = server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.scheduled, 3000);
    // ±1 % of rate × duration, counted by the server.
    let expected = 3000.0;
    let got = stats.received as f64;
    assert!(
        (got - expected).abs() <= expected * 0.01,
        "server received {got}"
    );
    assert_eq!(report.counts.ok, 3000);
    assert!(
        (report.rate.achieved - 1000.0).abs() < 10.0,
        "{:?}",
        report.rate
    );
    assert_eq!(report.status_codes.get("200"), Some(&3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_are_spread_over_the_schedule_not_bunched() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let report = run(plan(&[&url(&server), "-r", "500", "-d", "2s", "-c", "10"])).await;
    let timeline = server.received_timeline();
    server.shutdown().await;
    assert_accounting(&report);
    // 100 ms slots: a paced run puts ~50 in each of the ~20 slots; a burst would not.
    let busy: Vec<u64> = timeline.iter().copied().filter(|&n| n > 0).collect();
    assert!(
        busy.len() >= 19,
        "only {} busy slots: {timeline:?}",
        busy.len()
    );
    let max = busy.iter().copied().max().unwrap_or(0);
    assert!(
        max <= 80,
        "a 100 ms slot got {max} requests (expected ~50): {timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backlog_drops_are_counted_and_make_the_run_untrustworthy() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_millis(100)),
        ..ServeConfig::default()
    })
    .await;
    let report = run(plan(&[
        &url(&server),
        "-r",
        "100",
        "-d",
        "1s",
        "-c",
        "1",
        "--max-in-flight",
        "1",
        "--backlog",
        "5",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&report);
    assert!(report.counts.dropped > 50, "{:?}", report.counts);
    assert!(!report.verdict.trustworthy);
    assert_eq!(report.exit_code(), 3);
    assert!(report.verdict.reasons.iter().any(|r| r.contains("dropped")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_and_errors_are_classified_per_status() {
    let server = serve(ServeConfig {
        rate_limit: Some(50.0),
        rate_burst: 5.0,
        ..ServeConfig::default()
    })
    .await;
    let report = run(plan(&[&url(&server), "-r", "200", "-d", "1s", "-c", "8"])).await;
    let stats = server.shutdown().await;
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.rejected, stats.limited, "429s counted as rejected");
    assert_eq!(c.ok, stats.served);
    assert!(c.rejected >= 100, "{c:?}");
    assert_eq!(report.status_codes.get("429"), Some(&c.rejected));

    let server = serve(ServeConfig {
        error_rate: 1.0,
        ..ServeConfig::default()
    })
    .await;
    let report = run(plan(&[
        &url(&server),
        "-r",
        "100",
        "-n",
        "50",
        "--rejected",
        "",
    ]))
    .await;
    server.shutdown().await;
    assert_eq!(report.counts.http_error, 50);
    assert_eq!(report.status_codes.get("500"), Some(&50));
}

/// A target that answers nothing within the timeouts these tests use (3 s per request).
async fn serve_unanswering() -> Server {
    serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_secs(3)),
        ..ServeConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_enter_the_tail_at_the_moment_given_up() {
    let server = serve_unanswering().await;
    let report = run(plan(&[
        &url(&server),
        "-r",
        "20",
        "-n",
        "10",
        "--timeout",
        "300ms",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.timeout, 10);
    assert_eq!(
        report.latency_us.count, 10,
        "timeouts are in the latency histogram"
    );
    assert!(report.latency_us.p50 >= 300_000, "{:?}", report.latency_us);
    assert!(report.latency_us.max < 1_000_000);
}

/// One connection, so one worker sends all four requests in turn: each must be given up after its
/// own timeout, counted from its own send, not at an earlier request's deadline and not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_a_reused_slot_gets_its_own_timeout() {
    let server = serve_unanswering().await;
    let report = run(plan(&[
        &url(&server),
        "-c",
        "1",
        "-r",
        "5",
        "-n",
        "4",
        "--timeout",
        "300ms",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.timeout, 4, "{:?}", report.counts);
    let service = &report.service_time_us;
    assert!(
        service.min >= 300_000 && service.max < 450_000,
        "each request is given up 300 ms after its send: {service:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_multiplexes_on_one_connection() {
    let server = serve_default().await;
    let report = run(plan(&[
        &url(&server),
        "--http2",
        "-r",
        "500",
        "-d",
        "1s",
        "-c",
        "1",
    ]))
    .await;
    let stats = server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.ok, 500);
    assert_eq!(
        report.connections.opened, 1,
        "all streams on one connection"
    );
    // The server also saw the request-less probe that checked it speaks h2c before the start.
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.received, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_dies_mid_run_gives_errors_not_a_crash() {
    let server = serve_default().await;
    let p = plan(&[
        &url(&server),
        "-r",
        "200",
        "-d",
        "2s",
        "-c",
        "4",
        "--connect-timeout",
        "200ms",
    ]);
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.shutdown().await
    });
    let report = run(p).await;
    let stats = killer.await.unwrap();
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.scheduled, 400);
    assert!(c.ok >= 50 && c.ok <= stats.served, "{c:?} vs {stats:?}");
    assert!(c.connect_error + c.transport_error >= 200, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_view_changes_no_number() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let views = metronome::Views::every(Duration::from_millis(250));
    let mut rx = views.subscribe();
    let handle = tokio::runtime::Handle::current();
    // A view that takes 2 s per snapshot (a stuck terminal, a slow disk).
    let slow = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while handle.block_on(rx.changed()).is_ok() {
            let Some(snap) = rx.borrow_and_update().clone() else {
                break;
            };
            seen.push(snap.tickets.sent);
            std::thread::sleep(Duration::from_secs(2));
        }
        seen
    });
    let mut p = plan(&[&url(&server), "-r", "500", "-d", "3s"]);
    p.progress = false;
    let report = metronome::run_with(&p, metronome::Stop::new(), views)
        .await
        .expect("run succeeds");
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.sent, 1500);
    assert_eq!(report.counts.ok, 1500);
    assert!(
        report.send_lag_us.p99 < 5_000,
        "send lag {:?}",
        report.send_lag_us
    );
    assert!(report.verdict.trustworthy, "{:?}", report.verdict.reasons);
    let seen = slow.join().unwrap();
    assert!(
        !seen.is_empty() && seen.len() <= 3,
        "the slow view saw a few snapshots, not all 12: {seen:?}"
    );
}

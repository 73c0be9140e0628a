//! Coordinated omission. `serve` stalls all processing for 1 s in the middle of a 4 s run at
//! 200 requests/s. For a generator that measures from the intended start, the requests due during
//! the stall (a fraction D/T = 1/4 of the run... here 200 of 800) wait `stall_end − t` for `t`
//! uniform over the stall, so for q > 1 − D/T the latency quantile is
//! `x_q = D − T·(1 − q)`: p90 = 0.6 s, p95 = 0.8 s, p99 = 0.96 s, max = 1 s.
//! A closed-loop generator (waits for a response before sending the next) sends nothing during
//! the stall and reports a p99 near the baseline, so it fails these assertions.

use std::time::Duration;

use metronome::serve::{ServeConfig, Stall};

use crate::common::*;

const RATE: &str = "200";
const RUN: &str = "4s";
const STALL_AT_MS: u64 = 1500;

async fn stalling_server() -> metronome::serve::Server {
    serve(ServeConfig {
        stalls: vec![Stall {
            at: Duration::from_millis(STALL_AT_MS),
            duration: SECOND,
        }],
        ..ServeConfig::default()
    })
    .await
}

fn within(value_us: u64, expected_s: f64, tolerance: f64) -> bool {
    let v = value_us as f64 / 1e6;
    (v - expected_s).abs() <= expected_s * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_sending_through_a_stall_and_latency_shows_it() {
    let _t = timing_lock().await;
    let server = stalling_server().await;
    let p = plan(&[
        &url(&server),
        "--http2",
        "-c",
        "1",
        "--max-streams",
        "1000",
        "-r",
        RATE,
        "-d",
        RUN,
    ]);
    let report = run(p).await;
    let timeline = server.received_timeline();
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.scheduled, 800);
    assert_eq!(report.counts.ok, 800);

    // Requests kept arriving at the server during the stall: ~R·D = 200.
    let first = (STALL_AT_MS / 100) as usize + 1;
    let during: u64 = timeline.iter().skip(first).take(8).sum();
    assert!(
        during >= 120,
        "open loop: ~160 requests should arrive in the stall's inner 800 ms, got {during}: {timeline:?}"
    );

    let l = &report.latency_us;
    assert!(
        within(l.p99, 0.96, 0.12),
        "latency p99 {} µs, expected ~0.96 s",
        l.p99
    );
    assert!(
        within(l.p95, 0.80, 0.15),
        "latency p95 {} µs, expected ~0.80 s",
        l.p95
    );
    assert!(l.max >= 900_000 && l.max <= 1_200_000, "max {}", l.max);
    assert!(
        l.p50 < 50_000,
        "p50 should be the baseline, got {} µs",
        l.p50
    );

    // The generator itself stayed on time.
    assert!(
        report.send_lag_us.p99 < 50_000,
        "send lag p99 {} µs",
        report.send_lag_us.p99
    );
    // With nothing queued in the generator, service time carries the stall too.
    assert!(report.service_time_us.p99 <= report.latency_us.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_generator_still_measures_from_intended_start_and_says_it_was_late() {
    let _t = timing_lock().await;
    let server = stalling_server().await;
    // Only 4 HTTP/1.1 connections: during the stall the other requests wait in the generator's
    // backlog. Latency (from intended start) must still show the stall; service time (from the
    // late send) must not; send lag must expose the generator's lateness.
    let p = plan(&[&url(&server), "-c", "4", "-r", RATE, "-d", RUN]);
    let report = run(p).await;
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.dropped, 0);
    let l = &report.latency_us;
    assert!(
        within(l.p99, 0.96, 0.12),
        "latency p99 {} µs, expected ~0.96 s",
        l.p99
    );
    assert!(
        report.service_time_us.p99 < 200_000,
        "service time p99 {} µs should exclude the wait in the generator",
        report.service_time_us.p99
    );
    assert!(
        report.send_lag_us.p99 > 500_000,
        "send lag p99 {}",
        report.send_lag_us.p99
    );
    assert!(!report.verdict.trustworthy);
    assert!(report
        .verdict
        .reasons
        .iter()
        .any(|r| r.contains("send-lag")));
}

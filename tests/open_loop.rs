//! Coordinated omission. `serve` stalls all processing for 1 s in the middle of a 4 s run at
//! 200 requests/s. For a generator that measures from the intended start, the requests due during
//! the stall (a fraction D/T = 1/4 of the run... here 200 of 800) wait `stall_end − t` for `t`
//! uniform over the stall, so for q > 1 − D/T the latency quantile is
//! `x_q = D − T·(1 − q)`: p90 = 0.6 s, p95 = 0.8 s, p99 = 0.96 s, max = 1 s.
//! A closed-loop generator (waits for a response before sending the next) sends nothing during
//! the stall and reports a p99 near the baseline, so it fails these assertions: the third test
//! puts metronome's own closed-loop mode through them and checks that it does.

use std::time::Duration;

use metronome::serve::{ServeConfig, ServiceTime, Stall};

use crate::common::*;

const RATE: &str = "200";
const RUN: &str = "4s";
const STALL_AT_MS: u64 = 1500;

async fn stalling_server(service_time: ServiceTime) -> metronome::serve::Server {
    serve(ServeConfig {
        service_time,
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

/// What a coordinated-omission-correct run through the stall must show, as a list of failures
/// (empty = it passed). Kept apart from the tests so that a closed-loop run can be put through
/// the very same checks and seen to fail them.
fn stall_failures(report: &metronome::Report, timeline: &[u64]) -> Vec<String> {
    let mut failures = Vec::new();
    // Requests kept arriving at the server during the stall: ~R·D = 200, ~160 in its inner 800 ms.
    let first = (STALL_AT_MS / 100) as usize + 1;
    let during: u64 = timeline.iter().skip(first).take(8).sum();
    if during < 120 {
        failures.push(format!(
            "only {during} requests arrived in the stall's inner 800 ms (open loop: ~160)"
        ));
    }
    let l = &report.latency_us;
    if !within(l.p99, 0.96, 0.12) {
        failures.push(format!("latency p99 {} µs, expected ~0.96 s", l.p99));
    }
    if !within(l.p95, 0.80, 0.15) {
        failures.push(format!("latency p95 {} µs, expected ~0.80 s", l.p95));
    }
    if !(900_000..=1_200_000).contains(&l.max) {
        failures.push(format!("latency max {} µs, expected ~1 s", l.max));
    }
    if l.p50 >= 50_000 {
        failures.push(format!("latency p50 {} µs should be the baseline", l.p50));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_sending_through_a_stall_and_latency_shows_it() {
    let _t = timing_lock().await;
    let server = stalling_server(ServiceTime::Fixed(Duration::ZERO)).await;
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
    let failures = stall_failures(&report, &timeline);
    assert!(failures.is_empty(), "{failures:#?}\n{timeline:?}");

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
async fn a_closed_loop_generator_fails_the_same_checks() {
    let _t = timing_lock().await;
    // metronome's own closed-loop mode (`--rate max`): 4 connections, each sending its next
    // request when the previous answer arrived. 5 ms of work per request keeps it near the
    // open-loop run's volume (~700/s rather than 200/s, which only makes its tail thinner).
    // During the stall it sends nothing, and the 4 requests caught in it are too few to move
    // p95/p99: exactly the blindness the checks exist to catch.
    let server = stalling_server(ServiceTime::Fixed(Duration::from_millis(5))).await;
    let report = run(plan(&[&url(&server), "-r", "max", "-c", "4", "-d", RUN])).await;
    let timeline = server.received_timeline();
    server.shutdown().await;
    assert_accounting(&report);
    let failures = stall_failures(&report, &timeline);
    eprintln!(
        "closed loop: {} requests, failures: {failures:#?}",
        report.counts.completed
    );
    assert!(report.counts.completed > 800, "{:?}", report.counts);
    assert!(
        failures.iter().any(|f| f.contains("arrived in the stall")),
        "{failures:#?}"
    );
    assert!(failures.iter().any(|f| f.contains("p99")), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_generator_still_measures_from_intended_start_and_says_it_was_late() {
    let _t = timing_lock().await;
    let server = stalling_server(ServiceTime::Fixed(Duration::ZERO)).await;
    // A fixed pool of 4 HTTP/1.1 connections: during the stall the other requests wait in the
    // generator. Latency (from intended start) must still show the stall; service time (from the
    // late send) must not; send lag must expose the generator's lateness.
    let p = plan(&[
        &url(&server),
        "-c",
        "4",
        "--max-connections",
        "4",
        "-r",
        RATE,
        "-d",
        RUN,
    ]);
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
    assert!(
        report
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("late") && r.contains("--max-connections")),
        "{:?}",
        report.verdict.reasons
    );
}

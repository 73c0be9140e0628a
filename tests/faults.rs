//! Measurement truth under faults: the open model stays open through a stall, every request
//! that took time is in the tail, local failures are not blamed on the target, the generator's
//! own failures (a panic, a wrong protocol, a stop) are said for what they are.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metronome::serve::{ServeConfig, ServiceTime};

use crate::common::*;

/// `metronome serve` as a separate process (a target that does not share the generator's
/// runtime), with its summary line read back at the end.
struct ExternalServe {
    child: Child,
    port: u16,
}

impl ExternalServe {
    fn start(extra: &[&str]) -> ExternalServe {
        // Find a free port, then hand it to the server.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin())
            .args(["serve", "--addr", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ExternalServe { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (SIGINT) and returns its summary line.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = self.child.wait();
        err
    }
}

/// `received N` from serve's summary line.
fn received(summary: &str) -> u64 {
    let at = summary.find("received ").expect("summary line") + "received ".len();
    summary[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// Within 5 % below and 8 % above `expected_s` (see the stall test: draining adds, never takes).
fn near(value_us: u64, expected_s: f64) -> bool {
    let v = value_us as f64 / 1e6;
    v >= expected_s * 0.95 && v <= expected_s * 1.08
}

/// A 2 s stall at 1 000/s for 10 s, default flags otherwise. Analytic quantiles from intended
/// start (D = 2 s of T = 10 s; for q > 1 − D/T, x_q = D − T(1 − q)): p95 1.50 s, p99 1.90 s,
/// p99.9 1.99 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_met_by_new_connections_and_measured_exactly() {
    let _t = timing_lock().await;
    let server = ExternalServe::start(&["--stall", "2s+2s", "--queue", "8192"]);
    let report = run(plan(&[&server.url(), "-r", "1000", "-d", "10s"])).await;
    let summary = server.stop();
    assert_accounting(&report);
    let l = &report.latency_us;
    eprintln!(
        "stall: p95 {} p99 {} p99.9 {} lag p99 {} conns {:?}",
        l.p95, l.p99, l.p999, report.send_lag_us.p99, report.connections
    );
    // The analytic figures ignore the drain: the 2 000 requests queued in the stall are answered
    // together at its end, and working through them (and through the new ones arriving meanwhile)
    // on the 2 cores the target shares with the generator adds tens of milliseconds to every
    // quantile that falls after the stall. Measured p95 1.535–1.578 s (+2.3 to +5.2 %), p99
    // 1.905–1.935 s: so up to 8 % above the figure, 5 % below (a closed-loop generator, or one
    // that measured from the send, is off by seconds, not percent).
    assert!(near(l.p95, 1.50), "p95 {} µs", l.p95);
    assert!(near(l.p99, 1.90), "p99 {} µs", l.p99);
    assert!(near(l.p999, 1.99), "p99.9 {} µs", l.p999);
    // Measured 2.2–3.3 ms here, 6.4 ms once in CI: the 2 000 responses released together at the
    // stall's end are processed on the same 2 cores as the pacer (and the target), delaying the
    // sends due in the next few milliseconds. 10 ms leaves room for a busy CI host and still
    // catches requests waiting inside the generator (a fixed pool puts seconds here).
    assert!(
        report.send_lag_us.p99 < 10_000,
        "send-lag p99 {} µs: requests waited inside the generator",
        report.send_lag_us.p99
    );
    assert!(
        report.connections.opened >= 1500,
        "new users open new connections: {:?}",
        report.connections
    );
    assert_eq!(received(&summary), report.counts.scheduled, "{summary}");
    assert!(report.verdict.trustworthy, "{:?}", report.verdict.reasons);
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_pool_through_a_stall_is_untrustworthy_and_says_why() {
    let _t = timing_lock().await;
    let server = ExternalServe::start(&["--stall", "1s+2s"]);
    let report = run(plan(&[
        &server.url(),
        "-r",
        "1000",
        "-d",
        "4s",
        "-c",
        "50",
        "--max-connections",
        "50",
    ]))
    .await;
    server.stop();
    assert_accounting(&report);
    assert_eq!(report.connections.opened, 50);
    assert!(!report.verdict.trustworthy);
    assert_eq!(report.exit_code(), 3);
    assert!(
        report
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("--max-connections") && r.contains("50")),
        "{:?}",
        report.verdict.reasons
    );
}

/// Accepts connections and resets them at once (SO_LINGER 0), for `secs` seconds.
fn resetting_server(secs: u64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            match listener.accept() {
                Ok((s, _)) => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
                    let linger = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: setting a socket option on a socket we own.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            (&linger as *const libc::linger).cast(),
                            std::mem::size_of::<libc::linger>() as libc::socklen_t,
                        )
                    };
                    // Wait for the request, then reset.
                    let mut buf = [0u8; 1024];
                    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = (&s).read(&mut buf);
                    drop(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_resets_every_connection_is_in_the_tail_and_named() {
    let _t = timing_lock().await;
    let port = resetting_server(10);
    let report = run(plan(&[
        &format!("http://127.0.0.1:{port}/"),
        "-r",
        "100",
        "-d",
        "1s",
    ]))
    .await;
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.scheduled, 100);
    assert_eq!(c.transport_error + c.connect_error, 100, "{c:?}");
    assert_eq!(
        report.latency_by_outcome_us.error.count, 100,
        "failures are timed"
    );
    let top = report.errors.first().expect("an error sample");
    assert!(
        top.message.contains("reset") || top.message.contains("closed"),
        "{:?}",
        report.errors
    );
    assert!(report.to_text().contains("EVERY REQUEST FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_goes_away_leaves_its_refusals_in_the_tail() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let p = plan(&[&url(&server), "-r", "200", "-d", "3s", "-c", "4"]);
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.shutdown().await
    });
    let report = run(p).await;
    let stats = killer.await.unwrap();
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.scheduled, 600);
    assert!(c.ok >= 300 && c.ok <= stats.served, "{c:?}");
    assert!(c.connect_error >= 150, "{c:?}");
    let failed = report.latency_by_outcome_us.error.count;
    assert_eq!(
        failed,
        c.connect_error + c.transport_error,
        "every failure is timed"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.class == "connect_error" && e.message.contains("refused")),
        "{:?}",
        report.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_at_the_end_of_grace_are_censored_into_the_tail() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_secs(30)),
        ..ServeConfig::default()
    })
    .await;
    let report = run(plan(&[
        &url(&server),
        "-r",
        "100",
        "-d",
        "1s",
        "--timeout",
        "30s",
        "--grace",
        "1s",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.cancelled, 100, "{c:?}");
    // Cut about 2 s after the start: the first request had waited ~2 s, the last ~1 s.
    assert!(
        report.latency_us.max >= 1_900_000,
        "{:?}",
        report.latency_us
    );
    assert!(report.latency_us.min >= 900_000, "{:?}", report.latency_us);
    assert_eq!(report.latency_by_outcome_us.cancelled.count, 100);
    assert!(!report.verdict.trustworthy);
    assert!(
        report.verdict.reasons.iter().any(|r| r.contains("cut")),
        "{:?}",
        report.verdict.reasons
    );
}

#[test]
fn a_connection_cap_beyond_the_fd_limit_is_refused_before_the_start() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' run -r 10 -d 1s --max-connections 1000 http://127.0.0.1:9/",
            bin().display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("file descriptors") && stderr.contains("ulimit -n"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_fd_limit_the_default_cap_fits_and_the_wait_is_the_generators() {
    let _t = timing_lock().await;
    let server = ExternalServe::start(&["--stall", "1s+1500ms"]);
    let dir = tempdir();
    let json = dir.join("r.json");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec '{}' run -q -r 400 -d 3s --json '{}' {}",
            bin().display(),
            json.display(),
            server.url()
        ))
        .output()
        .unwrap();
    server.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let v = read_json(&json);
    let max = v["connections"]["max"].as_u64().unwrap();
    assert!(max <= 256 - 64, "the default cap fits the limit: {max}");
    assert_eq!(
        v["counts"]["local_error"], 0,
        "nothing blamed on a limit hit"
    );
    assert_eq!(
        v["counts"]["connect_error"], 0,
        "nothing blamed on the target"
    );
    let reasons = v["verdict"]["reasons"].to_string();
    assert!(
        reasons.contains("file-descriptor limit") && reasons.contains("ulimit -n"),
        "{reasons}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_limited_poisson_runs_draw_their_count() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let mut counts = Vec::new();
    for seed in ["1", "2", "3", "2"] {
        let report = run(plan(&[
            &url(&server),
            "-r",
            "400",
            "-d",
            "3s",
            "--arrivals",
            "poisson",
            "--seed",
            seed,
        ]))
        .await;
        assert_accounting(&report);
        assert!(
            (report.duration_s - 3.0).abs() <= 0.010,
            "duration {}",
            report.duration_s
        );
        counts.push(report.counts.scheduled);
    }
    server.shutdown().await;
    // 4 σ of a Poisson count with mean 1 200.
    let sigma4 = 4.0 * 1200f64.sqrt();
    for &n in &counts {
        assert!((n as f64 - 1200.0).abs() <= sigma4, "{counts:?}");
    }
    assert!(
        counts[0] != counts[1] || counts[1] != counts[2],
        "seeds draw different counts: {counts:?}"
    );
    assert_eq!(counts[1], counts[3], "same seed, same schedule: {counts:?}");
}

fn run_with_fault(fault: &str, url: &str, json: &std::path::Path) -> std::process::Output {
    Command::new(bin())
        .env("METRONOME_FAULT", fault)
        .args(["run", url, "-r", "100", "-d", "1s", "-q", "--json"])
        .arg(json)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_engine_is_an_internal_error_not_a_success() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    for (fault, task) in [
        ("pacer-panic", "pacer"),
        ("worker-panic", "worker"),
        ("collector-panic", "collector"),
    ] {
        let dir = tempdir();
        let json = dir.join("r.json");
        let out = tokio::task::spawn_blocking({
            let (url, json) = (url(&server), json.clone());
            move || run_with_fault(fault, &url, &json)
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{fault}: {stdout}");
        assert!(stdout.contains("INTERNAL ERROR"), "{stdout}");
        let v = read_json(&json);
        assert_eq!(v["ending"], "internal_error", "{fault}");
        assert_eq!(v["verdict"]["trustworthy"], false);
        let reasons = v["verdict"]["reasons"].to_string();
        assert!(
            reasons.contains(&format!("the {task} panicked")),
            "{reasons}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_precise_timer_the_run_says_so() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    let json = dir.join("r.json");
    let out = tokio::task::spawn_blocking({
        let (url, json) = (url(&server), json.clone());
        move || run_with_fault("no-precise-timer", &url, &json)
    })
    .await
    .unwrap();
    server.shutdown().await;
    assert_eq!(out.status.code(), Some(3));
    let reasons = read_json(&json)["verdict"]["reasons"].to_string();
    assert!(reasons.contains("precise timer"), "{reasons}");
}

/// A plain HTTP/1.1 server that answers anything with a fixed 200 (and so answers the HTTP/2
/// preface as HTTP/1.1).
fn http1_only_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(20) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = s.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    port
}

#[test]
fn http2_against_an_http1_only_server_is_refused_before_the_start() {
    let port = http1_only_server();
    let out = metronome(&[
        "run",
        "--http2",
        "-r",
        "10",
        "-d",
        "1s",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HTTP/1.1") && stderr.contains("drop --http2"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report: nothing was sent");
}

#[test]
fn a_stop_while_connecting_is_honoured() {
    // Accepts TCP and never answers the TLS handshake: warming waits on the connect timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(5).flatten() {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let child = Command::new(bin())
        .args([
            "run",
            "-r",
            "10",
            "-d",
            "1s",
            "--connect-timeout",
            "30s",
            &format!("https://127.0.0.1:{port}/"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "stopped promptly");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
}

/// One runtime thread far above what it can send: the pacer yields between batches, so the run
/// ends on time, says it was untrustworthy, and a Ctrl-C is still heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_far_above_its_capacity_ends_on_time_and_hears_a_stop() {
    let _t = timing_lock().await;
    let server = ExternalServe::start(&[]);
    let dir = tempdir();
    for stop_early in [false, true] {
        let json = dir.join(format!("r-{stop_early}.json"));
        let child = Command::new(bin())
            .args(["run", "--threads", "1", "-r", "1000000", "-d", "2s", "-q"])
            .arg("--json")
            .arg(&json)
            .arg(server.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        if stop_early {
            std::thread::sleep(Duration::from_millis(1000));
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        }
        let out = child.wait_with_output().unwrap();
        let took = t.elapsed();
        assert_eq!(out.status.code(), Some(3), "stop_early {stop_early}");
        let v = read_json(&json);
        assert_eq!(v["verdict"]["trustworthy"], false);
        if stop_early {
            assert_eq!(v["ending"], "interrupted");
            assert!(
                took < Duration::from_secs(4),
                "the stop was heard: {took:?}"
            );
        } else {
            assert_eq!(v["ending"], "completed");
            assert!(took < Duration::from_secs(8), "ended on time: {took:?}");
        }
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_opens_a_connection_when_every_stream_is_taken() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_millis(100)),
        ..ServeConfig::default()
    })
    .await;
    // 500/s × 100 ms = 50 in flight over connections of 10 streams: about 5 connections.
    let grown = run(plan(&[
        &url(&server),
        "--http2",
        "-c",
        "1",
        "--max-streams",
        "10",
        "-r",
        "500",
        "-d",
        "2s",
    ]))
    .await;
    assert_accounting(&grown);
    assert!(
        (5..=12).contains(&grown.connections.opened),
        "{:?}",
        grown.connections
    );
    assert!(grown.verdict.trustworthy, "{:?}", grown.verdict.reasons);
    // One connection of 10 streams is a fixed pool: the other 40 wait in the generator.
    let fixed = run(plan(&[
        &url(&server),
        "--http2",
        "-c",
        "1",
        "--max-connections",
        "1",
        "--max-streams",
        "10",
        "-r",
        "500",
        "-d",
        "500ms",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&fixed);
    assert_eq!(fixed.connections.opened, 1);
    assert!(!fixed.verdict.trustworthy);
    assert!(fixed.send_lag_us.p99 > 100_000, "{:?}", fixed.send_lag_us);
}

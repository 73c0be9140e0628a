//! gRPC targets against `serve`'s built-in gRPC service (`metronome.demo.v1.Demo`, on the same
//! port as HTTP): the schema from the checked-in .proto file and from server reflection, unary
//! and server-streaming calls, the coordinated-omission stall, shedding by status code, and bad
//! input refused before anything is sent.

use std::time::Duration;

use metronome::serve::{ServeConfig, ServiceTime, Stall};

use crate::common::*;
use crate::report_schema::assert_valid;

const PING: &str = "metronome.demo.v1.Demo/Ping";
const STREAM: &str = "metronome.demo.v1.Demo/Stream";

fn proto() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/metronome/demo/v1/demo.proto"
    )
    .to_string()
}

fn grpc_url(server: &metronome::serve::Server) -> String {
    format!("grpc://{}", server.local_addr())
}

fn received_on(server: &metronome::serve::Server, path: &str) -> u64 {
    server
        .received_by_path()
        .iter()
        .find(|(p, _)| p == path)
        .map_or(0, |(_, n)| *n)
}

/// `-b @FILE` for a PingRequest with a 256 KiB payload, written in `dir`.
fn big_body(dir: &std::path::Path) -> String {
    let big = dir.join("big.json");
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![7u8; 256 << 10],
    );
    std::fs::write(&big, format!(r#"{{"payload":"{payload}"}}"#)).unwrap();
    format!("@{}", big.display())
}

fn code(r: &metronome::Report, name: &str) -> u64 {
    r.grpc_status_codes.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_from_a_proto_file_are_measured_like_http() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let url = grpc_url(&server);
    let p = plan(&[
        &url,
        "--call",
        PING,
        "--proto",
        &proto(),
        "-b",
        r#"{"message":"hi"}"#,
        "-r",
        "200",
        "-n",
        "200",
        "-c",
        "2",
    ]);
    let report = run(p).await;
    let path_count = received_on(&server, "/metronome.demo.v1.Demo/Ping");
    let stats = server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.ok, 200, "{:?}", report.counts);
    assert_eq!(code(&report, "OK"), 200);
    assert_eq!(report.grpc_status_codes.len(), 1);
    assert_eq!((stats.received, stats.served, path_count), (200, 200, 200));
    assert_eq!(stats.reflection, 0, "a .proto file needs no reflection");
    let g = report.grpc.as_ref().expect("a gRPC section");
    assert_eq!((g.schema, g.server_streaming), ("proto", false));
    assert_eq!(g.messages, 200, "one reply per unary call");
    assert_eq!(report.connections.warm, 2);
    assert!(report.latency_us.p50 < 50_000, "{:?}", report.latency_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_via_reflection_counts_messages_and_time_to_first() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    let json = dir.join("g.json");
    let out = metronome(&[
        "run",
        &grpc_url(&server),
        "--call",
        STREAM,
        "-b",
        r#"{"count":5,"intervalMs":2}"#,
        "-r",
        "100",
        "-n",
        "100",
        "-q",
        // About messages, not pacing: a busy host's send lag must not make it exit 3.
        "--max-send-lag",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stats = server.shutdown().await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_json(&json);
    assert_valid(&v);
    assert_eq!(v["grpc_status_codes"]["OK"], 100);
    let g = &v["grpc"];
    assert_eq!(g["schema"], "reflection");
    assert_eq!(g["server_streaming"], true);
    assert_eq!(g["messages"], 500);
    assert_eq!(g["messages_per_call"], 5.0);
    assert_eq!(
        v["settings"]["grpc_rejected"],
        serde_json::json!(["RESOURCE_EXHAUSTED", "UNAVAILABLE"])
    );
    assert_eq!(g["time_to_first_message_us"]["count"], 100);
    // Latency runs to the last message: at least the 4 gaps of 2 ms after the first.
    let first = g["time_to_first_message_us"]["p50"].as_u64().unwrap();
    let whole = v["service_time_us"]["p50"].as_u64().unwrap();
    assert!(
        whole >= first + 8_000,
        "first {first} µs, whole call {whole} µs"
    );
    assert_eq!(stats.received, 100, "reflection is not load: {stats:?}");
    assert!(stats.reflection >= 1, "{stats:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("grpc       metronome.demo.v1.Demo/Stream (reflection); OK: 100"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The coordinated-omission test of tests/open_loop.rs over gRPC: the service stalls for 1 s in
/// a 4 s run at 200 calls/s; calls keep arriving during the stall and the latency tail is
/// `x_q = D − T·(1 − q)` (p99 ≈ 0.96 s) while the generator stays on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_grpc_service_shows_in_the_tail_and_send_lag_stays_small() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        stalls: vec![Stall {
            at: Duration::from_millis(1500),
            duration: SECOND,
        }],
        ..ServeConfig::default()
    })
    .await;
    let p = plan(&[
        &grpc_url(&server),
        "--call",
        PING,
        "--proto",
        &proto(),
        "-c",
        "1",
        "--max-streams",
        "1000",
        "-r",
        "200",
        "-d",
        "4s",
    ]);
    let report = run(p).await;
    let timeline = server.received_timeline();
    server.shutdown().await;
    assert_accounting(&report);
    assert_eq!(report.counts.ok, 800, "{:?}", report.counts);
    let during: u64 = timeline.iter().skip(16).take(8).sum();
    assert!(
        during >= 120,
        "calls kept arriving during the stall: {timeline:?}"
    );
    let l = &report.latency_us;
    let p99 = l.p99 as f64 / 1e6;
    assert!(
        (p99 - 0.96).abs() <= 0.96 * 0.12,
        "latency p99 {} µs",
        l.p99
    );
    assert!((900_000..=1_200_000).contains(&l.max), "max {} µs", l.max);
    assert!(l.p50 < 50_000, "p50 {} µs", l.p50);
    assert!(
        report.send_lag_us.p99 < 50_000,
        "send lag p99 {} µs",
        report.send_lag_us.p99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_calls_are_rejected_and_counted_per_code() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    // Rate limit: RESOURCE_EXHAUSTED with grpc-retry-pushback-ms.
    let server = serve(ServeConfig {
        rate_limit: Some(20.0),
        rate_burst: 1.0,
        ..ServeConfig::default()
    })
    .await;
    let report = run(plan(&[
        &grpc_url(&server),
        "--call",
        PING,
        "--proto",
        &proto(),
        "-r",
        "100",
        "-n",
        "100",
    ]))
    .await;
    let stats = server.shutdown().await;
    assert_accounting(&report);
    let c = &report.counts;
    assert_eq!(c.ok + c.rejected, 100, "{c:?}");
    assert!(c.rejected >= 50, "{c:?}");
    assert_eq!(code(&report, "RESOURCE_EXHAUSTED"), c.rejected);
    assert_eq!(code(&report, "OK"), c.ok);
    assert_eq!((stats.limited, stats.served), (c.rejected, c.ok));
    assert!(report
        .errors
        .iter()
        .any(|e| e.message.starts_with("RESOURCE_EXHAUSTED")));

    // A full queue: UNAVAILABLE, also rejected; and configurable (--grpc-rejected '').
    let server = serve(ServeConfig {
        workers: 1,
        queue: 0,
        service_time: ServiceTime::Fixed(Duration::from_millis(30)),
        ..ServeConfig::default()
    })
    .await;
    let url = grpc_url(&server);
    let shed = run(plan(&[
        &url,
        "--call",
        PING,
        "--proto",
        &proto(),
        "-r",
        "100",
        "-n",
        "50",
    ]))
    .await;
    let as_errors = run(plan(&[
        &url,
        "--call",
        PING,
        "--proto",
        &proto(),
        "-r",
        "100",
        "-n",
        "50",
        "--grpc-rejected",
        "",
    ]))
    .await;
    let stats = server.shutdown().await;
    assert!(shed.counts.rejected >= 20, "{:?}", shed.counts);
    // What decided "rejected" is recorded: the gRPC codes, not HTTP statuses.
    let rejected = |r: &metronome::Report| r.settings.grpc_rejected.clone();
    assert_eq!(
        rejected(&shed),
        Some(vec!["RESOURCE_EXHAUSTED", "UNAVAILABLE"])
    );
    assert_eq!(rejected(&as_errors), Some(vec![]));
    assert!(shed.settings.rejected_statuses.is_empty());
    assert_eq!(code(&shed, "UNAVAILABLE"), shed.counts.rejected);
    assert_eq!(as_errors.counts.rejected, 0);
    assert_eq!(code(&as_errors, "UNAVAILABLE"), as_errors.counts.http_error);
    assert_eq!(
        stats.shed,
        shed.counts.rejected + as_errors.counts.http_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grpc_input_exits_2_and_sends_nothing() {
    let server = serve_default().await;
    let url = grpc_url(&server);
    let dir = tempdir();
    let broken = dir.join("broken.proto");
    std::fs::write(
        &broken,
        "syntax = \"proto3\";\nservice S {\n  rpc M(Nope) returns (Nope);\n}\n",
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = proto();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                url.clone(),
                "--call".into(),
                "metronome.demo.v1.Demo/Pong".into(),
            ],
            "has no method 'Pong'",
        ),
        (
            vec![
                url.clone(),
                "--call".into(),
                "no.Such/Service".into(),
                "--proto".into(),
                p.clone(),
            ],
            "unknown service 'no.Such'",
        ),
        (
            vec![
                url.clone(),
                "--call".into(),
                PING.into(),
                "-b".into(),
                r#"{"mesage":"x"}"#.into(),
            ],
            "unrecognized field name 'mesage'",
        ),
        (
            vec![
                url.clone(),
                "--call".into(),
                PING.into(),
                "--proto".into(),
                p.clone(),
                "-b".into(),
                r#"{"message":7}"#.into(),
            ],
            "does not match metronome.demo.v1.PingRequest",
        ),
        (
            vec![
                url.clone(),
                "--call".into(),
                "S/M".into(),
                "--proto".into(),
                broken.to_string_lossy().into(),
            ],
            "broken.proto:3",
        ),
        (
            vec![format!("grpc://{closed}"), "--call".into(), PING.into()],
            "cannot reach",
        ),
        (vec![url.clone()], "--call"),
        (
            vec![url.clone(), "--call".into(), "Ping".into()],
            "invalid --call",
        ),
    ];
    for (args, want) in cases {
        let mut argv = vec!["run", "-q", "-r", "10", "-n", "5"];
        argv.extend(args.iter().map(String::as_str));
        let out = metronome(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert_eq!(err.lines().count(), 1, "one clear error: {err}");
    }
    let stats = server.shutdown().await;
    assert_eq!(stats.received, 0, "nothing was sent: {stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TLS terminator (self-signed `localhost` certificate, ALPN h2 only) in front of `serve`:
/// bytes are copied both ways, so the gRPC server behind it is the plaintext one.
async fn tls_in_front_of(backend: std::net::SocketAddr) -> (u16, String) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(ck.cert.der().to_vec())], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut tls), Ok(mut back)) = (
                    acceptor.accept(tcp).await,
                    tokio::net::TcpStream::connect(backend).await,
                ) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
            });
        }
    });
    (port, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_negotiates_h2_and_verifies_the_certificate() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let (port, pem) = tls_in_front_of(server.local_addr()).await;
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let url = format!("grpcs://localhost:{port}");
    let ca_arg = ca.to_string_lossy().to_string();
    let report = run(plan(&[
        &url, "--cacert", &ca_arg, "--call", PING, "-r", "100", "-n", "50", "-c", "2",
    ]))
    .await;
    assert_eq!(code(&report, "OK"), 50, "{:?}", report.errors);
    // The server's stream limit is read under TLS too (serve advertises 10 000).
    assert_eq!(report.connections.peer_max_streams, Some(10_000));
    // Without the CA the certificate is refused: before the start, nothing sent.
    let out = metronome(&[
        "run",
        "-q",
        &url,
        "--call",
        PING,
        "--proto",
        &proto(),
        "-r",
        "10",
        "-n",
        "5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = server.shutdown().await;
    assert_eq!(stats.received, 50);
    assert!(stats.reflection >= 1, "reflection over TLS: {stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_grpc_codes_and_honour_pushback() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    // One worker, no queue, 50 ms per call at 100/s: most calls are shed with UNAVAILABLE and
    // `grpc-retry-pushback-ms: 1000`. Counted as errors here (--grpc-rejected ''), they are
    // retried only because the policy names the code; each retry waits the second asked for.
    let server = serve(ServeConfig {
        workers: 1,
        queue: 0,
        service_time: ServiceTime::Fixed(Duration::from_millis(50)),
        retry_after: Some(SECOND),
        ..ServeConfig::default()
    })
    .await;
    let r = run(plan(&[
        &grpc_url(&server),
        "--call",
        PING,
        "--proto",
        &proto(),
        "--grpc-rejected",
        "",
        "-r",
        "100",
        "-d",
        "2s",
        "--retry",
        "on=grpc:UNAVAILABLE attempts=2 backoff=fixed:10ms jitter=none",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&r);
    let x = r.retry.as_ref().expect("a retry section");
    assert!(x.retries > 20, "{x:?}");
    assert_eq!(
        x.policy.split_whitespace().next(),
        Some("on=grpc:UNAVAILABLE")
    );
    let b = &r.timeline.buckets;
    // The first second holds no retry but for the few that an interval closing late on a busy
    // host counts in it (those due just after 1 s); ignoring the pushback, about 80 of its 100
    // first attempts would be retried within it.
    assert!(
        b[0].retries * 5 < b[0].first_attempts,
        "every retry waited the pushback: {b:?}"
    );
    assert!(b[1].retries > 0, "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_stretches_a_stream_but_not_its_first_message() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let r = run(plan(&[
        &grpc_url(&server),
        "--call",
        STREAM,
        "--proto",
        &proto(),
        "-b",
        r#"{"count":4}"#,
        "--read-delay",
        "20ms",
        "-r",
        "20",
        "-n",
        "10",
    ]))
    .await;
    server.shutdown().await;
    assert_eq!(r.counts.ok, 10, "{:?}", r.counts);
    let g = r.grpc.as_ref().unwrap();
    assert_eq!((g.messages, g.read_delay_ms), (40, 20.0));
    // Three pauses of 20 ms, between the four messages: none after the last, which would only
    // hold back the trailers. The first message comes before any of them.
    let s = &r.service_time_us;
    assert!(s.min >= 60_000, "{s:?}");
    assert!(s.p50 < 80_000, "no pause after the last message: {s:?}");
    assert!(
        g.time_to_first_message_us.p50 < 30_000,
        "{:?}",
        g.time_to_first_message_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_and_bidi_send_a_fixed_number_of_messages() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let url = grpc_url(&server);
    let collect = run(plan(&[
        &url,
        "--call",
        "metronome.demo.v1.Demo/Collect",
        "--proto",
        &proto(),
        "--messages",
        "7",
        "-b",
        r#"{"message":"x"}"#,
        "-r",
        "50",
        "-n",
        "20",
    ]))
    .await;
    // Bidi via reflection: one reply per request message.
    let chat = run(plan(&[
        &url,
        "--call",
        "metronome.demo.v1.Demo/Chat",
        "--messages",
        "3",
        "-r",
        "50",
        "-n",
        "20",
    ]))
    .await;
    let stats = server.shutdown().await;
    assert_eq!(code(&collect, "OK"), 20, "{:?}", collect.errors);
    let g = collect.grpc.as_ref().unwrap();
    assert_eq!(
        (
            g.client_streaming,
            g.server_streaming,
            g.request_messages,
            g.messages
        ),
        (true, false, 7, 20)
    );
    assert_eq!(code(&chat, "OK"), 20, "{:?}", chat.errors);
    let g = chat.grpc.as_ref().unwrap();
    assert_eq!(
        (g.client_streaming, g.server_streaming, g.messages),
        (true, true, 60)
    );
    assert_eq!(stats.received, 40);
    let g = collect.grpc.as_ref().unwrap();
    // Six waits per call (the first message goes with the headers), and one sum per call.
    assert_eq!(
        (
            g.flow_control_wait_us.count,
            g.flow_control_wait_per_call_us.count,
            g.flow_control_stuck
        ),
        (120, 20, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_stream_waits_on_flow_control_and_the_report_keeps_it_apart() {
    // 16 messages of 256 KiB per call: far beyond HTTP/2's windows, so most messages wait for
    // the server's WINDOW_UPDATEs; 3 empty messages never do.
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        max_body: 64 << 20,
        ..ServeConfig::default()
    })
    .await;
    let url = grpc_url(&server);
    let dir = tempdir();
    let body = big_body(&dir);
    let call = "metronome.demo.v1.Demo/Collect";
    let large = run(plan(&[
        &url,
        "--call",
        call,
        "--proto",
        &proto(),
        "--messages",
        "16",
        "-b",
        &body,
        "-r",
        "20",
        "-n",
        "20",
    ]))
    .await;
    let small = run(plan(&[
        &url,
        "--call",
        call,
        "--proto",
        &proto(),
        "--messages",
        "3",
        "-r",
        "20",
        "-n",
        "20",
    ]))
    .await;
    server.shutdown().await;
    assert_eq!(
        (code(&large, "OK"), code(&small, "OK")),
        (20, 20),
        "{:?}",
        large.errors
    );
    let (lg, sg) = (large.grpc.as_ref().unwrap(), small.grpc.as_ref().unwrap());
    let (lw, sw) = (
        &lg.flow_control_wait_per_call_us,
        &sg.flow_control_wait_per_call_us,
    );
    assert_eq!(
        (lg.flow_control_wait_us.count, sg.flow_control_wait_us.count),
        (20 * 15, 20 * 2),
        "one figure per message after the first"
    );
    assert_eq!((lw.count, sw.count), (20, 20));
    assert!(
        lw.p50 > sw.p50 && lw.p50 >= 200,
        "large {lw:?}, small {sw:?}"
    );
    assert!(
        lg.flow_control_wait_us.p99 > sg.flow_control_wait_us.p99,
        "{:?} {:?}",
        lg.flow_control_wait_us,
        sg.flow_control_wait_us
    );
    // The wait is part of the call's service time (it was sent later), never more than it.
    assert!(
        lw.p50 <= large.service_time_us.p99,
        "{lw:?} {:?}",
        large.service_time_us
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP/2 server that takes every call and never reads its request stream: after its windows
/// fill, the client's messages can only wait. Holds each call 5 s at most. Returns its port.
async fn start_deaf_h2_server() -> (u16, tokio::task::JoinHandle<()>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    // Holding the body unread keeps its windows closed.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(req);
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", "0")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_is_backpressure_and_the_report_says_so() {
    let _t = timing_lock().await;
    let (port, server) = start_deaf_h2_server().await;
    let dir = tempdir();
    let body = big_body(&dir);
    // 16 × 256 KiB per call: beyond the 2 MiB stream window the server never opens again.
    let r = run(plan(&[
        &format!("grpc://127.0.0.1:{port}"),
        "--call",
        "metronome.demo.v1.Demo/Collect",
        "--proto",
        &proto(),
        "--messages",
        "16",
        "-b",
        &body,
        "--timeout",
        "500ms",
        "-r",
        "10",
        "-n",
        "4",
    ]))
    .await;
    server.abort();
    assert_accounting(&r);
    assert_eq!(r.counts.timeout, 4, "{:?} {:?}", r.counts, r.errors);
    let g = r.grpc.as_ref().unwrap();
    assert_eq!(g.flow_control_stuck, 4, "{g:?}");
    // Each call's stuck message waited most of the 500 ms; the waits are counted, per message
    // and per call, apart from the answers that never came.
    assert!(g.flow_control_wait_us.max >= 300_000, "{g:?}");
    assert!(g.flow_control_wait_per_call_us.p50 >= 300_000, "{g:?}");
    assert!(
        r.errors
            .iter()
            .all(|e| e.class == "timeout" && e.message.contains("waiting for HTTP/2 flow control")),
        "{:?}",
        r.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_mix_names_grpc_calls_by_weight() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let url = grpc_url(&server);
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/grpc-mix.toml");
    // 200/s for 1 s of the profile's 30 s stage, via .proto; then the same via reflection.
    let proto_run = run(plan(&[
        &url,
        "--profile",
        profile,
        "--proto",
        &proto(),
        "--time-scale",
        "30",
    ]))
    .await;
    let reflect_run = run(plan(&[&url, "--profile", profile, "--time-scale", "30"])).await;
    let pings = received_on(&server, "/metronome.demo.v1.Demo/Ping");
    let streams = received_on(&server, "/metronome.demo.v1.Demo/Stream");
    server.shutdown().await;
    for r in [&proto_run, &reflect_run] {
        assert_accounting(r);
        assert_eq!(r.counts.ok, 200, "{:?}", r.errors);
        let g = r.grpc.as_ref().unwrap();
        assert_eq!((g.call.as_str(), g.server_streaming), ("mixed", true));
    }
    assert_eq!(pings + streams, 400);
    assert!(
        (240..=360).contains(&pings),
        "3:1 by weight: {pings} pings, {streams} streams"
    );
    // Every stream answers 4 messages, every ping 1.
    let g = proto_run.grpc.as_ref().unwrap();
    let streams_here = (g.messages - 200) / 3;
    assert_eq!(g.messages, 200 + 3 * streams_here);
}

/// What the scripted server answers to one call: after `delay`, `messages` empty messages `gap`
/// apart, then the trailers with `code` (and `pushback`, as `grpc-retry-pushback-ms`). With no
/// messages the answer is trailers-only.
#[derive(Clone, Copy, Debug, Default)]
struct Answer {
    delay: Duration,
    messages: usize,
    gap: Duration,
    code: u8,
    pushback: Option<&'static str>,
}

/// A response body fed from a channel, so the scripted server can pace its messages.
struct Frames(tokio::sync::mpsc::Receiver<hyper::body::Frame<bytes::Bytes>>);

impl hyper::body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// An HTTP/2 (h2c) gRPC server whose answer to the n-th call (from 0) is `script(n)`, whatever
/// the method; `max_streams` is the SETTINGS_MAX_CONCURRENT_STREAMS it advertises. Returns its
/// port, the calls it received and, for each moment, the most calls it had in flight at once.
async fn start_scripted_h2_server(
    max_streams: Option<u32>,
    script: fn(u64) -> Answer,
) -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = std::sync::Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Without it, trailers written apart from the message wait for the client's delayed
            // ACK (40 ms) whenever the client has nothing else to send.
            let _ = tcp.set_nodelay(true);
            let calls = calls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let n = calls.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                        let a = script(n);
                        tokio::time::sleep(a.delay).await;
                        let mut head =
                            hyper::Response::builder().header("content-type", "application/grpc");
                        let (tx, rx) = tokio::sync::mpsc::channel(4);
                        if a.messages == 0 {
                            head = head.header("grpc-status", a.code.to_string());
                            if let Some(p) = a.pushback {
                                head = head.header("grpc-retry-pushback-ms", p);
                            }
                            drop(tx);
                        } else {
                            tokio::spawn(async move {
                                for i in 0..a.messages {
                                    if i > 0 {
                                        tokio::time::sleep(a.gap).await;
                                    }
                                    let empty = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
                                    if tx.send(hyper::body::Frame::data(empty)).await.is_err() {
                                        return;
                                    }
                                }
                                let mut t = http::HeaderMap::new();
                                t.insert("grpc-status", a.code.to_string().parse().unwrap());
                                let _ = tx.send(hyper::body::Frame::trailers(t)).await;
                            });
                        }
                        Ok::<_, std::convert::Infallible>(head.body(Frames(rx)).unwrap())
                    }
                });
                let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                if let Some(m) = max_streams {
                    b.max_concurrent_streams(m);
                }
                let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (port, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_per_call_counts_ok_calls_only() {
    // Every other stream breaks off with INTERNAL after 3 of its messages; the OK ones hold 5.
    let (port, calls, server) = start_scripted_h2_server(None, |n| Answer {
        messages: if n % 2 == 0 { 5 } else { 3 },
        code: if n % 2 == 0 { 0 } else { 13 },
        ..Answer::default()
    })
    .await;
    let r = run(plan(&[
        &format!("grpc://127.0.0.1:{port}"),
        "--call",
        STREAM,
        "--proto",
        &proto(),
        "-r",
        "100",
        "-n",
        "40",
    ]))
    .await;
    server.abort();
    assert_accounting(&r);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 40);
    assert_eq!((code(&r, "OK"), code(&r, "INTERNAL")), (20, 20));
    let g = r.grpc.as_ref().unwrap();
    assert_eq!(g.messages, 20 * 5 + 20 * 3, "every message received counts");
    assert_eq!(g.messages_per_call, 5.0, "what a whole (OK) answer holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_deadline_keeps_what_it_received() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    let server = serve_default().await;
    // 100 messages 20 ms apart: about 25 are in when the 500 ms deadline cuts each call.
    let r = run(plan(&[
        &grpc_url(&server),
        "--call",
        STREAM,
        "--proto",
        &proto(),
        "-b",
        r#"{"count":100,"intervalMs":20}"#,
        "--timeout",
        "500ms",
        "-r",
        "10",
        "-n",
        "4",
    ]))
    .await;
    server.shutdown().await;
    assert_accounting(&r);
    assert_eq!(r.counts.timeout, 4, "{:?} {:?}", r.counts, r.errors);
    // The client's own deadline is DEADLINE_EXCEEDED, as a gRPC client reports it, so the
    // per-code table adds up to the calls completed.
    assert_eq!(
        code(&r, "DEADLINE_EXCEEDED"),
        4,
        "{:?}",
        r.grpc_status_codes
    );
    let g = r.grpc.as_ref().unwrap();
    assert!(
        (4 * 18..=4 * 27).contains(&g.messages),
        "about 25 messages per call arrived: {g:?}"
    );
    assert_eq!(g.messages_per_call, 0.0, "no call was OK");
    assert_eq!(g.time_to_first_message_us.count, 4, "{g:?}");
    assert!(g.time_to_first_message_us.p50 < 100_000, "{g:?}");
    assert!(
        r.errors
            .iter()
            .all(|e| e.class == "timeout" && e.message.contains("--timeout")),
        "{:?}",
        r.errors
    );
}

/// A server that takes 4 concurrent streams per connection (its SETTINGS) and answers each call
/// in 100 ms, driven at 60 calls/s from one warm connection: 6 calls are in flight at once.
async fn run_against_a_4_stream_server(extra: &[&str]) -> (metronome::Report, u64) {
    let (port, calls, server) = start_scripted_h2_server(Some(4), |_| Answer {
        delay: Duration::from_millis(100),
        messages: 1,
        ..Answer::default()
    })
    .await;
    let url = format!("grpc://127.0.0.1:{port}");
    let mut args = vec![
        url.as_str(),
        "--call",
        PING,
        "--proto",
        PROTO_PATH,
        "-c",
        "1",
        "-r",
        "60",
        "-d",
        "2s",
    ];
    args.extend_from_slice(extra);
    let r = run(plan(&args)).await;
    server.abort();
    (r, calls.load(std::sync::atomic::Ordering::Relaxed))
}

const PROTO_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proto/metronome/demo/v1/demo.proto"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_stream_limit_opens_connections_instead_of_queueing_in_hyper() {
    let _t = timing_lock().await;
    let (r, calls) = run_against_a_4_stream_server(&[]).await;
    assert_accounting(&r);
    assert_eq!((r.counts.ok, calls), (120, 120), "{:?}", r.errors);
    assert_eq!(r.connections.peer_max_streams, Some(4));
    assert!(
        r.connections.opened >= 2,
        "6 calls in flight need a second connection: {:?}",
        r.connections
    );
    // The server's time, not a wait in hyper's pending-open queue.
    let s = &r.service_time_us;
    assert!(s.p99 < 150_000, "service time {s:?}");
    assert!(r.send_lag_us.p99 < 50_000, "send lag {:?}", r.send_lag_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_servers_stream_limit_is_send_lag() {
    let _t = timing_lock().await;
    // One connection of 4 streams: 40 calls/s at most, 60 asked. The backlog is the generator's.
    let (r, _) = run_against_a_4_stream_server(&["--max-connections", "1"]).await;
    assert_accounting(&r);
    assert_eq!(r.connections.opened, 1);
    let s = &r.service_time_us;
    assert!(s.p99 < 150_000, "service time stays the server's: {s:?}");
    assert!(
        r.send_lag_us.p99 > 300_000,
        "the wait for a stream is send lag: {:?}",
        r.send_lag_us
    );
    assert!(!r.verdict.trustworthy, "{:?}", r.verdict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_pushback_means_do_not_retry() {
    // Loads the machine: kept apart from the timing-sensitive tests.
    let _t = timing_lock().await;
    // Every call is shed with UNAVAILABLE and `grpc-retry-pushback-ms: -1`, gRPC's "do not
    // retry": the policy would retry UNAVAILABLE, the server's word overrides it.
    let (port, calls, server) = start_scripted_h2_server(None, |_| Answer {
        code: 14,
        pushback: Some("-1"),
        ..Answer::default()
    })
    .await;
    let r = run(plan(&[
        &format!("grpc://127.0.0.1:{port}"),
        "--call",
        PING,
        "--proto",
        &proto(),
        "-r",
        "100",
        "-n",
        "20",
        "--retry",
        "on=rejected attempts=3 backoff=fixed:10ms jitter=none",
    ]))
    .await;
    server.abort();
    assert_accounting(&r);
    assert_eq!(r.counts.rejected, 20, "{:?}", r.counts);
    let x = r.retry.as_ref().expect("a retry section");
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 20);
    assert_eq!(x.retries, 0, "{x:?}");
    assert_eq!(x.logical.failed, 20, "ended as failed, not retried: {x:?}");
    assert_eq!(x.logical.gave_up.attempts_exhausted, 0, "{x:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_scheme_for_the_port_says_which_to_use() {
    let server = serve_default().await;
    let (tls_port, _) = tls_in_front_of(server.local_addr()).await;
    let plain = server.local_addr().port();
    let p = proto();
    let cases: Vec<(Vec<String>, &str)> = vec![
        // Plaintext gRPC to a TLS port: with reflection and with a .proto file.
        (vec![format!("grpc://localhost:{tls_port}")], "use grpcs://"),
        (
            vec![
                format!("grpc://localhost:{tls_port}"),
                "--proto".into(),
                p.clone(),
            ],
            "use grpcs://",
        ),
        // gRPC over TLS to a plaintext port: with reflection and with a .proto file.
        (vec![format!("grpcs://127.0.0.1:{plain}")], "use grpc://"),
        (
            vec![format!("grpcs://127.0.0.1:{plain}"), "--proto".into(), p],
            "use grpc://",
        ),
    ];
    for (args, want) in cases {
        let mut argv = vec!["run", "-q", "-r", "10", "-n", "5", "--call", PING];
        argv.extend(args.iter().map(String::as_str));
        let out = metronome(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert!(
            !err.contains("http://"),
            "{args:?}: not an HTTP target: {err}"
        );
        assert!(
            !err.contains("--proto"),
            "{args:?}: not a schema problem: {err}"
        );
    }
    let stats = server.shutdown().await;
    assert_eq!(stats.received, 0, "nothing was sent: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_in_a_profile_mix_is_named() {
    let server = serve_default().await;
    let url = grpc_url(&server);
    let dir = tempdir();
    let write = |name: &str, second: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n\n\
                 [[request]]\nname = \"ping\"\ncall = \"{PING}\"\nbody = '{{\"message\": \"hi\"}}'\n\n\
                 [[request]]\n{second}\n"
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let bad_body = write(
        "bad-body.toml",
        &format!("name = \"typo\"\ncall = \"{PING}\"\nbody = '{{\"mesage\": \"x\"}}'"),
    );
    let bad_method = write("bad-method.toml", "call = \"metronome.demo.v1.Demo/Pong\"");
    let p = proto();
    let cases: Vec<(Vec<&str>, String, &str)> = vec![
        // Via --proto and via reflection: the request by name, its file, and its `body`.
        (
            vec!["--profile", &bad_body, "--proto", &p],
            format!("[[request]] \"typo\" of {bad_body}: "),
            "body =",
        ),
        (
            vec!["--profile", &bad_body],
            format!("[[request]] \"typo\" of {bad_body}: "),
            "body =",
        ),
        // Unnamed: by its position.
        (
            vec!["--profile", &bad_method, "--proto", &p],
            format!("[[request]] #2 of {bad_method}: "),
            "has no method 'Pong'",
        ),
        (
            vec!["--profile", &bad_method],
            format!("[[request]] #2 of {bad_method}: "),
            "has no method 'Pong'",
        ),
    ];
    for (args, place, want) in cases {
        let mut argv = vec!["run", "-q", url.as_str()];
        argv.extend(args.iter().copied());
        let out = metronome(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&place),
            "{args:?}: expected '{place}' in: {err}"
        );
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert!(!err.contains("-b "), "{args:?}: no -b was given: {err}");
    }
    let stats = server.shutdown().await;
    assert_eq!(stats.received, 0, "nothing was sent: {stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// gzip, framed as a compressed gRPC message (flag 1).
fn gzip_frame(message: &[u8]) -> bytes::Bytes {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(message).unwrap();
    let packed = z.finish().unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
    out.extend_from_slice(&packed);
    out.into()
}

/// A gRPC server of the demo schema that compresses every answer with gzip, whatever the
/// client accepts (as grpcio set to compress does when asked for nothing else), reflection
/// included. Returns its port, the `grpc-accept-encoding` of each reflection request, and how
/// many load calls it answered.
async fn start_gzip_grpc_server() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let pool = metronome::grpc::demo::pool().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU64::new(0));
    let (seen, served) = (accepted.clone(), calls.clone());
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (pool, accepted, calls) = (pool.clone(), accepted.clone(), calls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (pool, accepted, calls) = (pool.clone(), accepted.clone(), calls.clone());
                    async move {
                        let reflection =
                            metronome::grpc::reflect::PATHS.contains(&req.uri().path());
                        if reflection {
                            let accepts = req
                                .headers()
                                .get("grpc-accept-encoding")
                                .map(|v| v.to_str().unwrap_or("?").to_string())
                                .unwrap_or_default();
                            accepted.lock().unwrap().push(accepts);
                        }
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        let (tx, rx) = tokio::sync::mpsc::channel(64);
                        if reflection {
                            for ask in metronome::grpc::unframe(&body).unwrap() {
                                let answer = metronome::grpc::reflect::answer(&pool, ask);
                                let bytes = prost::Message::encode_to_vec(&answer);
                                let _ = tx.try_send(hyper::body::Frame::data(gzip_frame(&bytes)));
                            }
                        } else {
                            calls.fetch_add(1, Ordering::Relaxed);
                            // An empty PingReply, compressed: counted, never decoded.
                            let _ = tx.try_send(hyper::body::Frame::data(gzip_frame(&[])));
                        }
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", "0".parse().unwrap());
                        let _ = tx.try_send(hyper::body::Frame::trailers(t));
                        drop(tx);
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-encoding", "gzip")
                                .body(Frames(rx))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, seen, served, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_from_a_server_that_compresses_its_answers() {
    let (port, accepted, calls, server) = start_gzip_grpc_server().await;
    let r = run(plan(&[
        &format!("grpc://127.0.0.1:{port}"),
        "--call",
        PING,
        "-b",
        r#"{"message":"hi"}"#,
        "-r",
        "50",
        "-n",
        "10",
    ]))
    .await;
    server.abort();
    assert_eq!(code(&r, "OK"), 10, "{:?}", r.errors);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert_eq!(
        r.grpc.as_ref().unwrap().messages,
        10,
        "compressed answers count"
    );
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        !accepted.is_empty() && accepted.iter().all(|a| a == "identity"),
        "reflection asks for uncompressed answers: {accepted:?}"
    );
}

//! Stopping: the first SIGINT or SIGTERM stops scheduling and drains, the second stops at once;
//! either way the full report is written and the counts add up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metronome::serve::{ServeConfig, ServiceTime};

use crate::common::*;

fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// (scheduled, completed, dropped, cancelled + unsent at stop)
fn counts(v: &serde_json::Value) -> (u64, u64, u64, u64) {
    let c = &v["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    (
        n("scheduled"),
        n("completed"),
        n("dropped"),
        n("cancelled") + n("unsent_at_stop"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_writes_the_report() {
    // Timing matters (a 1.5 s window): kept apart from the tests that load the machine.
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    let json = dir.join("report.json");
    let child = Command::new(bin())
        .args([
            "run",
            &url(&server),
            "-r",
            "100",
            "-d",
            "30s",
            "-q",
            // This test is about stopping, not pacing: a busy CI host's lag is not a failure.
            "--max-send-lag",
            "1s",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, libc::SIGTERM);
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "stopped promptly");
    let v = read_json(&json);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\nverdict: {}",
        String::from_utf8_lossy(&out.stderr),
        v["verdict"]
    );
    assert_eq!(v["ending"], "interrupted");
    let (scheduled, completed, dropped, cancelled) = counts(&v);
    assert_eq!(scheduled, completed + dropped + cancelled);
    assert!((80..=300).contains(&scheduled), "scheduled {scheduled}");
    let stats = server.shutdown().await;
    assert_eq!(stats.received, completed, "everything sent was measured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigint_stops_at_once_and_counts_the_unfinished() {
    let server = serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_secs(20)),
        ..ServeConfig::default()
    })
    .await;
    let dir = tempdir();
    let json = dir.join("report.json");
    let mut child = Command::new(bin())
        .args([
            "run",
            &url(&server),
            "-r",
            "50",
            "-d",
            "30s",
            "-q",
            "--timeout",
            "30s",
            "--json",
        ])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    signal(&child, libc::SIGINT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, libc::SIGINT);
    let t = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "second signal stops at once"
    );
    assert!(status.code().is_some(), "exited normally, not killed");
    let v = read_json(&json);
    assert_eq!(v["ending"], "aborted");
    let (scheduled, completed, dropped, cancelled) = counts(&v);
    assert_eq!(scheduled, completed + dropped + cancelled);
    assert!(
        cancelled >= 40,
        "requests on a 20 s service are cancelled: {cancelled}"
    );
    server.shutdown().await;
}

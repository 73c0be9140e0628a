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

/// Starts `run` at 100/s for `duration` against `server`, its JSON report to `json`; with
/// `ignore_hup` the child starts with SIGHUP ignored, as `nohup` starts it.
fn spawn_run(
    server: &metronome::serve::Server,
    duration: &str,
    json: &std::path::Path,
    ignore_hup: bool,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    cmd.args(["run", &url(server), "-r", "100", "-d", duration, "-q"])
        .args(["--max-send-lag", "1s", "--json"])
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if ignore_hup {
        // SAFETY: between fork and exec only an async-signal-safe call.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    cmd.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_stops_gracefully_unless_nohup_ignored_it() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    let dir = tempdir();
    // The session is gone: stop as for SIGTERM, and the report is still written.
    let hung = dir.join("hung.json");
    let child = spawn_run(&server, "30s", &hung, false);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    signal(&child, libc::SIGHUP);
    let t = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap().status)
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "stopped promptly");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let v = read_json(&hung);
    assert_eq!(v["ending"], "interrupted");
    let (scheduled, completed, dropped, cancelled) = counts(&v);
    assert_eq!(scheduled, completed + dropped + cancelled);
    assert!((80..=300).contains(&scheduled), "scheduled {scheduled}");
    // Under nohup the hangup is ignored and the run goes on to its end.
    let kept = dir.join("kept.json");
    let child = spawn_run(&server, "2s", &kept, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, libc::SIGHUP);
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap().status)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let v = read_json(&kept);
    assert_eq!(v["ending"], "completed");
    assert_eq!(counts(&v).0, 200);
    server.shutdown().await;
}

#[test]
fn serve_stops_on_sigterm_with_its_summary() {
    let mut child = Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the listening line, so the handler is in place before the signal.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    signal(&child, libc::SIGTERM);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(rest.contains("received 0"), "{rest}");
}

//! Shared helpers: start `serve`, build plans exactly as the CLI does, run the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use metronome::cli::{Cli, Command as Sub};
use metronome::serve::{ServeConfig, Server};
use metronome::{Plan, Report, Stop};

/// Timing-sensitive tests take this so they do not share 2 cores with each other. (An async
/// mutex: each test has its own runtime, and the guard is held across awaits.)
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn timing_lock() -> tokio::sync::MutexGuard<'static, ()> {
    TIMING.lock().await
}

pub fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

pub async fn serve(config: ServeConfig) -> Server {
    Server::start(ServeConfig {
        addr: loopback(),
        ..config
    })
    .await
    .expect("serve starts on loopback")
}

pub async fn serve_default() -> Server {
    serve(ServeConfig::default()).await
}

pub fn url(server: &Server) -> String {
    format!("http://{}/", server.local_addr())
}

/// Builds a plan from `metronome run ARGS…`, exactly as the binary would.
pub fn plan(args: &[&str]) -> Plan {
    let mut argv = vec!["metronome", "run"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("test flags parse");
    match cli.command {
        Sub::Run(r) => r.plan().expect("test plan is valid"),
        _ => unreachable!("built a run command"),
    }
}

/// Runs a plan in-process (no progress lines) and returns the report.
pub async fn run(mut plan: Plan) -> Report {
    plan.progress = false;
    metronome::run(&plan, Stop::new())
        .await
        .expect("run succeeds")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_metronome"))
}

/// Runs the real binary with `args` and returns its output (bounded by the run's own flags).
pub fn metronome(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("the metronome binary runs")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("report file exists");
    serde_json::from_str(&text).expect("report is JSON")
}

/// A fresh directory for one test's files, removed with everything in it when the test ends
/// (some tests write files of 100 MB).
pub fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "metronome-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// See [`tempdir`].
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The report's invariants: every scheduled request is accounted for once, and every one that
/// took time (all but the dropped) is in the latency histogram; every sent one has a send lag.
pub fn assert_accounting(r: &Report) {
    let c = &r.counts;
    assert_eq!(
        c.scheduled,
        c.completed + c.dropped + c.cancelled + c.unsent_at_stop + c.short_circuited,
        "accounting invariant: {c:?}"
    );
    assert!(r.verdict.accounting_ok);
    assert_eq!(
        c.completed,
        c.ok + c.rejected
            + c.http_error
            + c.timeout
            + c.connect_error
            + c.transport_error
            + c.local_error
    );
    assert_eq!(
        r.latency_us.count,
        c.scheduled - c.dropped - c.short_circuited,
        "every request that took time is in the tail: {c:?}"
    );
    assert_eq!(
        r.send_lag_us.count, c.sent,
        "every sent request has a send lag"
    );
    if let Some(x) = &r.retry {
        let l = &x.logical;
        assert_eq!(
            l.started,
            c.scheduled - c.retries,
            "a logical request per first attempt"
        );
        assert_eq!(
            l.started, l.ended,
            "every logical request ended once: {l:?}"
        );
        assert_eq!(
            x.end_to_end_us.count,
            l.ended - l.dropped,
            "every logical request that took time is in the end-to-end tail"
        );
        assert!(
            x.retries <= c.retries,
            "retries sent are among those released"
        );
        let used: u64 = x.attempts_used.values().sum();
        assert!(used <= l.ended);
    }
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub const SECOND: Duration = Duration::from_secs(1);

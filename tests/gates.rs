//! CI gates from the real binary against `serve`: exit codes 0/1/2/3, per-window thresholds,
//! --abort-on-fail, JUnit, and `compare` (a slowed target flagged, the same one twice not).

use std::time::Duration;

use metronome::serve::{ServeConfig, ServiceTime, Stall};

use crate::common::*;
use crate::report_schema::assert_valid;

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn slow(ms: u64) -> metronome::serve::Server {
    serve(ServeConfig {
        service_time: ServiceTime::Fixed(Duration::from_millis(ms)),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_0_1_2_3_from_real_runs() {
    let _t = timing_lock().await;
    let fast = serve_default().await;
    let slow_target = slow(30).await;
    let dir = tempdir();
    let json = dir.join("pass.json");
    // 0: every threshold holds.
    let out = metronome(&[
        "run",
        &url(&fast),
        "-r",
        "200",
        "-d",
        "1s",
        "-q",
        "--threshold",
        "latency.p99 < 2s",
        "--threshold",
        "errors.count == 0",
        "--threshold",
        "rate.achieved >= 0.95 * rate.target",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let v = read_json(&json);
    assert_valid(&v);
    assert_eq!(v["thresholds"]["passed"], true);
    assert_eq!(v["thresholds"]["results"].as_array().unwrap().len(), 3);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("thresholds passed"), "{text}");
    assert!(text.contains("95% intervals"), "{text}");

    // 1: a 30 ms target breaches a 10 ms median.
    let fail_json = dir.join("fail.json");
    let out = metronome(&[
        "run",
        &url(&slow_target),
        "-r",
        "50",
        "-d",
        "1s",
        "-q",
        "--threshold",
        "latency.p50 < 10ms",
        "--threshold",
        "errors.count == 0",
        "--json",
        fail_json.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let v = read_json(&fail_json);
    assert_valid(&v);
    assert_eq!(v["verdict"]["trustworthy"], true);
    let results = v["thresholds"]["results"].as_array().unwrap();
    assert_eq!(results[0]["passed"], false);
    assert!(results[0]["observed"].as_f64().unwrap() >= 30_000.0);
    assert_eq!(results[1]["passed"], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL latency.p50 < 10ms"));

    // 2: a bad expression, with its position; nothing is sent.
    let before = fast.stats().received;
    let out = metronome(&[
        "run",
        &url(&fast),
        "-r",
        "100",
        "-q",
        "--threshold",
        "latency.p99 < 25xs",
    ]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("at column 17") && err.contains("unknown time unit"),
        "{err}"
    );
    let out = metronome(&[
        "run",
        &url(&fast),
        "-r",
        "100",
        "-q",
        "--threshold",
        "latency.p99 < 1s stage=peak",
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(fast.stats().received, before, "nothing was sent");

    // 3: a passing threshold does not hide an untrustworthy run.
    let out = metronome(&[
        "run",
        &url(&slow_target),
        "-r",
        "100",
        "-d",
        "1s",
        "-c",
        "1",
        "--max-in-flight",
        "1",
        "--backlog",
        "2",
        "-q",
        "--threshold",
        "latency.p99 < 100s",
        "--json",
        "-",
    ]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["thresholds"]["passed"], true);
    assert_eq!(v["verdict"]["trustworthy"], false);

    // 3 too for a trustworthy run compared with an untrustworthy baseline, as `compare` says.
    let untrustworthy = dir.join("untrustworthy.json");
    std::fs::write(&untrustworthy, &out.stdout).unwrap();
    // This run must itself be trustworthy for the exit 3 to be the baseline's: on a busy host a
    // short run can fall behind, so it gets three tries.
    let mut tries = 0;
    let (out, v) = loop {
        tries += 1;
        let out = metronome(&[
            "run",
            &url(&fast),
            "-r",
            "100",
            "-d",
            "1s",
            "-q",
            "--baseline",
            untrustworthy.to_str().unwrap(),
            "--json",
            "-",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["verdict"]["trustworthy"] == true || tries == 3 {
            break (out, v);
        }
    };
    assert_eq!(v["verdict"]["trustworthy"], true, "{}", v["verdict"]);
    assert_eq!(v["baseline"]["trustworthy"], false);
    assert!(
        stderr(&out).contains("UNTRUSTWORTHY input"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));

    // compare --junit: the trust verdict is a test case of its own, failing with the exit 3;
    // p95 is compared and can be gated like every other percentile.
    let junit = dir.join("compare.xml");
    let out = metronome(&[
        "compare",
        untrustworthy.to_str().unwrap(),
        json.to_str().unwrap(),
        "--max-regression",
        "latency.p95=3%",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("latency.p95"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let trust = doc
        .descendants()
        .find(|n| n.attribute("classname") == Some("metronome.trust"))
        .unwrap_or_else(|| panic!("a trust case: {xml}"));
    assert!(trust.children().any(|n| n.has_tag_name("failure")), "{xml}");
    assert!(
        doc.descendants()
            .any(|n| n.attribute("name") == Some("latency.p95 does not regress")),
        "{xml}"
    );
    fast.shutdown().await;
    slow_target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_stall_fails_the_per_window_threshold_not_the_whole_run_one() {
    let _t = timing_lock().await;
    // A 400 ms stall starting 1.3 s after the server starts, inside a 4 s run.
    let server = serve(ServeConfig {
        stalls: vec![Stall {
            at: Duration::from_millis(1300),
            duration: Duration::from_millis(400),
        }],
        ..Default::default()
    })
    .await;
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "200",
        "-d",
        "4s",
        "-q",
        "--threshold",
        "latency.p99 < 150ms for each 1s",
        "--threshold",
        "latency.p50 < 150ms",
        "--json",
        "-",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", stderr(&out));
    });
    assert_valid(&v);
    let r = v["thresholds"]["results"].as_array().unwrap();
    let windows = &r[0]["windows"];
    assert_eq!(r[0]["passed"], false, "{r:#?}");
    assert!(windows["failed"].as_u64().unwrap() >= 1, "{windows}");
    assert!(windows["judged"].as_u64().unwrap() + windows["missed"].as_u64().unwrap() >= 3);
    assert_eq!(
        r[1]["passed"], true,
        "the whole run's median hides it: {r:#?}"
    );
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_early_and_writes_the_full_report() {
    let _t = timing_lock().await;
    let server = serve(ServeConfig {
        error_rate: 0.5,
        ..Default::default()
    })
    .await;
    let dir = tempdir();
    let junit = dir.join("junit.xml");
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "100",
        "-d",
        "20s",
        "-q",
        "--threshold",
        "errors.count == 0",
        "--threshold",
        "latency.p99 < 10s",
        "--abort-on-fail",
        "--json",
        "-",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&v);
    assert!(
        v["duration_s"].as_f64().unwrap() < 5.0,
        "{}",
        v["duration_s"]
    );
    assert_eq!(v["ending"], "interrupted");
    assert_eq!(v["thresholds"]["aborted_by"], "errors.count == 0");
    assert_accounting_json(&v);
    // JUnit: well-formed XML; one case for trust, one per threshold.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3, "{xml}");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["errors.count == 0"], "{xml}");
    server.shutdown().await;
}

fn assert_accounting_json(v: &serde_json::Value) {
    let c = &v["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(
        n("scheduled"),
        n("completed") + n("dropped") + n("cancelled") + n("unsent_at_stop")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_flags_a_slowed_target_and_not_the_same_one_twice() {
    let _t = timing_lock().await;
    let dir = tempdir();
    let base_target = slow(5).await;
    let slowed = slow(7).await;
    let run = |target: &str, name: &str, rate: &str| {
        let path = dir.join(name);
        let out = metronome(&[
            "run",
            target,
            "-r",
            rate,
            "-d",
            "2s",
            "-q",
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        path.to_str().unwrap().to_string()
    };
    let a1 = run(&url(&base_target), "a1.json", "300");
    let a2 = run(&url(&base_target), "a2.json", "300");
    let b = run(&url(&slowed), "b.json", "300");
    let other_rate = run(&url(&base_target), "c.json", "200");
    let failing = serve(ServeConfig {
        error_rate: 0.5,
        ..Default::default()
    })
    .await;
    let errors = run(&url(&failing), "err.json", "300");
    failing.shutdown().await;

    let same = metronome(&["compare", &a1, &a2]);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(code(&same), Some(0), "{text}{}", stderr(&same));
    assert!(
        text.contains("latency.p99") && !text.contains("conditions differ"),
        "{text}"
    );

    let worse = metronome(&["compare", &a1, &b, "--json", "-"]);
    assert_eq!(code(&worse), Some(1), "{}", stderr(&worse));
    let v: serde_json::Value = serde_json::from_slice(&worse.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let p50 = rows
        .iter()
        .find(|r| r["metric"] == "service_time.p50")
        .unwrap();
    assert_eq!(p50["regressed"], true, "{p50}");
    assert!(p50["change"].as_f64().unwrap() > 0.1, "{p50}");
    assert!(stderr(&worse).contains("REGRESSION"));

    // Half the requests fail: a regression by default, whatever the latency did.
    let failed = metronome(&["compare", &a1, &errors, "--json", "-"]);
    assert_eq!(code(&failed), Some(1), "{}", stderr(&failed));
    let v: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    let row = |m: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == m)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        row("errors.rate")["regressed"],
        true,
        "{}",
        row("errors.rate")
    );
    assert_eq!(row("rejected.rate")["regressed"], false);
    assert!(stderr(&failed).contains("REGRESSION"));

    let warned = metronome(&["compare", &a1, &other_rate]);
    assert!(
        String::from_utf8_lossy(&warned.stdout).contains("conditions differ: rate"),
        "{}",
        String::from_utf8_lossy(&warned.stdout)
    );

    // run --baseline does the same at the end of a run.
    let out = metronome(&[
        "run",
        &url(&slowed),
        "-r",
        "300",
        "-d",
        "2s",
        "-q",
        "--baseline",
        &a1,
        "--json",
        "-",
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&v);
    assert_eq!(v["baseline"]["regressed"], true);

    // Replicas: Welch's t interval over them.
    let rep = metronome(&["compare", "--replicas", &a1, &a2, "--", &b, &b]);
    assert_eq!(
        code(&rep),
        Some(1),
        "{}",
        String::from_utf8_lossy(&rep.stdout)
    );
    assert!(String::from_utf8_lossy(&rep.stdout).contains("Welch"));

    // A file that is not a schema-4 report is bad input.
    let bad = dir.join("old.json");
    std::fs::write(&bad, "{\"schema_version\": 3}").unwrap();
    let out = metronome(&["compare", bad.to_str().unwrap(), &a1]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("schema version 4"),
        "{}",
        stderr(&out)
    );
    base_target.shutdown().await;
    slowed.shutdown().await;
}

#[test]
fn profile_thresholds_are_checked_with_their_position() {
    let dir = tempdir();
    let stage = "[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n";
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!("{stage}[thresholds]\n\"latency.p99\" = \"< 250ms\"\n\"errors.count\" = [\"== 0\", \"== 0 for each 1s\"]\n"),
    )
    .unwrap();
    let out = metronome(&["profile", "check", good.to_str().unwrap()]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{stage}[thresholds]\n\"latency.p99\" = \"< 250xs\"\n"),
    )
    .unwrap();
    let out = metronome(&["profile", "check", bad.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2));
    let err = stderr(&out);
    // Line 6, column 23: the unit inside the value string.
    assert!(err.contains("bad.toml:6:23"), "{err}");
    assert!(err.contains("unknown time unit"), "{err}");

    // A stage the profile does not have: `profile check` refuses it as `run` would, and both
    // point at the name, in the list's second item.
    let two = "[[stage]]\nname = \"warm\"\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n\n[[stage]]\nname = \"peak\"\nshape = \"constant\"\nrate = 20\nduration = \"1s\"\n";
    let nope = dir.join("nope.toml");
    std::fs::write(
        &nope,
        format!("{two}[thresholds]\n\"latency.p99\" = [\"< 250ms\", \"< 250ms stage=nope\"]\n"),
    )
    .unwrap();
    let out = metronome(&["profile", "check", nope.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // Line 13: `"latency.p99" = ["< 250ms", "< 250ms stage=nope"]`, "nope" at column 44.
    assert!(err.contains("nope.toml:13:44"), "{err}");
    assert!(
        err.contains("stage 'nope'") && err.contains("warm, peak"),
        "{err}"
    );
    let out = metronome(&[
        "run",
        "http://127.0.0.1:9/",
        "--profile",
        nope.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("nope.toml:13:44"), "{err}");
    assert!(!err.contains("--threshold"), "{err}");
    // A good stage name passes, and a list item's error points into that item.
    let good2 = dir.join("good2.toml");
    std::fs::write(
        &good2,
        format!("{two}[thresholds]\n\"latency.p99\" = [\"< 250ms\", \"< 250ms stage=peak\", \"< 9xs\"]\n"),
    )
    .unwrap();
    let out = metronome(&["profile", "check", good2.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // The unit of "< 9xs", the third item, is at column 55.
    assert!(
        err.contains("good2.toml:13:55") && err.contains("unknown time unit"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_confident_stops_once_the_percentile_is_pinned_down_and_says_so() {
    let _t = timing_lock().await;
    // Service time uniform in 1..3 ms: at 2 000/s, p50 ±5 % needs a few hundred requests.
    let server = serve(ServeConfig {
        service_time: metronome::serve::ServiceTime::Uniform(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(3),
        ),
        ..ServeConfig::default()
    })
    .await;
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "2000",
        "--until-confident",
        "service_time.p50 ±5%",
        "--max-duration",
        "20s",
        "-q",
        "--json",
        "-",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    crate::report_schema::assert_valid(&v);
    let u = &v["until_confident"];
    assert_eq!(u["reached"], true, "{u}");
    let at = u["reached_at_s"].as_f64().expect("stopped itself");
    assert!(at < 10.0, "reached at {at} s");
    assert!(
        v["duration_s"].as_f64().unwrap() < 12.0,
        "the run stopped early"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A figure that cannot be pinned down in time: p99.99 to ±1 % in 2 s.
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "500",
        "--until-confident",
        "latency.p9999 ±1%",
        "--max-duration",
        "2s",
        "-q",
        "--json",
        "-",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["until_confident"]["reached"], false);
    assert!(v["until_confident"]["reached_at_s"].is_null());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT reached"));
    // Bad rules are refused before anything is sent.
    for (args, words) in [
        (vec!["--until-confident", "latency.p99"], "no ± share"),
        (
            vec!["--until-confident", "latency.p99 ±2%", "-d", "5s"],
            "cannot be used with",
        ),
    ] {
        let mut argv = vec!["run", "http://127.0.0.1:9/", "-r", "100"];
        argv.extend(args);
        let out = metronome(&argv);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = metronome(&[
        "run",
        "http://127.0.0.1:9/",
        "-r",
        "max",
        "--until-confident",
        "latency.p99 ±2%",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_before_the_first_response_are_not_judged() {
    let _t = timing_lock().await;
    // Every request takes 1.5 s: nothing has completed by the end of the first second.
    let server = slow(1500).await;
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "20",
        "-d",
        "2s",
        "-q",
        // About windows, not pacing: a busy host's send lag must not make it exit 3.
        "--max-send-lag",
        "1s",
        "--threshold",
        "latency.p99 < 5s for each 1s",
        "--json",
        "-",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", stderr(&out));
    });
    assert_valid(&v);
    let r = &v["thresholds"]["results"][0];
    assert_eq!(r["passed"], true, "{r:#}");
    let w = &r["windows"];
    assert!(w["pending"].as_u64().unwrap() >= 1, "{w}");
    assert!(w["judged"].as_u64().unwrap() >= 1, "{w}");
    assert_eq!(w["failed"], 0, "{w}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pending before the first response"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_edges_agree_so_a_window_rate_is_true() {
    let _t = timing_lock().await;
    let server = serve_default().await;
    // Each snapshot's length is exactly the time since the previous one, measured where its
    // sends are counted: a window's rate divides like by like.
    let views = metronome::Views::every(Duration::from_millis(200));
    let edges = views
        .follow("test-edges", Vec::new(), |seen, snap| {
            seen.push((snap.at, snap.interval_len));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let mut p = crate::common::plan(&[&url(&server), "-r", "1000", "-d", "2s"]);
    p.progress = false;
    let report = metronome::run_with(&p, metronome::Stop::new(), views)
        .await
        .expect("run succeeds");
    let edges = edges.join().unwrap();
    assert!(edges.len() >= 5, "{edges:?}");
    let mut prev = Duration::ZERO;
    for (at, len) in &edges {
        assert_eq!(*len, at.saturating_sub(prev), "{edges:?}");
        prev = *at;
    }
    assert!(report.verdict.trustworthy, "{:?}", report.verdict.reasons);
    // And the per-window achieved rate of a paced run is the target's, to the request.
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "1000",
        "-d",
        "4s",
        "-q",
        "--threshold",
        "rate.achieved >= 0.995 * rate.target for each 1s",
        "--json",
        "-",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", stderr(&out));
    });
    let r = &v["thresholds"]["results"][0];
    if v["verdict"]["trustworthy"] == true {
        assert_eq!(r["passed"], true, "{r:#}");
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    }
    server.shutdown().await;
}

/// Every `metronome run|compare|serve` command in docs/ci.md parses as written (the CI examples
/// are copied verbatim into pipelines): flags exist, thresholds parse, `compare`'s files and
/// options are where it reads them.
#[test]
fn the_commands_in_docs_ci_parse_as_written() {
    use clap::Parser;
    use metronome::cli::{Cli, Command as Sub};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ci.md")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut checked = 0;
    for line in joined.lines() {
        let Some(at) = ["metronome run ", "metronome compare ", "metronome serve "]
            .iter()
            .filter_map(|c| line.find(c))
            .min()
        else {
            continue;
        };
        let mut cmd = &line[at + "metronome ".len()..];
        for end in ["; done", " &", "  #", "`"] {
            if let Some(i) = cmd.find(end) {
                cmd = &cmd[..i];
            }
        }
        if cmd.contains('…') {
            continue;
        }
        let argv = shell_words(cmd);
        let mut full = vec!["metronome".to_string()];
        full.extend(argv);
        let cli = Cli::try_parse_from(&full).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        match cli.command {
            Sub::Compare(c) => {
                c.sides().unwrap_or_else(|e| panic!("{cmd}: {e}"));
                c.limits().unwrap_or_else(|e| panic!("{cmd}: {e}"));
            }
            Sub::Run(r) => {
                let plan = r.plan().unwrap_or_else(|e| panic!("{cmd}: {e}"));
                r.gate(&plan).unwrap_or_else(|e| panic!("{cmd}: {e}"));
            }
            _ => {}
        }
        checked += 1;
    }
    assert!(checked >= 8, "found only {checked} commands");
}

/// Splits a command line as a POSIX shell would for these examples (single quotes only).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

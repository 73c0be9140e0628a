//! `metronome demo`, the README's first command: a real load test against the built-in target,
//! over HTTP/1.1 and over gRPC, with nothing to set up. Its story must actually happen: a clean
//! first stage, the burst shed, every request accounted for.

use crate::common::*;
use crate::report_schema::assert_valid;

/// Runs the demo squeezed into 6 s (rates unchanged) and returns its JSON report.
fn demo(extra: &[&str]) -> serde_json::Value {
    let dir = tempdir();
    let json = dir.join("demo.json");
    let json_arg = json.to_string_lossy().to_string();
    let mut args = vec!["demo", "-d", "6s", "--no-tui", "--json", &json_arg];
    args.extend_from_slice(extra);
    let out = metronome(&args);
    let v = read_json(&json);
    // 0, or 3 when a busy host made the generator fall behind: the story is judged below.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}\nverdict: {}",
        String::from_utf8_lossy(&out.stderr),
        v["verdict"]
    );
    assert_valid(&v);
    v
}

fn stage<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["profile"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap()
}

/// Under capacity nothing is shed; the burst at three times capacity is, largely; all requests
/// of the schedule were sent and ended.
fn assert_story(v: &serde_json::Value) {
    let c = &v["counts"];
    assert_eq!(n(&c["scheduled"]), 3_800, "{c}");
    assert_eq!(n(&c["completed"]) + n(&c["dropped"]), 3_800, "{c}");
    let under = &stage(v, "under")["results"];
    assert!(
        n(&under["rejected"]) * 20 < n(&under["completed"]),
        "400/s is half the capacity: {under}"
    );
    let burst = &stage(v, "burst")["results"];
    assert!(n(&burst["rejected"]) > 100, "the burst is shed: {burst}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_its_story() {
    let _t = timing_lock().await;
    let v = tokio::task::spawn_blocking(|| demo(&[])).await.unwrap();
    assert_story(&v);
    assert_eq!(v["protocol"], "http1", "{}", v["protocol"]);
    assert!(n(&v["status_codes"]["503"]) > 100, "{}", v["status_codes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_demo_tells_the_same_story_over_grpc() {
    let _t = timing_lock().await;
    let v = tokio::task::spawn_blocking(|| demo(&["--grpc"]))
        .await
        .unwrap();
    assert_story(&v);
    assert_eq!(v["grpc"]["call"], "metronome.demo.v1.Demo/Ping");
    assert_eq!(v["grpc"]["schema"], "reflection");
    let codes = &v["grpc_status_codes"];
    assert!(n(&codes["UNAVAILABLE"]) > 100, "{codes}");
    assert!(n(&codes["OK"]) > 3_000, "{codes}");
}

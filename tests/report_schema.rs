//! Reports validate against docs/report-schema.json, and the text report says what matters.

use crate::common::*;

fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report-schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
            .expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

pub fn assert_valid(report: &serde_json::Value) {
    let v = schema();
    let errors: Vec<String> = v
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_from_the_binary_matches_the_schema() {
    let server = serve_default().await;
    let dir = tempdir();
    let json = dir.join("r.json");
    let out = metronome(&[
        "run",
        &url(&server),
        "-r",
        "200",
        "-d",
        "1s",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_json(&json);
    assert_valid(&v);
    assert_eq!(v["schema_version"], 4);
    assert_eq!(v["counts"]["scheduled"], 200);
    assert_eq!(v["verdict"]["trustworthy"], true);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["latency", "service time", "send lag", "p99.99", "verdict"] {
        assert!(
            text.contains(needle),
            "text report lacks '{needle}': {text}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrustworthy_report_validates_says_so_first_and_exits_3() {
    let server = serve(metronome::serve::ServeConfig {
        service_time: metronome::serve::ServiceTime::Fixed(std::time::Duration::from_millis(100)),
        ..Default::default()
    })
    .await;
    let out = metronome(&[
        "run",
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
        "2",
        "-q",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON on stdout with --json -");
    assert_valid(&v);
    assert_eq!(v["verdict"]["trustworthy"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("!! UNTRUSTWORTHY"), "{stderr}");
    server.shutdown().await;
}

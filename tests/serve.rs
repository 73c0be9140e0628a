//! `metronome serve` under hostile input: absurd settings are refused with one line and exit 2,
//! and no client can crash, hang or exhaust it.

use crate::common::*;

#[test]
fn absurd_settings_exit_2_with_one_line() {
    let big = "18446744073709551615";
    let huge_secs = format!("{big}s");
    let stall_end = format!("0s+{huge_secs}");
    let stall_at = format!("{huge_secs}+1s");
    let range = format!("0s..{huge_secs}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--stall", &stall_end], "--stall"),
        (vec!["--stall", &stall_at], "--stall"),
        (vec!["--stall", "366d+1s"], "within 365 days"),
        (vec!["--rate-limit", "1e-300"], "--rate-limit"),
        (vec!["--rate-limit", "1e300"], "--rate-limit"),
        (vec!["--rate-limit", "-1"], "--rate-limit"),
        (vec!["--rate-limit", "NaN"], "--rate-limit"),
        (vec!["--service-time", &huge_secs], "--service-time"),
        (vec!["--service-time", &range], "--service-time"),
        (vec!["--service-time", "2h"], "limit of 1h"),
        (vec!["--workers", "0"], "--workers"),
        (vec!["--workers", big], "--workers"),
        (vec!["--queue", big], "--queue"),
        (vec!["--burst", "NaN"], "--burst"),
        (vec!["--burst", "-1"], "--burst"),
        (vec!["--burst", "1e300"], "--burst"),
        (vec!["--burst", "inf"], "--burst"),
        (vec!["--error-rate", "1.5"], "--error-rate"),
        (vec!["--error-rate", "-0.1"], "--error-rate"),
        (vec!["--error-rate", "NaN"], "--error-rate"),
    ];
    for (extra, needle) in cases {
        // `--duration` bounds the run should a setting be wrongly accepted.
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--duration", "2s"];
        args.extend_from_slice(&extra);
        let out = metronome(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{extra:?}: expected '{needle}' in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{extra:?}: {stderr}");
    }
}

//! Bad input: one clear error line, exit 2, and not a single request sent.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_sends_nothing() {
    let server = serve_default().await;
    let good = url(&server);
    let dir = tempdir();
    let missing = dir.join("no-such-body");
    let missing_body = format!("@{}", missing.display());
    let missing_profile = dir.join("no-such.toml").display().to_string();
    let typo = dir.join("typo.toml");
    std::fs::write(
        &typo,
        "[[stage]]\nshape = \"ramp\"\nfrom = 1\nto = 10\nduration = \"1s\"\nrat = 3\n",
    )
    .unwrap();
    let typo_profile = typo.display().to_string();
    let typo_at = format!("{typo_profile}:6:1");
    let stage = "[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n";
    let mix = dir.join("mix.toml");
    std::fs::write(&mix, format!("{stage}[[request]]\npath = \"/x\"\n")).unwrap();
    let mix_profile = mix.display().to_string();
    let mix_body = format!("@{mix_profile}");
    let length_profile = dir.join("length.toml");
    std::fs::write(
        &length_profile,
        format!("{stage}[[request]]\nheaders = {{ Content-Length = \"5\" }}\n"),
    )
    .unwrap();
    let length_profile = length_profile.display().to_string();
    let other = dir.join("other.toml");
    std::fs::write(
        &other,
        format!("{stage}[[request]]\nurl = \"http://127.0.0.2:9/\"\n"),
    )
    .unwrap();
    let other_origin = other.display().to_string();
    let tiny_scale = dir.join("tiny-scale.toml");
    std::fs::write(&tiny_scale, format!("time_scale = 1e-300\n{stage}")).unwrap();
    let tiny_scale = tiny_scale.display().to_string();
    // Input files: bounded and regular (or a pipe); never read until memory runs out.
    let big = dir.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let big_body = format!("@{}", big.display());
    let big_profile = dir.join("big-body.toml");
    std::fs::write(
        &big_profile,
        format!("{stage}[[request]]\nbody_file = \"big.bin\"\n"),
    )
    .unwrap();
    let big_profile = big_profile.display().to_string();
    let zero_replay = dir.join("zero-replay.toml");
    std::fs::write(
        &zero_replay,
        "[[stage]]\nshape = \"replay\"\nfile = \"/dev/zero\"\n",
    )
    .unwrap();
    let zero_replay = zero_replay.display().to_string();
    let no_dir_json = dir.join("no-such-dir").join("r.json").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "not a url", "-r", "10"], "invalid URL"),
        (
            vec!["run", "ftp://127.0.0.1/", "-r", "10"],
            "unsupported scheme",
        ),
        (vec!["run", "127.0.0.1:80", "-r", "10"], "invalid URL"),
        (
            vec!["run", &good, "-r", "10", "-H", "NoColon"],
            "invalid header",
        ),
        (
            vec!["run", &good, "-r", "10", "-H", "bad name: x"],
            "invalid header",
        ),
        (
            vec!["run", &good, "-r", "10", "-b", &missing_body],
            "cannot read body file",
        ),
        (vec!["run", &good, "-r", "0"], "--rate"),
        (vec!["run", &good, "-r", "-5"], "rate"),
        (vec!["run", &good, "-r", "NaN"], "--rate"),
        (vec!["run", &good, "-r", "abc"], "--rate"),
        (vec!["run", &good, "-r", "10", "-d", "10x"], "--duration"),
        (vec!["run", &good, "-r", "10", "-d", "0s"], "--duration"),
        (
            vec!["run", &good, "-r", "10", "-d", "1s", "-n", "5"],
            "cannot be used with",
        ),
        (vec!["run", &good, "-r", "10", "--insecure"], "https"),
        (vec!["run", &good, "-r", "10", "-c", "0"], "--connections"),
        (
            vec!["run", &good, "-r", "10", "--rejected", "42"],
            "--rejected",
        ),
        (vec!["run", &good, "-r", "10", "-X", "G E T"], "--method"),
        (vec!["run", &good], "--rate"),
        // Profiles and shapes: refused before anything is sent.
        (
            vec!["run", &good, "--profile", &missing_profile],
            "cannot read the profile",
        ),
        (
            vec!["run", &good, "--profile", &typo_profile],
            typo_at.as_str(),
        ),
        (
            vec!["run", &good, "-r", "10", "--profile", &typo_profile],
            "cannot be used with",
        ),
        (vec!["run", &good, "--shape", "ramp:oops"], "--shape"),
        (
            vec!["run", &good, "--shape", "100/s@1s", "-d", "5s"],
            "cannot be used with",
        ),
        (
            vec!["run", &good, "--shape", "100/s@1s", "--time-scale", "0"],
            "--time-scale",
        ),
        (
            vec!["run", &good, "-r", "max", "--arrivals", "poisson"],
            "closed-loop",
        ),
        (
            vec!["run", &good, "--profile", &mix_profile, "-X", "PUT"],
            "-X/--body",
        ),
        (
            vec!["run", &good, "--profile", &other_origin],
            "same scheme, host and port",
        ),
        (vec!["run", "--shape", "100/s@1s"], "give the target URL"),
        // Found out before the run, not after it: a report that cannot be written is bad input.
        (
            vec!["run", &good, "-r", "10", "-d", "1s", "--json", &no_dir_json],
            "cannot write the report",
        ),
        (
            vec!["demo", "--json", &no_dir_json],
            "cannot write the report",
        ),
        (
            vec!["run", &good, "-r", "10", "-d", "99999999999s"],
            "invalid --duration",
        ),
        (vec!["run", &good, "-r", "1e308"], "--rate '1e308'"),
        (
            vec!["run", &good, "-r", "10", "--backlog", "0"],
            "--backlog",
        ),
        (
            vec!["run", &good, "-r", "10", "--threads", "0"],
            "--threads",
        ),
        (
            vec!["run", &good, "--shape", "10/s@1s", "--rate-scale", "-1"],
            "above zero",
        ),
        (vec!["run", &good, "-r", "10", "--grace", "-1s"], "--grace"),
        (vec!["profile", "check", &typo_profile], typo_at.as_str()),
        (
            vec!["run", &good, "-r", "10", "-b", "@/dev/zero"],
            "character device",
        ),
        (
            vec!["run", &good, "-r", "10", "-b", &big_body],
            "it is 100 MiB, above 64 MiB",
        ),
        (
            vec!["run", &good, "--profile", "/dev/zero"],
            "character device",
        ),
        (vec!["profile", "check", "/dev/zero"], "character device"),
        (vec!["profile", "show", "/dev/zero"], "character device"),
        (vec!["profile", "check", &big_profile], "above 64 MiB"),
        (vec!["profile", "check", &zero_replay], "character device"),
        (
            vec![
                "run",
                "https://127.0.0.1:9/",
                "-r",
                "10",
                "--cacert",
                "/dev/zero",
            ],
            "character device",
        ),
        // Framing headers are metronome's; Host is the URL's on HTTP/2.
        (
            vec!["run", &good, "-r", "10", "-H", "Content-Length: 5"],
            "sets Content-Length",
        ),
        (
            vec!["run", &good, "-r", "10", "-H", "transfer-encoding: chunked"],
            "sets Content-Length and Transfer-Encoding",
        ),
        (
            vec!["run", &good, "-r", "10", "--http2", "-H", "Host: x"],
            ":authority",
        ),
        (
            vec!["run", &good, "-r", "10", "-H", "Host: x", "-H", "Host: y"],
            "more than one Host",
        ),
        (
            vec!["profile", "check", &length_profile],
            "header 'Content-Length' is set by metronome",
        ),
        (
            vec![
                "run",
                &good,
                "--profile",
                &mix_profile,
                "-H",
                "Content-Length: 1",
            ],
            "sets Content-Length",
        ),
        // The report never overwrites an input of the run.
        (
            vec![
                "run",
                &good,
                "--profile",
                &mix_profile,
                "--json",
                &mix_profile,
            ],
            "input of this run",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "-b",
                &mix_body,
                "--json",
                &mix_profile,
            ],
            "input of this run",
        ),
        // Scales: with -r they would make the report disagree with what is sent; the scaled
        // curve is bounded like a written one, the same way in check, show and run.
        (
            vec!["run", &good, "-r", "10", "-d", "2s", "--time-scale", "0.5"],
            "--shape and --profile only",
        ),
        (
            vec!["run", &good, "-r", "10", "-n", "20", "--rate-scale", "2"],
            "--shape and --profile only",
        ),
        (
            vec!["run", &good, "--shape", "10/s@1s", "--time-scale", "1e-300"],
            "longer than 366",
        ),
        (
            vec!["run", &good, "--profile", &tiny_scale],
            "longer than 366",
        ),
        (vec!["profile", "check", &tiny_scale], "longer than 366"),
        (
            vec![
                "profile",
                "show",
                "--shape",
                "10/s@1s",
                "--time-scale",
                "1e-30",
            ],
            "longer than 366",
        ),
        (
            vec![
                "profile",
                "show",
                "--shape",
                "1000/s@300d",
                "--rate-scale",
                "10000",
            ],
            "requests",
        ),
        // Durations and sizes above their caps (docs/engine.md, "Input limits"): refused, never
        // an overflow panic or an allocation abort.
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "--timeout",
                "18446744073709551615s",
            ],
            "--timeout",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "--timeout",
                "18446744073709551614s",
            ],
            "at most 1h",
        ),
        (
            vec!["run", &good, "-r", "10", "--timeout", "2h"],
            "at most 1h",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "--connect-timeout",
                "9999999999999s",
            ],
            "--connect-timeout",
        ),
        (
            vec!["run", &good, "-r", "10", "--grace", "18446744073709551614s"],
            "--grace",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "--max-send-lag",
                "18446744073709551614s",
            ],
            "--max-send-lag",
        ),
        (vec!["run", &good, "-r", "max", "-d", "100000d"], "366 days"),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "-d",
                "1s",
                "--pacer-quantum",
                "10ms",
            ],
            "above --max-send-lag",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "-d",
                "1s",
                "--pacer-quantum",
                "2s",
                "--max-send-lag",
                "1h",
            ],
            "not shorter than the run",
        ),
        (
            vec!["run", &good, "-r", "10", "--backlog", "10000000000"],
            "at most 10000000",
        ),
        (
            vec!["run", &good, "-r", "10", "--max-in-flight", "100000000"],
            "--max-in-flight",
        ),
        (
            vec![
                "run",
                &good,
                "-r",
                "10",
                "--http2",
                "-c",
                "100000",
                "--max-streams",
                "1000",
            ],
            "--max-streams",
        ),
    ];
    for (args, needle) in cases {
        let out = metronome(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.matches("os error").count() <= 1,
            "{args:?}: the cause is printed once: {stderr}"
        );
    }
    let stats = server.shutdown().await;
    assert_eq!(stats.received, 0, "no request may be sent on bad input");
    assert_eq!(stats.connections, 0, "not even a connection");
}

#[test]
fn unreachable_target_exits_2() {
    // Bind then drop a listener to get a port that is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = format!("http://127.0.0.1:{port}/");
    let grpc = format!("grpc://127.0.0.1:{port}");
    let proto = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/metronome/demo/v1/demo.proto"
    );
    let ping = "metronome.demo.v1.Demo/Ping";
    // Over HTTP/1.1, h2c (whose protocol probe must not blame the protocol) and gRPC, with the
    // schema from a file or from the reflection that cannot be asked.
    for args in [
        vec![http.as_str()],
        vec![http.as_str(), "--http2"],
        vec![grpc.as_str(), "--call", ping, "--proto", proto],
        vec![grpc.as_str(), "--call", ping],
    ] {
        let mut argv = vec!["run", "-r", "10", "-d", "1s"];
        argv.extend(&args);
        let out = metronome(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("unreachable") || stderr.contains("cannot reach"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("protocol"), "{args:?}: {stderr}");
    }
}

/// A 100 KB URL or a 300-digit number is quoted in the error, but cut short: the reason stays
/// readable.
#[test]
fn long_inputs_are_not_echoed_whole() {
    let long_url = format!("ftp://{}/", "a".repeat(100_000));
    let digits = "9".repeat(300);
    let long_header = format!("X-{}", "b".repeat(10_000));
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", &long_url, "-r", "10"],
        vec!["run", "http://127.0.0.1:9/", "-r", &digits],
        vec!["run", "http://127.0.0.1:9/", "-r", "10", "-d", &digits],
        vec!["run", "http://127.0.0.1:9/", "-r", "10", "-H", &long_header],
        vec!["run", "http://127.0.0.1:9/", "-r", "10", "-c", &digits],
        vec!["run", "http://127.0.0.1:9/", "-r", "10", "-n", &digits],
        vec![
            "run",
            "http://127.0.0.1:9/",
            "-r",
            "10",
            "--backlog",
            &digits,
        ],
        vec!["run", "http://127.0.0.1:9/", "-r", "10", "--seed", &digits],
        vec!["serve", "--queue", &digits],
        vec![
            "run",
            "http://127.0.0.1:9/",
            "--shape",
            "1/s@1s",
            "--time-scale",
            &digits,
        ],
    ];
    for args in cases {
        let out = metronome(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.len() < 600, "{} bytes: {stderr}", stderr.len());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A body file named by many requests of a mix is read once and shared.
#[test]
fn a_body_file_named_twice_is_read_once() {
    let dir = tempdir();
    std::fs::write(dir.join("body.json"), "{}").unwrap();
    let p = dir.join("mix.toml");
    let req = "[[request]]\nmethod = \"POST\"\nbody_file = \"body.json\"\n";
    std::fs::write(
        &p,
        format!("[[stage]]\nshape = \"constant\"\nrate = 10\nduration = \"1s\"\n{req}{req}{req}"),
    )
    .unwrap();
    let profile = metronome::profile::check(&p).unwrap();
    let bodies: Vec<_> = profile
        .requests
        .iter()
        .map(|r| r.body.clone().unwrap())
        .collect();
    assert_eq!(bodies[0], "{}");
    for b in &bodies[1..] {
        assert_eq!(
            b.as_ptr(),
            bodies[0].as_ptr(),
            "one buffer, not one per request"
        );
    }
}

/// Runs the binary with stdout connected to `stdout` (a closed pipe, /dev/full).
fn metronome_to(args: &[&str], stdout: std::process::Stdio) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the metronome binary runs")
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer.into()
}

fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens for writing")
        .into()
}

/// `metronome ... | head` and `> /dev/full` end quietly with the command's own exit code, never
/// a panic (exit 101).
#[test]
fn a_closed_or_full_stdout_is_not_a_panic() {
    let ramp = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/ramp.toml");
    for args in [
        vec!["profile", "show", ramp],
        vec!["profile", "check", ramp],
    ] {
        let out = metronome_to(&args, closed_pipe());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} | closed: {stderr}");
        assert!(stderr.is_empty(), "a closed pipe is a quiet end: {stderr}");
        let out = metronome_to(&args, dev_full());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} > /dev/full: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("No space left"), "{stderr}");
    }
}

/// A run whose stdout is closed still writes its JSON report and exits with its own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_never_loses_the_json_report() {
    let server = serve_default().await;
    let target = url(&server);
    let dir = tempdir();
    for (name, stdout) in [("closed.json", closed_pipe()), ("full.json", dev_full())] {
        let json = dir.join(name);
        let json_arg = json.display().to_string();
        let args = [
            "run", &target, "-r", "50", "-n", "5", "-q", "--json", &json_arg,
        ];
        let out = tokio::task::block_in_place(|| metronome_to(&args, stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        // 0, or 3 when the machine is too busy to keep the schedule: the run's own code.
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{:?}: {stderr}",
            out.status
        );
        assert_eq!(read_json(&json)["counts"]["scheduled"], 5, "{name}");
    }
    server.shutdown().await;
}

/// `--json` into a FIFO is written straight through (a rename would replace the FIFO with a
/// file), and `/dev/null` stays a device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_into_a_fifo_or_dev_null() {
    use std::os::unix::fs::FileTypeExt;
    let server = serve_default().await;
    let target = url(&server);
    let dir = tempdir();
    let fifo = dir.join("report.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(&fifo).expect("the FIFO reads"))
    };
    let fifo_arg = fifo.display().to_string();
    let args = [
        "run", &target, "-r", "50", "-n", "5", "-q", "--json", &fifo_arg,
    ];
    let out = tokio::task::block_in_place(|| metronome(&args));
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = reader.join().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("the FIFO got the report");
    assert_eq!(v["counts"]["scheduled"], 5);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file"
    );

    let args = [
        "run",
        &target,
        "-r",
        "50",
        "-n",
        "5",
        "-q",
        "--json",
        "/dev/null",
    ];
    let out = tokio::task::block_in_place(|| metronome(&args));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{:?}", out.status);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    server.shutdown().await;
}

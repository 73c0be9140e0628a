//! `metronome serve` under hostile input: absurd settings are refused with one line and exit 2,
//! and no client can crash, hang or exhaust it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `metronome serve` in a child process, so that its memory, CPU time and file-descriptor
/// limit can be measured and set apart from the test's.
struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    stderr: BufReader<ChildStderr>,
}

impl ServeProcess {
    /// `metronome serve --addr 127.0.0.1:0 ARGS…`.
    fn start(args: &[&str]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--addr", "127.0.0.1:0"]).args(args);
        Self::spawn(cmd)
    }

    /// The same under `sh -c 'ulimit -n N; exec …'`: at most `n` open files.
    fn start_with_nofile(n: u32, args: &[&str]) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -n {n} && exec \"$0\" serve --addr 127.0.0.1:0 \"$@\""
            ))
            .arg(bin())
            .args(args);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("metronome serve starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("serve prints a line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no listening address in: {line}"));
        ServeProcess {
            child,
            addr,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A line of /proc/PID/status, e.g. `VmHWM`, in kB.
    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc status"))
    }

    /// User + system CPU time so far, from /proc/PID/stat.
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("/proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// SIGINT, then the rest of stderr (the summary line) once it exits.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGINT) };
        let mut rest = String::new();
        let _ = self.stderr.read_to_string(&mut rest);
        let status = self.child.wait().expect("serve exits");
        assert!(status.success(), "serve exited with {status}: {rest}");
        rest
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // Only if a test failed before `stop`: the child is ours, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects with a timeout on reads, so that a server that never answers fails the test
/// instead of hanging it.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to serve");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection (or resets it: what arrived
/// before the reset is kept).
fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `GET /` with `Connection: close`; the whole answer.
fn get(addr: SocketAddr) -> String {
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_all(&mut s)
}

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
        (vec!["--header-timeout", "0s"], "--header-timeout"),
        (vec!["--header-timeout", &huge_secs], "--header-timeout"),
        (vec!["--idle-timeout", "2days"], "--idle-timeout"),
        (vec!["--idle-timeout", "-1s"], "--idle-timeout"),
        (vec!["--max-body", "-1"], "--max-body"),
        (vec!["--max-body", "99999999999G"], "--max-body"),
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

#[test]
fn request_bodies_are_capped_with_413() {
    let server = ServeProcess::start(&["--max-body", "64KiB"]);
    let addr = server.addr;
    let hwm_before = server.status_kb("VmHWM");

    // Under the cap: served, and the connection stays usable.
    let mut s = connect(addr);
    let body = vec![b'x'; 60 * 1024];
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let two = read_all(&mut s);
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2, "{two}");

    // Declared above the cap: 413 at once, before a byte of the body is sent, then closed.
    let mut s = connect(addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n")
        .unwrap();
    let r = read_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");

    // Chunked, so the length is unknown: 64 MiB offered, 413 once the cap is passed, and the
    // server does not read (let alone keep) the rest.
    let mut s = connect(addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut reader = s.try_clone().unwrap();
    let answer = std::thread::spawn(move || read_all(&mut reader));
    let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
    let mut sent = 0usize;
    for _ in 0..1024 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break; // closed by the server, as it should be
        }
        sent += 0x10000;
    }
    let r = answer.join().unwrap();
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(
        sent < 64 << 20,
        "the server kept reading: {sent} bytes accepted"
    );
    let hwm_after = server.status_kb("VmHWM");
    assert!(
        hwm_after < hwm_before + 16 * 1024,
        "peak memory grew from {hwm_before} kB to {hwm_after} kB"
    );

    // And it still serves.
    assert!(get(addr).starts_with("HTTP/1.1 200"));
    let summary = server.stop();
    assert!(
        summary.contains("too large 2 (413 / RESOURCE_EXHAUSTED)"),
        "{summary}"
    );
    eprintln!("VmHWM {hwm_before} kB -> {hwm_after} kB; {sent} of 64 MiB written before the close");
}

#[test]
fn out_of_file_descriptors_backs_off_instead_of_spinning() {
    let server = ServeProcess::start_with_nofile(64, &[]);
    let addr = server.addr;
    // More connections than the server has descriptors: the surplus waits in the listen
    // backlog, and every accept() for it fails with EMFILE.
    let conns: Vec<TcpStream> = (0..100).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let cpu_before = server.cpu_time();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    let wall = t.elapsed();
    assert!(
        cpu < Duration::from_millis(300),
        "serve used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );
    // Descriptors come back: it accepts and serves again.
    drop(conns);
    let t = Instant::now();
    let r = get(addr);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let recovered = t.elapsed();
    let summary = server.stop();
    assert!(summary.contains("accept backoffs"), "{summary}");
    eprintln!("CPU {cpu:?} in {wall:?} with the fd limit reached; served again after {recovered:?}; {summary}");
}

/// Waits for the server to close `s`; how long that took. Panics after 10 s (the read timeout).
fn closed_after(mut s: TcpStream, since: Instant) -> (Duration, String) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("not closed after {:?}", since.elapsed())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("not closed after {:?}", since.elapsed())
            }
            Err(_) => break, // reset: closed too
        }
    }
    (since.elapsed(), String::from_utf8_lossy(&out).into_owned())
}

/// Sequential keep-alive requests on one connection for `for_`: (answers, slowest).
fn well_behaved_client(addr: SocketAddr, for_: Duration) -> (u32, Duration) {
    let mut s = connect(addr);
    let (mut n, mut slowest) = (0, Duration::ZERO);
    let mut buf = [0u8; 4096];
    let t = Instant::now();
    while t.elapsed() < for_ {
        let sent = Instant::now();
        s.write_all(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"ok\n") {
            let k = s.read(&mut buf).expect("the good client's answer");
            assert!(k > 0, "the good client's connection was closed");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
        slowest = slowest.max(sent.elapsed());
        n += 1;
    }
    (n, slowest)
}

#[test]
fn slow_request_heads_are_closed_while_a_good_client_is_served() {
    let server = ServeProcess::start(&["--header-timeout", "500ms", "--idle-timeout", "5s"]);
    let addr = server.addr;
    let t = Instant::now();
    let mut slow = Vec::new();
    for i in 0..60 {
        let mut s = connect(addr);
        // A partial HTTP/1.1 head, a partial h2 preface (hyper's protocol detection waits for
        // all 24 bytes), or nothing at all.
        let partial: &[u8] = match i % 3 {
            0 => b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            1 => b"PRI * HTTP/2.0\r\n",
            _ => b"",
        };
        s.write_all(partial).unwrap();
        slow.push(s);
    }
    let good = std::thread::spawn(move || well_behaved_client(addr, Duration::from_millis(1500)));
    let closes: Vec<Duration> = slow.into_iter().map(|s| closed_after(s, t).0).collect();
    let (answered, slowest) = good.join().unwrap();
    let (first, last) = (
        closes.iter().min().copied().unwrap(),
        closes.iter().max().copied().unwrap(),
    );
    assert!(
        first >= Duration::from_millis(450),
        "closed early: {first:?}"
    );
    assert!(last < Duration::from_secs(3), "closed late: {last:?}");
    assert!(answered > 50, "the good client got {answered} answers");
    assert!(
        slowest < Duration::from_millis(300),
        "slowest answer {slowest:?}"
    );
    let summary = server.stop();
    assert!(summary.contains("(60 closed slow or idle)"), "{summary}");
    eprintln!("60 slow heads closed {first:?}..{last:?} after opening; the good client got {answered} answers, slowest {slowest:?}");
}

#[test]
fn garbage_half_open_idle_and_stalled_bodies_are_closed() {
    let server = ServeProcess::start(&["--header-timeout", "1s", "--idle-timeout", "700ms"]);
    let addr = server.addr;

    // Garbage: 400 (hyper's answer to an unparsable head), or a close at the header timeout
    // (empty lines before a head are allowed, so those wait for one), never a hang.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
        &[0u8; 4096],
    ] {
        let mut s = connect(addr);
        s.write_all(junk).unwrap();
        let (took, r) = closed_after(s, Instant::now());
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 400"),
            "{junk:?}: {r}"
        );
        assert!(
            took < Duration::from_millis(1500),
            "{junk:?}: closed after {took:?}"
        );
    }

    // Half-open: the client shuts its write side mid-head, or before a byte: closed at once.
    for partial in [&b"GET / HTTP/1.1\r\nHo"[..], b"", b"PRI * HTTP/2"] {
        let mut s = connect(addr);
        s.write_all(partial).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let (took, r) = closed_after(s, Instant::now());
        assert!(
            took < Duration::from_millis(500),
            "{partial:?}: {took:?} {r}"
        );
    }

    // A whole request, then the write side shut: still answered.
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (_, r) = closed_after(s, Instant::now());
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    // Idle keep-alive: answered, then closed one idle timeout later.
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let (idle, _) = closed_after(s, Instant::now());
    assert!(
        (Duration::from_millis(600)..Duration::from_secs(2)).contains(&idle),
        "idle keep-alive closed after {idle:?}"
    );

    // A body that stops: 408 one idle timeout later, and the connection closed.
    let mut s = connect(addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        .unwrap();
    let (took, r) = closed_after(s, Instant::now());
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    assert!(get(addr).starts_with("HTTP/1.1 200"), "still serves");
    let summary = server.stop();
    eprintln!("idle keep-alive closed after {idle:?}; {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_get_a_goaway() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = ServeProcess::start(&["--idle-timeout", "700ms"]);
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{}/", server.addr))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.expect("h2 answer");
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle h2 connection is closed by the server")
        .unwrap()
        .expect("closed cleanly (GOAWAY)");
    let idle = t.elapsed();
    assert!(idle >= Duration::from_millis(600), "{idle:?}");
    let summary = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(summary.contains("(1 closed slow or idle)"), "{summary}");
    eprintln!("idle h2 connection closed after {idle:?}");
}

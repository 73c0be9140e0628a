#!/usr/bin/env python3
"""Side-by-side benchmark of metronome and the peer load generators that are installed.

Run it through scripts/bench.sh (which builds metronome and can install peers). Scenarios follow
../shared/PEERS.md: nginx with one worker pinned to CPU 1, each generator pinned to CPU 0 under
/usr/bin/time -v, all traffic on 127.0.0.1, every run bounded in time and killed at duration + 30 s.

  A  max throughput, 50 connections, 10 s, GET /
  B  fixed 5000 req/s for 20 s, GET /
  C  1000 req/s for 20 s; the nginx worker is SIGSTOPped at t=5 s for 2 s (coordinated omission)
  D  200 req/s for 10 s against /limited (nginx limit_req 100 r/s, burst 10, nodelay; 429 beyond)
  R  metronome only: RSS at 5000/s for 10 s and for --long (default 5 min)
  M  metronome only: peak RSS with ~3000 connections open at once (1500 req/s for 6 s against
     `metronome serve` stalled at t=2 s for 2 s; target under 64 MiB)
  G  gRPC unary calls vs metronome's own h2c POSTs of the same size, both against `metronome
     serve` on CPU 1 (nginx speaks no gRPC here): max rate (2 connections x 100 streams) and a
     fixed 5000/s; k6's gRPC client beside them when k6 is installed

Figures per run: completed requests, achieved rate, CPU us per request ((user+sys)/completed),
peak RSS, latency percentiles where the tool reports them, and metronome's send-lag p99 and
connections opened (with the peak open at once in the notes).
Output: markdown tables on stdout and in target/bench/results-<time>.md; raw output of every run
in target/bench/raw/.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRONOME = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release" / "metronome"
OUT = ROOT / "target" / "bench"
H1 = "http://127.0.0.1:18080/"
SERVE = "http://127.0.0.1:18090/"
H2 = "http://127.0.0.1:18081/"
LIMITED = "http://127.0.0.1:18080/limited"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  limit_req_zone $binary_remote_addr zone=limited:1m rate=100r/s;
  server {{
    listen 127.0.0.1:18080 backlog=4096;
    # A static file: `return` would answer in the rewrite phase, before limit_req runs.
    location = /limited {{ limit_req zone=limited burst=10 nodelay; limit_req_status 429; root {dir}/www; }}
    location / {{ return 200 "hello\\n"; }}
  }}
  server {{ listen 127.0.0.1:18081 http2; location / {{ return 200 "hello\\n"; }} }}
}}
"""

K6_SCRIPT = """
import http from 'k6/http';
export const options = {
  discardResponseBodies: true,
  scenarios: { s: __ENV.MODE === 'max'
    ? { executor: 'constant-vus', vus: Number(__ENV.VUS), duration: __ENV.DURATION }
    : { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
        duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS), maxVUs: Number(__ENV.VUS) } },
};
export default function () { http.get(__ENV.URL); }
"""

WRK_DELAY = "function delay()\n  return 10\nend\n"


class Nginx:
    """A fresh nginx (one worker, CPU 1) per run, as PEERS.md did."""

    def __init__(self, tmp):
        self.dir = Path(tmp)
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir))
        (self.dir / "www").mkdir(exist_ok=True)
        (self.dir / "www" / "limited").write_text("ok\n")
        self.proc = None

    def __enter__(self):
        if subprocess.run(["curl", "-s", "-o", "/dev/null", H1], timeout=2).returncode == 0:
            raise RuntimeError("something already listens on 127.0.0.1:18080; stop it first")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", "nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited at start (see %s/error.log)" % self.dir)
            try:
                subprocess.run(["curl", "-sf", "-o", "/dev/null", H1], check=True, timeout=1)
                return self
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                time.sleep(0.05)
        raise RuntimeError("nginx did not start (see %s/error.log)" % self.dir)

    def worker_pid(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return int(out.split()[0])

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Serve:
    """metronome's built-in target on CPU 1, started fresh per run (its --stall counts from its start)."""

    def __init__(self, args, log):
        self.args, self.log, self.proc = args, log, None

    def __enter__(self):
        if subprocess.run(["curl", "-s", "-o", "/dev/null", SERVE], timeout=2).returncode == 0:
            raise RuntimeError("something already listens on 127.0.0.1:18090; stop it first")
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", str(METRONOME), "serve", "--addr", "127.0.0.1:18090"] + self.args,
            stdout=self.out, stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError("metronome serve exited at start (see %s)" % self.log)
            # A TCP connect, not a request: a request would be counted by the target.
            if subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/18090"], stderr=subprocess.DEVNULL).returncode == 0:
                return self
            time.sleep(0.02)
        raise RuntimeError("metronome serve did not start (see %s)" % self.log)

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def timed(cmd, seconds, raw_name, env=None, during=None):
    """Runs cmd on CPU 0 under /usr/bin/time -v; returns (stdout, stderr, user+sys s, rss KiB)."""
    full = ["taskset", "-c", "0", "/usr/bin/time", "-v"] + cmd
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    if during:
        during(p)
    try:
        out, err = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    (OUT / "raw" / (raw_name + ".out")).write_text(" ".join(cmd) + "\n\n" + out + "\n--- stderr ---\n" + err)
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", err).group(1))
    sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", err).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    return out, err, user + sys_, rss


def dur_ms(text):
    """'1.23ms' / '850us' / '1.2s' / '0.0012 secs' -> milliseconds."""
    m = re.match(r"([\d.]+)\s*(us|µs|ms|s|secs)?", text.strip())
    v, unit = float(m.group(1)), (m.group(2) or "s")
    return v * {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "secs": 1e3}[unit]


# Each parser returns a dict: completed, and optionally p50..max (ms), lag99 (ms), note.
def parse_metronome(out, err, json_path):
    # Reads only what it needs: later schema versions add fields (v3: connections, connect_us,
    # latency_by_outcome_us, errors), and those older reports lack are optional here.
    r = json.loads(Path(json_path).read_text())
    lat, counts = r["latency_us"], r["counts"]
    notes = [] if r["verdict"]["trustworthy"] else ["UNTRUSTWORTHY"]
    notes.append("429s %d" % int(r.get("status_codes", {}).get("429", 0)))
    failed = {k: counts.get(k, 0) for k in ["timeout", "connect_error", "transport_error", "dropped"]}
    notes += ["%s %d" % (k, v) for k, v in failed.items() if v]
    res = {"completed": counts["completed"], "lag99": r["send_lag_us"]["p99"] / 1e3}
    conns = r.get("connections")
    if conns:
        res["conns"] = conns["opened"]
        notes.append("peak open %d" % conns.get("peak_open", 0))
    res["note"] = "; ".join(notes)
    for k, name in [("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")]:
        res[name] = lat[k] / 1e3
    return res


def parse_k6_grpc(out, err, summary_path):
    m = json.loads(Path(summary_path).read_text())["metrics"]
    d = m.get("grpc_req_duration", {})
    its = m.get("iterations", {}).get("count", 0)
    res = {"completed": int(its), "note": "k6 gRPC, measured from the send"}
    for k, name in [("med", "p50"), ("p(90)", "p90"), ("p(95)", "p95"), ("p(99)", "p99"), ("p(99.9)", "p99.9"), ("max", "max")]:
        if k in d:
            res[name] = d[k]
    dropped = m.get("dropped_iterations", {}).get("count", 0)
    if dropped:
        res["note"] += "; %d iterations dropped" % dropped
    return res


def parse_oha(out, err, _):
    r = json.loads(out)
    codes = r.get("statusCodeDistribution", {})
    res = {"completed": sum(codes.values()), "note": "429s %d" % codes.get("429", 0)}
    pct = r.get("latencyPercentiles", {})
    for k in ["p50", "p90", "p95", "p99", "p99.9"]:
        if pct.get(k) is not None:
            res[k] = pct[k] * 1e3
    if r.get("summary", {}).get("slowest") is not None:
        res["max"] = r["summary"]["slowest"] * 1e3
    return res


def parse_wrk(out, err, _):
    res = {"completed": int(re.search(r"(\d+) requests in", out).group(1))}
    for q, name in [("50", "p50"), ("90", "p90"), ("99", "p99")]:
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % q, out, re.M)
        if m:
            res[name] = dur_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["note"] = "non-2xx %s" % (m.group(1) if m else 0)
    return res


def parse_hey(out, err, _):
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    res = {"completed": sum(codes.values()), "note": "429s %d" % codes.get(429, 0)}
    for q, name in [("50", "p50"), ("90", "p90"), ("95", "p95"), ("99", "p99")]:
        m = re.search(r"%s%%+ in ([\d.]+) secs" % q, out)
        if m:
            res[name] = float(m.group(1)) * 1e3
    m = re.search(r"Slowest:\s+([\d.]+) secs", out)
    if m:
        res["max"] = float(m.group(1)) * 1e3
    return res


def parse_h2load(out, err, _):
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    res = {"completed": int(m.group(1)) if m else 0}
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx", out)
    m2 = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    res["note"] = ("4xx %s; " % m.group(3) if m else "") + ("mean %s (no percentiles)" % m2.group(3) if m2 else "")
    if m2:
        res["max"] = dur_ms(m2.group(2))
    return res


def parse_k6(out, err, summary_path):
    r = json.loads(Path(summary_path).read_text())["metrics"]
    d = r.get("http_req_duration", {})
    res = {"completed": int(r.get("http_reqs", {}).get("count", 0))}
    for k, name in [("med", "p50"), ("p(90)", "p90"), ("p(95)", "p95"), ("p(99)", "p99"), ("p(99.9)", "p99.9"), ("max", "max")]:
        if k in d:
            res[name] = d[k]
    dropped = int(r.get("dropped_iterations", {}).get("count", 0))
    res["note"] = "dropped_iterations %d" % dropped
    return res


K6_GRPC_SCRIPT = r"""
import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load([__ENV.PROTO_DIR], 'metronome/demo/v1/demo.proto');
export const options = {
  scenarios: { s: __ENV.MODE === 'max'
    ? { executor: 'constant-vus', vus: Number(__ENV.VUS), duration: __ENV.DURATION }
    : { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
        duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS) } },
};
export default function () {
  if (__ITER === 0) { client.connect(__ENV.ADDR, { plaintext: true }); }
  client.invoke('metronome.demo.v1.Demo/Ping', { message: 'hi' });
}
"""


class Runner:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, Path(tmp)
        self.scale = 0.25 if args.quick else 1.0
        (self.tmp / "k6.js").write_text(K6_SCRIPT)
        (self.tmp / "delay.lua").write_text(WRK_DELAY)
        self.have = {t: shutil.which(t) is not None for t in ["wrk", "oha", "hey", "h2load", "k6"]}
        self.have["metronome"] = METRONOME.exists()
        only = set(args.only.split(",")) if args.only else None
        self.tools = [t for t in ["metronome", "wrk", "oha", "hey", "h2load", "k6"] if self.have[t] and (not only or t in only)]

    def secs(self, base):
        return max(2, int(round(base * self.scale)))

    def one(self, scenario, tool, label, cmd, seconds, parser, aux=None, env=None, during=None, target=None):
        rows = []
        for i in range(self.args.runs):
            with (target() if target else Nginx(self.tmp / "nginx")) as ngx:
                hook = (lambda p: during(p, ngx)) if during else None
                out, err, cpu, rss = timed(cmd, seconds, "%s-%s-%d" % (scenario, label, i), env, hook)
            try:
                res = parser(out, err, aux)
            except Exception as e:  # a peer's output format changed: keep going, say so
                res = {"completed": 0, "note": "could not parse output: %s" % e}
            res["cpu_us"] = cpu * 1e6 / res["completed"] if res["completed"] else float("nan")
            res["rss"] = rss / 1024
            res["rate"] = res["completed"] / seconds
            rows.append(res)
        return label, rows

    # ---- scenarios -------------------------------------------------------------------------
    def metronome(self, scenario, url, args, seconds, extra_label="", during=None, target=None):
        js = self.tmp / ("m-%s%s.json" % (scenario, extra_label))
        cmd = [str(METRONOME), "run", url, "-q", "--json", str(js)] + args
        return self.one(scenario, "metronome", "metronome" + extra_label, cmd, seconds, parse_metronome, js,
                        during=during, target=target)

    def k6(self, scenario, url, mode, rate, vus, seconds, during=None, label="k6"):
        summary = self.tmp / ("k6-%s.json" % scenario)
        env = {"MODE": mode, "RATE": str(rate), "VUS": str(vus), "DURATION": "%ds" % seconds, "URL": url,
               "K6_NO_USAGE_REPORT": "true"}
        cmd = ["k6", "run", "-q", "--no-color", "--summary-export", str(summary),
               "--summary-trend-stats", "avg,min,med,max,p(90),p(95),p(99),p(99.9)", str(self.tmp / "k6.js")]
        return self.one(scenario, "k6", label, cmd, seconds, parse_k6, summary, env=env, during=during)

    def scenario_a(self):
        s = self.secs(10)
        runs = []
        for tool in self.tools:
            if tool == "metronome":
                runs.append(self.metronome("A", H1, ["-r", "max", "-d", "%ds" % s, "-c", "50"], s))
            elif tool == "wrk":
                runs.append(self.one("A", tool, tool, ["wrk", "-t1", "-c50", "-d%ds" % s, "--latency", H1], s, parse_wrk))
            elif tool == "oha":
                runs.append(self.one("A", tool, tool, ["oha", "--no-tui", "--output-format", "json", "-z", "%ds" % s, "-c", "50", H1], s, parse_oha))
            elif tool == "hey":
                runs.append(self.one("A", tool, tool, ["hey", "-z", "%ds" % s, "-c", "50", H1], s, parse_hey))
            elif tool == "h2load":
                runs.append(self.one("A", tool, tool, ["h2load", "-t1", "-c", "50", "-D", str(s), "--h1", H1], s, parse_h2load))
            elif tool == "k6":
                runs.append(self.k6("A", H1, "max", 0, 50, s))
        return "A: max throughput, 50 connections, %d s" % s, runs

    def scenario_b(self):
        s = self.secs(20)
        runs = []
        for tool in self.tools:
            if tool == "metronome":
                runs.append(self.metronome("B", H1, ["-r", "5000", "-d", "%ds" % s, "-c", "50"], s))
                runs.append(self.metronome("B", H1, ["-r", "5000", "-d", "%ds" % s, "-c", "50", "--pacer-quantum", "1ms"], s, "-quantum1ms"))
            elif tool == "oha":
                runs.append(self.one("B", tool, "oha-lc", ["oha", "--no-tui", "--output-format", "json", "-z", "%ds" % s, "-c", "50", "-q", "5000", "--latency-correction", H1], s, parse_oha))
            elif tool == "hey":
                runs.append(self.one("B", tool, tool, ["hey", "-z", "%ds" % s, "-c", "50", "-q", "100", H1], s, parse_hey))
            elif tool == "h2load":
                runs.append(self.one("B", tool, tool, ["h2load", "-t1", "-c", "50", "-D", str(s), "--h1", "--rps", "100", H1], s, parse_h2load))
            elif tool == "k6":
                runs.append(self.k6("B", H1, "rate", 5000, 100, s, label="k6-vu100"))
        return "B: fixed 5000 req/s, %d s" % s, runs

    def scenario_c(self):
        s = self.secs(20)
        stall_at, stall_for = (5.0, 2.0) if not self.args.quick else (1.5, 1.0)
        times = []

        def stall(p, ngx):
            pid = ngx.worker_pid()
            t0 = time.monotonic()
            time.sleep(stall_at)
            os.kill(pid, signal.SIGSTOP)
            t1 = time.monotonic() - t0
            try:
                time.sleep(stall_for)
            finally:
                os.kill(pid, signal.SIGCONT)
            times.append((t1, time.monotonic() - t0))

        runs = []
        for tool in self.tools:
            if tool == "metronome":
                # Default flags: 50 warm connections, more opened on demand, so every request due
                # during the stall is really on the wire (open loop at the socket, as k6 with
                # 2550 VUs is).
                runs.append(self.metronome("C", H1, ["-r", "1000", "-d", "%ds" % s], s, during=stall))
                # A fixed pool of 50 like the peers: requests due during the stall wait in the
                # generator (send lag, verdict untrustworthy, exit 3) but are timed from their
                # intended start.
                runs.append(self.metronome("C", H1, ["-r", "1000", "-d", "%ds" % s, "-c", "50", "--max-connections", "50"],
                                           s, "-pool50", during=stall))
            elif tool == "wrk":
                runs.append(self.one("C", tool, "wrk-paced", ["wrk", "-t1", "-c10", "-d%ds" % s, "--latency", "-s", str(self.tmp / "delay.lua"), H1], s, parse_wrk, during=stall))
            elif tool == "oha":
                runs.append(self.one("C", tool, "oha-lc", ["oha", "--no-tui", "--output-format", "json", "-z", "%ds" % s, "-c", "50", "-q", "1000", "--latency-correction", H1], s, parse_oha, during=stall))
            elif tool == "hey":
                runs.append(self.one("C", tool, tool, ["hey", "-z", "%ds" % s, "-c", "10", "-q", "100", H1], s, parse_hey, during=stall))
            elif tool == "h2load":
                runs.append(self.one("C", tool, tool, ["h2load", "-t1", "-c", "10", "-D", str(s), "--h1", "--rps", "100", H1], s, parse_h2load, during=stall))
            elif tool == "k6":
                runs.append(self.k6("C", H1, "rate", 1000, 2550, s, during=stall))
        d, t = stall_for, float(s)
        expect = "expected (CO-correct, %g s stall in %g s): p95 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms" % (
            d, t, max(0, d - t * 0.05) * 1e3, (d - t * 0.01) * 1e3, (d - t * 0.001) * 1e3, d * 1e3)
        stalls = "; ".join("stop %.3f s, cont %.3f s" % x for x in times)
        return "C: 1000 req/s, %d s, nginx SIGSTOP at %g s for %g s\n\n%s\n\nactual stalls: %s" % (s, stall_at, stall_for, expect, stalls), runs

    def scenario_d(self):
        s = self.secs(10)
        runs = []
        for tool in self.tools:
            if tool == "metronome":
                runs.append(self.metronome("D", LIMITED, ["-r", "200", "-d", "%ds" % s, "-c", "10"], s))
            elif tool == "oha":
                runs.append(self.one("D", tool, tool, ["oha", "--no-tui", "--output-format", "json", "-z", "%ds" % s, "-c", "10", "-q", "200", LIMITED], s, parse_oha))
            elif tool == "hey":
                runs.append(self.one("D", tool, tool, ["hey", "-z", "%ds" % s, "-c", "2", "-q", "100", LIMITED], s, parse_hey))
            elif tool == "h2load":
                runs.append(self.one("D", tool, tool, ["h2load", "-t1", "-c", "2", "-D", str(s), "--h1", "--rps", "100", LIMITED], s, parse_h2load))
        return "D: 200 req/s for %d s against /limited (expected ~%d x 200, the rest 429)" % (s, 100 * s + 10), runs

    def scenario_g(self):
        # Same server, same connections and streams, same message bytes on the wire: the h2c row
        # POSTs the 11 bytes of the framed PingRequest that the gRPC row sends as a call.
        s = self.secs(10)
        target = lambda: Serve([], OUT / "raw" / "G-serve.log")
        grpc_url = "grpc://127.0.0.1:18090"
        call = ["--call", "metronome.demo.v1.Demo/Ping", "--proto", str(ROOT / "proto/metronome/demo/v1/demo.proto"),
                "-b", '{"message":"hi"}']
        h2c = ["--http2", "-X", "POST", "-b", "0123456789a"]
        conns = ["-c", "2", "--max-connections", "2", "--max-streams", "100"]
        runs = []
        for label, rate in [("max", "max"), ("5000", "5000")]:
            runs.append(self.metronome("G", SERVE, h2c + conns + ["-r", rate, "-d", "%ds" % s], s, "-h2c-" + label, target=target))
            runs.append(self.metronome("G", grpc_url, call + conns + ["-r", rate, "-d", "%ds" % s], s, "-grpc-" + label, target=target))
        if "k6" in self.tools:
            (self.tmp / "k6-grpc.js").write_text(K6_GRPC_SCRIPT)
            for label, mode, rate in [("max", "max", 0), ("5000", "rate", 5000)]:
                summary = self.tmp / ("k6-G-%s.json" % label)
                env = {"MODE": mode, "RATE": str(rate), "VUS": "200" if mode == "max" else "100", "DURATION": "%ds" % s,
                       "ADDR": "127.0.0.1:18090", "PROTO_DIR": str(ROOT / "proto"), "K6_NO_USAGE_REPORT": "true"}
                cmd = ["k6", "run", "-q", "--no-color", "--summary-export", str(summary),
                       "--summary-trend-stats", "avg,min,med,max,p(90),p(95),p(99),p(99.9)", str(self.tmp / "k6-grpc.js")]
                runs.append(self.one("G", "k6", "k6-grpc-" + label, cmd, s, parse_k6_grpc, summary, env=env, target=target))
        return "G: gRPC unary vs h2c against `metronome serve`, 2 connections x 100 streams, %d s" % s, runs

    def scenario_r(self):
        runs = [self.metronome("R", H1, ["-r", "5000", "-d", "10s", "-c", "50"], 10, "-10s")]
        if not self.args.quick:
            long_s = int(self.args.long)
            runs.append(self.metronome("R", H1, ["-r", "5000", "-d", "%ds" % long_s, "-c", "50"], long_s, "-%ds" % long_s))
        return "R: metronome RSS does not grow with run length (5000 req/s)", runs

    def scenario_m(self):
        # The built-in target stalls from t=2 s to t=4 s of its life; at 1500/s ~3000 requests
        # fall due meanwhile, each on a connection of its own. Its default queue (1024) plus 1024
        # workers would shed beyond 2048 in flight, hence --queue. Same length with --quick.
        rate, s = 1500, 6
        serve = ["--stall", "2s+2s", "--queue", "8192"]
        target = lambda: Serve(serve, OUT / "raw" / "M-serve.log")
        runs = [self.metronome("M", SERVE, ["-r", str(rate), "-d", "%ds" % s], s, target=target)]
        return ("M: metronome RSS with ~3000 connections open (%d req/s for %d s against `metronome serve %s`; "
                "target < 64 MiB)" % (rate, s, " ".join(serve))), runs


def cell(rows, key, fmt):
    vals = [r[key] for r in rows if key in r and r[key] == r[key]]
    if not vals:
        return "-"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt % med) + " (" + (fmt % min(vals)) + ".." + (fmt % max(vals)) + ")"


def table(title, runs):
    cols = [("completed", "%d"), ("rate", "%.0f"), ("cpu_us", "%.1f"), ("rss", "%.1f"), ("p50", "%.3f"), ("p90", "%.3f"),
            ("p95", "%.3f"), ("p99", "%.3f"), ("p99.9", "%.1f"), ("max", "%.1f"), ("lag99", "%.3f"), ("conns", "%d")]
    head = ["tool", "runs", "completed", "req/s", "CPU µs/req", "RSS MiB", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms",
            "send-lag p99 ms", "conns opened", "notes"]
    lines = ["### " + title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, rows in runs:
        notes = "; ".join(sorted({r.get("note", "") for r in rows if r.get("note")}))
        lines.append("| " + " | ".join([label, str(len(rows))] + [cell(rows, k, f) for k, f in cols] + [notes]) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="quarter-length runs, no long RSS run")
    ap.add_argument("--runs", type=int, default=1, help="repeat each run N times (median (min..max))")
    ap.add_argument("--only", default="", help="comma-separated tools, e.g. metronome,oha")
    ap.add_argument("--scenarios", default="A,B,C,D,R,M,G", help="comma-separated scenarios")
    ap.add_argument("--long", default="300", help="seconds for the long RSS run (scenario R)")
    args = ap.parse_args()
    if shutil.which("nginx") is None and set(args.scenarios.split(",")) - {"G", "M"}:
        sys.exit("nginx is not installed: run scripts/bench.sh --install")
    (OUT / "raw").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "nginx").mkdir()
        r = Runner(args, tmp)
        missing = [t for t, ok in r.have.items() if not ok]
        header = "# metronome benchmark, %s\n\n%s; tools: %s; skipped (not installed): %s\n" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), os.uname().nodename, ", ".join(r.tools), ", ".join(missing) or "none")
        print(header, flush=True)
        parts = [header]
        for sc in args.scenarios.split(","):
            title, runs = getattr(r, "scenario_" + sc.strip().lower())()
            t = table(title, runs)
            print(t, flush=True)
            parts.append(t)
    path = OUT / ("results-%s.md" % time.strftime("%Y%m%d-%H%M%S"))
    path.write_text("\n".join(parts))
    print("written to %s (raw outputs in %s)" % (path, OUT / "raw"))


if __name__ == "__main__":
    main()

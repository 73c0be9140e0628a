#!/usr/bin/env bash
# Checks metronome's gRPC client against an independent server: Python grpcio (PyPI), serving
# the demo schema with reflection (scripts/interop/grpc_server.py). Unary, server streaming,
# client streaming and bidi calls; shedding and retries with pushback; the coordinated-omission
# stall; TLS. Each check compares metronome's report with what is known to have happened (the
# server's own counts, the analytic tail of a stall) and prints PASS or FAIL with the figures.
#
# Needs: pip install grpcio grpcio-tools grpcio-reflection; openssl.
# Usage: scripts/interop-grpc.sh [METRONOME_BINARY]   (default: target/release/metronome)
set -u
BIN=${1:-target/release/metronome}
HERE=$(cd "$(dirname "$0")" && pwd)
PROTO_DIR="$HERE/../proto"
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT
python3 -c 'import grpc, grpc_tools, grpc_reflection' 2>/dev/null || {
  echo "needs grpcio: pip install grpcio grpcio-tools grpcio-reflection" >&2; exit 2; }
python3 -m grpc_tools.protoc -I"$PROTO_DIR" --python_out="$DIR" --grpc_python_out="$DIR" \
  metronome/demo/v1/demo.proto || exit 2
fails=0

# start NAME PORT [server options]: a grpcio server, its counts printed to $DIR/NAME.out on stop.
start() {
  local name=$1 port=$2; shift 2
  python3 "$HERE/interop/grpc_server.py" "$DIR" "$port" "$@" > "$DIR/$name.out" 2>"$DIR/$name.err" &
  PIDS+=($!); eval "${name}_PID=$!"
  for _ in $(seq 50); do grep -q listening "$DIR/$name.out" && return; sleep 0.1; done
  echo "server $name did not start"; cat "$DIR/$name.err"; exit 2
}
# stop NAME: the server's counts as JSON.
stop() { local pid; eval "pid=\$${1}_PID"; kill -TERM "$pid"; wait "$pid" 2>/dev/null; tail -1 "$DIR/$1.out"; }
# check NAME REPORT SERVER_COUNTS PYTHON_EXPRESSION: r is the report, s the server's counts.
check() {
  python3 - "$@" <<'EOF'
import json, sys
name, report, counts, expr = sys.argv[1:5]
r = json.load(open(report)); s = json.loads(counts or "{}")
g = r.get("grpc") or {}; c = r["counts"]; lat = r["latency_us"]
ok = eval(expr)
codes = r.get("grpc_status_codes")
print(f"{'PASS' if ok else 'FAIL'} {name}: sent {c['sent']}, server {s}, codes {codes}, "
      f"latency p50 {lat['p50']/1000:.2f} ms p99 {lat['p99']/1000:.2f} ms, "
      f"send-lag p99 {r['send_lag_us']['p99']} µs, messages/call {g.get('messages_per_call')}")
sys.exit(0 if ok else 1)
EOF
  [ $? -eq 0 ] || fails=$((fails + 1))
}
run() { "$BIN" run -q "$@" > /dev/null; }
PING=metronome.demo.v1.Demo/Ping

start plain 18951
U=grpc://127.0.0.1:18951
run $U --call $PING -b '{"message":"hi"}' -r 500 -d 5s --json "$DIR/unary.json"
run $U --call metronome.demo.v1.Demo/Stream -b '{"count":5,"intervalMs":2}' -r 100 -d 3s --json "$DIR/stream.json"
run $U --call metronome.demo.v1.Demo/Collect --messages 8 -b '{"message":"x"}' -r 100 -d 3s --json "$DIR/collect.json"
run $U --call metronome.demo.v1.Demo/Chat --messages 8 -b '{"message":"x"}' -r 100 -d 3s --json "$DIR/chat.json"
counts=$(stop plain)
check "unary, schema by reflection" "$DIR/unary.json" "$counts" \
  'c["ok"] == c["sent"] == 2500 and s["Ping"] == 2500 and r["verdict"]["trustworthy"]'
check "server streaming" "$DIR/stream.json" "$counts" \
  'c["ok"] == 300 == s["Stream"] and g["messages"] == 1500 and g["time_to_first_message_us"]["p50"] < lat["p50"]'
check "client streaming" "$DIR/collect.json" "$counts" \
  'c["ok"] == 300 == s["Collect"] and g["flow_control_wait_us"]["count"] == 300 * 7'
check "bidi (server replies as it reads)" "$DIR/chat.json" "$counts" \
  'c["ok"] == 300 == s["Chat"] and g["messages"] == 2400'

start shed 18952 --shed 0.3 --delay 0.002
U=grpc://127.0.0.1:18952
run $U --call $PING -r 300 -d 5s --json "$DIR/shed.json"
run $U --call $PING -r 300 -d 5s --retry 'on=rejected attempts=3 backoff=fixed:10ms jitter=none' --json "$DIR/retry.json"
counts=$(stop shed)
check "shedding: UNAVAILABLE is rejected, counted per code" "$DIR/shed.json" "$counts" \
  'abs(c["rejected"] / c["sent"] - 0.3) < 0.05 and r["grpc_status_codes"]["UNAVAILABLE"] == c["rejected"]'
# Three attempts at a 30 % shed: 1 + 0.3 + 0.09 = 1.39 attempts per request; the server saw
# both runs (1 500 calls, then every attempt).
check "retries: amplification 1 + p + p² with pushback" "$DIR/retry.json" "$counts" \
  'abs(r["retry"]["amplification"] - 1.39) < 0.06 and s["Ping"] == 1500 + c["sent"]'

# A 2 s stall 3 s into a 10 s run at 200/s: from intended start, p95 = 1.5 s, p99 = 1.9 s.
start stall 18953 --stall 3+2
run grpc://127.0.0.1:18953 --call $PING -r 200 -d 10s --json "$DIR/stall.json"
counts=$(stop stall)
check "coordinated omission: a 2 s stall's tail" "$DIR/stall.json" "$counts" \
  'abs(lat["p95"] / 1e6 - 1.5) < 0.15 and abs(lat["p99"] / 1e6 - 1.9) < 0.15 and r["send_lag_us"]["p99"] < 5000'

# TLS: a leaf certificate for localhost from a throw-away CA.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/ca.key" -out "$DIR/ca.pem" -days 1 \
  -subj "/CN=interop CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$DIR/leaf.key" -out "$DIR/leaf.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$DIR/ext.cnf"
openssl x509 -req -in "$DIR/leaf.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
  -out "$DIR/leaf.pem" -days 1 -extfile "$DIR/ext.cnf" 2>/dev/null
start tls 18954 --tls "$DIR/leaf.pem" "$DIR/leaf.key"
run grpcs://localhost:18954 --cacert "$DIR/ca.pem" --call $PING -r 100 -d 2s --json "$DIR/tls.json"
"$BIN" run -q grpcs://localhost:18954 --call $PING -r 10 -n 1 2>"$DIR/untrusted.err"; untrusted=$?
counts=$(stop tls)
check "grpcs with --cacert; refused without it (exit $untrusted)" "$DIR/tls.json" "$counts" \
  "c['ok'] == 200 == s['Ping'] and $untrusted == 2"

echo "interop with grpcio $(python3 -c 'import grpc; print(grpc.__version__)'): $fails failed"
exit $((fails > 0))

#!/usr/bin/env bash
# Measures metronome's baseline gate with its default settings (docs/ci.md):
#  - false alarms over N A/A comparisons: the same `serve` (20 ms of work per request) run twice;
#  - detection of an injected +20 % service-time regression (a `serve` doing 24 ms) over N pairs.
# Usage: scripts/gate-aa.sh [METRONOME_BINARY] [N]   (default: target/release/metronome, 20)
set -u
BIN=${1:-target/release/metronome}
N=${2:-20}
RATE=${RATE:-300}
DUR=${DUR:-3s}
DIR=$(mktemp -d)
trap 'kill $BASE_PID $SLOW_PID 2>/dev/null; rm -rf "$DIR"' EXIT

"$BIN" serve --addr 127.0.0.1:18931 --service-time "${BASE_MS:-20}ms" 2>/dev/null & BASE_PID=$!
"$BIN" serve --addr 127.0.0.1:18932 --service-time "${SLOW_MS:-24}ms" 2>/dev/null & SLOW_PID=$!
sleep 0.5
# One discarded run each: the first connections and page faults are not what is measured.
"$BIN" run http://127.0.0.1:18931/ -r "$RATE" -d 1s -q >/dev/null
"$BIN" run http://127.0.0.1:18932/ -r "$RATE" -d 1s -q >/dev/null

run() { # URL OUT
  "$BIN" run "$1" -r "$RATE" -d "$DUR" -q --json "$2" >/dev/null
  local rc=$?
  [ $rc -eq 0 ] || echo "run $2 exited $rc (untrustworthy runs are not comparisons)" >&2
}

aa_alarms=0; aa_untrusted=0; reg_caught=0; reg_untrusted=0
for i in $(seq 1 "$N"); do
  run http://127.0.0.1:18931/ "$DIR/a$i.json"
  run http://127.0.0.1:18931/ "$DIR/b$i.json"
  run http://127.0.0.1:18932/ "$DIR/s$i.json"
  "$BIN" compare "$DIR/a$i.json" "$DIR/b$i.json" > "$DIR/aa$i.txt"; rc=$?
  case $rc in 1) aa_alarms=$((aa_alarms + 1)); echo "A/A $i: FALSE ALARM"; grep REGRESSION "$DIR/aa$i.txt";; 3) aa_untrusted=$((aa_untrusted + 1));; esac
  "$BIN" compare "$DIR/a$i.json" "$DIR/s$i.json" > "$DIR/reg$i.txt"; rc=$?
  case $rc in 1) reg_caught=$((reg_caught + 1));; 3) reg_untrusted=$((reg_untrusted + 1));; *) echo "regression $i: MISSED"; cat "$DIR/reg$i.txt";; esac
  change() { grep "^  $1 " "$2" | grep -o '[+-][0-9.]*% \[[^]]*\]' | head -1; }
  echo "pair $i: A/A latency.p99 $(change latency.p99 "$DIR/aa$i.txt"), service_time.p50 $(change service_time.p50 "$DIR/aa$i.txt"); +20%: service_time.p50 $(change service_time.p50 "$DIR/reg$i.txt"), latency.p99 $(change latency.p99 "$DIR/reg$i.txt")"
done
echo "A/A comparisons: $N, false alarms: $aa_alarms, untrustworthy: $aa_untrusted"
echo "+20% regressions: $N, caught: $reg_caught, untrustworthy: $reg_untrusted"

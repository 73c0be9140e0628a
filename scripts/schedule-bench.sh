#!/usr/bin/env bash
# Cost of generating intended start times, per ticket, for every shape (uniform and Poisson
# arrivals). Runs the ignored `schedule_cost` unit test in release mode; see docs/profiles.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --lib -- --ignored schedule_cost --nocapture 2>&1 \
  | grep -v -E '^(running|test |$)|test result|Finished|Running|Compiling'

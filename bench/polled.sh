#!/usr/bin/env bash
# Scenario (a) with and without the management API being polled (see bench/polled.py).
#   bench/polled.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
python_bin="$(scripts/python-env.sh)"
exec "$python_bin" bench/polled.py "$@"

#!/usr/bin/env bash
# MQTT throughput, Warren beside Debian's mosquitto (see bench/mqtt.py).
#   bench/mqtt.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
scripts/mqtt-test-env.sh --broker >/dev/null
exec python3 bench/mqtt.py "$@"

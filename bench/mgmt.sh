#!/usr/bin/env bash
# Management API and Prometheus scrape times at 10k/100k queues, Warren vs
# RabbitMQ (see bench/mgmt.py). Not a test.
#   bench/mgmt.sh [QUEUES ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
python_bin="$(scripts/python-env.sh)"
exec "$python_bin" bench/mgmt.py "$@"

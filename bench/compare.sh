#!/usr/bin/env bash
# Side-by-side benchmark: Warren vs RabbitMQ (Debian's rabbitmq-server) on
# this machine, same load generator (warren-perf), alternating runs.
# Prints a table (and writes bench/results-<date>.json). Not a test.
#
#   bench/compare.sh              all scenarios and resource checks
#   bench/compare.sh a b e        only these scenarios
#   SECONDS_PER_RUN=5 bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "installing rabbitmq-server (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
# The package starts no service here (no systemd); make sure nothing of ours lingers.
python_bin="$(scripts/python-env.sh)"
ulimit -n "$(ulimit -Hn)" || true
exec "$python_bin" bench/compare.py "$@"

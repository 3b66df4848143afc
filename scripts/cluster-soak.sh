#!/usr/bin/env bash
# The long form of the cluster soak (tests/cluster/soak.py): three warren nodes with a partition
# proxy on every link, faults cycling (SIGKILL, SIGSTOP, cuts, blackholes, one-way loss) while a
# client per node changes definitions; then every node must hold exactly what was acknowledged.
#   scripts/cluster-soak.sh [SECONDS] [SEED]     (default 300 s, a random seed; the report says it)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
seed="${2:-}"
cargo build --bins
scripts/python-env.sh >/dev/null
WARREN_BIN="$PWD/target/debug/warren" WARRENCTL="$PWD/target/debug/warrenctl" \
    .venv/bin/python tests/cluster/soak.py "$seconds" $seed

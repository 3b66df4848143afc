#!/usr/bin/env bash
# Before/after benchmark of two Warren builds in one sitting (see bench/ab.py).
#   bench/ab.sh /path/to/base/warren [a b f ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
python_bin="$(scripts/python-env.sh)"
exec "$python_bin" bench/ab.py "$@"

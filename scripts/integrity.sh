#!/usr/bin/env bash
# The long form of the end-to-end integrity test: mixed publishers and
# consumers (sizes 0 B to 16 MiB, confirms, persistence, nack/requeue,
# cancels, vanishing clients) for SECONDS of load, every body verified.
# Usage: scripts/integrity.sh [SECONDS]   (default 600; CI runs 60 s)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
WARREN_INTEGRITY_SECS="$secs" exec cargo test --release -p warren-server --test integrity -- --nocapture

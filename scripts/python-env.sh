#!/usr/bin/env bash
# Idempotently create ./.venv and install the Python test requirements.
# Usage: scripts/python-env.sh        (prints the venv's python path on success)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tests/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import pika, pytest' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
    echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"

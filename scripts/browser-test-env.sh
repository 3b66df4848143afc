#!/usr/bin/env bash
# Idempotently install what the UI browser test needs: Debian's Chromium (/usr/bin/chromium)
# and tests/browser's npm dependencies (playwright-core, pinned by package-lock.json).
# Usage: scripts/browser-test-env.sh        (prints the Chromium path on success)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/browser"
STAMP="$DIR/node_modules/.package-lock.sha256"
CHROMIUM=/usr/bin/chromium

if [ ! -x "$CHROMIUM" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y chromium >&2; then
        apt-get update >&2
        apt-get install -y chromium >&2
    fi
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y nodejs npm >&2 || { apt-get update >&2; apt-get install -y nodejs npm >&2; }
fi

want="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || [ ! -d "$DIR/node_modules/playwright-core" ]; then
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$STAMP"
fi
echo "$CHROMIUM"

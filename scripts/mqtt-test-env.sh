#!/usr/bin/env bash
# Idempotently install what the MQTT tests need besides paho-mqtt (from requirements.txt):
# Debian's mosquitto-clients (mosquitto_pub, mosquitto_sub). With --broker, also Debian's
# mosquitto broker (bench/mqtt.sh compares against it).
# Usage: scripts/mqtt-test-env.sh [--broker]      (prints the mosquitto_sub path on success)
set -euo pipefail
want=(mosquitto-clients)
[ "${1:-}" = "--broker" ] && want+=(mosquitto)
missing=()
for p in "${want[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
fi
command -v mosquitto_sub

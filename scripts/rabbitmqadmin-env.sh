#!/usr/bin/env bash
# Idempotently provide RabbitMQ's own `rabbitmqadmin` (a Python script in
# Debian's rabbitmq-server package) for the management API tests, without
# installing RabbitMQ or Erlang: the package is downloaded and only the
# script is extracted, to target/tools/rabbitmqadmin.
# Usage: scripts/rabbitmqadmin-env.sh      (prints the script's path)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/tools/rabbitmqadmin"
if [ -x "$OUT" ]; then
    echo "$OUT"
    exit 0
fi
mkdir -p "$(dirname "$OUT")"
if [ -x /usr/bin/rabbitmqadmin ]; then
    cp /usr/bin/rabbitmqadmin "$OUT"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # apt-get download runs as the _apt user: give it a directory it can write.
    chmod 777 "$tmp"
    if ! (cd "$tmp" && apt-get download rabbitmq-server >&2); then
        apt-get update >&2
        (cd "$tmp" && apt-get download rabbitmq-server >&2)
    fi
    dpkg-deb -x "$tmp"/rabbitmq-server_*.deb "$tmp/x"
    cp "$tmp/x/usr/lib/rabbitmq/lib/"rabbitmq_server-*/plugins/rabbitmq_management-*/priv/www/cli/rabbitmqadmin "$OUT"
fi
chmod 755 "$OUT"
echo "$OUT"

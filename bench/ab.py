#!/usr/bin/env python3
"""A/B benchmark of two Warren builds in one sitting: before and after a change.

    bench/ab.sh BASE_BINARY [SCENARIO ...]      (scenarios from compare.py; default a b f)

Each round starts each broker on a fresh data directory, runs the scenario with
warren-perf (the same binary for both), and stops it; rounds alternate the order so
drift on a shared machine hits both sides alike. Prints the median and the spread of
each side and the ratio (higher is better: (g) is messages per second of its publish
and drain phases together, (l) is 1/p99 latency). Not a test: no thresholds.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("SECONDS_PER_RUN", "8")
from common import free_port, stop  # noqa: E402
from compare import SCENARIOS  # noqa: E402

PERF = os.path.join(ROOT, "target", "release", "warren-perf")
NEW = os.path.join(ROOT, "target", "release", "warren")
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def run_once(binary, args):
    data = tempfile.mkdtemp(prefix="warren-ab-")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--amqp-port", str(port), "--data-dir", data,
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, WARREN_DISABLE_MANAGEMENT="true",
                                     WARREN_DISABLE_PROMETHEUS="true", WARREN_DISABLE_MQTT="true"))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run([PERF, "-u", "amqp://guest:guest@127.0.0.1:%d/%%2f" % port, "--json"] + args,
                             capture_output=True, text=True, timeout=900)
        import json
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if not lines:
            # A run without a result is left out of the medians: say why.
            print("    (a run of %s gave no result, exit %s: %s)" % (
                binary, out.returncode, (out.stderr or out.stdout).strip()[-300:]), flush=True)
        return json.loads(lines[-1]) if lines else None
    finally:
        stop(proc, data)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(64)
    base = sys.argv[1]
    want = sys.argv[2:] or ["a", "b", "f"]
    sides = [("base", base), ("new", NEW)]
    print("base: %s\nnew:  %s\n%d rounds of %s s\n" % (base, NEW, ROUNDS, os.environ["SECONDS_PER_RUN"]))
    for key, desc, args, metric in SCENARIOS:
        if key not in want:
            continue
        got = {"base": [], "new": []}
        for r in range(ROUNDS):
            order = sides if r % 2 == 0 else list(reversed(sides))
            for name, binary in order:
                res = run_once(binary, args) or {}
                # Higher is better for every figure compared: rates, and
                # for (l) the inverse of the p99 latency.
                if metric == "phases":
                    # 1 M published, then drained: messages per second of both.
                    t = res.get("publish_seconds", 0) + res.get("consume_seconds", 0)
                    rate = 1e6 / t if t else None
                elif metric == "latency":
                    p99 = res.get("latency_us", {}).get("p99")
                    rate = 1e6 / p99 if p99 else None
                else:
                    rate = res.get("receive_rate")
                if rate:
                    got[name].append(rate)
        b, n = statistics.median(got["base"] or [0]), statistics.median(got["new"] or [0])
        print("(%s) %s" % (key, desc))
        for name in ("base", "new"):
            v = got[name]
            print("    %-4s median %9.0f /s   runs %s" % (name, statistics.median(v or [0]),
                                                         ", ".join("%.0f" % x for x in v)))
        print("    new/base %.2f\n" % (n / b if b else float("nan")))


if __name__ == "__main__":
    main()

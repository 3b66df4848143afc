#!/usr/bin/env python3
"""MQTT throughput of Warren and Debian's mosquitto side by side, in one sitting.

    bench/mqtt.sh [ROUNDS [CASE ...]]        (CASE: a substring of a case name, e.g. "QoS 1")

Each round starts each broker fresh (alternating which goes first), runs warren-mqtt-perf
(1 publisher, 1 subscriber, one topic; every payload checked) for QoS 0 and QoS 1 at 16 B and
QoS 1 at 1 KiB, and stops it. Both brokers get the same in-flight window for QoS 1 deliveries:
Warren's 64 (its MQTT prefetch) and mosquitto's max_inflight_messages 64; mosquitto's queue is
allowed to hold everything (max_queued_messages 0) so neither drops messages. Prints the median
receive rate of each. Not a test: no thresholds.

With WARREN_BASE=/path/to/an/older/warren, the other side is that build instead of mosquitto
(a before/after comparison of a change, in one sitting).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, stop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARREN = os.path.join(ROOT, "target", "release", "warren")
PERF = os.path.join(ROOT, "target", "release", "warren-mqtt-perf")
SECONDS = os.environ.get("SECONDS_PER_RUN", "8")
BASE = os.environ.get("WARREN_BASE")
OTHER = "base" if BASE else "mosquitto"
CASES = [("QoS 0, 16 B", ["--qos", "0", "-s", "16"]),
         ("QoS 1, 16 B", ["--qos", "1", "-s", "16"]),
         ("QoS 1, 1 KiB", ["--qos", "1", "-s", "1024"])]


def start(kind, port, scratch):
    if kind in ("warren", "base"):
        cmd = [WARREN if kind == "warren" else BASE, "--bind", "127.0.0.1", "--amqp-port", str(free_port()), "--mqtt-port", str(port),
               "--data-dir", os.path.join(scratch, "data"), "--disable-management", "--disable-prometheus",
               "--log-level", "warning"]
    else:
        conf = os.path.join(scratch, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 64\n"
                    "max_queued_messages 0\n" % port)
        cmd = ["mosquitto", "-c", conf]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("%s did not start" % kind)


def run(kind, args):
    scratch = tempfile.mkdtemp(prefix="warren-mqtt-bench-")
    port = free_port()
    proc = start(kind, port, scratch)
    try:
        out = subprocess.run([PERF, "-p", str(port), "-z", SECONDS, "--json"] + args,
                             capture_output=True, text=True, timeout=300)
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError("%s: %s" % (kind, out.stderr))
        r = json.loads(lines[-1])
        if r["received"] != r["expected"] or r["corrupt"]:
            print("    %s: received %d of %d, %d corrupt" % (kind, r["received"], r["expected"], r["corrupt"]))
        return r["receive_rate"]
    finally:
        stop(proc, scratch)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = sys.argv[2:]
    print("%d rounds of %s s; messages per second received\n" % (rounds, SECONDS))
    for name, args in CASES:
        if only and not any(o in name for o in only):
            continue
        got = {"warren": [], OTHER: []}
        for r in range(rounds):
            order = ["warren", OTHER] if r % 2 == 0 else [OTHER, "warren"]
            for kind in order:
                got[kind].append(run(kind, args))
        w, m = statistics.median(got["warren"]), statistics.median(got[OTHER])
        print("%-14s warren %9.0f   %s %9.0f   warren/%s %.2f" % (name, w, OTHER, m, OTHER, w / m))
        print("               runs: warren %s; %s %s" % (
            ", ".join("%.0f" % x for x in got["warren"]), OTHER, ", ".join("%.0f" % x for x in got[OTHER])))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Scenario (a) while the management API is being polled. Not a test.

    bench/polled.sh [ROUNDS]        (default 3)

Runs warren-perf's scenario (a) (1 producer -> 1 queue -> 1 consumer, 16 B, auto-ack)
against a fresh Warren, alternating rounds without and with a poller that requests, as
fast as one client can with a 100 ms pause between rounds, the overview, a page of queues,
the connections, the channels and a Prometheus scrape: far more than any dashboard asks
(RabbitMQ's UI refreshes every 5 s). POLL_PAUSE=1 polls once a second instead. The poller
is a Python client on the same machine: on 2 cores its own CPU is part of what it costs. Prints each side's median rate and the poller's
request count. Results go to bench/results/polled-<date>.json.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import free_port  # noqa: E402
from common import stop as stop_broker  # noqa: E402
from compare import SCENARIOS  # noqa: E402

PERF = os.path.join(ROOT, "target", "release", "warren-perf")
# Seconds between the poller's rounds (POLL_PAUSE; RabbitMQ's UI: 5).
PAUSE = float(os.environ.get("POLL_PAUSE", "0.1"))
WARREN = os.path.join(ROOT, "target", "release", "warren")


def poll(base, prom, stop, counter):
    s = requests.Session()
    s.auth = ("guest", "guest")
    paths = ["/api/overview", "/api/queues?page=1&page_size=100", "/api/connections", "/api/channels"]
    while not stop.is_set():
        for p in paths:
            s.get(base + p, timeout=10).raise_for_status()
            counter[0] += 1
        requests.get(prom + "/metrics", timeout=10).raise_for_status()
        counter[0] += 1
        time.sleep(PAUSE)


def run(polled):
    data = tempfile.mkdtemp(prefix="warren-polled-")
    port, mport, pport = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_DISABLE_")}
    proc = subprocess.Popen([WARREN, "--bind", "127.0.0.1", "--amqp-port", str(port), "--data-dir", data,
                             "--management-port", str(mport), "--prometheus-port", str(pport), "--disable-mqtt",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    stop, counter = threading.Event(), [0]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", mport), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        poller = None
        if polled:
            poller = threading.Thread(target=poll, args=("http://127.0.0.1:%d" % mport,
                                                         "http://127.0.0.1:%d" % pport, stop, counter))
            poller.start()
        # SECONDS_PER_RUN sets the run length (compare.py reads it).
        args = dict((k, a) for k, _, a, _ in SCENARIOS)["a"]
        out = subprocess.run([PERF, "-u", "amqp://guest:guest@127.0.0.1:%d/%%2f" % port, "--json", "--quiet"]
                             + args, capture_output=True, text=True, timeout=600)
        stop.set()
        if poller:
            poller.join(15)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1])["receive_rate"], counter[0]
    finally:
        stop.set()
        stop_broker(proc, timeout=30)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    quiet, polled, requests_made = [], [], []
    for i in range(rounds):
        order = [False, True] if i % 2 == 0 else [True, False]
        for p in order:
            rate, n = run(p)
            (polled if p else quiet).append(rate)
            if p:
                requests_made.append(n)
            print("round %d %-10s %.0f msg/s%s" % (i + 1, "polled" if p else "quiet", rate,
                                                   " (%d API requests)" % n if p else ""), flush=True)
    q, p = statistics.median(quiet), statistics.median(polled)
    print("scenario (a): quiet %.0f msg/s, polled %.0f msg/s (%.1f%%), %d API requests per run (median)"
          % (q, p, (p / q - 1) * 100, statistics.median(requests_made)))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", "polled-%s.json" % time.strftime("%Y-%m-%d-%H%M%S"))
    with open(path, "w") as f:
        json.dump({"quiet": quiet, "polled": polled, "requests": requests_made}, f, indent=1)
    print("results written to", path)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Management API and Prometheus at scale: Warren vs RabbitMQ. Not a test.

    bench/mgmt.sh [QUEUES ...]        default: 10000 100000
    BROKERS=warren bench/mgmt.sh      only one side

For each queue count and broker: start the broker fresh, create the queues with
definitions imports (POST /api/definitions, 10,000 queues per file), publish one message to every
tenth queue, wait for the statistics to settle, then time (median of 5, after one
warm-up request):

  - one page of 100 queues sorted by name, and sorted by messages (descending);
  - one page filtered by a name substring;
  - the overview;
  - a Prometheus scrape, aggregated (/metrics) and per object (/metrics/per-object);

and record the broker's resident memory. Each request has a 120 s timeout; a
timeout is reported as such. Results go to bench/results/mgmt-<date>.json.
"""
import json
import os
import statistics
import sys
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402

MGMT = {"warren": 15697, "rabbitmq": 15698}
PROM = {"warren": 15695, "rabbitmq": 15696}
TIMEOUT = 120
SAMPLES = 5


class Warren(compare.Warren):
    def __init__(self):
        super().__init__()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_DISABLE_")}
        self.env.update(WARREN_MANAGEMENT_PORT=str(MGMT["warren"]),
                        WARREN_PROMETHEUS_PORT=str(PROM["warren"]))

    def start(self, fresh=True):
        took = super().start(fresh)
        compare.wait_port(MGMT["warren"], 30)
        return took


class RabbitMQ(compare.RabbitMQ):
    """The benchmark RabbitMQ node, with its management and Prometheus
    listeners moved off the ports the test oracle may use."""

    def start(self, fresh=True):
        conf = os.path.join(compare.WORK, "rmq-mgmt.conf")
        os.makedirs(compare.WORK, exist_ok=True)
        with open(conf, "w") as f:
            f.write("management.tcp.port = %d\nmanagement.tcp.ip = 127.0.0.1\n"
                    "prometheus.tcp.port = %d\nprometheus.tcp.ip = 127.0.0.1\n"
                    "loopback_users = none\n" % (MGMT["rabbitmq"], PROM["rabbitmq"]))
        os.chmod(conf, 0o644)
        self.extra_env = "RABBITMQ_CONFIG_FILE=%s" % conf[:-len(".conf")]
        took = super().start(fresh)
        compare.wait_port(MGMT["rabbitmq"], 180)
        return took


def api(broker, method, path, **kw):
    kw.setdefault("timeout", TIMEOUT)
    return requests.request(method, "http://127.0.0.1:%d%s" % (MGMT[broker.name], path),
                            auth=("guest", "guest"), **kw)


def timed(fn):
    """Median and max seconds of SAMPLES calls after a warm-up, or how it failed."""
    t0 = time.perf_counter()
    try:
        fn()
        times = []
        for _ in range(SAMPLES):
            t0 = time.perf_counter()
            r = fn()
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
        return {"median_s": statistics.median(times), "max_s": max(times), "bytes": len(r.content)}
    except requests.Timeout:
        return "timeout (%d s)" % TIMEOUT
    except requests.ConnectionError:
        return "connection closed without an answer after %.0f s" % (time.perf_counter() - t0)
    except requests.HTTPError as e:
        return "HTTP %s after %.0f s" % (e.response.status_code, time.perf_counter() - t0)


def populate(broker, n):
    t0 = time.perf_counter()
    # In files of 10,000 queues (under RabbitMQ's 10 MB body limit).
    for start in range(0, n, 10000):
        queues = [{"name": "mq-%06d" % i, "vhost": "/", "durable": True, "auto_delete": False,
                   "arguments": {}} for i in range(start, min(n, start + 10000))]
        defs = {"queues": queues, "exchanges": [], "bindings": [], "users": [], "vhosts": [],
                "permissions": []}
        r = api(broker, "POST", "/api/definitions", json=defs, timeout=3600)
        r.raise_for_status()
    took = time.perf_counter() - t0
    # Some queues hold messages, so sorting by messages has work to do.
    for i in range(0, n, max(10, n // 1000)):
        api(broker, "POST", "/api/exchanges/%2F/amq.default/publish",
            json={"properties": {}, "routing_key": "mq-%06d" % i, "payload": "x" * 100,
                  "payload_encoding": "string"}).raise_for_status()
    return took


def prom(broker, path):
    return lambda: requests.get("http://127.0.0.1:%d%s" % (PROM[broker.name], path), timeout=TIMEOUT)


def measure(broker, n):
    out = {"queues": n}
    out["import_s"] = populate(broker, n)
    time.sleep(12)  # two statistics intervals
    page = "/api/queues/%2F?page=1&page_size=100"
    out["page_by_name"] = timed(lambda: api(broker, "GET", page))
    out["page_by_messages"] = timed(lambda: api(broker, "GET", page + "&sort=messages&sort_reverse=true"))
    out["page_filtered"] = timed(lambda: api(broker, "GET", page + "&name=mq-0001&use_regex=false"))
    out["overview"] = timed(lambda: api(broker, "GET", "/api/overview"))
    out["metrics"] = timed(prom(broker, "/metrics"))
    out["metrics_per_object"] = timed(prom(broker, "/metrics/per-object"))
    out["rss_mb"] = compare.rss_mb(broker.pid)
    return out


def fmt(v):
    if isinstance(v, dict):
        return "%.0f ms" % (v["median_s"] * 1000) if v["median_s"] >= 0.01 else "%.1f ms" % (v["median_s"] * 1000)
    if isinstance(v, float):
        return "%.1f" % v
    return str(v)


def main():
    counts = [int(a) for a in sys.argv[1:]] or [10000, 100000]
    want = os.environ.get("BROKERS", "warren,rabbitmq").split(",")
    brokers = [b for b in (Warren(), RabbitMQ()) if b.name in want]
    results = []
    for n in counts:
        for b in brokers:
            b.start()
            try:
                r = measure(b, n)
            finally:
                b.stop()
            r["broker"] = b.name
            results.append(r)
            print("%-8s %7d queues: %s" % (b.name, n, ", ".join(
                "%s=%s" % (k, fmt(v)) for k, v in r.items() if k not in ("broker", "queues"))), flush=True)
    os.makedirs(os.path.join(compare.ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(compare.ROOT, "bench", "results", "mgmt-%s.json" % time.strftime("%Y-%m-%d-%H%M%S"))
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("results written to", path)


if __name__ == "__main__":
    main()

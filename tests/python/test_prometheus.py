# -*- coding: utf-8 -*-
"""Prometheus metrics (RabbitMQ's rabbitmq_prometheus plugin, port 15692): /metrics (aggregated)
and /metrics/per-object.

Covered: the text exposition format (Content-Type "text/plain; version=0.0.4", every sample in a
family declared by "# TYPE" and "# HELP", label syntax, no duplicate series); the metric names
Grafana's RabbitMQ dashboards use, with sane values and types (queue depth gauges, connections /
channels / consumers / queues, global counters labelled protocol="amqp091", memory and disk, the
three rabbitmq_alarms_* flags, rabbitmq_build_info / rabbitmq_identity_info cross-checked against
/api/overview); per-object queue series labelled exactly {vhost, queue} with ready / unacked /
total counts (and aggregated /metrics carrying no queue labels); the series disappearing after
the queue is deleted; global received / delivered / confirmed / acknowledged counters growing by
at least the traffic a test makes; 404 for unknown paths.

RabbitMQ 3.10.8 specifics worth knowing (see tools/probe-http-3.10.8.txt): "# TYPE" comes
before "# HELP"; the alarm flags are "untyped" and only appear in /metrics, not in
/metrics/per-object; rabbitmq_global_messages_delivered_total has one series per queue_type
(rabbit_classic_queue, rabbit_quorum_queue, rabbit_stream_queue); NaN appears as a value
(rabbitmq_queue_head_message_timestamp of an empty queue). Queue figures lag by up to one
statistics emission (5 s); the waits poll for at most MGMT_STATS_WAIT (15 s).

Validated against RabbitMQ 3.10.8:
    MGMT_URL=http://127.0.0.1:15682 METRICS_URL=http://127.0.0.1:15692 AMQP_PORT=5682 \\
        WARRENCTL="rabbitmqctl -n rabbit@localhost" \\
        .venv/bin/python -m pytest tests/python/test_prometheus.py -q
"""
import collections
import math
import re

import pytest

from conftest import connect, uniq
from mgmt import api, expect, get_json, metrics, mgmt_objects, q, wait_for  # noqa: F401

Sample = collections.namedtuple("Sample", "name labels value")
NAME_RE = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$" % NAME_RE)
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class Exposition:
    def __init__(self, types, helps, samples):
        self.types, self.helps, self.samples = types, helps, samples

    def series(self, name):
        return [s for s in self.samples if s.name == name]

    def value(self, name, **labels):
        """The single sample of `name` whose labels include `labels` (fails on 0 or >1 matches)."""
        found = [s for s in self.series(name) if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0].value

    def find(self, name, **labels):
        found = [s for s in self.series(name) if all(s.labels.get(k) == v for k, v in labels.items())]
        return found[0] if len(found) == 1 else None

    def total(self, name, **labels):
        return sum(s.value for s in self.series(name) if all(s.labels.get(k) == v for k, v in labels.items()))


def parse_labels(text, line):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, "bad labels in %r" % line
        key, raw = m.group(1), m.group(2)
        assert key not in labels, "duplicate label in %r" % line
        labels[key] = raw.replace("\\\\", "\x00").replace('\\"', '"').replace("\\n", "\n").replace("\x00", "\\")
        pos = m.end()
        if m.group(3) == "":
            break
    assert pos >= len(text.rstrip()), "trailing garbage in %r" % line
    return labels


def parse(text):
    """Parse the Prometheus text format 0.0.4; asserts it is well formed."""
    types, helps, samples = {}, {}, []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert re.fullmatch(NAME_RE, parts[2]), line
                assert parts[2] not in types, "TYPE declared twice: %r" % line
                assert parts[3] in ("counter", "gauge", "summary", "histogram", "untyped"), line
                types[parts[2]] = parts[3]
            elif len(parts) >= 3 and parts[1] == "HELP":
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        labels = parse_labels(m.group(2), line) if m.group(2) else {}
        raw = m.group(3)
        value = float(raw)  # also NaN, +Inf, -Inf
        samples.append(Sample(m.group(1), labels, value))
    return Exposition(types, helps, samples)


def family(name, types):
    if name in types:
        return name
    base = re.sub(r"_(sum|count|bucket)$", "", name)
    if base in types and types[base] in ("summary", "histogram"):
        return base
    return None


def scrape(path="/metrics"):
    r = expect(metrics(path), 200)
    return parse(r.text)


def wait_scrape(path, pred, what):
    """Scrape until pred(exposition) holds; returns the exposition."""
    return wait_for(lambda: (lambda e: e if pred(e) else None)(scrape(path)), what=what)


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/metrics", "/metrics/per-object"])
def test_exposition_format(path):
    r = expect(metrics(path), 200)
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    e = parse(r.text)
    assert len(e.samples) > 20
    seen = set()
    for s in e.samples:
        fam = family(s.name, e.types)
        assert fam is not None, "sample without # TYPE: %s" % s.name
        assert fam in e.helps, "family without # HELP: %s" % fam
        key = (s.name, tuple(sorted(s.labels.items())))
        assert key not in seen, "duplicate series %r" % (key,)
        seen.add(key)
        if e.types[fam] == "counter":
            assert s.value >= 0 or math.isnan(s.value), s
    # (RabbitMQ declares TYPE/HELP for families that have no samples at the moment, e.g. per-channel
    # metrics when no channel is open; that is allowed)


GAUGES = ["rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
          "rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers", "rabbitmq_queues",
          "rabbitmq_process_resident_memory_bytes", "rabbitmq_disk_space_available_bytes",
          "rabbitmq_resident_memory_limit_bytes", "rabbitmq_disk_space_available_limit_bytes"]
GLOBAL_COUNTERS = ["rabbitmq_global_messages_received_total", "rabbitmq_global_messages_delivered_total",
                   "rabbitmq_global_messages_confirmed_total", "rabbitmq_global_messages_routed_total",
                   "rabbitmq_global_messages_acknowledged_total"]
ALARMS = ["rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark",
          "rabbitmq_alarms_file_descriptor_limit"]


def test_required_metrics_aggregated():
    c = connect()  # so that the *_opened_total / declared counters have something to count
    try:
        c.channel().queue_declare("", exclusive=True)
        e = wait_scrape("/metrics", lambda x: x.find("rabbitmq_queues_declared_total") is not None and
                        x.value("rabbitmq_queues_declared_total") >= 1, "queues_declared_total >= 1")
    finally:
        c.close()
    for name in GAUGES:
        assert e.types.get(name) == "gauge", name
        (s,) = e.series(name)
        assert s.labels == {}, s  # aggregated: no vhost/queue labels
        assert s.value >= 0 and s.value == int(s.value), s
    assert e.value("rabbitmq_process_resident_memory_bytes") > 1024 * 1024
    assert e.value("rabbitmq_disk_space_available_bytes") > 0
    assert e.value("rabbitmq_resident_memory_limit_bytes") > 0
    for name in GLOBAL_COUNTERS:
        assert e.types.get(name) == "counter", name
        series = e.series(name)
        assert series and all(s.labels.get("protocol") == "amqp091" for s in series), (name, series)
    assert {s.labels.get("queue_type") for s in e.series("rabbitmq_global_messages_delivered_total")} >= \
        {"rabbit_classic_queue"}
    for name in ALARMS:
        (s,) = e.series(name)
        assert s.labels == {} and s.value == 0, s  # no alarm in effect on a healthy test broker
        assert name in e.types
    for name in ("rabbitmq_connections_opened_total", "rabbitmq_channels_opened_total",
                 "rabbitmq_queues_declared_total"):
        assert e.types.get(name) == "counter" and e.value(name) >= 1, name


def test_build_and_identity_info():
    ov = get_json("/api/overview")
    for path in ("/metrics", "/metrics/per-object"):
        e = scrape(path)
        (b,) = e.series("rabbitmq_build_info")
        assert b.value == 1 and isinstance(b.labels.get("rabbitmq_version"), str) and b.labels["rabbitmq_version"]
        assert b.labels["rabbitmq_version"] == ov["rabbitmq_version"]
        (i,) = e.series("rabbitmq_identity_info")
        assert i.value == 1
        assert i.labels["rabbitmq_node"] == ov["node"]
        assert i.labels["rabbitmq_cluster"] == ov["cluster_name"]


def test_per_object_queue_series(mgmt_objects):
    qn = mgmt_objects.queue(prefix="prom-q")
    c = connect()
    try:
        ch = c.channel()
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", qn, b"prom-%d" % i)
        for _ in range(2):  # two delivered, not acknowledged
            m, _, _ = ch.basic_get(qn, auto_ack=False)
            assert m is not None

        def ready(e):
            s = e.find("rabbitmq_queue_messages_ready", queue=qn)
            u = e.find("rabbitmq_queue_messages_unacked", queue=qn)
            t = e.find("rabbitmq_queue_messages", queue=qn)
            return s and u and t and (s.value, u.value, t.value) == (3, 2, 5)
        e = wait_scrape("/metrics/per-object", ready, "per-object 3 ready / 2 unacked / 5 total")
        for name in ("rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
                     "rabbitmq_queue_consumers"):
            s = e.find(name, queue=qn)
            assert s.labels == {"vhost": "/", "queue": qn}, s
            assert e.types[name] == "gauge"
        assert e.value("rabbitmq_queue_consumers", queue=qn) == 0
        # the aggregate includes this queue
        agg = wait_scrape("/metrics", lambda x: x.value("rabbitmq_queue_messages_ready") >= 3 and
                          x.value("rabbitmq_queue_messages_unacked") >= 2, "aggregated queue depth")
        assert agg.value("rabbitmq_queue_messages") >= 5
        assert agg.value("rabbitmq_queues") >= 1
    finally:
        c.close()
    wait_scrape("/metrics/per-object", lambda x: x.find("rabbitmq_queue_messages_ready", queue=qn) is not None
                and x.value("rabbitmq_queue_messages_ready", queue=qn) == 5 and
                x.value("rabbitmq_queue_messages_unacked", queue=qn) == 0, "requeued after close")
    expect(api("DELETE", "/api/queues/%2F/" + q(qn)), 204)
    wait_scrape("/metrics/per-object", lambda x: not [s for s in x.samples if s.labels.get("queue") == qn],
                "deleted queue's series gone")


def test_per_object_queue_in_other_vhost(mgmt_objects):
    vhost = mgmt_objects.vhost(prefix="prom-vhost")
    qn = mgmt_objects.queue(vhost=vhost, prefix="prom-vq")
    c = connect(virtual_host=vhost)
    try:
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("", qn, b"x")
    finally:
        c.close()
    e = wait_scrape("/metrics/per-object",
                    lambda x: (x.find("rabbitmq_queue_messages_ready", queue=qn) or Sample("", {}, -1)).value == 1,
                    "per-object series in another vhost")
    assert e.find("rabbitmq_queue_messages_ready", queue=qn).labels == {"vhost": vhost, "queue": qn}


def test_global_counters_grow():
    k = 7
    before = scrape("/metrics")
    start = {n: before.total(n, protocol="amqp091") for n in GLOBAL_COUNTERS}
    c = connect()
    try:
        ch = c.channel()
        qn = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        for i in range(k):
            ch.basic_publish("", qn, b"count-%d" % i)
        got = []
        ch.basic_consume(qn, lambda chan, m, p, b: (got.append(b), chan.basic_ack(m.delivery_tag)))
        wait_for(lambda: len(got) == k, what="%d deliveries" % k, pump=c)
        assert got == [b"count-%d" % i for i in range(k)]

        def grown(e):
            return all(e.total(n, protocol="amqp091") - start[n] >= k for n in GLOBAL_COUNTERS)
        after = wait_for(lambda: (lambda e: e if grown(e) else None)(scrape("/metrics")),
                         what="global counters +%d" % k, pump=c)
    finally:
        c.close()
    per = scrape("/metrics/per-object")
    for n in GLOBAL_COUNTERS:
        assert per.total(n, protocol="amqp091") >= after.total(n, protocol="amqp091"), n


def test_connection_channel_consumer_gauges(mgmt_objects):
    qn = mgmt_objects.queue(prefix="prom-cons")
    c = connect()
    try:
        ch = c.channel()
        ch.basic_consume(qn, lambda *a: None, consumer_tag=uniq("prom-tag"))
        for path in ("/metrics", "/metrics/per-object"):
            e = wait_for(lambda: (lambda x: x if x.value("rabbitmq_connections") >= 1 and
                                  x.value("rabbitmq_channels") >= 1 and x.value("rabbitmq_consumers") >= 1 and
                                  x.value("rabbitmq_queues") >= 1 else None)(scrape(path)),
                         what="connection/channel/consumer gauges on " + path, pump=c)
            assert e.types["rabbitmq_connections"] == "gauge"
        e = wait_scrape("/metrics/per-object",
                        lambda x: (x.find("rabbitmq_queue_consumers", queue=qn) or Sample("", {}, 0)).value == 1,
                        "per-object consumer count")
        assert e.value("rabbitmq_queue_consumers", vhost="/", queue=qn) == 1
    finally:
        c.close()


def test_unknown_path():
    r = metrics("/nosuch")
    assert r.status_code == 404

"""Message statistics: every counter the management API reports, with exact counts.

One scripted workload in a private vhost (so nothing else counts there) touches each statistic a
known number of times; the vhost's, the queue's, the exchange's and the channels' `message_stats`
must then show exactly those numbers, and Prometheus's per-object and global counters must agree.

Validated against RabbitMQ 3.10.8 (MGMT_URL=http://127.0.0.1:15682, AMQP_PORT=5682,
METRICS_URL=http://127.0.0.1:15692): the expected figures below are RabbitMQ's. Statistics lag
up to a collection interval (5 s on both), so every check polls with a bounded wait.

    MGMT_URL=... METRICS_URL=... AMQP_PORT=... .venv/bin/python -m pytest tests/python/test_http_stats.py
"""
import time

import pika
import pytest
from pika.exceptions import UnroutableError

from conftest import connect, uniq
from mgmt import api, expect, get_json, metrics, q, wait_for

# What the workload below does, statistic by statistic (RabbitMQ's field names).
PUBLISHED_ROUTED = 5 + 2        # to the bound key: 5, later 2 more for the auto-ack consumer
RETURNED = 2                    # mandatory, no route: basic.return
DROPPED = 3                     # not mandatory, no route
EXPECTED_VHOST = {
    "publish": PUBLISHED_ROUTED + RETURNED + DROPPED,
    "confirm": PUBLISHED_ROUTED + RETURNED + DROPPED,  # every publish on the confirm channel
    "return_unroutable": RETURNED,
    "drop_unroutable": DROPPED,
    "get": 1,                   # basic.get, manual ack
    "get_no_ack": 1,            # basic.get, auto ack
    "get_empty": 1,             # basic.get on the empty queue
    "deliver": 4,               # 3 to the manual-ack consumer, plus the one it requeued, again
    "deliver_no_ack": 2,        # to the auto-ack consumer
    "redeliver": 1,             # the requeued one
    "ack": 4,                   # the get, and 3 by the consumer
}
EXPECTED_VHOST["deliver_get"] = sum(EXPECTED_VHOST[k] for k in ("deliver", "deliver_no_ack", "get",
                                                                  "get_no_ack"))
EXPECTED_QUEUE = {k: EXPECTED_VHOST[k] for k in ("get", "get_no_ack", "get_empty", "deliver",
                                                 "deliver_no_ack", "redeliver", "ack", "deliver_get")}
EXPECTED_QUEUE["publish"] = PUBLISHED_ROUTED
EXPECTED_EXCHANGE = {"publish_in": PUBLISHED_ROUTED + RETURNED + DROPPED, "publish_out": PUBLISHED_ROUTED}

# RabbitMQ 3.10.8 counts these on the channel only: its vhost and overview figures stay 0, and a
# queue's get_empty too. Warren reports the real counts at every level (docs/compatibility.md).
RABBITMQ_310_ZEROS = {"vhost": {"get_empty", "drop_unroutable"}, "queue": {"get_empty"},
                      "channel": {"get_empty", "drop_unroutable"}}


def expected(level, figures):
    if get_json("/api/overview").get("product_name") != "RabbitMQ":
        return dict(figures)
    return {k: (0 if k in RABBITMQ_310_ZEROS.get(level, ()) else v) for k, v in figures.items()}


@pytest.fixture(scope="module")
def workload():
    vhost = uniq("stats")
    expect(api("PUT", "/api/vhosts/" + q(vhost), json={}), 201)  # the creator gets permissions
    qn, xn = uniq("stats-q"), uniq("stats-x")
    pub = connect(virtual_host=vhost)
    con = connect(virtual_host=vhost)
    try:
        pch = pub.channel()
        pch.exchange_declare(xn, "direct")
        pch.queue_declare(qn)
        pch.queue_bind(qn, xn, "k")
        pch.confirm_delivery()
        for i in range(5):
            pch.basic_publish(xn, "k", b"routed-%d" % i)
        for i in range(RETURNED):
            with pytest.raises(UnroutableError):
                pch.basic_publish(xn, "nowhere", b"returned-%d" % i, mandatory=True)
        for i in range(DROPPED):
            pch.basic_publish(xn, "nowhere", b"dropped-%d" % i)

        cch = con.channel()
        m, _, body = cch.basic_get(qn, auto_ack=False)
        assert body == b"routed-0"
        cch.basic_ack(m.delivery_tag)
        _, _, body = cch.basic_get(qn, auto_ack=True)
        assert body == b"routed-1"

        got = []
        tag = cch.basic_consume(qn, lambda c, m, p, b: got.append((m, b)))
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            con.process_data_events(0.1)
        assert [b for _, b in got] == [b"routed-2", b"routed-3", b"routed-4"]
        first = got[0][0]
        cch.basic_nack(first.delivery_tag, requeue=True)
        while len(got) < 4 and time.monotonic() < deadline:
            con.process_data_events(0.1)
        assert got[3][1] == b"routed-2" and got[3][0].redelivered
        for m, _ in got[1:]:
            cch.basic_ack(m.delivery_tag)
        cch.basic_cancel(tag)
        assert cch.basic_get(qn, auto_ack=False) == (None, None, None)

        for i in range(2):
            pch.basic_publish(xn, "k", b"late-%d" % i)
        late = []
        tag = cch.basic_consume(qn, lambda c, m, p, b: late.append(b), auto_ack=True)
        deadline = time.monotonic() + 10
        while len(late) < 2 and time.monotonic() < deadline:
            con.process_data_events(0.1)
        assert late == [b"late-0", b"late-1"]
        cch.basic_cancel(tag)
        yield {"vhost": vhost, "queue": qn, "exchange": xn, "pub": pub, "con": con}
    finally:
        for c in (pub, con):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown
                pass
        api("DELETE", "/api/vhosts/" + q(vhost))


def subset(stats, expected):
    return {k: (stats or {}).get(k) for k in expected}


def settled(path, expected, key="message_stats", pump=None):
    """Polls `path` until its message_stats match `expected` exactly; returns the object."""
    seen = {}

    def check():
        obj = get_json(path)
        seen["last"] = subset(obj.get(key), expected)
        return obj if seen["last"] == expected else None
    try:
        return wait_for(check, what="%s %s" % (path, key), pump=pump)
    except pytest.fail.Exception:
        assert seen.get("last") == expected  # shows the difference
        raise


def test_vhost_message_stats(workload):
    v = settled("/api/vhosts/" + q(workload["vhost"]), expected("vhost", EXPECTED_VHOST),
                pump=[workload["pub"], workload["con"]])
    for k in EXPECTED_VHOST:
        assert isinstance(v["message_stats"][k + "_details"]["rate"], (int, float)), k


def test_queue_message_stats(workload):
    path = "/api/queues/%s/%s" % (q(workload["vhost"]), q(workload["queue"]))
    body = settled(path, expected("queue", EXPECTED_QUEUE), pump=[workload["pub"], workload["con"]])
    assert body["messages"] == 0
    # Unroutable and confirm counts are channel statistics, not the queue's.
    assert "return_unroutable" not in body["message_stats"] and "confirm" not in body["message_stats"]


def test_exchange_message_stats(workload):
    path = "/api/exchanges/%s/%s" % (q(workload["vhost"]), q(workload["exchange"]))
    settled(path, EXPECTED_EXCHANGE, pump=[workload["pub"], workload["con"]])


def test_channel_message_stats(workload):
    """The publishing channel counts publishes, confirms and unroutables; the consuming channel
    counts gets, deliveries and acks."""
    want = expected("channel", EXPECTED_VHOST)
    pub_expected = {k: want[k] for k in ("publish", "confirm", "return_unroutable", "drop_unroutable")}
    con_expected = {k: want[k] for k in ("get", "get_no_ack", "get_empty", "deliver", "deliver_no_ack",
                                         "redeliver", "ack", "deliver_get")}

    def channels():
        chans = [c for c in get_json("/api/vhosts/%s/channels" % q(workload["vhost"]))]
        by = {}
        for c in chans:
            s = c.get("message_stats") or {}
            if subset(s, pub_expected) == pub_expected:
                by["pub"] = c
            if subset(s, con_expected) == con_expected:
                by["con"] = c
        return by if len(by) == 2 else None
    by = wait_for(channels, what="both channels' message_stats", pump=[workload["pub"], workload["con"]])
    assert by["pub"]["name"] != by["con"]["name"]
    assert by["pub"]["confirm"] is True


def test_overview_counts_include_the_workload(workload):
    ov = get_json("/api/overview")
    for k, n in expected("vhost", EXPECTED_VHOST).items():
        assert ov["message_stats"][k] >= n, k
    assert ov["churn_rates"]["queue_created"] >= 1 and ov["churn_rates"]["channel_created"] >= 2


def parse(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def series(m, name, queue):
    """The values of `name` for one queue (RabbitMQ splits published_total further, by channel
    and exchange: sum them)."""
    return sum(v for k, v in m.items() if k.startswith(name + "{") and 'queue="%s"' % queue in k)


def test_prometheus_per_object_agrees(workload):
    qn = workload["queue"]

    def check():
        m = parse(metrics("/metrics/per-object").text)
        return m if series(m, "rabbitmq_queue_messages_published_total", qn) == PUBLISHED_ROUTED else None
    m = wait_for(check, what="rabbitmq_queue_messages_published_total of %s" % qn)
    assert m['rabbitmq_queue_messages_ready{vhost="%s",queue="%s"}' % (workload["vhost"], qn)] == 0
    g = parse(metrics("/metrics").text)
    assert g['rabbitmq_global_messages_received_total{protocol="amqp091"}'] >= EXPECTED_VHOST["publish"]
    assert g['rabbitmq_global_messages_unroutable_returned_total{protocol="amqp091"}'] >= RETURNED
    assert g['rabbitmq_global_messages_unroutable_dropped_total{protocol="amqp091"}'] >= DROPPED
    assert g['rabbitmq_global_messages_redelivered_total{protocol="amqp091",queue_type="rabbit_classic_queue"}'] >= 1


def test_http_publish_and_get_count_too(workload):
    """The management API's own publish and get count like a client's (RabbitMQ uses an
    internal channel for them)."""
    vhost, qn = workload["vhost"], workload["queue"]
    before = get_json("/api/vhosts/" + q(vhost))["message_stats"]
    r = api("POST", "/api/exchanges/%s/amq.default/publish" % q(vhost),
            json={"properties": {}, "routing_key": qn, "payload": "via-http", "payload_encoding": "string"})
    assert expect(r, 200).json() == {"routed": True}
    got = get_json("/api/queues/%s/%s" % (q(vhost), q(qn)), status=200)
    assert got is not None
    r = api("POST", "/api/queues/%s/%s/get" % (q(vhost), q(qn)),
            json={"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    assert [m["payload"] for m in expect(r, 200).json()] == ["via-http"]

    def moved():
        # A publish with its confirm; taking a message for good is a get without ack.
        s = get_json("/api/vhosts/" + q(vhost))["message_stats"]
        return s if (s["publish"], s["confirm"], s["get_no_ack"]) == \
            (before["publish"] + 1, before["confirm"] + 1, before["get_no_ack"] + 1) else None
    wait_for(moved, what="publish and get counted", pump=[workload["pub"], workload["con"]])

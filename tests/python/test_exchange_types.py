"""The exchange types RabbitMQ ships as plugins, built in (issue 10): x-delayed-message and
x-consistent-hash, with the plugins' errors; and the remaining declaration details (internal
and auto-delete exchanges, exclusive consumers, basic.get on single-active-consumer queues,
argument validation texts measured on RabbitMQ 3.10.8: tools/probe-policies-3.10.8.txt)."""
import collections
import time

import pika
import pytest

from conftest import uniq
from warren_process import warren  # noqa: F401  (fixture)


def get_all(ch, q, n, timeout=10):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=True)
        if m is None:
            time.sleep(0.01)
            continue
        out.append((b, p, time.monotonic()))
    return out


def delayed(ch, name, kind="direct", durable=False):
    ch.exchange_declare(name, "x-delayed-message", durable=durable, auto_delete=not durable,
                        arguments={"x-delayed-type": kind})


def test_delayed_messages_route_when_due_in_due_order(ch):
    x = uniq("dx")
    delayed(ch, x)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    t0 = time.monotonic()
    for d in [1200, 300, 800, None, 0, -5]:
        headers = {} if d is None else {"x-delay": d}
        ch.basic_publish(x, "k", f"d{d}".encode(), pika.BasicProperties(headers=headers))
    got = get_all(ch, q, 6)
    bodies = [b.decode() for b, _, _ in got]
    # No (or a non-positive) delay routes at once; the others in due order.
    assert sorted(bodies[:3]) == ["d-5", "d0", "dNone"]
    assert bodies[3:] == ["d300", "d800", "d1200"]
    waited = {b.decode(): t - t0 for b, _, t in got}
    assert waited["d300"] >= 0.29 and waited["d800"] >= 0.79 and waited["d1200"] >= 1.19
    assert got[3][1].headers["x-delay"] == 300  # headers arrive as published


def test_delayed_topic_type_routes_by_pattern_and_wrong_key_goes_nowhere(ch):
    x = uniq("dt")
    delayed(ch, x, "topic")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a.*")
    for key in ["a.b", "b.c", "a.c"]:
        ch.basic_publish(x, key, key.encode(), pika.BasicProperties(headers={"x-delay": 100}))
    got = [b for b, _, _ in get_all(ch, q, 2)]
    assert got == [b"a.b", b"a.c"]
    time.sleep(0.2)
    assert ch.basic_get(q, auto_ack=True)[0] is None


@pytest.mark.parametrize("args,text", [
    ({}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": "nope"}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ({"x-delayed-type": "x-delayed-message"}, "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must not be 'x-delayed-message'"),
])
def test_delayed_exchange_declare_errors(conn, args, text):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(uniq("dbad"), "x-delayed-message", arguments=args)
    assert (e.value.reply_code, e.value.reply_text) == (406, text)


def test_delayed_messages_survive_restart_and_confirms_mean_disk(warren):
    w = warren()
    c = w.connect()
    ch = c.channel()
    ch.exchange_declare("later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare("later-q", durable=True)
    ch.queue_bind("later-q", "later")
    ch.confirm_delivery()
    bodies = {}
    for i in range(200):
        body = (b"%d-" % i) + bytes([i % 256]) * (i * 37 % 5000)
        ch.basic_publish("later", "", body, pika.BasicProperties(delivery_mode=2, headers={"x-delay": 1500 + i}))
        bodies[i] = body
    ch.basic_publish("later", "", b"transient", pika.BasicProperties(headers={"x-delay": 1500}))
    assert ch.queue_declare("later-q", durable=True, passive=True).method.message_count == 0
    c.close()
    w.restart(crash=True)  # SIGKILL: confirmed means on disk
    c = w.connect()
    ch = c.channel()
    got = get_all(ch, "later-q", 200, timeout=20)
    assert [b for b, _, _ in got] == [bodies[i] for i in range(200)]  # every byte, due order
    time.sleep(0.3)
    assert ch.basic_get("later-q", auto_ack=True)[0] is None  # the transient one did not survive
    c.close()
    # Fired messages are gone from the exchange: a restart does not bring them back.
    w.restart()
    c = w.connect()
    time.sleep(0.3)
    assert c.channel().queue_declare("later-q", durable=True, passive=True).method.message_count == 0
    c.close()


def test_consistent_hash_distributes_by_weight_and_is_stable(ch):
    x = uniq("hx")
    ch.exchange_declare(x, "x-consistent-hash", auto_delete=True)
    qs = []
    for w in ["1", "2", "3"]:
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, x, w)
        qs.append(q)
    keys = [f"key-{i}" for i in range(3000)]
    for k in keys:
        ch.basic_publish(x, k, k.encode())
    counts = [ch.queue_declare(q, passive=True).method.message_count for q in qs]
    assert sum(counts) == 3000
    for c, w in zip(counts, [1, 2, 3]):
        assert abs(c - 500 * w) < 150, counts
    where = {}
    for i, q in enumerate(qs):
        while True:
            m, _, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            where[b.decode()] = i
    # The same key always lands in the same queue.
    for k in keys[:200]:
        ch.basic_publish(x, k, k.encode())
    for i, q in enumerate(qs):
        while True:
            m, _, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            assert where[b.decode()] == i


def test_consistent_hash_on_header_and_property(ch):
    for args, props_of in [
        ({"hash-header": "user"}, lambda k: pika.BasicProperties(headers={"user": k})),
        ({"hash-property": "message_id"}, lambda k: pika.BasicProperties(message_id=k)),
    ]:
        x = uniq("hh")
        ch.exchange_declare(x, "x-consistent-hash", auto_delete=True, arguments=args)
        qs = [ch.queue_declare("", exclusive=True).method.queue for _ in range(2)]
        for q in qs:
            ch.queue_bind(q, x, "1")
        for i in range(400):
            # The routing key varies; the hashed value repeats: 4 users.
            ch.basic_publish(x, f"rk{i}", f"u{i % 4}".encode(), props_of(f"u{i % 4}"))
        seen = collections.defaultdict(set)
        for qi, q in enumerate(qs):
            while True:
                m, _, b = ch.basic_get(q, auto_ack=True)
                if m is None:
                    break
                seen[b.decode()].add(qi)
        assert sorted(seen) == ["u0", "u1", "u2", "u3"]
        assert all(len(v) == 1 for v in seen.values()), seen
        # Missing the header/property: routed, all to one queue.
        for i in range(20):
            ch.basic_publish(x, f"n{i}", b"none")
        assert sorted(ch.queue_declare(q, passive=True).method.message_count for q in qs)[0] in (0, 20)


@pytest.mark.parametrize("args,key,text", [
    ({"hash-header": "a", "hash-property": "message_id"}, None,
     "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive"),
    ({"hash-property": "foo"}, None, "PRECONDITION_FAILED - Unsupported property: foo"),
    ({}, "abc", 'PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>'),
    ({}, "0", "PRECONDITION_FAILED - The binding key must be greater than 0"),
    ({}, "-1", "PRECONDITION_FAILED - The binding key must be greater than 0"),
])
def test_consistent_hash_errors(conn, args, key, text):
    ch = conn.channel()
    x = uniq("hbad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "x-consistent-hash", auto_delete=True, arguments=args)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, x, key)
    assert (e.value.reply_code, e.value.reply_text) == (406, text)


def test_internal_exchange_refuses_publish(conn):
    ch = conn.channel()
    x = uniq("int")
    ch.exchange_declare(x, "fanout", internal=True, auto_delete=True)
    ch.basic_publish(x, "", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_get("amq.rabbitmq.nothing-here-" + x, auto_ack=True)  # any sync call surfaces the close
    assert (e.value.reply_code, e.value.reply_text) == (
        403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'")


def test_auto_delete_exchange_goes_with_its_last_binding(conn):
    ch = conn.channel()
    x = uniq("ad")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.queue_unbind(q, x, "a")
    ch.exchange_declare(x, "direct", auto_delete=True, passive=True)  # still bound once
    ch.queue_unbind(q, x, "b")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "direct", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (404, f"NOT_FOUND - no exchange '{x}' in vhost '/'")


def test_exclusive_consumer_refuses_others_either_order(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=False, auto_delete=True).method.queue
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        other.basic_consume(q, lambda *a: None)
    assert (e.value.reply_code, e.value.reply_text) == (403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use")
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q2, lambda *a: None)
    third = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        third.basic_consume(q2, lambda *a: None, exclusive=True)
    assert e.value.reply_code == 403


def test_basic_get_on_single_active_consumer_queues(conn):
    ch = conn.channel()
    q = ch.queue_declare(uniq("sac"), auto_delete=True, arguments={"x-single-active-consumer": True}).method.queue
    ch.basic_publish("", q, b"one")
    ch.basic_publish("", q, b"two")
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda c, m, p, b: None)  # active consumer, holds "one" unacked
    assert ch.basic_get(q, auto_ack=True)[2] == b"two"  # classic: get works beside it
    name = uniq("qsac")
    ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum", "x-single-active-consumer": True})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_get(name, auto_ack=True)
    assert (e.value.reply_code, e.value.reply_text) == (
        405, f"RESOURCE_LOCKED - cannot obtain access to locked queue '{name}' in vhost '/'. "
             "basic.get operations are not supported by quorum queues with single active consumer")
    conn.channel().queue_delete(name)


@pytest.mark.parametrize("args,text", [
    ({"x-queue-mode": "bad"}, "\"unsupported queue mode 'bad'\""),
    ({"x-queue-mode": 1}, "{unacceptable_type,signedint}"),
    ({"x-queue-version": 3}, "\"unsupported queue version '3'\""),
    ({"x-queue-version": "x"}, '"expected integer, got longstr"'),
    ({"x-max-length": "abc"}, '"expected integer, got longstr"'),
    ({"x-max-length": -1}, "{value_negative,-1}"),
    ({"x-message-ttl": -1}, "{value_negative,-1}"),
    ({"x-expires": 0}, "{value_zero,0}"),
    ({"x-single-active-consumer": "yes"}, "{unacceptable_type,longstr}"),
    ({"x-overflow": "bad"}, "invalid_overflow"),
    ({"x-overflow": 1}, "{unacceptable_type,signedint}"),
    ({"x-max-length-bytes": -1}, "{value_negative,-1}"),
    ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
    ({"x-queue-type": "bad"}, "\"unsupported queue type 'bad'\""),
])
def test_queue_argument_errors(conn, args, text):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("qa", arguments=args)
    key = next(iter(args))
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - invalid arg '{key}' for queue 'qa' in vhost '/': {text}")


def test_queue_argument_errors_other_forms(conn):
    for args, text in [
        ({"x-dead-letter-exchange": 5},
         "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'qa' in vhost '/'"),
        ({"x-delivery-limit": 5},
         "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'qa' in vhost '/' of queue type rabbit_classic_queue"),
    ]:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("qa", arguments=args)
        assert (e.value.reply_code, e.value.reply_text) == (406, text)
    ch = conn.channel()
    for args in [{"x-queue-mode": "lazy"}, {"x-queue-mode": "default"}, {"x-queue-version": 1},
                 {"x-queue-version": 2}, {"x-max-priority": 0}, {"x-overflow": "reject-publish-dlx"}]:
        q = ch.queue_declare("", exclusive=True, arguments=args).method.queue
        ch.queue_delete(q)


def test_delayed_exchange_counts_a_message_out_once_when_it_fires(conn):
    """publish_in when published, publish_out once, when the held message fires (not also when
    it is held)."""
    from mgmt import get_json, q as quote, wait_for
    ch = conn.channel()
    x = uniq("dxstats")
    delayed(ch, x)
    qn = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(qn, x, "k")
    for _ in range(3):
        ch.basic_publish(x, "k", b"later", pika.BasicProperties(headers={"x-delay": 300}))
    got = get_all(ch, qn, 3)
    assert [b for b, _, _ in got] == [b"later"] * 3
    ch.close()  # the channel's tally reaches the exchange

    def stats():
        s = get_json("/api/exchanges/%s/%s" % (quote("/"), quote(x))).get("message_stats") or {}
        return s if s.get("publish_in") == 3 and s.get("publish_out") is not None else None
    s = wait_for(stats, what="the delayed exchange's message_stats")
    assert s["publish_in"] == 3
    assert s["publish_out"] == 3

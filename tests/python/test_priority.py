"""Priority queues (issue 10): `x-max-priority` 1-255, higher priorities first, FIFO within
one priority, `priority` above the maximum treated as the maximum and a missing one as 0;
with basic.get, consumers, requeue, TTL, length limits, dead-lettering, a backlog paged to
disk, and across a restart."""
import time

import pika
import pytest

from warren_process import warren  # noqa: F401  (fixture)


def props(priority=None, persistent=False, **kw):
    return pika.BasicProperties(priority=priority, delivery_mode=2 if persistent else None, **kw)


def drain_get(ch, queue):
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(b.decode())


def test_tutorial_priority_example(ch):
    # As a new user tries it: declare with x-max-priority, publish with priority.
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-priority": 10}).method.queue
    for i, p in enumerate([1, 5, 10, 2, 5, None, 0, 10]):
        ch.basic_publish("", q, f"m{i}-p{p}".encode(), props(p))
    assert drain_get(ch, q) == [
        "m2-p10", "m7-p10", "m1-p5", "m4-p5", "m3-p2", "m0-p1", "m5-pNone", "m6-p0"]


def test_priority_above_maximum_is_the_maximum(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-priority": 3}).method.queue
    for body, p in [("a", 3), ("b", 200), ("c", 4), ("d", 2), ("e", 255)]:
        ch.basic_publish("", q, body.encode(), props(p))
    # 3, 200, 4 and 255 are all priority 3: FIFO among them.
    assert drain_get(ch, q) == ["a", "b", "c", "e", "d"]


def test_consumer_gets_highest_first_and_requeue_keeps_place(conn):
    connection = conn
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-priority": 9}).method.queue
    for body, p in [("low1", 1), ("high1", 9), ("mid1", 5), ("low2", 1), ("high2", 9)]:
        ch.basic_publish("", q, body.encode(), props(p))
    ch.basic_qos(prefetch_count=1)
    got = []

    def on_msg(c, m, p, b):
        got.append((b.decode(), m.redelivered))
        if b == b"high1" and not m.redelivered:
            c.basic_nack(m.delivery_tag, requeue=True)  # back in its place: first again
        else:
            c.basic_ack(m.delivery_tag)
        if len(got) == 6:
            c.stop_consuming()

    ch.basic_consume(q, on_msg)
    connection.call_later(10, ch.stop_consuming)
    ch.start_consuming()
    assert got == [("high1", False), ("high1", True), ("high2", False), ("mid1", False),
                   ("low1", False), ("low2", False)]


def test_max_priority_validation(conn):
    connection = conn
    for value, code, text in [
        (256, 406, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'pq' in vhost '/': {max_value_exceeded,256}"),
        (-1, 406, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'pq' in vhost '/': {value_negative,-1}"),
        ("abc", 406, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'pq' in vhost '/': \"expected integer, got longstr\""),
    ]:
        ch = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("pq", arguments={"x-max-priority": value})
        assert (e.value.reply_code, e.value.reply_text) == (code, text)
    ch = connection.channel()
    ch.queue_declare("pq", auto_delete=True, arguments={"x-max-priority": 255})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("pq", auto_delete=True, arguments={"x-max-priority": 5})
    assert e.value.reply_code == 406 and "inequivalent arg 'x-max-priority'" in e.value.reply_text
    connection.channel().queue_delete("pq")


def test_priority_with_ttl_length_limit_and_dead_lettering(ch):
    ch.exchange_declare("prio-dlx", "fanout", auto_delete=True)
    dead = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dead, "prio-dlx")
    q = ch.queue_declare("", exclusive=True, arguments={
        "x-max-priority": 5, "x-max-length": 3, "x-dead-letter-exchange": "prio-dlx"}).method.queue
    for body, p in [("a", 1), ("b", 5), ("c", 2), ("d", 0)]:
        ch.basic_publish("", q, body.encode(), props(p))
    # drop-head drops the head: the highest priority, as RabbitMQ's priority queue does.
    assert drain_get(ch, dead) == ["b"]
    assert drain_get(ch, q) == ["c", "a", "d"]
    # A per-message TTL expires the head; the rest stay in order.
    ch.basic_publish("", q, b"short", props(5, expiration="1"))
    ch.basic_publish("", q, b"keep", props(1))
    time.sleep(0.2)
    assert drain_get(ch, q) == ["keep"]
    assert drain_get(ch, dead) == ["short"]


def test_backlog_on_disk_keeps_priority_order_across_restart(warren):
    w = warren()
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("prio-durable", durable=True, arguments={"x-max-priority": 255})
    ch.confirm_delivery()
    expected = []
    # Beyond the 8,192-message window the later messages of every lane wait on disk.
    n = 12000
    for i in range(n):
        p = [0, 7, 100, 255][(i * 7 + i // 13) % 4]
        body = f"{p}-{i}-".encode() + bytes([i % 251]) * (i % 100)
        ch.basic_publish("", "prio-durable", body, props(p, persistent=True))
        expected.append((-p, i, body))
    c.close()
    w.restart(crash=True)
    c = w.connect()
    ch = c.channel()
    assert ch.queue_declare("prio-durable", durable=True, passive=True).method.message_count == n
    ch.basic_qos(prefetch_count=500)
    got = []

    def on_msg(c2, m, p, b):
        got.append(b)
        c2.basic_ack(m.delivery_tag)
        if len(got) == n:
            c2.stop_consuming()

    ch.basic_consume("prio-durable", on_msg)
    c.call_later(60, ch.stop_consuming)
    ch.start_consuming()
    expected.sort()
    assert len(got) == n
    assert got == [b for _, _, b in expected]  # every byte, in priority order
    c.close()

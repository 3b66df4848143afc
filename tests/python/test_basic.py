# -*- coding: utf-8 -*-
"""basic.* / tx / confirm behaviour that client code depends on."""
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from conftest import Collector, drain, get_message, queue_counts, uniq, wait_until


def _queue(ch, **kw):
    return ch.queue_declare(queue="", exclusive=True, **kw).method.queue


def test_basic_get_and_get_empty(ch):
    q = _queue(ch)
    assert ch.basic_get(q) == (None, None, None)
    ch.confirm_delivery()
    ch.basic_publish("", q, "one")
    ch.basic_publish("", q, "two")
    m, p, b = ch.basic_get(q)
    assert b == b"one"
    assert m.message_count == 1  # remaining after this one
    assert m.redelivered is False
    assert m.exchange == "" and m.routing_key == q
    ch.basic_ack(m.delivery_tag)
    m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b"two" and m.message_count == 0
    assert ch.basic_get(q) == (None, None, None)


def test_delivery_tags_increase_per_channel(conn):
    ch1, ch2 = conn.channel(), conn.channel()
    q = _queue(ch1)
    ch1.confirm_delivery()
    for i in range(4):
        ch1.basic_publish("", q, str(i))
    tags1 = [get_message(ch1, q)[0].delivery_tag for _ in range(2)]
    tags2 = [get_message(ch2, q)[0].delivery_tag for _ in range(2)]
    assert tags1 == [1, 2]
    assert tags2 == [1, 2]  # delivery tags are channel-scoped


@pytest.mark.parametrize("op", ["nack", "reject"])
def test_nack_reject_requeue(ch, op):
    q = _queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, "a")
    ch.basic_publish("", q, "b")
    m, p, b = get_message(ch, q)
    assert (b, m.redelivered) == (b"a", False)
    if op == "nack":
        ch.basic_nack(m.delivery_tag, requeue=True)
    else:
        ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, b = get_message(ch, q)
    assert (b, m.redelivered) == (b"a", True)  # back at the head, flagged
    # requeue=False drops it (no dead-letter exchange configured)
    if op == "nack":
        ch.basic_nack(m.delivery_tag, requeue=False)
    else:
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_message(ch, q, auto_ack=True)
    assert (b, m.redelivered) == (b"b", False)
    assert ch.basic_get(q) == (None, None, None)


def test_nack_multiple(ch):
    q = _queue(ch)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, str(i))
    tags = [get_message(ch, q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    again = [get_message(ch, q, auto_ack=True) for _ in range(3)]
    assert [b for _, _, b in again] == [b"0", b"1", b"2"]
    assert all(m.redelivered for m, _, _ in again)


def test_ack_multiple(conn, ch):
    q = _queue(ch)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, str(i))
    tags = [get_message(ch, q)[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[1], multiple=True)  # acks 1 and 2, leaves 3
    ch.close()
    # closing the channel requeues only the still-unacked third message
    ch2 = conn.channel()
    m, p, b = get_message(ch2, q, auto_ack=True)
    assert (b, m.redelivered) == (b"2", True)
    assert ch2.basic_get(q) == (None, None, None)


def test_unacked_requeued_in_original_order_on_channel_close(conn, cleanup):
    q = cleanup.queue(uniq("order"))
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(4):
        ch.basic_publish("", q, str(i))
    taker = conn.channel()
    assert [get_message(taker, q)[2] for _ in range(2)] == [b"0", b"1"]
    assert queue_counts(conn, q) == (2, 0)  # declare-ok counts ready messages only
    taker.close()
    got = [get_message(ch, q, auto_ack=True) for _ in range(4)]
    assert [(b, m.redelivered) for m, _, b in got] == \
        [(b"0", True), (b"1", True), (b"2", False), (b"3", False)]


def test_basic_recover_requeue(ch):
    q = _queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, "x")
    m1, _, _ = get_message(ch, q)
    ch.basic_recover(requeue=True)
    m2, _, b = get_message(ch, q)
    assert b == b"x" and m2.redelivered is True
    assert m2.delivery_tag != m1.delivery_tag
    ch.basic_ack(m2.delivery_tag)


def test_publisher_confirms(ch, cleanup):
    q = _queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, "routed")  # returns only after basic.ack, no exception
    ch.basic_publish("", q, "routed-mandatory", mandatory=True)
    ch.basic_publish("", uniq("nowhere"), "unroutable, not mandatory")  # acked, dropped
    with pytest.raises(UnroutableError) as ei:
        ch.basic_publish("", uniq("nowhere"), "unroutable", mandatory=True)
    assert len(ei.value.messages) == 1
    returned = ei.value.messages[0]
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"unroutable"
    # the channel stays usable
    assert drain(ch, q, 2) == [b"routed", b"routed-mandatory"]


def test_mandatory_return_without_confirms(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    key = uniq("nowhere")
    ch.basic_publish("amq.direct", key, "bounce", pika.BasicProperties(correlation_id="c-1"),
                     mandatory=True)
    assert wait_until(conn, lambda: len(returned) == 1)
    m, p, b = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == \
        (312, "NO_ROUTE", "amq.direct", key)
    assert p.correlation_id == "c-1" and b == b"bounce"


def test_transactions_commit_and_rollback(conn):
    ch = conn.channel()
    q = _queue(ch)
    observer = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, "rolled-back-1")
    ch.basic_publish("", q, "rolled-back-2")
    assert queue_counts(conn, q) == (0, 0)  # nothing visible before commit
    ch.tx_rollback()
    assert queue_counts(conn, q) == (0, 0)
    ch.basic_publish("", q, "committed")
    ch.tx_commit()
    assert queue_counts(conn, q) == (1, 0)
    assert drain(observer, q, 1) == [b"committed"]
    # the channel stays transactional: a further commit with nothing pending is fine
    ch.tx_commit()


def test_transactional_ack(conn):
    ch = conn.channel()
    q = _queue(ch)
    ch.basic_publish("", q, "m")
    m, _, _ = get_message(ch, q)
    ch.tx_select()
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()  # the ack is discarded: the message stays unacked on this channel
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert queue_counts(conn, q) == (0, 0)


def test_purge_and_delete_counts(conn, cleanup):
    q = cleanup.queue(uniq("purge"))
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for _ in range(5):
        ch.basic_publish("", q, "x")
    assert ch.queue_purge(q).method.message_count == 5
    assert queue_counts(conn, q) == (0, 0)
    assert ch.queue_purge(q).method.message_count == 0
    for _ in range(3):
        ch.basic_publish("", q, "y")
    assert ch.queue_delete(q).method.message_count == 3
    with pytest.raises(ChannelClosedByBroker) as ei:
        conn.channel().queue_declare(q, passive=True)
    assert ei.value.reply_code == 404


def test_purge_leaves_unacked(conn, cleanup):
    q = cleanup.queue(uniq("purge2"))
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish("", q, "x")
    holder = conn.channel()
    m, _, _ = get_message(holder, q)
    assert ch.queue_purge(q).method.message_count == 2  # unacked message not purged
    holder.close()  # ...and it comes back
    assert queue_counts(conn, q) == (1, 0)


def test_passive_declare_message_and_consumer_counts(conn, cleanup):
    q = cleanup.queue(uniq("counts"))
    ch = conn.channel()
    ok = ch.queue_declare(q).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish("", q, "x")
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 3, 0)

    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    got = Collector()
    cons.basic_consume(q, got, auto_ack=False)
    assert wait_until(conn, lambda: len(got) == 1)
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (2, 1)  # unacked not counted
    ok = ch.queue_declare(q).method  # non-passive redeclare reports the same
    assert (ok.message_count, ok.consumer_count) == (2, 1)
    cons.basic_cancel(got.items[0][0].consumer_tag)
    ok = ch.queue_declare(q, passive=True).method
    assert ok.consumer_count == 0


def test_message_properties_round_trip(ch):
    q = _queue(ch)
    headers = {"int": 42, "neg": -7, "big": 2 ** 40, "str": "文本", "bool": True,
               "list": [1, "two", False], "nested": {"k": "v", "n": 1}, "bytes": b"\x00\xff"}
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8", headers=headers,
        delivery_mode=2, priority=5, correlation_id="corr", reply_to="reply-q",
        expiration="60000", message_id="msg-1", timestamp=1700000000, type="kind",
        user_id=ch.connection._impl.params.credentials.username, app_id="warren-tests")
    ch.confirm_delivery()
    body = bytes(range(256)) * 10
    ch.basic_publish("", q, body, props)
    m, p, b = get_message(ch, q, auto_ack=True)
    assert b == body
    for field in ("content_type", "content_encoding", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                  "type", "user_id", "app_id"):
        assert getattr(p, field) == getattr(props, field), field
    assert p.headers == headers


def test_empty_and_large_bodies(ch):
    q = _queue(ch)
    ch.confirm_delivery()
    big = b"x" * (1024 * 1024 + 17)  # spans many frames
    ch.basic_publish("", q, b"")
    ch.basic_publish("", q, big)
    assert get_message(ch, q, auto_ack=True)[2] == b""
    assert get_message(ch, q, auto_ack=True)[2] == big


def test_consumer_cancel_and_server_cancel_notification(conn, connection_factory, cleanup):
    q = cleanup.queue(uniq("cancel"))
    ch = conn.channel()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    assert queue_counts(conn, q) == (0, 1)
    connection_factory().channel().queue_delete(q)  # deleted under the consumer
    assert wait_until(conn, lambda: cancelled == [tag])
    assert ch.is_open

"""Queue arguments RabbitMQ users rely on: TTLs, dead-lettering, length limits,
x-expires, single active consumer, consumer priorities. Written to RabbitMQ's documented
semantics (https://www.rabbitmq.com/docs/ttl, /dlx, /maxlength, /consumers)."""
import time

import pika
from pika.exceptions import NackError

from conftest import Collector, get_message, uniq, wait_until, queue_counts


def dlx_pair(ch, cleanup, **queue_args):
    """A source queue dead-lettering into a fanout exchange bound to a sink queue."""
    dlx, src, sink = uniq("dlx"), uniq("src"), uniq("sink")
    ch.exchange_declare(dlx, "fanout", auto_delete=False)
    cleanup.exchange(dlx)
    ch.queue_declare(sink)
    cleanup.queue(sink)
    ch.queue_bind(sink, dlx)
    args = {"x-dead-letter-exchange": dlx}
    args.update(queue_args)
    ch.queue_declare(src, arguments=args)
    cleanup.queue(src)
    return src, sink


def test_queue_ttl_expires_into_dead_letter_exchange(ch, cleanup):
    src, sink = dlx_pair(ch, cleanup, **{"x-message-ttl": 100})
    ch.basic_publish("", src, b"old", pika.BasicProperties(headers={"k": "v"}))
    m, props, body = get_message(ch, sink, timeout=5)
    assert body == b"old"
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert death["queue"] == src
    assert death["count"] == 1
    assert death["routing-keys"] == [src]
    assert props.headers["k"] == "v"
    assert props.headers["x-first-death-reason"] == "expired"
    assert ch.basic_get(src, auto_ack=True)[0] is None


def test_per_message_expiration(ch, cleanup):
    src, sink = dlx_pair(ch, cleanup)
    ch.basic_publish("", src, b"short", pika.BasicProperties(expiration="50"))
    ch.basic_publish("", src, b"long", pika.BasicProperties(expiration="600000"))
    m, props, body = get_message(ch, sink, timeout=5)
    assert body == b"short"
    assert props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "50"
    assert ch.basic_get(src, auto_ack=True)[2] == b"long"


def test_ttl_zero_delivers_to_waiting_consumer_or_expires(conn, ch, cleanup):
    src, sink = dlx_pair(ch, cleanup, **{"x-message-ttl": 0})
    ch.basic_publish("", src, b"nobody-home")
    assert get_message(ch, sink, timeout=5)[2] == b"nobody-home"
    got = Collector(ack=True)
    ch.basic_consume(src, got)
    ch.basic_publish("", src, b"someone-home")
    assert wait_until(conn, lambda: len(got) == 1)
    assert got.bodies == [b"someone-home"]


def test_reject_without_requeue_dead_letters_with_routing_key(ch, cleanup):
    dlx, src, sink = uniq("dlx"), uniq("src"), uniq("sink")
    ch.exchange_declare(dlx, "direct")
    cleanup.exchange(dlx)
    ch.queue_declare(sink)
    cleanup.queue(sink)
    ch.queue_bind(sink, dlx, routing_key="dead")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"})
    cleanup.queue(src)
    ch.basic_publish("", src, b"bad")
    m, _, _ = get_message(ch, src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, props, body = get_message(ch, sink)
    assert body == b"bad"
    assert m.routing_key == "dead"
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_max_length_drop_head_dead_letters_oldest(ch, cleanup):
    src, sink = dlx_pair(ch, cleanup, **{"x-max-length": 2})
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", src, b)
    assert get_message(ch, sink)[1].headers["x-death"][0]["reason"] == "maxlen"
    assert [ch.basic_get(src, auto_ack=True)[2] for _ in range(2)] == [b"2", b"3"]


def test_reject_publish_overflow_nacks_confirms(ch, cleanup):
    q = uniq("full")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    cleanup.queue(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"fits")
    try:
        ch.basic_publish("", q, b"refused")
        raise AssertionError("expected a nack")
    except NackError:
        pass
    assert ch.basic_get(q, auto_ack=True)[2] == b"fits"


def test_x_expires_deletes_unused_queue(conn, ch):
    q = uniq("expires")
    ch.queue_declare(q, arguments={"x-expires": 300})

    def gone():
        probe = conn.channel()
        try:
            probe.queue_declare(q, passive=True)
            probe.close()
            return False
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return True

    assert wait_until(conn, gone, timeout=5, step=0.1)


def test_single_active_consumer(connection_factory, cleanup):
    c1, c2 = connection_factory(), connection_factory()
    ch1, ch2 = c1.channel(), c2.channel()
    q = uniq("sac")
    ch1.queue_declare(q, arguments={"x-single-active-consumer": True})
    cleanup.queue(q)
    first, second = Collector(ack=True), Collector(ack=True)
    ch1.basic_consume(q, first)
    ch2.basic_consume(q, second)
    for i in range(6):
        ch1.basic_publish("", q, b"%d" % i)
    assert wait_until([c1, c2], lambda: len(first) == 6)
    assert len(second) == 0
    c1.close()  # the active consumer goes; the next one takes over
    ch2.basic_publish("", q, b"after")
    assert wait_until(c2, lambda: len(second) == 1)


def test_consumer_priority(conn, ch, cleanup):
    q = uniq("prio")
    ch.queue_declare(q)
    cleanup.queue(q)
    low, high = Collector(ack=True), Collector(ack=True)
    ch.basic_consume(q, low, arguments={"x-priority": 1})
    ch.basic_consume(q, high, arguments={"x-priority": 10})
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    assert wait_until(conn, lambda: len(low) + len(high) == 5)
    assert len(high) == 5 and len(low) == 0


def test_dead_letter_cycle_terminates(ch, cleanup):
    # a -> (ttl) -> b -> (ttl) -> a: RabbitMQ drops the message once it would
    # re-enter a queue it already died in without a rejection.
    xa, xb, qa, qb = uniq("xa"), uniq("xb"), uniq("qa"), uniq("qb")
    for x in (xa, xb):
        ch.exchange_declare(x, "fanout")
        cleanup.exchange(x)
    ch.queue_declare(qa, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": xb})
    ch.queue_declare(qb, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": xa})
    cleanup.queue(qa)
    cleanup.queue(qb)
    ch.queue_bind(qa, xa)
    ch.queue_bind(qb, xb)
    ch.basic_publish(xa, "", b"loop")
    conn = ch.connection
    assert wait_until(conn, lambda: queue_counts(conn, qa)[0] == 0 and queue_counts(conn, qb)[0] == 0,
                      timeout=5, step=0.1)
    time.sleep(0.3)
    assert queue_counts(conn, qa)[0] == 0 and queue_counts(conn, qb)[0] == 0


def test_cancel_with_deliveries_in_flight_loses_nothing(connection_factory, cleanup):
    """Cancel a consumer while thousands of deliveries are on their way to it, then close its
    channel without acking: every message must be back in the queue."""
    n = 5000
    feeder = connection_factory()
    q = uniq("inflight")
    fch = feeder.channel()
    fch.queue_declare(q)
    cleanup.queue(q)
    for i in range(n):
        fch.basic_publish("", q, b"%d" % i)
    conn = connection_factory()
    ch = conn.channel()
    got = Collector(ack=False)
    tag = ch.basic_consume(q, got)
    assert wait_until(conn, lambda: len(got) > 0)
    ch.basic_cancel(tag)
    ch.close()  # unacked and in-flight deliveries go back
    assert wait_until(feeder, lambda: queue_counts(feeder, q)[0] == n, timeout=10, step=0.05), \
        queue_counts(feeder, q)

# -*- coding: utf-8 -*-
"""Documented behaviour that had no test (issue 19):

- max_message_size (docs/operations.md, Limits): an AMQP publish over it gets RabbitMQ's channel
  error 406 with its text, an MQTT publish over it ends the connection, and nothing is stored.
- MQTT client-id takeover (docs/compatibility.md, Sessions): a second connection with the same
  client id takes the session over; on MQTT 5 the first gets DISCONNECT 0x8E, and the session's
  subscriptions and queued QoS 1 messages go to the new connection.
- SIGTERM (docs/operations.md, Shutdown) with confirms in flight and unacknowledged deliveries:
  every confirmed message is there after the restart, the unacknowledged ones come back marked
  redelivered.

These tests run their own broker (WARREN_BIN, see warren_process.py)."""
import queue
import threading
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from conftest import uniq
from mqtt_client import Client, body
from test_mqtt_faults import Publisher, Silent
from warren_process import free_port, warren  # noqa: F401  (fixture)

PERSISTENT = pika.BasicProperties(delivery_mode=2)
LIMIT = 4096


def read_until_eof(raw, limit=200):
    """Every packet the broker sends until it closes the connection, as (type and flags, body).
    Fails if it goes silent instead (a hang is not a disconnect)."""
    got = []
    for _ in range(limit):
        try:
            p = raw.read()
        except Silent as e:
            raise AssertionError("the broker neither sent nor closed: %s; got %r" % (e, got)) from e
        if p is None:
            return got
        got.append(p)
    raise AssertionError("more than %d packets and no EOF" % limit)


def message_count(w, q):
    c = w.connect()
    try:
        return c.channel().queue_declare(q, passive=True).method.message_count
    finally:
        c.close()


def sized_broker(warren, tmp_path):
    """A broker with max_message_size = LIMIT and MQTT, and a durable queue "sized" bound to
    amq.topic for sized.#: (broker, MQTT port, AMQP connection, channel)."""
    cfg = tmp_path / "warren.toml"
    cfg.write_text("max_message_size = %d\n" % LIMIT)
    mqtt_port = free_port()
    w = warren(["--config", str(cfg), "--mqtt-port", str(mqtt_port)])
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("sized", durable=True)
    ch.queue_bind("sized", "amq.topic", "sized.#")
    return w, mqtt_port, c, ch


def test_max_message_size_refuses_amqp_and_mqtt_publishes_and_stores_nothing(warren, tmp_path):
    w, mqtt_port, c, ch = sized_broker(warren, tmp_path)
    ch.confirm_delivery()
    ch.basic_publish("", "sized", b"a" * LIMIT, PERSISTENT)  # at the limit: taken
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.basic_publish("", "sized", b"b" * (LIMIT + 1), PERSISTENT)
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - message size %d is larger than configured max size %d" % (LIMIT + 1, LIMIT))
    assert c.is_open  # a channel error, not a connection error
    c.close()
    # MQTT: a QoS 1 publish at the limit is acknowledged...
    pub = Publisher(mqtt_port, uniq("pub"))
    pub.publish("sized/ok", 1, b"c" * LIMIT)
    assert pub.read() == (0x40, b"\x00\x01")
    # ...and one far over it (past the packet limit, the limit plus 64 KiB of headers) ends the
    # connection with no PUBACK.
    pub.publish("sized/over", 2, b"d" * (LIMIT + 70_000))
    assert read_until_eof(pub) == []
    pub.close()
    assert message_count(w, "sized") == 2


def test_an_mqtt_message_just_over_max_message_size_is_refused(warren, tmp_path):
    w, mqtt_port, c, ch = sized_broker(warren, tmp_path)
    c.close()
    pub = Publisher(mqtt_port, uniq("pub"))
    pub.sock.settimeout(3)
    pub.publish("sized/over", 1, b"e" * (LIMIT + 1))
    assert read_until_eof(pub) == [], "a message over max_message_size was acknowledged"
    assert message_count(w, "sized") == 0


def session_expiry(seconds):
    """MQTT 5 CONNECT properties: Session Expiry Interval."""
    return b"\x11" + seconds.to_bytes(4, "big")


def test_mqtt5_client_id_takeover_hands_the_session_over(warren):
    mqtt_port = free_port()
    warren(["--mqtt-port", str(mqtt_port)])
    t = uniq("takeover")
    cid = uniq("same-id")
    # The first connection: a persistent session that subscribes and then never reads, so what is
    # published waits for it (in flight, unacknowledged) when the second one comes.
    first = Publisher(mqtt_port, cid, clean=False, v5_properties=session_expiry(600))
    first.subscribe(1, f"{t}/#", 1)
    pub = Client(uniq("pub"), v5=True, port=mqtt_port).connect()
    for i in range(5):
        pub.publish(f"{t}/{i}", body(i, 100), qos=1)
    second = Client(cid, v5=True, clean=False, expiry=600, port=mqtt_port).connect()
    assert second.session_present is True
    # The first connection: its deliveries, then DISCONNECT 0x8E (session taken over), then EOF.
    packets = read_until_eof(first)
    disconnects = [data for kind, data in packets if kind == 0xE0]
    assert len(disconnects) == 1 and disconnects[0][:1] == b"\x8e", packets
    assert packets[-1][0] == 0xE0, "DISCONNECT is the last packet: %r" % packets
    first.close()
    # The second has the subscription and the queued QoS 1 messages, none lost.
    got = {}
    for _ in range(5):
        m = second.get()
        got[m.topic] = m.payload
    assert got == {f"{t}/{i}": body(i, 100) for i in range(5)}
    pub.publish(f"{t}/after", b"after the takeover", qos=1)
    m = second.get()
    assert (m.topic, m.payload) == (f"{t}/after", b"after the takeover")
    second.nothing(0.3)
    pub.close()
    second.close()


def test_sigterm_keeps_confirmed_messages_and_requeues_unacked_deliveries(warren):
    w = warren()
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("work", durable=True)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", "work", b"old-%d" % i, PERSISTENT)
    # A consumer holds 10 deliveries unacknowledged.
    ch.basic_qos(prefetch_count=10)
    held = queue.Queue()
    ch.basic_consume("work", lambda _ch, m, _p, b: held.put(b))
    deadline = time.monotonic() + 10
    while held.qsize() < 10 and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    unacked = [held.get_nowait() for _ in range(held.qsize())]
    assert len(unacked) == 10, unacked
    # Three producers keep confirming (each has a publish waiting for its confirm at almost any
    # moment) while the broker gets SIGTERM.
    confirmed, errors = [], []
    started, stopping = threading.Event(), threading.Event()

    def producer(n):
        try:
            pc = w.connect()
            pch = pc.channel()
            pch.confirm_delivery()
            for i in range(100_000):
                pch.basic_publish("", "work", b"new-%d-%d" % (n, i), PERSISTENT)
                confirmed.append(b"new-%d-%d" % (n, i))
                started.set()
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.ConnectionWrongStateError, OSError) as e:
            if not stopping.is_set():  # after the SIGTERM: the shutdown's 320, or the socket went
                errors.append(repr(e))
        except Exception as e:  # noqa: BLE001 - reported in the test's thread
            errors.append(repr(e))

    threads = [threading.Thread(target=producer, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    assert started.wait(10), "the producers confirmed nothing"
    time.sleep(0.2)  # not synchronisation: lets the producers get going before the SIGTERM
    stopping.set()
    w.stop()  # SIGTERM; waits for the exit
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert len(confirmed) > 0
    w.start()
    c = w.connect()
    ch = c.channel()
    got = {}
    for _ in range(200_000):
        m, _, b = ch.basic_get("work", auto_ack=True)
        if m is None:
            break
        got[b] = m.redelivered
    lost = [b for b in confirmed if b not in got]
    assert not lost, "%d confirmed messages lost, e.g. %r" % (len(lost), lost[:3])
    assert all(b"old-%d" % i in got for i in range(20)), "an old message is gone"
    assert all(got[b] is True for b in unacked), {b: got[b] for b in unacked}
    # A clean stop keeps exact flags: what was never delivered is not marked redelivered.
    assert all(got[b"old-%d" % i] is False for i in range(10, 20)), got
    c.close()

# -*- coding: utf-8 -*-
"""MQTT under faults and pressure: a QoS 1 PUBACK only for what is on disk (store writes and
fsyncs failing, then SIGKILL), resource alarms blocking MQTT publishers but not subscribers, and a
subscriber that stops reading holding back only itself. A raw-socket MQTT 3.1.1 publisher sees
exactly which packets were acknowledged; paho-mqtt subscribes; every payload is checked byte for
byte."""
import queue
import socket
import time

import pika

from conftest import uniq
from mqtt_client import WAIT, Client, RawMqtt, body
from warren_process import free_port, warren  # noqa: F401  (fixture)


class Silent(Exception):
    """The broker neither answered nor hung up within the socket's timeout."""


class Publisher(RawMqtt):
    """RawMqtt whose read() tells a broker that hung up (None: EOF or reset) from one that went
    silent (raises Silent): a fault must cut the connection, and a broker that just hangs must not
    pass for one that did."""

    def _exact(self, n):
        try:
            return super()._exact(n)
        except socket.timeout as e:  # TimeoutError; RawMqtt.read() would take it for EOF
            raise Silent("no reply and no EOF within %ss" % self.sock.gettimeout()) from e


def number_of(payload, size):
    i = int(payload.split(b":", 1)[0])
    assert payload == body(i, size), "message %d came back corrupted" % i
    return i


def test_qos1_is_acknowledged_only_when_on_disk_under_store_faults(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port)], env={"WARREN_FAULT_INJECTION": "1"})
    t = uniq("fault")
    cid = uniq("keeper")
    size = 2048
    keeper = Client(cid, clean=False, port=port).connect()
    keeper.subscribe(f"{t}/#", qos=1)
    keeper.close()
    # (operation, path, how many succeed first, error): a fault part-way through each round.
    faults = [("fsync", "/msgs/", 2, "eio"), ("write", "/msgs/", 30, "enospc"),
              ("fsync", "/queues/", 2, "eio"), ("write", "/queues/", 30, "enospc")]
    acked, cut_short = set(), 0
    for rnd in range(8):
        op, path, skip, err = faults[rnd % len(faults)]
        w.control("inject_fault", op, path, str(skip), "1", err)
        pub = Publisher(port, uniq("pub"))
        pending = {}
        for k in range(100):
            i = rnd * 100 + k
            pending[k + 1] = i
            try:
                pub.publish(f"{t}/{i}", k + 1, body(i, size))
            except OSError:
                break  # the broker hung up on a fault: read what it acknowledged first
        while pending:
            try:
                got = pub.read()
            except Silent as e:
                raise AssertionError("round %d: the broker hung instead of acknowledging or "
                                     "disconnecting (%s)\n%s" % (rnd, e, w.log()[-3000:])) from e
            if got is None:
                break  # disconnected (EOF or reset): the rest were never acknowledged
            kind, data = got
            assert kind == 0x40, (kind, data)
            acked.add(pending.pop(int.from_bytes(data[:2], "big")))
        cut_short += bool(pending)
        pub.close()
    assert cut_short > 0, "no fault fired:\n" + w.log()
    assert len(acked) > 0
    w.restart(crash=True)
    back = Client(cid, clean=False, port=port).connect()
    try:
        got = set()
        while True:
            try:
                m = back.get(timeout=3)
            except queue.Empty:
                break
            got.add(number_of(m.payload, size))
    finally:
        back.close()
    lost = sorted(acked - got)
    assert not lost, "acknowledged QoS 1 messages lost: %s" % lost
    assert all(i < 800 for i in got)


def test_a_resource_alarm_blocks_mqtt_publishers_not_subscribers(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port)])
    t = uniq("alarm")
    sub = Client(uniq("sub"), port=port).connect()
    sub.subscribe(f"{t}/#", qos=1)
    away_id = uniq("away")
    away = Client(away_id, clean=False, port=port).connect()
    away.subscribe(f"{t}/#", qos=1)
    away.close()
    pub = Publisher(port, uniq("pub"))
    pub.publish(f"{t}/a", 1, b"before the alarm")
    assert pub.read() == (0x40, b"\x00\x01")
    assert sub.get().payload == b"before the alarm"
    assert w.ctl("set_vm_memory_high_watermark", "0.000001").returncode == 0
    # The alarm is on once status lists it (bounded poll, not a sleep).
    deadline = time.monotonic() + WAIT
    while "memory resource limit alarm" not in w.ctl("status").stdout:
        assert time.monotonic() < deadline, "no memory alarm:\n" + w.ctl("status").stdout
        time.sleep(0.05)
    pub.publish(f"{t}/b", 2, b"during the alarm")
    pub.sock.settimeout(1.5)
    # Blocked is silent, not disconnected: a read times out (EOF would be a cut connection).
    try:
        heard = pub.read()
    except Silent:
        heard = "silence"
    assert heard == "silence", "a blocked publisher was answered or cut: %r" % (heard,)
    sub.nothing(0.2)
    # Subscribers are not blocked: a session coming back gets what waited for it.
    back = Client(away_id, clean=False, port=port).connect()
    assert back.get().payload == b"before the alarm"
    assert w.ctl("set_vm_memory_high_watermark", "0.4").returncode == 0
    pub.sock.settimeout(WAIT)
    assert pub.read() == (0x40, b"\x00\x02")
    assert sub.get().payload == b"during the alarm"
    assert back.get().payload == b"during the alarm"
    for c in (pub, sub, back):
        c.close()


def test_a_subscriber_that_stops_reading_holds_back_only_itself(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port)])
    t = uniq("slow")
    stuck_id = uniq("stuck")
    # A persistent session (its queue is durable and not exclusive, so AMQP can look at it)
    # that subscribes and never reads its socket again.
    stuck = RawMqtt(port, stuck_id, clean=False)
    stuck.subscribe(1, f"{t}/#", 1)
    fast = Client(uniq("fast"), port=port).connect()
    fast.subscribe(f"{t}/#", qos=1)
    n, size = 3000, 10_000
    pub = Client(uniq("pub"), port=port).connect()
    for i in range(n):
        pub.publish(f"{t}/{i}", body(i, size), qos=1)
    got = [fast.get() for _ in range(n)]
    assert [m.payload for m in got] == [body(i, size) for i in range(n)]
    # The stuck subscriber was sent at most its 64 in flight: the rest waits in its queue.
    amqp = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", w.port))
    ch = amqp.channel()
    ready = ch.queue_declare(f"mqtt-subscription-{stuck_id}qos1", passive=True).method.message_count
    assert n - 64 <= ready <= n, ready
    amqp.close()
    stuck.close()
    pub.close()
    fast.close()

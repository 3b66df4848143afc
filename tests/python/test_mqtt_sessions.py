# -*- coding: utf-8 -*-
"""MQTT sessions over time, with paho-mqtt: shared subscriptions of a persistent session resumed
(and left by a clean start), the MQTT 5 will delay interval, and message expiry counting down for
subscribers and for retained messages. Payloads are compared byte for byte."""
import queue
import time
import urllib.parse

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import uniq
from mqtt_client import WAIT, body, clients  # noqa: F401  (clients: fixture)


def member_bindings(group, filter_):
    """The client ids bound to a shared group's queue (from the HTTP API)."""
    from mgmt import api, expect
    name = urllib.parse.quote(f"mqtt-shared-{group}/{filter_}", safe="")
    rows = expect(api("GET", f"/api/queues/%2F/{name}/bindings"), 200).json()
    return sorted(r["arguments"].get("x-mqtt-shared-member") for r in rows
                  if r["source"] == "amq.topic")


def collect(members, n, timeout=WAIT):
    """Until n messages arrived over `members`: [(member index, payload)]."""
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        for k, m in enumerate(members):
            try:
                got.append((k, m.msgs.get(timeout=0.02).payload))
            except queue.Empty:
                pass
    return got


def test_a_persistent_sessions_shared_subscriptions_are_resumed(clients):
    t = uniq("shr")
    group = uniq("g")
    shared = f"$share/{group}/{t}/#"
    a_id, b_id = uniq("a"), uniq("b")
    a = clients(a_id, clean=False).connect()
    assert a.subscribe(shared, qos=1) == [1]
    b = clients(b_id, v5=True).connect()
    assert b.subscribe(shared, qos=1) == [1]
    assert member_bindings(group, f"{t}/#") == sorted([a_id, b_id])
    pub = clients(uniq("pub")).connect()
    a.close()
    # While a is away its membership stays, but only b consumes.
    for i in range(10):
        pub.publish(f"{t}/{i}", body(i, 300), qos=1)
    assert sorted(p for _, p in collect([b], 10)) == sorted(body(i, 300) for i in range(10))
    # a comes back: the session is present and a consumes from the group again.
    a2 = clients(a_id, clean=False).connect()
    assert a2.session_present is True
    n = 60
    for i in range(n):
        pub.publish(f"{t}/{i}", body(1000 + i, 300), qos=1)
    got = collect([a2, b], n)
    assert sorted(p for _, p in got) == sorted(body(1000 + i, 300) for i in range(n))
    assert {k for k, _ in got} == {0, 1}, "both members take turns"
    a2.nothing(0.2)
    b.nothing(0.2)
    a2.close()
    # A clean start discards the session, memberships included.
    a3 = clients(a_id, clean=True).connect()
    assert a3.session_present is False
    assert member_bindings(group, f"{t}/#") == [b_id]
    # b's session ends with its connection: it leaves the group.
    b.close()
    deadline = time.time() + WAIT
    while member_bindings(group, f"{t}/#") and time.time() < deadline:
        time.sleep(0.05)
    assert member_bindings(group, f"{t}/#") == []


def will_props(delay):
    p = Properties(PacketTypes.WILLMESSAGE)
    p.WillDelayInterval = delay
    return p


def drop(c):
    """The client's socket just goes (no DISCONNECT): an unclean end."""
    c.c.loop_stop()
    c.c.socket().close()


def test_the_will_waits_out_its_delay_and_a_reconnect_cancels_it(clients):
    t = uniq("wd")
    sub = clients(uniq("sub")).connect()
    sub.subscribe(f"{t}/#", qos=1)
    # A persistent session with a 2 s will delay: nothing at once, the will after about 2 s.
    late_id = uniq("late")
    late = clients(late_id, v5=True, clean=True, expiry=60,
                   will=(f"{t}/late", b"late will", 1, False, will_props(2))).connect()
    drop(late)
    start = time.time()
    sub.nothing(1.2)
    m = sub.get()
    took = time.time() - start
    assert (m.topic, m.payload) == (f"{t}/late", b"late will")
    assert 1.5 <= took < 6, took
    # The client comes back within the delay: the will never goes.
    back_id = uniq("back")
    back = clients(back_id, v5=True, clean=True, expiry=60,
                   will=(f"{t}/back", b"must not go", 1, False, will_props(2))).connect()
    drop(back)
    time.sleep(0.3)
    clients(back_id, v5=True, clean=False, expiry=60).connect()
    sub.nothing(3)
    # A session that ends with its connection (no expiry) sends its will at once.
    now_id = uniq("now")
    now = clients(now_id, v5=True, clean=True,
                  will=(f"{t}/now", body(7, 5000), 1, False, will_props(30))).connect()
    drop(now)
    m = sub.get(timeout=1.5)
    assert (m.topic, m.payload) == (f"{t}/now", body(7, 5000))


def expiring(secs):
    p = Properties(PacketTypes.PUBLISH)
    p.MessageExpiryInterval = secs
    return p


def test_message_expiry_counts_down_for_subscribers_and_retained_messages(clients):
    t = uniq("cd")
    cid = uniq("waiting")
    a = clients(cid, v5=True, clean=True, expiry=60).connect()
    a.subscribe(f"{t}/q", qos=1)
    a.close()
    pub = clients(uniq("pub"), v5=True).connect()
    pub.publish(f"{t}/q", b"counting down", qos=1, properties=expiring(10))
    pub.publish(f"{t}/q", b"forever", qos=1)
    pub.publish(f"{t}/r", body(3, 2000), qos=1, retain=True, properties=expiring(10))
    pub.publish(f"{t}/gone", b"short-lived", qos=1, retain=True, properties=expiring(1))
    time.sleep(2.2)
    # Queued for an offline session: delivered with the time it has left.
    b = clients(cid, v5=True, clean=False, expiry=60).connect()
    m = b.get()
    assert m.payload == b"counting down"
    assert 6 <= m.properties.MessageExpiryInterval <= 8, m.properties.MessageExpiryInterval
    m = b.get()
    assert m.payload == b"forever"
    assert not hasattr(m.properties, "MessageExpiryInterval")
    # Retained: the time left, and an expired one is not sent at all.
    late = clients(uniq("late"), v5=True).connect()
    late.subscribe(f"{t}/#", qos=1)
    m = late.get()
    assert (m.topic, m.payload, m.retain) == (f"{t}/r", body(3, 2000), True)
    assert 6 <= m.properties.MessageExpiryInterval <= 8, m.properties.MessageExpiryInterval
    late.nothing(0.5)

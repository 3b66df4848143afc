# -*- coding: utf-8 -*-
"""What one ordinary MQTT login must not be able to do (issue 19):

- use up a session's packet ids and hang the broker (one SUBSCRIBE naming a filter 65,536 times
  with a retained message, 1,100 shared groups that never ack): the session's unacknowledged
  QoS 1 deliveries are bounded by a window, the rest wait, and other clients are served;
- take another user's session (its queued messages, its subscriptions) by connecting with its
  client id, or delete it with a clean start, or close the other user's live connection;
- read another shared group's messages because two (group, filter) pairs share a queue name;
- send MQTT 5 protocol errors that are accepted (Receive Maximum 0, a client's Subscription
  Identifier);
- lose a QoS 2 message whose packet id was used before by a refused publish.

Raw sockets throughout, so the test sees exactly which packets the broker sends."""
import json
import os
import socket
import time
import urllib.request

import pika
import pytest

from conftest import accounts, ctl_ok, uniq  # noqa: F401  (accounts: fixture)
from mqtt_client import PORT, WAIT, RawMqtt, _packet, _s, _varint
from warren_process import free_port, warren  # noqa: F401  (warren: fixture)

AMQP_PORT = int(os.environ.get("AMQP_PORT", "5672"))
MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672").rstrip("/")
WINDOW = 1024  # the session window for clients that set no Receive Maximum (session.rs WINDOW)


class Raw(RawMqtt):
    """A socket-level MQTT client (3.1.1, or 5.0 with `v5`) that logs in as anyone and reports
    every packet the broker sends."""

    def __init__(self, client_id, user="guest", password="guest", clean=True, v5=False,  # noqa: D107
                 props=b"", expect=0, port=None, will=None):  # pylint: disable=super-init-not-called
        """Logs in as `user` (RawMqtt's own CONNECT is guest's). `will`: (topic, payload, will
        properties) sets a QoS 1 will."""
        self.v5 = v5
        self.sock = socket.create_connection(("127.0.0.1", port or PORT), timeout=WAIT)
        flags = 0xC0 | (0x02 if clean else 0) | (0x0C if will else 0)
        var = _s("MQTT") + bytes([5 if v5 else 4, flags]) + (60).to_bytes(2, "big")
        if v5:
            var += _varint(len(props)) + props
        payload = _s(client_id)
        if will:
            wprops = will[2] if v5 else b""
            payload += (_varint(len(wprops)) + wprops if v5 else b"") + _s(will[0])
            payload += len(will[1]).to_bytes(2, "big") + will[1]
        self.sock.sendall(_packet(0x10, var + payload + _s(user) + _s(password)))
        got = self.read()
        self.connack = got
        assert got is not None and got[0] == 0x20, got
        self.session_present = bool(got[1][0] & 1)
        self.code = got[1][1]
        assert expect is None or self.code == expect, (self.code, expect)

    def read(self, timeout=WAIT):
        """(first byte, body); None at EOF; raises socket.timeout when nothing comes in time."""
        self.sock.settimeout(timeout)
        return self.read_or_raise()

    def props(self):
        return b"\x00" if self.v5 else b""

    def subscribe(self, packet_id, filters, qos=1):
        """One SUBSCRIBE naming every filter of `filters`; returns the SUBACK's codes."""
        body = packet_id.to_bytes(2, "big") + self.props()
        body += b"".join(_s(f) + bytes([qos]) for f in filters)
        self.sock.sendall(_packet(0x82, body))
        while True:
            got = self.read()
            assert got is not None, "connection closed instead of SUBACK"
            if got[0] >> 4 == 9:
                data = got[1][2:]
                if self.v5:
                    n, at = _read_varint(data, 0)
                    data = data[at + n:]
                return list(data)

    def publish(self, topic, payload, qos=1, packet_id=1, dup=False, retain=False, props=b""):
        first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
        var = _s(topic) + (packet_id.to_bytes(2, "big") if qos else b"")
        if self.v5:
            var += _varint(len(props)) + props
        self.sock.sendall(_packet(first, var + payload))

    def ack(self, kind, packet_id):
        self.sock.sendall(_packet(kind, packet_id.to_bytes(2, "big")))

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()


def _read_varint(data, at):
    n, shift = 0, 0
    while True:
        b = data[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, at


def parse_publish(first, data, v5=False):
    """(topic, qos, packet id, payload) of a PUBLISH."""
    qos = (first >> 1) & 3
    n = int.from_bytes(data[:2], "big")
    topic, at = data[2:2 + n].decode(), 2 + n
    pid = None
    if qos:
        pid, at = int.from_bytes(data[at:at + 2], "big"), at + 2
    if v5:
        length, at = _read_varint(data, at)
        at += length
    return topic, qos, pid, data[at:]


def drain_publishes(c, quiet=1.0, limit=200_000):
    """Every PUBLISH the broker sends until it has been quiet for `quiet` seconds: [(topic, qos,
    id, payload)]. Fails on EOF (the broker closed the connection)."""
    out = []
    while len(out) < limit:
        try:
            got = c.read(timeout=quiet)
        except socket.timeout:
            return out
        assert got is not None, "the broker closed the connection"
        if got[0] >> 4 == 3:
            out.append(parse_publish(got[0], got[1], c.v5))
    return out


def wait_acks(c, n):
    """Reads until `n` PUBACKs came (a publisher that closes before reading them may see its
    last publishes dropped with the connection)."""
    acks = 0
    while acks < n:
        got = c.read()
        assert got is not None, "closed after %d PUBACKs" % acks
        acks += got[0] >> 4 == 4


def others_are_served(tag):
    """A new AMQP connection, a new MQTT connection and an HTTP request all get their answers."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", AMQP_PORT, socket_timeout=WAIT, blocked_connection_timeout=WAIT))
    ch = conn.channel()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    ch.basic_publish("", q, b"still here")
    deadline = time.monotonic() + WAIT
    got = None
    while got is None and time.monotonic() < deadline:
        got = ch.basic_get(q, auto_ack=True)[2]
    assert got == b"still here"
    conn.close()
    other = Raw(uniq("other-" + tag))
    assert other.subscribe(1, ["other/" + tag]) == [1]
    other.close()
    req = urllib.request.Request(MGMT_URL + "/api/overview")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        assert r.status == 200


# --- 1. packet ids ------------------------------------------------------------------------------

def test_one_subscribe_naming_a_retained_filter_65536_times():
    """Before: 65,536 retained sends, the packet ids ran out and the broker hung. Subscribing to
    a filter again replaces what still waits for it: the client gets the retained message, the
    connection and everyone else go on."""
    topic = uniq("retained/one")
    setter = Raw(uniq("setter"))
    setter.publish(topic, b"the retained one", qos=1, packet_id=1, retain=True)
    assert setter.read()[0] >> 4 == 4  # PUBACK: retained
    setter.close()
    greedy = Raw(uniq("greedy"))
    greedy.sock.sendall(_packet(0x82, (7).to_bytes(2, "big") + (_s(topic) + b"\x01") * 65_536))
    try:
        got = drain_publishes(greedy, quiet=2.0)
        assert 1 <= len(got) <= WINDOW, len(got)
        assert all(p[3] == b"the retained one" and p[1] == 1 for p in got)
        assert len(set(p[2] for p in got)) == len(got)
        others_are_served("retained")
        greedy.sock.sendall(b"\xc0\x00")  # PINGREQ: the connection itself still answers
        got = greedy.read()
        while got is not None and got[0] >> 4 == 3:
            got = greedy.read()
        assert got is not None and got[0] == 0xD0, got
    finally:
        greedy.close()
    others_are_served("retained-after")
    clear = Raw(uniq("clear"))
    clear.publish(topic, b"", qos=1, packet_id=1, retain=True)
    assert clear.read()[0] >> 4 == 4
    clear.close()


def test_retained_matches_beyond_the_window_wait_for_acks():
    """A subscription matching more retained topics than the window: the window's worth go out,
    each PUBACK lets one more go."""
    base = uniq("many")
    n = WINDOW + 300
    setter = Raw(uniq("setter"))
    for i in range(n):
        setter.publish("%s/%d" % (base, i), b"r%d" % i, qos=1, packet_id=1 + i, retain=True)
    acks = 0
    while acks < n:
        got = setter.read()
        assert got is not None
        acks += got[0] >> 4 == 4
    c = Raw(uniq("sub"))
    try:
        c.sock.sendall(_packet(0x82, (1).to_bytes(2, "big") + _s(base + "/#") + b"\x01"))
        got = drain_publishes(c, quiet=1.5)
        assert len(got) == WINDOW, len(got)
        for p in got[:10]:
            c.ack(0x40, p[2])
        more = drain_publishes(c, quiet=1.5)
        assert len(more) == 10, len(more)
        for p in got[10:] + more:
            c.ack(0x40, p[2])
        rest = drain_publishes(c, quiet=1.5)
        seen = [p[3] for p in got + more + rest]
        assert sorted(seen) == sorted(b"r%d" % i for i in range(n))
    finally:
        c.close()
        for i in range(n):
            setter.publish("%s/%d" % (base, i), b"", qos=0, retain=True)
        setter.close()


def test_1100_shared_groups_that_never_ack_are_windowed():
    topic = uniq("shared/t")
    greedy = Raw(uniq("greedy"))
    groups = ["$share/%s/%s" % (uniq("g"), topic) for _ in range(1100)]
    codes = []
    for i in range(0, len(groups), 100):
        codes += greedy.subscribe(1 + i, groups[i:i + 100])
    assert codes == [1] * 1100
    pub = Raw(uniq("pub"))
    for i in range(70):
        pub.publish(topic, b"m%d" % i, qos=1, packet_id=1 + i)
    wait_acks(pub, 70)
    pub.close()
    try:
        got = drain_publishes(greedy, quiet=2.0)
        assert 0 < len(got) <= WINDOW + 4, len(got)  # a few may race past as queues dispatch at once
        assert len(set(p[2] for p in got)) == len(got)
        others_are_served("shared")
    finally:
        greedy.close()
    others_are_served("shared-after")


def test_receive_maximum_bounds_what_is_in_flight_across_queues():
    """MQTT 5: with Receive Maximum 5, five QoS 1 messages at most are unacknowledged, over the
    session's own queue and a shared group's together."""
    topic = uniq("rm/t")
    c = Raw(uniq("rm"), v5=True, props=b"\x21\x00\x05")
    assert c.subscribe(1, [topic, "$share/%s/%s" % (uniq("g"), topic)]) == [1, 1]
    pub = Raw(uniq("pub"))
    for i in range(20):
        pub.publish(topic, b"m%d" % i, qos=1, packet_id=1 + i)
    wait_acks(pub, 20)
    pub.close()
    try:
        got = drain_publishes(c, quiet=1.5)
        assert len(got) == 5, len(got)
        c.ack(0x40, got[0][2])
        more = drain_publishes(c, quiet=1.5)
        assert len(more) == 1, len(more)
    finally:
        c.close()


# --- 2. another user's session ----------------------------------------------------------------

def _user(accounts, prefix):
    name = accounts.new_user(password="pw", prefix=prefix)
    accounts.grant(name)
    return name


def queue_messages(name):
    req = urllib.request.Request(MGMT_URL + "/api/queues/%2F/" + urllib.request.quote(name, safe=""))
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        return json.loads(r.read())["messages"]


@pytest.mark.parametrize("v5", [False, True])
def test_another_user_cannot_take_or_delete_a_session(accounts, v5):
    alice, bob = _user(accounts, "alice"), _user(accounts, "bob")
    cid, topic = uniq("alice-device"), uniq("alice/inbox")
    expiry = b"\x11\x00\x00\x0e\x10"  # session expiry 3600 s
    a = Raw(cid, alice, "pw", clean=False, v5=v5, props=expiry)
    assert a.subscribe(1, [topic]) == [1]
    a.close()
    pub = Raw(uniq("pub"))
    for i in range(3):
        pub.publish(topic, b"for alice %d" % i, qos=1, packet_id=1 + i)
        assert pub.read()[0] >> 4 == 4
    pub.close()
    qname = "mqtt-subscription-%sqos1" % cid
    assert queue_messages(qname) == 3
    refused = 0x87 if v5 else 5
    for clean in (False, True):
        b = Raw(cid, bob, "pw", clean=clean, v5=v5, props=expiry, expect=None)
        assert b.code == refused, b.code
        assert not b.session_present
        assert b.read() is None  # closed, nothing delivered
    assert queue_messages(qname) == 3
    # While alice is connected, bob can't close her connection either.
    a = Raw(cid, alice, "pw", clean=False, v5=v5, props=expiry)
    assert a.session_present
    b = Raw(cid, bob, "pw", v5=v5, expect=None)
    assert b.code == refused
    got = drain_publishes(a, quiet=1.0)
    assert sorted(p[3] for p in got) == [b"for alice %d" % i for i in range(3)]
    for p in got:
        a.ack(0x40, p[2])
    a.close()


def test_resuming_needs_read_permission(accounts):
    """A session made before sessions had owners (no owner argument) is resumed only with the
    queue permissions a consume needs."""
    alice = _user(accounts, "alice")
    cid = uniq("legacy")
    qname = "mqtt-subscription-%sqos1" % cid
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", AMQP_PORT))
    conn.channel().queue_declare(qname, durable=True)
    conn.close()
    try:
        accounts.grant(alice, read="^nothing$")
        c = Raw(cid, alice, "pw", clean=False, expect=None)
        assert c.code == 5
        c.sock.close()
        accounts.grant(alice)
        c = Raw(cid, alice, "pw", clean=False)
        assert c.session_present
        c.close()
    finally:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", AMQP_PORT))
        conn.channel().queue_delete(qname)
        conn.close()


# --- 3. shared queue names --------------------------------------------------------------------

def test_shared_groups_with_dashes_do_not_share_a_queue():
    base = uniq("x")
    a = Raw(uniq("a"))
    b = Raw(uniq("b"))
    # Before: both were queue mqtt-shared-<base>-eu-orders.
    assert a.subscribe(1, ["$share/%s/eu-orders" % base]) == [1]
    assert b.subscribe(1, ["$share/%s-eu/orders" % base]) == [1]
    pub = Raw(uniq("pub"))
    for i in range(10):
        pub.publish("orders", b"o%d" % i, qos=1, packet_id=1 + i)
        pub.publish("eu-orders", b"e%d" % i, qos=1, packet_id=100 + i)
    wait_acks(pub, 20)
    pub.close()
    got_a = drain_publishes(a, quiet=1.0)
    got_b = drain_publishes(b, quiet=1.0)
    assert all(p[0] == "eu-orders" for p in got_a), got_a
    assert all(p[0] == "orders" for p in got_b), got_b
    assert len(got_a) == 10 and len(got_b) == 10
    a.close()
    b.close()


def test_a_legacy_shared_queue_is_still_found():
    """A durable group queue named as before (mqtt-shared-<group>-<filter>) whose bindings are all
    that group's is used again by the group's members, messages and all."""
    group, flt = uniq("legacy"), uniq("lt")
    legacy = "mqtt-shared-%s-%s" % (group, flt)
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", AMQP_PORT))
    ch = conn.channel()
    ch.queue_declare(legacy, durable=True)
    ch.queue_bind(legacy, "amq.topic", flt, arguments={
        "x-mqtt-shared-member": "old-member", "x-mqtt-shared-group": group, "x-mqtt-shared-qos": 1})
    ch.basic_publish("", legacy, b"waiting since before",
                     pika.BasicProperties(delivery_mode=2, headers={"x-mqtt-publish-qos": 1}))
    try:
        c = Raw(uniq("member"))
        assert c.subscribe(1, ["$share/%s/%s" % (group, flt)]) == [1]
        got = drain_publishes(c, quiet=1.0)
        assert [p[3] for p in got] == [b"waiting since before"]
        c.ack(0x40, got[0][2])
        c.close()
    finally:
        ch.queue_delete(legacy)
        conn.close()


# --- 13. MQTT 5 protocol errors ---------------------------------------------------------------

def test_receive_maximum_zero_is_a_protocol_error():
    c = Raw(uniq("rm0"), v5=True, props=b"\x21\x00\x00", expect=None)
    assert c.code == 0x82
    assert c.read() is None


def test_a_client_publish_with_a_subscription_identifier_is_a_protocol_error():
    c = Raw(uniq("subid"), v5=True)
    c.publish("t/subid", b"x", qos=1, packet_id=3, props=b"\x0b\x01")
    got = c.read()
    assert got is not None and got[0] == 0xE0 and got[1][0] == 0x82, got
    assert c.read() is None


# --- QoS 2: a refused publish does not hold its packet id --------------------------------------

def test_qos2_id_of_a_refused_publish_is_free_again(accounts):
    user = accounts.new_user(password="pw", prefix="q2")
    ctl_ok("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    ctl_ok("set_topic_permissions", "-p", "/", user, "amq.topic", "^allowed", ".*")
    topic = "allowed." + uniq("q2")
    sub = Raw(uniq("sub"))
    assert sub.subscribe(1, [topic.replace(".", "/")]) == [1]
    c = Raw(uniq("q2c"), user, "pw", v5=True)
    c.publish("denied/x", b"refused", qos=2, packet_id=7)
    got = c.read()
    assert got[0] >> 4 == 5 and got[1][2] == 0x87, got  # PUBREC, not authorized
    # The same id, now for a message it may publish: published, not taken for a resend.
    c.publish(topic.replace(".", "/"), b"second", qos=2, packet_id=7)
    got = c.read()
    assert got[0] >> 4 == 5 and (len(got[1]) == 2 or got[1][2] == 0), got
    c.ack(0x62, 7)  # PUBREL
    got = c.read()
    assert got[0] >> 4 == 7 and (len(got[1]) == 2 or got[1][2] == 0), got  # PUBCOMP
    assert [p[3] for p in drain_publishes(sub, quiet=1.0)] == [b"second"]
    # A resend (DUP) before PUBREL: one PUBREC each, one message.
    c.publish(topic.replace(".", "/"), b"third", qos=2, packet_id=9)
    c.publish(topic.replace(".", "/"), b"third", qos=2, packet_id=9, dup=True)
    for _ in range(2):
        got = c.read()
        assert got[0] >> 4 == 5, got
    c.ack(0x62, 9)
    assert c.read()[0] >> 4 == 7
    # PUBREL for an id it never used: PUBCOMP 0x92.
    c.ack(0x62, 4242)
    got = c.read()
    assert got[0] >> 4 == 7 and got[1][2] == 0x92, got
    assert [p[3] for p in drain_publishes(sub, quiet=1.0)] == [b"third"]
    c.close()
    sub.close()


# --- 11. a delayed will is checked when it goes ----------------------------------------------

@pytest.mark.parametrize("delete_user", [False, True])
def test_a_delayed_will_goes_only_if_its_user_still_may_publish(accounts, delete_user):
    user = accounts.new_user(password="pw", prefix="will")
    accounts.grant(user)
    topic = uniq("will/t")
    watcher = Raw(uniq("watcher"))
    assert watcher.subscribe(1, [topic]) == [1]
    # Session expiry 60 s, will delay 1 s.
    c = Raw(uniq("dying"), user, "pw", v5=True, props=b"\x11\x00\x00\x00\x3c",
            will=(topic, b"last words", b"\x18\x00\x00\x00\x01"))
    c.sock.close()  # gone without DISCONNECT: the will is due in 1 s
    if delete_user:
        ctl_ok("delete_user", user)
        got = drain_publishes(watcher, quiet=3.0)
        assert got == [], got
    else:
        got = drain_publishes(watcher, quiet=3.0)
        assert [p[3] for p in got] == [b"last words"]
    watcher.close()


# --- 12. persistent sessions expire ------------------------------------------------------------

def test_persistent_sessions_expire_after_the_configured_maximum(warren):
    mqtt_port = free_port()
    w = warren(["--mqtt-port", str(mqtt_port), "--mqtt-max-session-expiry", "2"])
    c = Raw("old-device", clean=False, port=mqtt_port)
    assert c.subscribe(1, ["keep/me"]) == [1]
    c.close()
    # MQTT 5 asks for an hour and is granted the maximum, as CONNACK says.
    c5 = Raw("old-device-5", v5=True, clean=False, port=mqtt_port, props=b"\x11\x00\x00\x0e\x10")
    assert b"\x11\x00\x00\x00\x02" in c5.connack[1]
    assert c5.subscribe(1, ["keep/me/too"]) == [1]
    c5.close()
    deadline = time.monotonic() + 30
    listed = None
    while time.monotonic() < deadline:
        listed = w.ctl("list_queues", "name", "-q").stdout
        if "mqtt-subscription-old-device" not in listed:
            break
        time.sleep(0.2)
    assert "mqtt-subscription-old-device" not in listed, listed
    c = Raw("old-device", clean=False, port=mqtt_port)
    assert not c.session_present
    c.close()


def test_persistent_sessions_carry_the_default_expiry():
    cid = uniq("expiring")
    c = Raw(cid, clean=False)
    assert c.subscribe(1, [uniq("exp/t")]) == [1]
    c.close()
    req = urllib.request.Request(MGMT_URL + "/api/queues/%2F/" + urllib.request.quote(
        "mqtt-subscription-%sqos1" % cid, safe=""))
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        assert json.loads(r.read())["arguments"]["x-expires"] == 86_400_000
    c = Raw(cid, clean=True)
    c.close()

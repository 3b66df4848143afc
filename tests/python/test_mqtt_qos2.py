# -*- coding: utf-8 -*-
"""QoS 2 to subscribers, exactly once (beyond RabbitMQ, which downgrades to QoS 1): PUBLISH, PUBREC,
PUBREL, PUBCOMP both ways, and the in-flight state durable across a broker crash.

- A QoS 2 message sent and not PUBREC'd comes again after a SIGKILL and restart, with DUP and the
  same packet id, so a client that had it knows it.
- A message the client PUBREC'd is never sent again: after a SIGKILL and restart the broker sends
  PUBREL for it (the released marker), and after PUBCOMP nothing more.
- Every body checked byte for byte; a second client is served throughout."""
import pytest

from conftest import uniq
from test_mqtt_security import Raw, drain_publishes
from warren_process import free_port, warren  # noqa: F401  (fixture)

EXPIRY = b"\x11\x00\x00\x0e\x10"  # session expiry 3600 s


def body(i):
    return b"qos2-%d-" % i + bytes((i * 7 + k) % 256 for k in range(300 + i))


def publish_qos2(port, topic, payloads):
    """Publishes each payload at QoS 2 through the whole handshake."""
    pub = Raw(uniq("pub2"), port=port, v5=True)
    for i, p in enumerate(payloads):
        pub.publish(topic, p, qos=2, packet_id=10 + i)
        got = pub.read()
        assert got[0] >> 4 == 5 and (len(got[1]) == 2 or got[1][2] == 0), got  # PUBREC
        pub.ack(0x62, 10 + i)
        got = pub.read()
        assert got[0] >> 4 == 7, got  # PUBCOMP
    pub.close()


def restart(w):
    w.kill9()
    w.start()


@pytest.mark.parametrize("v5", [False, True])
def test_qos2_state_survives_a_crash(warren, v5):
    port = free_port()
    w = warren(["--mqtt-port", str(port)])
    topic = uniq("q2/t")
    cid = uniq("q2sub")
    props = EXPIRY if v5 else b""
    sub = Raw(cid, clean=False, v5=v5, props=props, port=port)
    assert sub.subscribe(1, [topic], qos=2) == [2]
    publish_qos2(port, topic, [body(0), body(1)])
    got = drain_publishes(sub, quiet=1.0)
    assert [(p[1], p[3]) for p in got] == [(2, body(0)), (2, body(1))]
    first_id, second_id = got[0][2], got[1][2]
    # The first: PUBREC'd, PUBREL received, PUBCOMP not sent. The second: not PUBREC'd.
    sub.ack(0x50, first_id)
    rel = sub.read()
    assert rel[0] == 0x62 and int.from_bytes(rel[1][:2], "big") == first_id, rel
    sub.sock.close()

    restart(w)

    sub = Raw(cid, clean=False, v5=v5, props=props, port=port)
    assert sub.session_present
    seen_rel, again = [], []
    for _ in range(10):
        try:
            got = sub.read(timeout=1.5)
        except OSError:
            break
        assert got is not None, "closed"
        if got[0] >> 4 == 6:
            seen_rel.append(int.from_bytes(got[1][:2], "big"))
        elif got[0] >> 4 == 3:
            again.append((got[0], got[1]))
    # PUBREL for the first, owed from before the crash; the second sent again, DUP, same id.
    assert seen_rel == [first_id]
    assert len(again) == 1, again
    from test_mqtt_security import parse_publish
    t, qos, pid, payload = parse_publish(again[0][0], again[0][1], v5)
    assert (qos, pid, payload) == (2, second_id, body(1))
    assert again[0][0] & 0x08, "DUP not set"
    # Finish both; nothing more comes, even after another crash.
    sub.ack(0x70, first_id)   # PUBCOMP
    sub.ack(0x50, second_id)  # PUBREC
    rel = sub.read()
    assert rel[0] == 0x62 and int.from_bytes(rel[1][:2], "big") == second_id
    sub.ack(0x70, second_id)
    assert drain_publishes(sub, quiet=1.0) == []
    sub.close()

    restart(w)

    sub = Raw(cid, clean=False, v5=v5, props=props, port=port)
    got = []
    for _ in range(5):
        try:
            g = sub.read(timeout=1.0)
        except OSError:
            break
        if g is None:
            break
        got.append(g)
    assert got == [], got
    # A second client is served, and the session still works.
    other = Raw(uniq("other"), port=port)
    other.close()
    publish_qos2(port, topic, [body(2)])
    got = drain_publishes(sub, quiet=1.0)
    assert [(p[1], p[3]) for p in got] == [(2, body(2))]
    sub.ack(0x50, got[0][2])
    assert sub.read()[0] == 0x62
    sub.ack(0x70, got[0][2])
    sub.close()


def test_qos2_granted_and_downgraded():
    """A QoS 2 subscription gets QoS 2 messages at 2, QoS 1 ones at 1 and QoS 0 ones at 0; a
    QoS 1 subscription gets a QoS 2 message at 1."""
    import os
    port = int(os.environ.get("MQTT_PORT", "1883"))
    topic = uniq("q2/d")
    s2 = Raw(uniq("s2"), v5=True)
    s1 = Raw(uniq("s1"))
    assert s2.subscribe(1, [topic], qos=2) == [2]
    assert s1.subscribe(1, [topic], qos=1) == [1]
    publish_qos2(port, topic, [b"two"])
    pub = Raw(uniq("pub"))
    pub.publish(topic, b"one", qos=1, packet_id=3)
    assert pub.read()[0] >> 4 == 4
    pub.publish(topic, b"zero", qos=0)
    pub.close()
    got2 = drain_publishes(s2, quiet=1.0)
    got1 = drain_publishes(s1, quiet=1.0)
    assert sorted((p[3], p[1]) for p in got2) == [(b"one", 1), (b"two", 2), (b"zero", 0)]
    assert sorted((p[3], p[1]) for p in got1) == [(b"one", 1), (b"two", 1), (b"zero", 0)]
    for p in got2:
        if p[1] == 2:
            s2.ack(0x50, p[2])
            assert s2.read()[0] == 0x62
            s2.ack(0x70, p[2])
        elif p[1] == 1:
            s2.ack(0x40, p[2])
    s2.close()
    s1.close()

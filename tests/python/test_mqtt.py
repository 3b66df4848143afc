# -*- coding: utf-8 -*-
"""MQTT 3.1.1 and 5.0 with real clients: paho-mqtt, Debian's mosquitto_pub/mosquitto_sub, and
pika on the AMQP side (MQTT topic a/b is AMQP routing key a.b on amq.topic, as RabbitMQ's MQTT
plugin maps it). Every payload is compared byte for byte.

MQTT_PORT names the shared broker's MQTT port; the restart tests start their own broker."""
import queue
import shutil
import socket
import subprocess
import time

import paho.mqtt.client as mqtt
import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import connect, uniq
from mqtt_client import HOST, PORT, WAIT, Client, RawMqtt, body, clients  # noqa: F401  (clients: fixture)
from warren_process import free_port, warren  # noqa: F401  (fixture)


def wait_for_topic_binding(pred, present=True, timeout=WAIT):
    """Polls the management API (bounded) until a binding from amq.topic for which pred(binding)
    holds exists (present) or no longer exists: how a test knows a subscription made by a client
    it cannot ask (mosquitto_sub) is in place, or that an unsubscribe has taken effect."""
    from mgmt import api, expect
    deadline = time.time() + timeout
    while True:
        bindings = expect(api("GET", "/api/exchanges/%2F/amq.topic/bindings/source"), 200).json()
        if any(pred(b) for b in bindings) == present:
            return
        assert time.time() < deadline, "no binding change within %ss" % timeout
        time.sleep(0.05)


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_publish_subscribe_qos0_and_qos1_every_byte(clients, v5):
    t = uniq("m")
    sub = clients(uniq("sub"), v5=v5).connect()
    assert sub.subscribe(f"{t}/+/x", qos=1) == [1]
    assert sub.subscribe(f"{t}/all/#", qos=0) == [0]
    pub = clients(uniq("pub"), v5=v5).connect()
    sizes = [0, 1, 100, 4096, 65_536, 300_000]
    for i, size in enumerate(sizes):
        pub.publish(f"{t}/{i}/x", body(i, size), qos=i % 2)
    got = [sub.get() for _ in sizes]
    assert [(m.topic, m.payload) for m in got] == [(f"{t}/{i}/x", body(i, s)) for i, s in enumerate(sizes)]
    # Delivered QoS = min(published, granted).
    assert [m.qos for m in got] == [i % 2 for i in range(len(sizes))]
    pub.publish(f"{t}/all/deep/er", b"deep", qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (f"{t}/all/deep/er", b"deep", 0)
    pub.publish(f"{t}/a/b/x", b"no match: + is one level", qos=1)
    sub.nothing()


def test_mqtt_connections_are_listed_with_their_client_id(clients):
    from mgmt import api, expect
    cid = uniq("listed")
    c = clients(cid, v5=True).connect()
    c.publish(uniq("listed") + "/t", b"x" * 2000, qos=1)
    deadline = time.time() + WAIT
    found = []
    while not found and time.time() < deadline:
        conns = expect(api("GET", "/api/connections"), 200).json()
        found = [c for c in conns if (c.get("client_properties") or {}).get("client_id") == cid]
        time.sleep(0.1)
    assert found and found[0]["protocol"] == "MQTT 5.0" and found[0]["user"] == "guest"
    # Its traffic is counted: the 2,000-byte publish in, CONNACK and PUBACK out.
    assert found[0]["recv_oct"] >= 2000 and found[0]["recv_cnt"] >= 1, found[0]
    assert found[0]["send_oct"] >= 4 and found[0]["send_cnt"] >= 1, found[0]


def test_names_longer_than_amqp_allows_are_refused_not_cut(clients):
    # A client id whose queue name would pass 255 bytes: CONNACK "identifier rejected".
    long_id = clients("c" * 240).connect(expect_ok=False)
    assert long_id.rc.value == 0x85  # paho reports 3.1.1's code 2 so
    sub = clients(uniq("sub"), v5=True).connect()
    assert sub.subscribe("t/" + "x" * 260, qos=1) == [0x8F]
    # A topic name longer than a routing key may be: the connection is refused, not misrouted.
    pub = clients(uniq("pub")).connect()
    info = pub.c.publish("t/" + "y" * 300, b"x", 0)
    deadline = time.time() + WAIT
    while pub.c.is_connected() and time.time() < deadline:
        time.sleep(0.05)
    assert not pub.c.is_connected()


def test_qos2_is_granted_and_delivered_as_qos2(clients):
    t = uniq("q2")
    sub = clients(uniq("sub")).connect()
    assert sub.subscribe(t, qos=2) == [2]  # RabbitMQ grants QoS 2 as 1; Warren keeps 2
    pub = clients(uniq("pub")).connect()
    pub.publish(t, b"exactly", qos=2)  # PUBREC/PUBREL/PUBCOMP
    m = sub.get()
    assert (m.payload, m.qos) == (b"exactly", 2)
    assert sub.nothing()


def test_amqp_and_mqtt_reach_each_other(clients):
    t = uniq("x")
    sub = clients(uniq("sub")).connect()
    sub.subscribe(f"{t}/sensors/+", qos=1)
    c = connect()
    ch = c.channel()
    ch.confirm_delivery()
    # AMQP -> MQTT: routing key a.b.c on amq.topic is MQTT topic a/b/c.
    ch.basic_publish("amq.topic", f"{t}.sensors.temp", b"21.5",
                     pika.BasicProperties(delivery_mode=2))
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == (f"{t}/sensors/temp", b"21.5", 1)
    # MQTT -> AMQP: a queue bound to amq.topic with an AMQP pattern.
    qn = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(qn, "amq.topic", f"{t}.cmd.*")
    pub = clients(uniq("pub")).connect()
    pub.publish(f"{t}/cmd/lamp", b"on", qos=1)
    pub.publish(f"{t}/cmd/fan", b"", qos=0)
    got = []
    deadline = time.time() + WAIT
    while len(got) < 2 and time.time() < deadline:
        meth, props, b = ch.basic_get(qn, auto_ack=True)
        if meth:
            got.append((meth.routing_key, b, props.delivery_mode))
        else:
            time.sleep(0.05)
    assert got == [(f"{t}.cmd.lamp", b"on", 2), (f"{t}.cmd.fan", b"", 1)]
    c.close()


def test_mqtt5_properties_map_to_amqp_and_back(clients):
    t = uniq("p")
    sub = clients(uniq("sub"), v5=True).connect()
    sub.subscribe(f"{t}/req", qos=1)
    pub = clients(uniq("pub"), v5=True).connect()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("site", "north"), ("unit", "°C")]
    props.ContentType = "text/plain"
    props.ResponseTopic = f"{t}/reply"
    props.CorrelationData = b"corr-42"
    pub.publish(f"{t}/req", b"payload", qos=1, properties=props)
    m = sub.get()
    assert m.payload == b"payload"
    assert m.properties.ContentType == "text/plain"
    assert m.properties.ResponseTopic == f"{t}/reply"
    assert m.properties.CorrelationData == b"corr-42"
    assert sorted(m.properties.UserProperty) == [("site", "north"), ("unit", "°C")]
    # Topic alias: the first publish sets it, the second uses it with an empty topic.
    a = Properties(PacketTypes.PUBLISH)
    a.TopicAlias = 3
    pub.publish(f"{t}/req", b"with alias", qos=1, properties=a)
    pub.publish("", b"alias only", qos=1, properties=a)
    assert [sub.get().payload for _ in range(2)] == [b"with alias", b"alias only"]


def test_server_sends_topic_aliases_to_a_client_that_takes_them(clients):
    t = uniq("al")
    # MQTT 5 CONNECT property 0x22: this client takes up to 2 topic aliases.
    sub = RawMqtt(PORT, uniq("raw"), v5_properties=b"\x22\x00\x02")
    sub.subscribe(1, f"{t}/#", 0)
    pub = clients(uniq("pub"), v5=True).connect()
    sent = [("a", 0), ("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5), ("c", 6)]
    for topic, i in sent:
        pub.publish(f"{t}/{topic}", body(i, 700), qos=1)
    got = [sub.next_publish() for _ in sent]
    sub.close()
    # a and b get aliases 1 and 2 as they first appear (named once, then alias only); c comes
    # after the client's maximum and is always sent by name.
    assert got == [
        (f"{t}/a", 1, body(0, 700)), ("", 1, body(1, 700)), (f"{t}/b", 2, body(2, 700)),
        ("", 1, body(3, 700)), (f"{t}/c", None, body(4, 700)), ("", 2, body(5, 700)),
        (f"{t}/c", None, body(6, 700))]
    # A client that takes none (paho's default) gets topics only.
    plain = clients(uniq("plain"), v5=True).connect()
    plain.subscribe(f"{t}/#", qos=0)
    pub.publish(f"{t}/a", b"by name", qos=1)
    m = plain.get()
    assert (m.topic, m.payload) == (f"{t}/a", b"by name")


def test_subscribe_reason_codes_mqtt5(clients):
    sub = clients(uniq("sub"), v5=True).connect()
    assert sub.subscribe("a/*", qos=1) == [0x8F]  # '*' would be AMQP's wildcard once mapped
    assert sub.subscribe("$share/g/a/#", qos=2) == [2]


def test_shared_subscription_spreads_messages_over_the_group(clients):
    t = uniq("sh")
    group = uniq("g")
    ids = [uniq("m") for _ in range(3)]
    members = [clients(cid, v5=v5).connect() for cid, v5 in zip(ids, (True, False, True))]
    for m in members:
        assert m.subscribe(f"$share/{group}/{t}/#", qos=1) == [1]
    plain = clients(uniq("plain")).connect()
    plain.subscribe(f"{t}/#", qos=1)
    pub = clients(uniq("pub")).connect()
    n = 60
    for i in range(n):
        pub.publish(f"{t}/{i}", body(i, 100), qos=1)
    # Every message reaches the group exactly once, and the plain subscriber too.
    assert sorted(plain.get().payload for _ in range(n)) == sorted(body(i, 100) for i in range(n))
    got = []
    deadline = time.time() + WAIT
    while len(got) < n and time.time() < deadline:
        for m in members:
            try:
                got.append((m, m.msgs.get(timeout=0.05).payload))
            except queue.Empty:
                pass
    assert sorted(p for _, p in got) == sorted(body(i, 100) for i in range(n))
    assert all(any(who is m for who, _ in got) for m in members), "round robin over the group"
    # One member leaving keeps the group's subscription for the others.
    members[0].c.unsubscribe(f"$share/{group}/{t}/#")
    wait_for_topic_binding(lambda b: (b.get("arguments") or {}).get("x-mqtt-shared-member") == ids[0],
                           present=False)
    pub.publish(f"{t}/after", b"after", qos=1)
    seen = []
    deadline = time.time() + WAIT
    while not seen and time.time() < deadline:
        for m in members[1:]:
            try:
                seen.append(m.msgs.get(timeout=0.05).payload)
            except queue.Empty:
                pass
    assert seen == [b"after"]
    members[0].nothing(0.3)


def test_subscription_identifiers_and_no_local(clients):
    t = uniq("sid")
    c = clients(uniq("me"), v5=True).connect()
    p1 = Properties(PacketTypes.SUBSCRIBE)
    p1.SubscriptionIdentifier = 7
    c.c.subscribe(f"{t}/+", options=mqtt.SubscribeOptions(qos=1), properties=p1)
    c.subacks.get(timeout=WAIT)
    p2 = Properties(PacketTypes.SUBSCRIBE)
    p2.SubscriptionIdentifier = 9
    c.c.subscribe(f"{t}/#", options=mqtt.SubscribeOptions(qos=1, noLocal=True), properties=p2)
    c.subacks.get(timeout=WAIT)
    other = clients(uniq("other"), v5=True).connect()
    other.publish(f"{t}/a", b"from other", qos=1)
    m = c.get()
    assert m.payload == b"from other"
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 9]
    # Its own message matches {t}/+ (id 7) but not the no-local {t}/# (id 9).
    c.publish(f"{t}/b", b"from me", qos=1)
    m = c.get()
    assert m.payload == b"from me" and m.properties.SubscriptionIdentifier == [7]
    c.publish(f"{t}/deep/er", b"only no-local matches", qos=1)
    c.nothing()


def test_retained_messages(clients):
    t = uniq("r")
    pub = clients(uniq("pub")).connect()
    pub.publish(f"{t}/state", b"on", qos=1, retain=True)
    pub.publish(f"{t}/other", b"x" * 70_000, qos=0, retain=True)
    # A QoS 0 publish has no acknowledgement: a probe subscriber sees when it is retained.
    for _ in range(50):
        probe = clients(uniq("probe")).connect()
        probe.subscribe(f"{t}/other", qos=0)
        try:
            retained = probe.get(timeout=0.2).retain  # a live copy (not yet stored) is not
        except queue.Empty:
            retained = False
        probe.close()
        if retained:
            break
    assert retained, "the QoS 0 retained message was never stored"
    sub = clients(uniq("sub")).connect()
    sub.subscribe(f"{t}/#", qos=1)
    got = sorted((m.topic, m.payload, m.retain) for m in (sub.get(), sub.get()))
    assert got == [(f"{t}/other", b"x" * 70_000, True), (f"{t}/state", b"on", True)]
    # An empty retained payload clears the topic.
    pub.publish(f"{t}/state", b"", qos=1, retain=True)
    m = sub.get()
    assert (m.topic, m.payload) == (f"{t}/state", b"")
    late = clients(uniq("late")).connect()
    late.subscribe(f"{t}/state", qos=1)
    late.nothing()


def test_dollar_topics_are_not_matched_by_leading_wildcards(clients):
    t = uniq("d")
    everything = clients(uniq("all")).connect()
    everything.subscribe("#", qos=0)
    dollar = clients(uniq("dollar")).connect()
    dollar.subscribe(f"$X{t}/#", qos=0)
    pub = clients(uniq("pub")).connect()
    pub.publish(f"$X{t}/a", b"sys", qos=1)
    assert dollar.get().payload == b"sys"
    deadline = time.time() + 1
    while time.time() < deadline:
        try:
            m = everything.msgs.get(timeout=0.2)
        except queue.Empty:
            continue
        assert not m.topic.startswith("$"), m.topic


def test_last_will_on_unclean_disconnect_only(clients):
    t = uniq("w")
    sub = clients(uniq("sub")).connect()
    sub.subscribe(f"{t}/will", qos=1)
    # A clean DISCONNECT: no will.
    polite = clients(uniq("polite"), will=(f"{t}/will", b"polite", 1, False)).connect()
    polite.close()
    sub.nothing(0.5)
    # The socket just goes: the will is published.
    rude = clients(uniq("rude"), will=(f"{t}/will", b"gone", 1, False)).connect()
    rude.c.loop_stop()
    rude.c.socket().close()
    m = sub.get()
    assert (m.topic, m.payload) == (f"{t}/will", b"gone")


def raw_connect(keepalive, client_id, port=PORT):
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x04\xc2" + keepalive.to_bytes(2, "big")
    payload = len(cid).to_bytes(2, "big") + cid + b"\x00\x05guest\x00\x05guest"
    pkt = bytes([0x10, len(var) + len(payload)]) + var + payload
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(pkt)
    assert s.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
    return s


def test_keepalive_closes_a_silent_client():
    s = raw_connect(1, uniq("ka"))
    start = time.time()
    assert s.recv(1) == b""  # closed by the broker
    took = time.time() - start
    assert 1.0 <= took < 5, took
    # A client that pings stays.
    s = raw_connect(1, uniq("ka2"))
    for _ in range(4):
        time.sleep(0.5)
        s.sendall(b"\xc0\x00")
        assert s.recv(2) == b"\xd0\x00"
    s.close()


def test_bad_credentials_and_vhost_user_names(clients):
    bad = clients(uniq("bad"), password="wrong").connect(expect_ok=False)
    assert bad.rc.value == 0x86  # paho reports 3.1.1's code 4 (bad user name or password) so
    bad5 = clients(uniq("bad5"), v5=True, password="wrong").connect(expect_ok=False)
    assert bad5.rc.value == 0x86
    nov = clients(uniq("nov"), user="no-such-vhost:guest").connect(expect_ok=False)
    assert nov.rc.value == 0x87  # 3.1.1's 5, not authorized
    ok = clients(uniq("ok"), user="/:guest").connect()
    assert ok.subscribe(uniq("v") + "/t", qos=1) == [1]


def test_persistent_session_keeps_subscriptions_and_qos1_messages(clients):
    t = uniq("ps")
    cid = uniq("persist")
    a = clients(cid, clean=False).connect()
    assert a.session_present is False
    a.subscribe(f"{t}/#", qos=1)
    a.close()
    pub = clients(uniq("pub")).connect()
    for i in range(50):
        pub.publish(f"{t}/{i}", body(i, 1000), qos=1)
    b = clients(cid, clean=False).connect()
    assert b.session_present is True
    got = [b.get() for _ in range(50)]
    assert [(m.topic, m.payload) for m in got] == [(f"{t}/{i}", body(i, 1000)) for i in range(50)]
    b.close()
    # A clean session discards it.
    c = clients(cid, clean=True).connect()
    assert c.session_present is False
    c.close()
    pub.publish(f"{t}/after", b"nobody", qos=1)
    d = clients(cid, clean=False).connect()
    assert d.session_present is False
    d.nothing()


def test_mosquitto_clients_round_trip(clients):
    sub_bin = shutil.which("mosquitto_sub")
    assert sub_bin, "mosquitto-clients is not installed (scripts/mqtt-test-env.sh)"
    t = uniq("mosq")
    proc = subprocess.Popen([sub_bin, "-h", HOST, "-p", str(PORT), "-u", "guest", "-P", "guest",
                             "-t", f"{t}/#", "-q", "1", "-C", "3", "-v", "-W", "20"],
                            stdout=subprocess.PIPE, text=True)
    try:
        # mosquitto_sub has subscribed once its binding ({t}/# is routing key {t}.#) exists.
        wait_for_topic_binding(lambda b: b["routing_key"] == f"{t}.#" and b["destination"].startswith(
            "mqtt-subscription-"))
        for i, (v, q) in enumerate([("mqttv311", "1"), ("mqttv5", "0"), ("mqttv311", "0")]):
            subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(PORT), "-u", "guest", "-P", "guest",
                            "-V", v, "-q", q, "-t", f"{t}/{i}", "-m", f"hello {i} é"],
                           check=True, timeout=20)
        out, _ = proc.communicate(timeout=25)
    finally:
        proc.kill()
    assert out.splitlines() == [f"{t}/{i} hello {i} é" for i in range(3)]
    assert proc.returncode == 0


def test_topic_permissions_apply_to_mqtt(clients):
    user, pw = uniq("mq-user"), "pw"
    c = connect()
    c.close()
    import requests
    from mgmt import api, expect
    expect(api("PUT", "/api/users/%s" % user, json={"password": pw, "tags": ""}), (201, 204))
    try:
        expect(api("PUT", "/api/permissions/%%2F/%s" % user,
                   json={"configure": ".*", "write": ".*", "read": ".*"}), (201, 204))
        expect(api("PUT", "/api/topic-permissions/%%2F/%s" % user,
                   json={"exchange": "amq.topic", "write": "^allowed\\.", "read": ".*"}), (201, 204))
        t = uniq("tp")
        sub = clients(uniq("sub")).connect()
        sub.subscribe("allowed/#", qos=1)
        sub.subscribe(f"{t}/#", qos=1)
        p5 = clients(uniq("p5"), v5=True, user=user, password=pw).connect()
        info = p5.c.publish(f"{t}/x", b"refused", 1)
        info.wait_for_publish(WAIT)
        p5.publish("allowed/x", b"fine", qos=1)
        assert sub.get().payload == b"fine"
        sub.nothing()
    finally:
        requests.delete  # keep the import used
        api("DELETE", "/api/users/%s" % user)


def test_retained_and_persistent_sessions_survive_a_restart(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port)])
    t = uniq("rs")
    cid = uniq("durable")
    a = Client(cid, clean=False, port=port).connect()
    a.subscribe(f"{t}/#", qos=1)
    a.close()
    p = Client(uniq("pub"), port=port).connect()
    p.publish(f"{t}/keep", b"retained across restarts", qos=1, retain=True)
    for i in range(20):
        p.publish(f"{t}/q/{i}", body(i, 5000), qos=1)
    p.close()
    w.restart(crash=True)  # SIGKILL: acknowledged QoS 1 messages are on disk
    b = Client(cid, clean=False, port=port).connect()
    try:
        assert b.session_present is True
        got = []
        for _ in range(21):
            got.append(b.get())
        by_topic = {m.topic: m.payload for m in got}
        assert by_topic[f"{t}/keep"] == b"retained across restarts"
        assert [m.payload for m in got if "/q/" in m.topic] == [body(i, 5000) for i in range(20)]
    finally:
        b.close()
    late = Client(uniq("late"), port=port).connect()
    try:
        late.subscribe(f"{t}/keep", qos=0)
        m = late.get()
        assert (m.payload, m.retain) == (b"retained across restarts", True)
    finally:
        late.close()


def test_mqtt5_message_and_session_expiry(clients):
    t = uniq("exp")
    cid = uniq("exp-sess")
    # A session that outlives the connection by 60 s keeps its messages...
    a = clients(cid, v5=True, clean=True, expiry=60).connect()
    a.subscribe(f"{t}/#", qos=1)
    a.close()
    pub = clients(uniq("pub"), v5=True).connect()
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = 1
    pub.publish(f"{t}/short", b"expires", qos=1, properties=short)
    pub.publish(f"{t}/long", b"stays", qos=1)
    time.sleep(1.6)
    # ...but not one whose message expiry has passed.
    b = clients(cid, v5=True, clean=False, expiry=60).connect()
    assert b.session_present is True
    m = b.get()
    assert (m.topic, m.payload) == (f"{t}/long", b"stays")
    b.nothing()
    b.close()
    # A session expiry of 1 s: gone soon after the client is.
    cid2 = uniq("exp-short")
    c = clients(cid2, v5=True, clean=True, expiry=1).connect()
    c.subscribe(f"{t}/x", qos=1)
    c.close()
    time.sleep(2.5)
    d = clients(cid2, v5=True, clean=False, expiry=1).connect()
    assert d.session_present is False


def test_mqtt_over_websockets(warren):
    port, ws_port = free_port(), free_port()
    warren(["--mqtt-port", str(port), "--web-mqtt-port", str(ws_port)])
    t = uniq("ws")
    ws_sub = Client(uniq("ws-sub"), v5=True, port=ws_port, transport="websockets").connect()
    tcp_sub = Client(uniq("tcp-sub"), port=port).connect()
    try:
        assert ws_sub.subscribe(f"{t}/to-ws", qos=1) == [1]
        assert tcp_sub.subscribe(f"{t}/to-tcp", qos=1) == [1]
        tcp_pub = Client(uniq("tcp-pub"), port=port).connect()
        ws_pub = Client(uniq("ws-pub"), port=ws_port, transport="websockets").connect()
        sizes = [1, 1000, 70_000, 300_000]  # past one WebSocket frame and the bridge's pipe
        for i, n in enumerate(sizes):
            tcp_pub.publish(f"{t}/to-ws", body(i, n), qos=1)
            ws_pub.publish(f"{t}/to-tcp", body(100 + i, n), qos=1)
        assert [ws_sub.get().payload for _ in sizes] == [body(i, n) for i, n in enumerate(sizes)]
        assert [tcp_sub.get().payload for _ in sizes] == [body(100 + i, n) for i, n in enumerate(sizes)]
        tcp_pub.close()
        ws_pub.close()
    finally:
        ws_sub.close()
        tcp_sub.close()

# -*- coding: utf-8 -*-
"""A paho-mqtt client for the MQTT suites (test_mqtt*.py): received messages land in a queue,
connect() waits for the CONNACK; the `clients` fixture that closes every client it made; and
RawMqtt, a socket-level client that shows exactly what the broker sends."""
import os
import queue
import socket
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
PORT = int(os.environ.get("MQTT_PORT", "1883"))
WAIT = 10


class Client:
    """A paho client whose received messages land in a queue; connect() waits for CONNACK."""

    def __init__(self, client_id="", v5=False, port=PORT, clean=True, user="guest", password="guest",
                 will=None, expiry=None, transport="tcp"):
        self.v5 = v5
        self.port = port
        self.msgs = queue.Queue()
        self.connected = threading.Event()
        self.rc = None
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {} if v5 else {"clean_session": clean}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto,
                             transport=transport, **kw)
        if transport == "websockets":
            self.c.ws_set_options(path="/ws")
        if user is not None:
            self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(*will)
        self.clean = clean
        self.expiry = expiry
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.subacks = queue.Queue()
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        self.session_present = None

    def _on_connect(self, c, u, flags, rc, props):
        self.rc = rc
        self.session_present = flags.session_present
        self.connected.set()

    def connect(self, expect_ok=True):
        kw = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            kw = {"clean_start": self.clean, "properties": props}
        self.c.connect(HOST, self.port, keepalive=30, **kw)
        self.c.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        if expect_ok:
            assert not self.rc.is_failure, self.rc
        return self

    def subscribe(self, topic, qos=1, **kw):
        self.c.subscribe(topic, qos, **kw)
        codes = self.subacks.get(timeout=WAIT)
        return [c.value for c in codes]

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(WAIT)
        assert info.is_published()
        return info

    def get(self, timeout=WAIT):
        return self.msgs.get(timeout=timeout)

    def nothing(self, wait=0.5):
        try:
            m = self.msgs.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError("unexpected message on %s: %r" % (m.topic, m.payload))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def body(i, size):
    return (b"%d:" % i + bytes((i + k) % 251 for k in range(size)))[:max(size, 1)]


@pytest.fixture
def clients():
    made = []

    def make(*a, **kw):
        c = Client(*a, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        try:
            c.close()
        except Exception:
            pass


def _varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _s(text):
    b = text.encode()
    return len(b).to_bytes(2, "big") + b


def _packet(first, payload):
    return bytes([first]) + _varint(len(payload)) + payload


class RawMqtt:
    """A minimal MQTT 3.1.1 client over a socket: it sends what it is told and reports each packet
    the broker sends, so a test knows exactly which publishes were acknowledged."""

    def __init__(self, port, client_id, clean=True, keepalive=60, v5_properties=None):
        """MQTT 3.1.1, or 5.0 when v5_properties (the CONNECT's encoded properties) is given."""
        self.v5 = v5_properties is not None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        flags = 0xC0 | (0x02 if clean else 0)
        var = _s("MQTT") + bytes([5 if self.v5 else 4, flags]) + keepalive.to_bytes(2, "big")
        if self.v5:
            var += _varint(len(v5_properties)) + v5_properties
        self.sock.sendall(_packet(0x10, var + _s(client_id) + _s("guest") + _s("guest")))
        kind, data = self.read()
        assert kind == 0x20 and data[:2] == b"\x00\x00", (kind, data)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def read(self):
        """(packet type and flags, body), or None once the broker closed the connection."""
        try:
            return self.read_or_raise()
        except OSError:  # reset by the broker, or a timeout
            return None

    def read_or_raise(self):
        """As read(), but a timeout or a reset raises (OSError) rather than looking like EOF."""
        head = self._exact(1)
        if head is None:
            return None
        length, shift = 0, 0
        while True:
            b = self._exact(1)
            if b is None:
                return None
            length |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                break
        data = self._exact(length) if length else b""
        return None if data is None else (head[0], data)

    def publish(self, topic, packet_id, payload):
        self.sock.sendall(_packet(0x32, _s(topic) + packet_id.to_bytes(2, "big") + payload))

    def subscribe(self, packet_id, filter_, qos):
        props = b"\x00" if self.v5 else b""
        self.sock.sendall(_packet(0x82, packet_id.to_bytes(2, "big") + props + _s(filter_) + bytes([qos])))
        kind, data = self.read()
        assert kind == 0x90 and data[-1:] == bytes([qos]), (kind, data)

    def next_publish(self):
        """The next PUBLISH (QoS 0) as (topic, topic alias or None, payload)."""
        got = self.read()
        assert got is not None and got[0] >> 4 == 3 and (got[0] >> 1) & 3 == 0, got
        data = got[1]
        n = int.from_bytes(data[:2], "big")
        topic, at = data[2:2 + n].decode(), 2 + n
        alias = None
        if self.v5:
            length, shift = 0, 0
            while True:
                b = data[at]
                at += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            props, at = data[at:at + length], at + length
            k = 0
            while k < len(props):
                pid = props[k]
                if pid == 0x23:  # topic alias
                    alias = int.from_bytes(props[k + 1:k + 3], "big")
                    k += 3
                elif pid in (0x01,):
                    k += 2
                elif pid in (0x02,):
                    k += 5
                elif pid in (0x03, 0x08, 0x09):
                    k += 3 + int.from_bytes(props[k + 1:k + 3], "big")
                elif pid == 0x26:
                    a = int.from_bytes(props[k + 1:k + 3], "big")
                    b = int.from_bytes(props[k + 3 + a:k + 5 + a], "big")
                    k += 5 + a + b
                elif pid == 0x0B:
                    k += 1
                    while props[k] & 0x80:
                        k += 1
                    k += 1
                else:
                    raise AssertionError("unexpected property 0x%02x" % pid)
        return topic, alias, data[at:]

    def close(self):
        self.sock.close()

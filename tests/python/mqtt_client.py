# -*- coding: utf-8 -*-
"""A paho-mqtt client for the MQTT suites (test_mqtt*.py): received messages land in a queue,
connect() waits for the CONNACK; and the `clients` fixture that closes every client it made."""
import os
import queue
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
                 will=None, expiry=None):
        self.v5 = v5
        self.port = port
        self.msgs = queue.Queue()
        self.connected = threading.Event()
        self.rc = None
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {} if v5 else {"clean_session": clean}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto, **kw)
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

"""Captures real MQTT client traffic as seeds for the `mqtt` fuzz target: a loopback proxy
between the client and a broker's MQTT port records what the client sends.

    scripts/fuzz-capture-mqtt.py BROKER_MQTT_PORT

Writes fuzz/corpus/mqtt/paho-311.bin and paho-5.bin (paho-mqtt sessions using every packet type
a client sends: CONNECT with a will, SUBSCRIBE with options and identifiers, PUBLISH at QoS 0-2
with properties and a topic alias, UNSUBSCRIBE, PINGREQ, DISCONNECT) and mosquitto-pub.bin."""
import os
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "mqtt")


def recording_proxy(upstream):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sent = bytearray()

    def run():
        client, _ = listener.accept()
        up = socket.create_connection(("127.0.0.1", upstream))

        def pump(a, b, record):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    if record:
                        sent.extend(d)
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=pump, args=(up, client, False), daemon=True)
        t.start()
        pump(client, up, True)
        t.join(2)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return listener.getsockname()[1], sent, t


def paho_session(port, v5):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="seed-%d" % v5,
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    c.username_pw_set("guest", "guest")
    c.will_set("seed/will", b"bye", 1, True)
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    time.sleep(0.3)
    if v5:
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = 5
        c.subscribe("seed/+/x", options=mqtt.SubscribeOptions(qos=1, noLocal=True, retainHandling=1),
                    properties=sp)
        pp = Properties(PacketTypes.PUBLISH)
        pp.UserProperty = [("k", "v")]
        pp.ContentType = "text/plain"
        pp.ResponseTopic = "seed/reply"
        pp.CorrelationData = b"c1"
        pp.MessageExpiryInterval = 60
        pp.TopicAlias = 2
        c.publish("seed/a/x", b"five", 1, False, pp).wait_for_publish(5)
        c.publish("", b"alias", 1, False, pp).wait_for_publish(5)
    else:
        c.subscribe([("seed/#", 1), ("seed/+/x", 0)])
    for q in (0, 1, 2):
        c.publish("seed/q%d" % q, b"x" * (10 ** q), q, q == 1).wait_for_publish(5)
    c.unsubscribe("seed/#")
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()


def main():
    upstream = int(sys.argv[1])
    os.makedirs(OUT, exist_ok=True)
    for v5, name in ((False, "paho-311"), (True, "paho-5")):
        port, sent, t = recording_proxy(upstream)
        paho_session(port, v5)
        t.join(3)
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(bytes(sent))
        print("%s: %d bytes" % (name, len(sent)))
    port, sent, t = recording_proxy(upstream)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "guest", "-P", "guest",
                    "-V", "mqttv5", "-q", "1", "-t", "seed/m", "-m", "hello", "-D", "publish",
                    "user-property", "a", "b"], check=True, timeout=20)
    t.join(3)
    with open(os.path.join(OUT, "mosquitto-pub.bin"), "wb") as f:
        f.write(bytes(sent))
    print("mosquitto-pub: %d bytes" % len(sent))


if __name__ == "__main__":
    main()

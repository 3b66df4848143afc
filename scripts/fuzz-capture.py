"""Captures real client traffic as fuzz seeds: a loopback proxy between pika and a broker
records what the client sends (frames, field tables in properties and arguments).
Writes fuzz/corpus/frames/pika-*.bin (each prefixed by the two frame_max bytes the
frames target reads). Usage: scripts/fuzz-capture.py BROKER_PORT"""
import decimal
import os
import socket
import sys
import threading

import pika

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fuzz", "corpus", "frames")


def proxy(listener, upstream_port, sink):
    client, _ = listener.accept()
    up = socket.create_connection(("127.0.0.1", upstream_port))

    def pump(src, dst, record):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if record:
                    sink.append(b)
                dst.sendall(b)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pump, args=(up, client, False), daemon=True).start()
    pump(client, up, True)


def session(port, name, work):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sink = []
    t = threading.Thread(target=proxy, args=(listener, port, sink), daemon=True)
    t.start()
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", listener.getsockname()[1]))
    work(c.channel())
    c.close()
    t.join(5)
    data = b"".join(sink)
    # Skip the 8-byte protocol header: the frames target parses frames.
    with open(os.path.join(OUT, f"pika-{name}.bin"), "wb") as f:
        f.write(b"\xff\xff" + data[8:])


def main():
    port = int(sys.argv[1])
    os.makedirs(OUT, exist_ok=True)

    def publish(ch):
        ch.queue_declare("fuzz-seed", arguments={"x-max-priority": 5, "x-message-ttl": 60000,
                                                 "x-dead-letter-exchange": "dlx"})
        ch.confirm_delivery()
        for i, size in enumerate([0, 1, 100, 5000]):
            ch.basic_publish("", "fuzz-seed", b"x" * size, pika.BasicProperties(
                content_type="text/plain", headers={"a": 1, "b": [1, "two", {"c": True}], "d": decimal.Decimal("1.5"), "e": None},
                delivery_mode=2, priority=i, correlation_id="c", reply_to="r", expiration="1000",
                message_id="m", timestamp=1700000000, type="t", user_id="guest", app_id="app"))

    def consume(ch):
        ch.basic_qos(prefetch_count=10)
        for _ in range(4):
            m, _, _ = ch.basic_get("fuzz-seed")
            if m:
                ch.basic_nack(m.delivery_tag, requeue=False)
        ch.exchange_declare("fuzz-topic", "topic", auto_delete=True)
        ch.queue_bind("fuzz-seed", "fuzz-topic", "a.*.#", arguments={"x-match": "any"})
        ch.tx_select()
        ch.basic_publish("fuzz-topic", "a.b.c", b"tx")
        ch.tx_commit()
        ch.queue_delete("fuzz-seed")

    session(port, "publish", publish)
    session(port, "consume", consume)


main()

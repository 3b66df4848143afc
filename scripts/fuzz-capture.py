"""Captures real client traffic as fuzz seeds: a loopback proxy between a client and a broker
records what the client sends (frames, field tables in properties and arguments).

    scripts/fuzz-capture.py BROKER_PORT                  pika sessions (pika-*.bin)
    scripts/fuzz-capture.py BROKER_PORT NAME CMD ...     any client: CMD runs with AMQP_URL
                                                         set to the proxy (e.g. NAME amqplib,
                                                         CMD node scripts/fuzz-capture-amqplib.cjs)

Writes fuzz/corpus/frames/NAME.bin (prefixed by the two frame_max bytes the frames target
reads) and fuzz/corpus/connection/NAME.bin (what follows connection.open, for the
connection target)."""
import struct
import subprocess
import decimal
import os
import socket
import sys
import threading

import pika

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fuzz", "corpus", "frames")
CONNECTION_OUT = os.path.join(HERE, "..", "fuzz", "corpus", "connection")


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


def after_open(frames):
    """The frames after the client's connection.open (class 10, method 40)."""
    i = 0
    while i + 7 <= len(frames):
        kind, _, size = struct.unpack("!BHI", frames[i:i + 7])
        end = i + 7 + size + 1
        if end > len(frames):
            break
        if kind == 1 and frames[i + 7:i + 11] == b"\x00\x0a\x00\x28":
            return frames[end:]
        i = end
    return b""


def record(port, name, run):
    """Runs run(proxy_port) with a recording proxy to the broker; writes the seeds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sink = []
    t = threading.Thread(target=proxy, args=(listener, port, sink), daemon=True)
    t.start()
    run(listener.getsockname()[1])
    t.join(5)
    # Skip the 8-byte protocol header: the targets parse frames.
    frames = b"".join(sink)[8:]
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(CONNECTION_OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.bin"), "wb") as f:
        f.write(b"\xff\xff" + frames)
    rest = after_open(frames)
    if rest:
        with open(os.path.join(CONNECTION_OUT, f"{name}.bin"), "wb") as f:
            f.write(rest)


def session(port, name, work):
    def run(proxy_port):
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", proxy_port))
        work(c.channel())
        c.close()
    record(port, f"pika-{name}", run)


def main():
    port = int(sys.argv[1])
    if len(sys.argv) > 3:
        name, cmd = sys.argv[2], sys.argv[3:]

        def run(proxy_port):
            env = dict(os.environ, AMQP_URL=f"amqp://guest:guest@127.0.0.1:{proxy_port}/%2f")
            subprocess.run(cmd, env=env, check=True, timeout=60)
        record(port, name, run)
        return

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

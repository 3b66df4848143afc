"""Algorithmic cliffs (issue 11), per publish: fanout to N queues (each x-max-length 1, so memory
stays flat) and the adversarial topic binding (128 `#` words) against a 128-word routing key.
Usage: bench/cliffs.py WARREN_BINARY [N ...]"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import pika


def start(binary):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen([binary, "--bind", "127.0.0.1", "--amqp-port", str(port), "--data-dir",
                          tempfile.mkdtemp(), "--disable-management", "--disable-prometheus", "--disable-mqtt",
                          "--log-level", "warning"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def per_publish_ms(ch, exchange, key, n=20):
    ch.basic_publish(exchange, key, b"warm")
    t = time.perf_counter()
    for _ in range(n):
        ch.basic_publish(exchange, key, b"x")  # confirm mode: waits for routing + enqueue
    return (time.perf_counter() - t) / n * 1000


def main():
    binary = sys.argv[1]
    sizes = [int(a) for a in sys.argv[2:]] or [1000, 5000, 20000]
    p, port = start(binary)
    try:
        c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = c.channel()
        ch.confirm_delivery()
        ch.exchange_declare("cliff-fan", "fanout")
        made = 0
        for n in sizes:
            while made < n:
                q = ch.queue_declare(f"cliff-{made}", arguments={"x-max-length": 1}).method.queue
                ch.queue_bind(q, "cliff-fan")
                made += 1
            print(f"fanout to {n} queues: {per_publish_ms(ch, 'cliff-fan', ''):.1f} ms per publish")
        ch.exchange_declare("cliff-topic", "topic")
        q = ch.queue_declare("cliff-topic-q", arguments={"x-max-length": 1}).method.queue
        ch.queue_bind(q, "cliff-topic", ".".join(["#"] * 128))
        key = ".".join(["a"] * 128)
        t = time.perf_counter()
        ch.basic_publish("cliff-topic", key, b"x")
        print(f"topic, 128 '#' binding vs 128-word key: {(time.perf_counter() - t) * 1000:.1f} ms per publish")
        c.close()
    finally:
        p.terminate()
        p.wait(10)


main()

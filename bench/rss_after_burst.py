"""RSS after a burst (issue 11): a consumer that never reads, 200 MB published to its queue,
then the queue deleted and every client gone. Prints the broker's RSS at idle, at peak and
after. Usage: bench/rss_after_burst.py WARREN_BINARY"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python", "tools"))
import amqp_raw as raw  # noqa: E402
import pika  # noqa: E402


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    binary = sys.argv[1]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    data = tempfile.mkdtemp()
    p = subprocess.Popen([binary, "--bind", "127.0.0.1", "--amqp-port", str(port), "--data-dir", data,
                          "--disable-management", "--disable-prometheus", "--disable-mqtt", "--log-level", "warning"])
    time.sleep(0.5)
    idle = rss_mb(p.pid)
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = c.channel()
    ch.queue_declare("burst")
    rc, _, _ = raw.handshake("127.0.0.1", port)
    raw.channel_open(rc, 1)
    # basic.consume, no-ack: everything is pushed to a client that never reads.
    rc.send(raw.method(1, 60, 20, struct.pack("!H", 0) + raw.shortstr("burst") + raw.shortstr("t")
                       + bytes([0b10]) + raw.table({})))
    body = b"x" * 4096
    peak = 0
    for i in range(50_000):  # 200 MB
        ch.basic_publish("", "burst", body)
        if i % 5000 == 0:
            peak = max(peak, rss_mb(p.pid))
    time.sleep(1)
    peak = max(peak, rss_mb(p.pid))
    ch.queue_delete("burst")
    c.close()
    rc.sock.close()
    time.sleep(3)
    after = rss_mb(p.pid)
    time.sleep(10)
    later = rss_mb(p.pid)
    p.terminate()
    p.wait(10)
    print(f"RSS idle {idle:.0f} MB, peak {peak:.0f} MB, 3 s after {after:.0f} MB, 13 s after {later:.0f} MB")


main()

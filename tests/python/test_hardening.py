"""Hardening (issue 11): listeners (IPv6 and several addresses), graceful shutdown, bounded
intake from clients that don't read, the consumer timeout, the management login throttle,
security headers and asset paths, hostile tables and strings, a connection burst and a channel
flood. These tests run their own broker (WARREN_BIN, see warren_process.py)."""
import os
import socket
import threading
import time

import pika
import pytest

from warren_process import WarrenProcess, free_port, warren  # noqa: F401  (fixture)


def roundtrip(host, port, body):
    c = pika.BlockingConnection(pika.ConnectionParameters(host, port, connection_attempts=1, socket_timeout=5))
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, body)
    for _ in range(100):
        m, _, got = ch.basic_get(q, auto_ack=True)
        if m:
            break
        time.sleep(0.01)
    c.close()
    return got


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_and_several_listeners(tmp_path):
    import os
    w = WarrenProcess(os.environ["WARREN_BIN"], tmp_path / "data")
    v6 = free_port()
    w.extra_args = ["--listen", f"127.0.0.1:{w.port}", "--listen", f"[::1]:{v6}"]
    w.start()
    try:
        assert roundtrip("::1", v6, b"over IPv6") == b"over IPv6"
        assert roundtrip("127.0.0.1", w.port, b"over IPv4") == b"over IPv4"
    finally:
        w.kill9()


def test_sigterm_closes_clients_with_320_and_exits_cleanly(warren):
    w = warren()
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("kept", durable=True)
    ch.confirm_delivery()
    for i in range(100):
        ch.basic_publish("", "kept", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    closed = {}

    def watch():
        try:
            c.process_data_events(time_limit=10)
            c.sleep(10)
        except pika.exceptions.ConnectionClosedByBroker as e:
            closed["why"] = (e.reply_code, e.reply_text)
        except Exception as e:  # noqa: BLE001
            closed["other"] = repr(e)

    t0 = time.monotonic()
    w.proc.send_signal(15)
    watch()
    rc = w.proc.wait(15)
    assert rc == 0, w.log()
    assert time.monotonic() - t0 < 12
    assert closed.get("why") == (320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"), closed
    w.proc = None
    w.start()
    c = w.connect()
    assert c.channel().queue_declare("kept", durable=True, passive=True).method.message_count == 100
    c.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_pipelined_gets_without_reading_are_bounded(warren, tmp_path):
    """Issue 11: connections that pipeline basic.get + basic.reject(requeue) and never read
    must not grow the broker without bound. Each connection stops taking requests at 4 MiB of
    unsent output (mid-batch, not after the whole read), and at 64 KiB while the memory alarm
    is on. 40 such connections, 5,000 answers of a 4,000-byte body each (copied per answer:
    800 MB if nothing stopped them), grow the broker by a few MB."""
    import struct
    import sys
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tools"))
    import amqp_raw as raw

    probe = warren()
    base_kb = rss_kb(probe.proc.pid)
    probe.kill9()
    watermark_mb = base_kb // 1024 + 40
    w = WarrenProcess(os.environ["WARREN_BIN"], tmp_path / "hog",
                      ["--vm-memory-high-watermark", f"{watermark_mb}MB"])
    w.start()
    try:
        c = w.connect()
        ch = c.channel()
        ch.queue_declare("hog")
        ch.basic_publish("", "hog", b"x" * 4000)  # copied into the output per answer
        c.close()
        before = rss_kb(w.proc.pid)
        gets = 5000
        burst = b"".join(
            raw.method(1, 60, 70, struct.pack("!H", 0) + raw.shortstr("hog") + b"\x00")
            + raw.method(1, 60, 90, struct.pack("!QB", tag, 1))
            for tag in range(1, gets + 1))
        conns = []
        for _ in range(40):
            rc, _, _ = raw.handshake("127.0.0.1", w.port)
            raw.channel_open(rc, 1)
            rc.sock.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 2
            while sent < len(burst) and time.monotonic() < deadline:
                try:
                    sent += rc.sock.send(burst[sent:])
                except BlockingIOError:
                    time.sleep(0.005)
            conns.append(rc)
            time.sleep(0.1)
        time.sleep(1.0)
        grown_mb = (rss_kb(w.proc.pid) - before) / 1024
        # Unbounded by the alarm, 40 connections x 4-10 MiB each: 160-400 MB.
        assert grown_mb < 110, f"RSS grew {grown_mb:.0f} MB (watermark {watermark_mb} MB)"
        for rc in conns:
            rc.sock.close()
        c = w.connect()
        count = None
        for _ in range(100):
            count = c.channel().queue_declare("hog", passive=True).method.message_count
            if count == 1:
                break
            time.sleep(0.05)
        assert count == 1
        c.close()
    finally:
        w.kill9()


def test_consumer_timeout_closes_the_channel_and_requeues(warren):
    w = warren(["--consumer-timeout", "1000"])
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("slow")
    ch.basic_publish("", "slow", b"work")
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume("slow", lambda c2, m, p, b: got.append(b))  # never acks
    closed = []
    ch._impl.add_on_close_callback(lambda _ch, reason: closed.append(reason))
    t0 = time.monotonic()
    while not closed and time.monotonic() - t0 < 10:
        c.process_data_events(time_limit=0.1)
    waited = time.monotonic() - t0
    assert closed, "the channel was not closed"
    assert (closed[0].reply_code, closed[0].reply_text) == (
        406, "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: "
             "1000 ms. This timeout value can be configured, see consumers doc guide to learn more")
    assert got == [b"work"] and 1.0 <= waited < 5
    # The delivery went back to the queue, redelivered.
    ch2 = c.channel()
    m, _, body = ch2.basic_get("slow", auto_ack=True)
    assert body == b"work" and m.redelivered
    c.close()


def test_management_login_throttle_headers_and_asset_paths(warren):
    import requests
    port = free_port()
    w = warren(["--management-port", str(port)])
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/api/overview", auth=("guest", "guest"), timeout=5).status_code == 200
    for _ in range(10):
        assert requests.get(f"{base}/api/overview", auth=("guest", "wrong"), timeout=5).status_code == 401
    # The 11th try within a minute is refused before the password is even checked.
    r = requests.get(f"{base}/api/overview", auth=("guest", "guest"), timeout=5)
    assert r.status_code == 429 and r.json()["error"] == "too_many_requests"
    # Security headers on the UI and the API.
    for path in ["/", "/api/overview"]:
        h = requests.get(base + path, timeout=5).headers
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "SAMEORIGIN"
        assert "default-src 'self'" in h["Content-Security-Policy"]
    # Asset paths can't leave the bundle.
    for path in ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/js/..%2f..%2f..%2fCargo.toml",
                 "/..%5c..%5cCargo.toml"]:
        r = requests.get(base + path, timeout=5)
        assert r.status_code in (400, 404) and "root:" not in r.text and "[package]" not in r.text, path


def _raw():
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tools"))
    import amqp_raw
    return amqp_raw


def test_hostile_tables_and_strings_get_clean_errors(warren):
    """Deeply nested tables, an oversized table and invalid UTF-8 in short strings: an error
    (a close with a reply code) or a clean refusal, never a crash; the broker serves others."""
    import struct
    raw = _raw()
    w = warren()
    cases = []
    # A table nested 10,000 deep in queue.declare's arguments.
    nested = b""
    for _ in range(10000):
        nested = b"\x01kF" + struct.pack("!I", len(nested)) + nested
    cases.append(raw.queue_declare_args("q", arguments=None)[:-4] + struct.pack("!I", len(nested)) + nested)
    # A table claiming 1 GiB.
    cases.append(struct.pack("!H", 0) + raw.shortstr("q") + b"\x00" + struct.pack("!I", 1 << 30))
    # Invalid UTF-8 in the queue name (a short string).
    cases.append(struct.pack("!H", 0) + b"\x04\xff\xfe\xfd\xfc" + b"\x00" + struct.pack("!I", 0))
    for args in cases:
        rc, _, _ = raw.handshake("127.0.0.1", w.port)
        raw.channel_open(rc, 1)
        rc.send(raw.method(1, 50, 10, args))
        m = rc.read_method(5)
        # Whatever the answer (declare-ok for a name RabbitMQ accepts, or a close), it answers.
        assert m is not None or rc.is_closed_by_peer(2)
        rc.close()
    c = w.connect()
    c.channel().queue_declare("", exclusive=True)
    c.close()
    assert "panicked" not in w.log()


def test_connection_burst_and_channel_flood(warren):
    """1,000 connection attempts at once and 2,000 channel open/close pairs: the broker stays up,
    answers every handshake within its limit, and its thread count stays flat."""
    import concurrent.futures
    raw = _raw()
    w = warren()

    def threads():
        with open(f"/proc/{w.proc.pid}/status") as f:
            return int(next(line for line in f if line.startswith("Threads:")).split()[1])

    before = threads()

    def attempt(_):
        try:
            s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            ok = len(s.recv(7)) == 7  # the start of connection.start
            s.close()
            return ok
        except OSError:
            return False

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        answered = sum(pool.map(attempt, range(1000)))
    assert answered == 1000
    rc, _, _ = raw.handshake("127.0.0.1", w.port)
    for i in range(2000):
        ch = 1 + i % 100
        rc.send(raw.method(ch, 20, 10, raw.shortstr("")) + raw.method(ch, 20, 40, struct_close()))
    # Every open and close is answered, in order.
    answers = 0
    while answers < 4000:
        m = rc.read_method(10)
        assert m is not None
        answers += 1
    rc.close()
    assert threads() <= before + 4
    c = w.connect()
    c.close()


def struct_close():
    import struct
    raw = _raw()
    return struct.pack("!H", 200) + raw.shortstr("bye") + struct.pack("!HH", 0, 0)


def test_ten_thousand_connections_in_a_burst(warren):
    """10,000 connection attempts at once (as many as the file-descriptor limit allows), all
    held open together: every one gets connection.start, the broker stays responsive to a
    real client meanwhile, and once they hang up its descriptors and threads go back down."""
    import resource
    import selectors

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # This process and the broker (which inherits the limit) each hold one per connection.
    n = min(10000, soft - 500)
    assert n >= 1000, f"RLIMIT_NOFILE {soft} is too low for a burst"
    w = warren()

    def count(what):
        if what == "fds":
            return len(os.listdir(f"/proc/{w.proc.pid}/fd"))
        with open(f"/proc/{w.proc.pid}/status") as f:
            return int(next(line for line in f if line.startswith("Threads:")).split()[1])

    fds_before, threads_before = count("fds"), count("threads")
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", w.port))
        assert err in (0, 115), os.strerror(err)  # EINPROGRESS
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, "connecting")
    answered = 0
    failed = []
    deadline = time.monotonic() + 90
    while answered + len(failed) < n and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            if key.data == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed.append(os.strerror(err))
                    sel.unregister(s)
                    continue
                s.send(b"AMQP\x00\x00\x09\x01")
                sel.modify(s, selectors.EVENT_READ, "waiting")
            else:
                try:
                    data = s.recv(7)
                except OSError as e:
                    data = b""
                    failed.append(str(e))
                sel.unregister(s)
                if len(data) == 7 and data[0] == 1:  # a method frame: connection.start
                    answered += 1
                elif data:
                    failed.append(f"answer {data!r}")
    # All held at once: the broker serves a real client meanwhile.
    assert roundtrip("127.0.0.1", w.port, b"during the burst") == b"during the burst"
    peak = count("fds")
    for s in socks:
        s.close()
    sel.close()
    assert failed == [], f"{len(failed)} failed, e.g. {failed[:5]}"
    assert answered == n
    assert peak >= fds_before + n // 2, f"only {peak} descriptors at the peak: not held together"
    # Hung up: descriptors back near the start, threads flat.
    for _ in range(100):
        if count("fds") <= fds_before + 10:
            break
        time.sleep(0.1)
    assert count("fds") <= fds_before + 10, f"{count('fds')} descriptors left (started with {fds_before})"
    assert count("threads") <= threads_before + 4
    assert roundtrip("127.0.0.1", w.port, b"after") == b"after"
    assert "panicked" not in w.log()


def test_slowloris_handshake_is_cut_at_the_handshake_timeout(warren):
    """A client that trickles a valid handshake a byte at a time (each byte well within any
    read timeout) is disconnected when the handshake deadline passes, not kept forever;
    a normal client is served meanwhile."""
    raw = _raw()
    w = warren(["--handshake-timeout", "1500"])
    start_ok = raw.table({}) + raw.shortstr("PLAIN") + raw.longstr(b"\0guest\0guest") + raw.shortstr("en_US")
    stream = b"AMQP\x00\x00\x09\x01" + raw.method(0, 10, 11, start_ok)
    s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
    started = time.monotonic()
    closed_at = None
    for b in stream:
        try:
            s.send(bytes([b]))
        except OSError:
            closed_at = time.monotonic()
            break
        s.settimeout(0.15)
        try:
            while True:
                got = s.recv(4096)
                if got == b"":
                    closed_at = time.monotonic()
                    break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic()
        if closed_at:
            break
        assert time.monotonic() - started < 8, "still connected long past the handshake timeout"
    s.close()
    assert closed_at is not None, "the trickled handshake completed: make the stream longer"
    assert 1.3 < closed_at - started < 4, closed_at - started
    assert roundtrip("127.0.0.1", w.port, b"served") == b"served"
    assert "handshake timeout" in w.log()

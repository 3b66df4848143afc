"""The partition proxy (proxy.py) against a tiny echo server: forwarding is byte-exact, and cut,
blackhole, each one-way direction, delay, hold and heal do what they say."""
import os
import random
import socket
import socketserver
import threading
import time

import pytest

from ports import free_port
from proxy import TO_CLIENT, TO_SERVER, Proxy

QUIET = 0.4  # how long "nothing arrives" is watched


class Echo(socketserver.ThreadingTCPServer):
    """Echoes every byte back; counts what it received and the connections it saw."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port):
        self.received = 0
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), EchoHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        with self.server.lock:
            self.server.connections += 1
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.server.lock:
                self.server.received += len(data)
            try:
                self.request.sendall(data)
            except OSError:
                return


@pytest.fixture
def echo():
    server = Echo(free_port())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo):
    p = Proxy(free_port(), "127.0.0.1", echo.server_address[1])
    yield p
    p.close()


def connect(p, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", p.listen_port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n, timeout=10.0):
    s.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(65536, n - len(out)))
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes" % (len(out), n))
        out += chunk
    return bytes(out)


def round_trip(s, payload):
    s.sendall(payload)
    return recv_exactly(s, len(payload))


def assert_silent(s, quiet=QUIET):
    """Nothing arrives and the connection stays open."""
    s.settimeout(quiet)
    try:
        data = s.recv(65536)
    except socket.timeout:
        return
    raise AssertionError("expected silence, got %r" % (data[:40] if data else "EOF"))


def assert_closed(s, timeout=5.0):
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return
    assert data == b"", "expected the connection closed, got %r" % data[:40]


def wait_until(pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def test_forwarding_is_byte_exact(proxy):
    rng = random.Random(os.getpid())
    sizes = [1, 7, 4096, 65535, 65536, 65537, 300_000, 1 << 20]
    errors = []

    def client(size):
        try:
            with connect(proxy) as s:
                for _ in range(2):
                    payload = rng.randbytes(size)
                    # Send from another thread: a payload bigger than the socket buffers
                    # would deadlock a send-then-receive.
                    t = threading.Thread(target=s.sendall, args=(payload,))
                    t.start()
                    got = recv_exactly(s, size)
                    t.join()
                    if got != payload:
                        errors.append("%d bytes differ" % size)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    total = 2 * sum(sizes)
    wait_until(lambda: proxy.counters()["open"] == 0, "connections to end")
    c = proxy.counters()
    assert c["bytes_to_server"] == total and c["bytes_to_client"] == total, c
    assert c["connections"] == len(sizes) and c["dropped_to_server"] == c["dropped_to_client"] == 0, c
    assert proxy.mode == "forward"


def test_cut_closes_connections_and_refuses_new_ones_until_heal(proxy, echo):
    s = connect(proxy)
    assert round_trip(s, b"before") == b"before"
    proxy.cut()
    assert proxy.mode == "cut"
    assert_closed(s)
    assert proxy.counters()["open"] == 0
    # New connections are accepted and closed at once; the target sees none of them.
    seen = echo.connections
    n = connect(proxy)
    assert_closed(n)
    assert proxy.counters()["refused"] == 1
    assert echo.connections == seen
    proxy.heal()
    assert_closed(s)  # a cut connection stays closed
    with connect(proxy) as h:
        assert round_trip(h, b"after") == b"after"
    s.close()
    n.close()


def test_blackhole_drops_both_ways_and_keeps_connections(proxy, echo):
    s = connect(proxy)
    assert round_trip(s, b"x") == b"x"
    proxy.blackhole()
    assert proxy.mode == "blackhole"
    before = echo.received
    s.sendall(b"lost" * 1000)
    assert_silent(s)
    assert echo.received == before, "the target got bytes through a blackhole"
    # New connections are accepted (and see nothing either).
    n = connect(proxy)
    n.sendall(b"also lost")
    assert_silent(n)
    c = proxy.counters()
    assert c["dropped_to_server"] == 4000 + 9, c
    assert c["open"] == 2, c
    proxy.heal()
    # Dropped bytes are gone for good; what is sent after heal() goes through, on both.
    assert round_trip(s, b"healed") == b"healed"
    assert round_trip(n, b"healed too") == b"healed too"
    s.close()
    n.close()


def test_one_way_drops_client_to_server_only(proxy, echo):
    s = connect(proxy)
    proxy.one_way(drop=TO_SERVER)
    assert proxy.mode == "one_way(drop=client_to_server)"
    before = echo.received
    s.sendall(b"to server")
    assert_silent(s)
    assert echo.received == before
    assert proxy.counters()["dropped_to_server"] == 9
    proxy.heal()
    assert round_trip(s, b"back") == b"back"
    s.close()


def test_one_way_drops_server_to_client_only(proxy, echo):
    s = connect(proxy)
    proxy.one_way(drop=TO_CLIENT)
    before = echo.received
    s.sendall(b"to server")
    wait_until(lambda: echo.received == before + 9, "the target to get the bytes")
    assert_silent(s)
    wait_until(lambda: proxy.counters()["dropped_to_client"] == 9, "the echo to be dropped")
    proxy.heal()
    assert round_trip(s, b"back") == b"back"
    s.close()
    with pytest.raises(ValueError):
        proxy.one_way(drop="sideways")


def test_delay_delays_each_chunk_and_keeps_order(proxy):
    s = connect(proxy)
    assert round_trip(s, b"warm") == b"warm"
    proxy.delay(0.5)
    assert proxy.mode == "delay(0.5)"
    t0 = time.monotonic()
    payload = bytes(range(256)) * 100
    assert round_trip(s, payload) == payload
    took = time.monotonic() - t0
    assert 1.0 <= took < 4.0, took  # 0.5 s each way
    # Chunks are pipelined (each 1 s late), not delayed one after another (5 s).
    t0 = time.monotonic()
    for i in range(5):
        s.sendall(b"%d" % i)
        time.sleep(0.02)
    assert recv_exactly(s, 5) == b"01234"
    assert time.monotonic() - t0 < 3.0
    proxy.heal()
    t0 = time.monotonic()
    assert round_trip(s, b"fast") == b"fast"
    assert time.monotonic() - t0 < 0.9
    s.close()


def test_hold_keeps_bytes_until_heal(proxy, echo):
    s = connect(proxy)
    proxy.hold()
    before = echo.received
    s.sendall(b"held")
    assert_silent(s)
    assert echo.received == before
    proxy.heal()
    assert recv_exactly(s, 4) == b"held", "held, not dropped"
    s.close()


def test_connections_are_bounded(echo):
    with Proxy(free_port(), "127.0.0.1", echo.server_address[1], max_connections=4) as p:
        socks = [connect(p) for _ in range(4)]
        for i, s in enumerate(socks):
            assert round_trip(s, b"%d" % i) == b"%d" % i
        extra = connect(p)
        assert_closed(extra)
        extra.close()
        assert p.counters()["refused"] == 1
        socks[0].close()
        wait_until(lambda: p.counters()["open"] == 3, "a slot to free")
        with connect(p) as again:
            assert round_trip(again, b"ok") == b"ok"
        for s in socks[1:]:
            s.close()


def test_unreachable_target_closes_the_client(echo):
    with Proxy(free_port(), "127.0.0.1", free_port()) as p:
        s = connect(p)
        assert_closed(s)
        s.close()
        assert p.counters()["failed_upstream"] == 1


def test_close_frees_the_port(echo):
    port = free_port()
    p = Proxy(port, "127.0.0.1", echo.server_address[1])
    s = connect(p)
    assert round_trip(s, b"x") == b"x"
    p.close()
    assert_closed(s)
    s.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    p.close()  # twice is fine
    # The port can be listened on again at once.
    Proxy(port, "127.0.0.1", echo.server_address[1]).close()

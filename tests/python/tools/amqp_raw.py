"""Tiny raw AMQP 0-9-1 frame codec used by the behaviour probe and by the raw-socket tests.

Only what is needed to hand-craft frames and to decode what a broker sends back.
"""
import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

# (class_id, method_id) -> name, for pretty printing
METHOD_NAMES = {
    (10, 10): "connection.start", (10, 11): "connection.start-ok",
    (10, 20): "connection.secure", (10, 21): "connection.secure-ok",
    (10, 30): "connection.tune", (10, 31): "connection.tune-ok",
    (10, 40): "connection.open", (10, 41): "connection.open-ok",
    (10, 50): "connection.close", (10, 51): "connection.close-ok",
    (10, 60): "connection.blocked", (10, 61): "connection.unblocked",
    (20, 10): "channel.open", (20, 11): "channel.open-ok",
    (20, 20): "channel.flow", (20, 21): "channel.flow-ok",
    (20, 40): "channel.close", (20, 41): "channel.close-ok",
    (40, 10): "exchange.declare", (40, 11): "exchange.declare-ok",
    (50, 10): "queue.declare", (50, 11): "queue.declare-ok",
    (60, 40): "basic.publish", (60, 50): "basic.return", (60, 60): "basic.deliver",
}


def shortstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    assert len(b) < 256
    return struct.pack("!B", len(b)) + b


def longstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!I", len(b)) + b


def encode_value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack("!B", 1 if v else 0)
    if isinstance(v, int):
        return b"I" + struct.pack("!i", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    raise TypeError(v)


def table(d):
    body = b"".join(shortstr(k) + encode_value(v) for k, v in d.items())
    return struct.pack("!I", len(body)) + body


def frame(ftype, channel, payload):
    return struct.pack("!BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def method(channel, class_id, method_id, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack("!HH", class_id, method_id) + args)


class Reader:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, n):
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def octet(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack("!H", self.take(2))[0]

    def long(self):
        return struct.unpack("!I", self.take(4))[0]

    def longlong(self):
        return struct.unpack("!Q", self.take(8))[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        end = self.long() + self.i
        out = {}
        while self.i < end:
            k = self.shortstr()
            out[k] = self.value()
        return out

    def value(self):
        t = chr(self.octet())
        if t == "t":
            return bool(self.octet())
        if t == "S":
            return self.longstr().decode("utf-8", "replace")
        if t == "I":
            return struct.unpack("!i", self.take(4))[0]
        if t == "l":
            return struct.unpack("!q", self.take(8))[0]
        if t == "F":
            return self.table()
        if t == "b":
            return struct.unpack("!b", self.take(1))[0]
        if t == "s":
            return struct.unpack("!h", self.take(2))[0]
        if t == "T":
            return self.longlong()
        if t == "V":
            return None
        if t == "A":
            end = self.long() + self.i
            arr = []
            while self.i < end:
                arr.append(self.value())
            return arr
        raise ValueError("unknown field type %r" % t)


class Conn:
    """A blocking raw AMQP connection with a receive buffer."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def recv_some(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return b""
        return chunk

    def read_raw(self, wait=1.0):
        """Everything the peer sends within `wait` seconds or until it closes. Returns (bytes, closed)."""
        deadline = time.monotonic() + wait
        data = self.buf
        self.buf = b""
        while time.monotonic() < deadline:
            chunk = self.recv_some(deadline)
            if chunk is None:
                return data, False
            if chunk == b"":
                return data, True
            data += chunk
        return data, False

    def read_frame(self, timeout=None):
        """Next frame as (type, channel, payload), or None on EOF/timeout. Heartbeats are returned too."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 7:
                ftype, ch, size = struct.unpack("!BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = self.buf[7:7 + size]
                    end = self.buf[7 + size]
                    self.buf = self.buf[8 + size:]
                    assert end == FRAME_END, "bad frame end %r" % end
                    return ftype, ch, payload
            if time.monotonic() >= deadline:
                return None
            chunk = self.recv_some(deadline)
            if not chunk:
                return None
            self.buf += chunk

    def read_method(self, timeout=None):
        """Next non-heartbeat method frame as (channel, class_id, method_id, Reader-of-args) or None."""
        while True:
            f = self.read_frame(timeout)
            if f is None:
                return None
            ftype, ch, payload = f
            if ftype == FRAME_HEARTBEAT:
                continue
            if ftype != FRAME_METHOD:
                return (ch, -ftype, 0, Reader(payload))
            cid, mid = struct.unpack("!HH", payload[:4])
            return ch, cid, mid, Reader(payload[4:])

    def is_closed_by_peer(self, wait=2.0):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            chunk = self.recv_some(deadline)
            if chunk == b"":
                return True
            if chunk is None:
                return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_close(r):
    """Arguments of connection.close / channel.close: (code, text, class_id, method_id)."""
    code = r.short()
    text = r.shortstr()
    return code, text, r.short(), r.short()


def start_ok(user, password, capabilities=True, mechanism="PLAIN"):
    props = {"product": "warren-raw-probe"}
    if capabilities:
        props["capabilities"] = {"authentication_failure_close": True, "publisher_confirms": True,
                                 "consumer_cancel_notify": True, "basic.nack": True,
                                 "connection.blocked": True}
    resp = b"\x00" + user.encode() + b"\x00" + password.encode()
    return method(0, 10, 11, table(props) + shortstr(mechanism) + longstr(resp) + shortstr("en_US"))


def handshake(host, port, user="guest", password="guest", vhost="/", channel_max=None,
              frame_max=None, heartbeat=0, capabilities=True):
    """Open a raw connection up to connection.open-ok. Returns (Conn, start_args, tune_args)."""
    c = Conn(host, port)
    c.send(PROTOCOL_HEADER)
    ch, cid, mid, r = c.read_method()
    assert (cid, mid) == (10, 10), (cid, mid)
    start = {"version_major": r.octet(), "version_minor": r.octet(),
             "server_properties": r.table(), "mechanisms": r.longstr().decode(),
             "locales": r.longstr().decode()}
    c.send(start_ok(user, password, capabilities))
    ch, cid, mid, r = c.read_method()
    assert (cid, mid) == (10, 30), (cid, mid, METHOD_NAMES.get((cid, mid)))
    tune = {"channel_max": r.short(), "frame_max": r.long(), "heartbeat": r.short()}
    cm = tune["channel_max"] if channel_max is None else channel_max
    fm = tune["frame_max"] if frame_max is None else frame_max
    c.send(method(0, 10, 31, struct.pack("!HIH", cm, fm, heartbeat)))
    c.send(method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
    ch, cid, mid, r = c.read_method()
    assert (cid, mid) == (10, 41), (cid, mid, METHOD_NAMES.get((cid, mid)))
    return c, start, tune


def channel_open(c, channel):
    c.send(method(channel, 20, 10, shortstr("")))
    ch, cid, mid, r = c.read_method()
    assert (ch, cid, mid) == (channel, 20, 11), (ch, cid, mid)


def queue_declare_args(name, passive=False, durable=False, exclusive=False, auto_delete=False,
                       nowait=False, arguments=None):
    bits = (passive << 0) | (durable << 1) | (exclusive << 2) | (auto_delete << 3) | (nowait << 4)
    return struct.pack("!H", 0) + shortstr(name) + bytes([bits]) + table(arguments or {})


def basic_publish_args(exchange, routing_key, mandatory=False, immediate=False):
    return struct.pack("!H", 0) + shortstr(exchange) + shortstr(routing_key) + \
        bytes([(mandatory << 0) | (immediate << 1)])


def content_header(body_size, class_id=60, flags=0, props=b""):
    return struct.pack("!HHQH", class_id, 0, body_size, flags) + props

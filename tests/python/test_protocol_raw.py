# -*- coding: utf-8 -*-
"""Wire-level behaviour checked with raw sockets (tools/amqp_raw.py), where pika hides it."""
import struct
import time

import pytest

import amqp_raw as raw
from conftest import HOST, PASS, PORT, USER, VHOST, uniq

CONNECTION_CLOSE = (10, 50)


def handshake(**kw):
    return raw.handshake(HOST, PORT, USER, PASS, VHOST, **kw)


def expect_connection_close(c, timeout=5.0):
    m = c.read_method(timeout)
    assert m is not None, "expected connection.close, got nothing (connection dropped or silent)"
    ch, cid, mid, r = m
    assert (ch, cid, mid) == (0, 10, 50), (ch, cid, mid)
    code, text, class_id, method_id = raw.parse_close(r)
    # the client's close-ok should be followed by the server closing the socket
    c.send(raw.method(0, 10, 51))
    assert c.is_closed_by_peer(5.0), "server did not close the socket after close-ok"
    return code, text, class_id, method_id


@pytest.fixture
def opened():
    made = []

    def make(**kw):
        c, start, tune = handshake(**kw)
        made.append(c)
        return c, start, tune

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x01\x01\x00\x0a",
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_bad_protocol_header_gets_supported_header(header):
    c = raw.Conn(HOST, PORT)
    try:
        c.send(header)
        data, closed = c.read_raw(3.0)
        if not closed:
            closed = c.is_closed_by_peer(3.0)
        assert data == b"AMQP\x00\x00\x09\x01"
        assert closed
    finally:
        c.close()


def test_connection_start_contents():
    c = raw.Conn(HOST, PORT)
    try:
        c.send(raw.PROTOCOL_HEADER)
        ch, cid, mid, r = c.read_method()
        assert (ch, cid, mid) == (0, 10, 10)
        assert (r.octet(), r.octet()) == (0, 9)
        props = r.table()
        mechanisms = r.longstr().decode().split()
        locales = r.longstr().decode().split()
    finally:
        c.close()
    assert "PLAIN" in mechanisms
    assert "en_US" in locales
    for key in ("product", "version", "platform", "copyright", "information"):
        assert isinstance(props.get(key), str) and props[key], key
    caps = props["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps.get(cap) is True, cap


def test_connection_tune_defaults(opened):
    _, _, tune = opened()
    assert tune == {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60}


def test_bad_password_close_frame():
    c = raw.Conn(HOST, PORT)
    try:
        c.send(raw.PROTOCOL_HEADER)
        c.read_method()
        c.send(raw.start_ok(USER, PASS + "-wrong", capabilities=True))
        code, text, _, _ = expect_connection_close(c)
        assert code == 403
        assert text.startswith("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")
    finally:
        c.close()


def test_missing_vhost_close_frame():
    c = raw.Conn(HOST, PORT)
    try:
        c.send(raw.PROTOCOL_HEADER)
        c.read_method()
        c.send(raw.start_ok(USER, PASS))
        c.read_method()
        c.send(raw.method(0, 10, 31, struct.pack("!HIH", 2047, 131072, 0)))
        c.send(raw.method(0, 10, 40, raw.shortstr("no-such-vhost") + raw.shortstr("") + b"\x00"))
        assert expect_connection_close(c) == (530, "NOT_ALLOWED - vhost no-such-vhost not found", 10, 40)
    finally:
        c.close()


def test_server_sends_heartbeats(opened):
    c, _, _ = opened(heartbeat=1)
    deadline = time.monotonic() + 4
    seen = False
    while time.monotonic() < deadline and not seen:
        f = c.read_frame(timeout=deadline - time.monotonic())
        if f is None:
            break
        seen = f[0] == raw.FRAME_HEARTBEAT and f[1] == 0
        c.send(raw.frame(raw.FRAME_HEARTBEAT, 0, b""))
    assert seen, "no heartbeat frame within 4 s at heartbeat=1"


def test_method_on_unopened_channel(opened):
    c, _, _ = opened()
    c.send(raw.method(5, 50, 10, raw.queue_declare_args("x", exclusive=True)))
    assert expect_connection_close(c) == (504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)


def test_channel_open_twice(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.method(1, 20, 10, raw.shortstr("")))
    assert expect_connection_close(c) == (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


def test_channel_count_limited_by_negotiated_channel_max(opened):
    c, _, _ = opened(channel_max=2)
    raw.channel_open(c, 1)
    raw.channel_open(c, 2)
    c.send(raw.method(3, 20, 10, raw.shortstr("")))
    code, text, _, _ = expect_connection_close(c)
    assert code == 530
    assert text == "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"


def test_body_frame_without_header(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.frame(raw.FRAME_BODY, 1, b"hello"))
    code, text, _, _ = expect_connection_close(c)
    assert code == 505
    assert text.startswith("UNEXPECTED_FRAME")


def test_publish_then_body_without_header(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
    c.send(raw.frame(raw.FRAME_BODY, 1, b"hello"))
    code, text, cid, mid = expect_connection_close(c)
    assert code == 505
    assert text.startswith("UNEXPECTED_FRAME")
    assert (cid, mid) == (60, 40)


def test_frame_larger_than_frame_max(opened):
    c, _, tune = opened(frame_max=4096)
    raw.channel_open(c, 1)
    c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
    c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(10000)))
    c.send(raw.frame(raw.FRAME_BODY, 1, b"x" * 10000))
    code, text, _, _ = expect_connection_close(c)
    assert code == 501
    assert text.startswith("FRAME_ERROR")


def test_unknown_frame_type(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.frame(7, 1, b"abc"))
    code, text, _, _ = expect_connection_close(c)
    assert code == 501
    assert text.startswith("FRAME_ERROR")


def test_unknown_method_ends_connection(opened):
    # RabbitMQ 3.10 just drops the TCP connection here; a connection.close with a 5xx code is
    # acceptable too. The connection must not carry on.
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.method(1, 9999, 1))
    m = c.read_method(5.0)
    if m is not None:
        ch, cid, mid, r = m
        assert (ch, cid, mid) == (0, 10, 50)
        code = raw.parse_close(r)[0]
        assert code in (503, 504, 505, 540), code
        c.send(raw.method(0, 10, 51))
    assert c.is_closed_by_peer(5.0)


def test_publish_immediate_not_implemented(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere", immediate=True)))
    c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(1)))
    c.send(raw.frame(raw.FRAME_BODY, 1, b"x"))
    code, text, cid, mid = expect_connection_close(c)
    assert (code, text) == (540, "NOT_IMPLEMENTED - immediate=true")


def _declare_server_named(c, channel):
    c.send(raw.method(channel, 50, 10, raw.queue_declare_args("", exclusive=True)))
    ch, cid, mid, r = c.read_method()
    assert (ch, cid, mid) == (channel, 50, 11)
    return r.shortstr()


def _consume(c, channel, queue, tag):
    args = struct.pack("!H", 0) + raw.shortstr(queue) + raw.shortstr(tag) + b"\x00" + raw.table({})
    c.send(raw.method(channel, 60, 20, args))


def test_duplicate_consumer_tag_is_connection_error(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    q = _declare_server_named(c, 1)
    _consume(c, 1, q, "ctag1")
    ch, cid, mid, r = c.read_method()
    assert (ch, cid, mid) == (1, 60, 21) and r.shortstr() == "ctag1"
    _consume(c, 1, q, "ctag1")
    assert expect_connection_close(c) == \
        (530, "NOT_ALLOWED - attempt to reuse consumer tag 'ctag1'", 60, 20)


def test_server_generated_names(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    q1 = _declare_server_named(c, 1)
    q2 = _declare_server_named(c, 1)
    assert q1.startswith("amq.gen-") and q2.startswith("amq.gen-") and q1 != q2
    _consume(c, 1, q1, "")
    ch, cid, mid, r = c.read_method()
    assert (ch, cid, mid) == (1, 60, 21)
    assert r.shortstr().startswith("amq.ctag-")


def test_channel_error_then_close_ok_then_reopen(opened):
    c, _, _ = opened()
    raw.channel_open(c, 1)
    missing = uniq("missing-raw")
    c.send(raw.method(1, 50, 10, raw.queue_declare_args(missing, passive=True)))
    ch, cid, mid, r = c.read_method()
    assert (ch, cid, mid) == (1, 20, 40)
    code, text, class_id, method_id = raw.parse_close(r)
    assert (code, class_id, method_id) == (404, 50, 10)
    assert text == "NOT_FOUND - no queue '%s' in vhost '%s'" % (missing, VHOST)
    c.send(raw.method(1, 20, 41))  # channel.close-ok
    raw.channel_open(c, 1)  # the channel number is reusable

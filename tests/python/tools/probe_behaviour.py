#!/usr/bin/env python3
"""Probe a broker's replies to error and edge cases; prints one line per case.

Used to produce docs/rabbitmq-behaviour.md against real RabbitMQ; run it against Warren to diff.
    AMQP_HOST=127.0.0.1 AMQP_PORT=5682 python tests/python/tools/probe_behaviour.py
"""
import os
import struct
import sys
import uuid

import pika
import pika.exceptions as pe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amqp_raw as raw  # noqa: E402

HOST = os.environ.get("AMQP_HOST", "127.0.0.1")
PORT = int(os.environ.get("AMQP_PORT", "5672"))
USER = os.environ.get("AMQP_USER", "guest")
PASS = os.environ.get("AMQP_PASS", "guest")


def params(**kw):
    d = dict(host=HOST, port=PORT, credentials=pika.PlainCredentials(USER, PASS),
             connection_attempts=1, blocked_connection_timeout=5, socket_timeout=5)
    d.update(kw)
    return pika.ConnectionParameters(**d)


def uniq(p):
    return "%s-%s" % (p, uuid.uuid4().hex[:8])


def fmt_exc(e):
    code = getattr(e, "reply_code", None)
    text = getattr(e, "reply_text", None)
    if code is not None:
        return "%s(%s, %r)" % (type(e).__name__, code, text)
    return "%s(%r)" % (type(e).__name__, e.args)


def case(name, fn):
    conn = pika.BlockingConnection(params())
    extra = []
    try:
        res = fn(conn, extra)
        out = "OK %r" % (res,)
    except Exception as e:  # noqa: BLE001
        out = fmt_exc(e)
    finally:
        for c in [conn] + extra:
            try:
                if c.is_open:
                    c.close()
            except Exception:  # noqa: BLE001
                pass
    print("%-55s %s" % (name, out), flush=True)


def sync_after(ch):
    """Force a round trip so an asynchronous channel error surfaces."""
    ch.basic_qos(prefetch_count=0)
    return "no error"


# ---------------------------------------------------------------- connection level
def raw_bad_header(hdr):
    c = raw.Conn(HOST, PORT)
    c.send(hdr)
    data, closed = c.read_raw(2.0)
    c.close()
    return "sent %r -> got %r closed=%s" % (hdr, data, closed)


def raw_bad_password(capabilities):
    c = raw.Conn(HOST, PORT)
    c.send(raw.PROTOCOL_HEADER)
    c.read_method()
    c.send(raw.start_ok(USER, "definitely-wrong", capabilities))
    m = c.read_method(5)
    if m is None:
        return "no frame; closed=%s" % c.is_closed_by_peer()
    ch, cid, mid, r = m
    if (cid, mid) == (10, 50):
        res = "connection.close %r" % (raw.parse_close(r),)
    else:
        res = "%s" % raw.METHOD_NAMES.get((cid, mid), (cid, mid))
    return res + "; then closed=%s" % c.is_closed_by_peer()


def raw_bad_mechanism():
    c = raw.Conn(HOST, PORT)
    c.send(raw.PROTOCOL_HEADER)
    c.read_method()
    c.send(raw.start_ok(USER, PASS, True, mechanism="FOO"))
    m = c.read_method(5)
    if m is None:
        return "no frame; closed=%s" % c.is_closed_by_peer()
    ch, cid, mid, r = m
    return "connection.close %r" % (raw.parse_close(r),) if (cid, mid) == (10, 50) else str((cid, mid))


def connection_level():
    print("== connection level")
    for hdr in (b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09", b"AMQP\x00\x00\x08\x00",
                b"GET / HTTP/1.1\r\n\r\n", b"AMQP\x00\x01\x00\x00"):
        print("%-55s %s" % ("bad protocol header", raw_bad_header(hdr)), flush=True)
    print("%-55s %s" % ("raw bad password (auth_failure_close cap)", raw_bad_password(True)))
    print("%-55s %s" % ("raw bad password (no capabilities)", raw_bad_password(False)))
    print("%-55s %s" % ("raw unknown mechanism FOO", raw_bad_mechanism()))
    try:
        pika.BlockingConnection(params(credentials=pika.PlainCredentials(USER, "wrong")))
        r = "connected?!"
    except Exception as e:  # noqa: BLE001
        r = fmt_exc(e)
    print("%-55s %s" % ("pika bad password", r))
    try:
        pika.BlockingConnection(params(virtual_host="nosuchvhost"))
        r = "connected?!"
    except Exception as e:  # noqa: BLE001
        r = fmt_exc(e)
    print("%-55s %s" % ("pika vhost nosuchvhost", r))

    c, start, tune = raw.handshake(HOST, PORT, USER, PASS)
    print("connection.start version %d.%d" % (start["version_major"], start["version_minor"]))
    for k, v in sorted(start["server_properties"].items()):
        print("  server_properties[%r] = %r" % (k, v))
    print("  mechanisms = %r" % start["mechanisms"])
    print("  locales = %r" % start["locales"])
    print("connection.tune %r" % tune)
    c.close()


def raw_case(name, fn, **hs):
    c, start, tune = raw.handshake(HOST, PORT, USER, PASS, **hs)
    try:
        res = fn(c, tune)
    except Exception as e:  # noqa: BLE001
        res = "probe error %r" % e
    c.close()
    print("%-55s %s" % (name, res), flush=True)


def describe_reply(c, wait=3.0):
    m = c.read_method(wait)
    if m is None:
        return "nothing; closed=%s" % c.is_closed_by_peer(0.5)
    ch, cid, mid, r = m
    if (cid, mid) in ((10, 50), (20, 40)):
        res = "ch%d %s %r" % (ch, raw.METHOD_NAMES[(cid, mid)], raw.parse_close(r))
    else:
        res = "ch%d %s" % (ch, raw.METHOD_NAMES.get((cid, mid), (cid, mid)))
    return res


def frame_level():
    print("== frame level (raw)")

    def too_big(c, tune):
        raw.channel_open(c, 1)
        args = raw.queue_declare_args("x", arguments={"pad": "x" * (tune["frame_max"] + 10)})
        c.send(raw.method(1, 50, 10, args))
        return describe_reply(c)
    raw_case("method frame > frame_max (131072)", too_big)

    def too_big_small(c, tune):
        raw.channel_open(c, 1)
        args = raw.queue_declare_args("x", arguments={"pad": "x" * 5000})
        c.send(raw.method(1, 50, 10, args))
        return describe_reply(c)
    raw_case("method frame > negotiated frame_max 4096", too_big_small, frame_max=4096)

    def body_too_big(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
        c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(10000)))
        c.send(raw.frame(raw.FRAME_BODY, 1, b"x" * 10000))
        return describe_reply(c)
    raw_case("body frame > negotiated frame_max 4096", body_too_big, frame_max=4096)

    def unknown_method(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 9999, 1))
        return describe_reply(c)
    raw_case("unknown class 9999 method 1 on ch1", unknown_method)

    def unknown_method2(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 50, 99))
        return describe_reply(c)
    raw_case("unknown method queue(50).99 on ch1", unknown_method2)

    def unknown_method0(c, tune):
        c.send(raw.method(0, 9999, 1))
        return describe_reply(c)
    raw_case("unknown class 9999 on ch0", unknown_method0)

    def chan_above_max(c, tune):
        c.send(raw.method(tune["channel_max"] + 1, 20, 10, raw.shortstr("")))
        return describe_reply(c)
    raw_case("channel.open on channel_max+1 (2048)", chan_above_max)

    def chan_above_neg(c, tune):
        c.send(raw.method(11, 20, 10, raw.shortstr("")))
        return describe_reply(c)
    raw_case("channel.open ch11 with negotiated channel_max 10", chan_above_neg, channel_max=10)

    def chan_at_neg(c, tune):
        c.send(raw.method(10, 20, 10, raw.shortstr("")))
        return describe_reply(c)
    raw_case("channel.open ch10 with negotiated channel_max 10", chan_at_neg, channel_max=10)

    def unopened(c, tune):
        c.send(raw.method(5, 50, 10, raw.queue_declare_args("x", exclusive=True)))
        return describe_reply(c)
    raw_case("queue.declare on unopened channel 5", unopened)

    def reopen(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 20, 10, raw.shortstr("")))
        return describe_reply(c)
    raw_case("channel.open twice on ch1", reopen)

    def body_no_header(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.frame(raw.FRAME_BODY, 1, b"hello"))
        return describe_reply(c)
    raw_case("body frame with no publish/header", body_no_header)

    def body_after_publish(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
        c.send(raw.frame(raw.FRAME_BODY, 1, b"hello"))
        return describe_reply(c)
    raw_case("publish then body without header", body_after_publish)

    def header_no_publish(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(5)))
        return describe_reply(c)
    raw_case("header frame with no publish", header_no_publish)

    def method_mid_content(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
        c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(5)))
        c.send(raw.method(1, 50, 10, raw.queue_declare_args("x", exclusive=True)))
        return describe_reply(c)
    raw_case("method frame while expecting body", method_mid_content)

    def header_wrong_class(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 60, 40, raw.basic_publish_args("", "nowhere")))
        c.send(raw.frame(raw.FRAME_HEADER, 1, raw.content_header(5, class_id=50)))
        return describe_reply(c)
    raw_case("content header with class 50 after basic.publish", header_wrong_class)

    def bad_frame_type(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.frame(7, 1, b"abc"))
        return describe_reply(c)
    raw_case("unknown frame type 7", bad_frame_type)

    def bad_frame_end(c, tune):
        raw.channel_open(c, 1)
        f = raw.method(1, 50, 10, raw.queue_declare_args("x", exclusive=True))
        c.send(f[:-1] + b"\x00")
        return describe_reply(c)
    raw_case("frame-end byte 0x00 instead of 0xCE", bad_frame_end)

    def heartbeat_nonzero_channel(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.frame(raw.FRAME_HEARTBEAT, 1, b""))
        return describe_reply(c)
    raw_case("heartbeat frame on channel 1", heartbeat_nonzero_channel)

    def channel_method_on_0(c, tune):
        c.send(raw.method(0, 50, 10, raw.queue_declare_args("x", exclusive=True)))
        return describe_reply(c)
    raw_case("queue.declare on channel 0", channel_method_on_0)

    def conn_method_on_1(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 10, 40, raw.shortstr("/") + raw.shortstr("") + b"\x00"))
        return describe_reply(c)
    raw_case("connection.open on channel 1", conn_method_on_1)

    def close_unopened(c, tune):
        c.send(raw.method(7, 20, 40, struct.pack("!H", 200) + raw.shortstr("bye") + struct.pack("!HH", 0, 0)))
        return describe_reply(c)
    raw_case("channel.close on unopened channel 7", close_unopened)

    def ok_on_closing(c, tune):
        raw.channel_open(c, 1)
        c.send(raw.method(1, 50, 10, raw.queue_declare_args("nosuch-" + uuid.uuid4().hex, passive=True)))
        first = describe_reply(c)
        c.send(raw.method(1, 50, 10, raw.queue_declare_args("x2", exclusive=True)))
        second = describe_reply(c, 1.0)
        c.send(raw.method(1, 20, 41))
        third = describe_reply(c, 1.0)
        c.send(raw.method(1, 20, 10, raw.shortstr("")))
        fourth = describe_reply(c, 1.0)
        return "%s | then declare -> %s | close-ok -> %s | reopen -> %s" % (first, second, third, fourth)
    raw_case("methods after channel.close sent by server", ok_on_closing)


# ---------------------------------------------------------------- queues
def queues():
    print("== queues")

    def passive_missing(conn, extra):
        conn.channel().queue_declare("nosuch-q", passive=True)
    case("queue.declare passive missing 'nosuch-q'", passive_missing)

    def redeclare_durable(conn, extra):
        q = "q-dur"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q, durable=False)
        try:
            ch.queue_declare(q, durable=True)
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-dur' non-durable then durable", redeclare_durable)

    def redeclare_nondurable(conn, extra):
        q = "q-dur2"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q, durable=True)
        try:
            ch.queue_declare(q, durable=False)
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-dur2' durable then non-durable", redeclare_nondurable)

    def redeclare_ad(conn, extra):
        q = "q-ad"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q)
        try:
            ch.queue_declare(q, auto_delete=True)
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-ad' then auto_delete=True", redeclare_ad)

    def redeclare_excl_own(conn, extra):
        q = "q-ex-own"
        ch = conn.channel()
        ch.queue_declare(q)
        try:
            ch.queue_declare(q, exclusive=True)
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-ex-own' then exclusive=True same conn", redeclare_excl_own)

    def redeclare_ttl(conn, extra):
        q = "q-ttl"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q, arguments={"x-message-ttl": 1000})
        try:
            ch.queue_declare(q, arguments={"x-message-ttl": 2000})
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-ttl' ttl 1000 then 2000", redeclare_ttl)

    def redeclare_ttl_none(conn, extra):
        q = "q-ttl2"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q)
        try:
            ch.queue_declare(q, arguments={"x-message-ttl": 2000})
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-ttl2' no args then ttl 2000", redeclare_ttl_none)

    def redeclare_ttl_drop(conn, extra):
        q = "q-ttl3"
        ch = conn.channel()
        ch.queue_delete(q)
        ch.queue_declare(q, arguments={"x-message-ttl": 2000})
        try:
            return ch.queue_declare(q).method.queue
        finally:
            conn.channel().queue_delete(q)
    case("queue.declare 'q-ttl3' ttl 2000 then no args", redeclare_ttl_drop)

    def bad_ttl(conn, extra):
        conn.channel().queue_declare("q-badttl", arguments={"x-message-ttl": -1})
    case("queue.declare 'q-badttl' x-message-ttl=-1", bad_ttl)

    def bad_ttl_type(conn, extra):
        conn.channel().queue_declare("q-badttl2", arguments={"x-message-ttl": "abc"})
    case("queue.declare 'q-badttl2' x-message-ttl='abc'", bad_ttl_type)

    def excl_other(conn, extra):
        q = "q-excl"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_declare(q, exclusive=True)
    case("queue.declare 'q-excl' exclusive held by other conn", excl_other)

    def excl_other_nonex(conn, extra):
        q = "q-excl2"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_declare(q)
    case("queue.declare 'q-excl2' (non-excl) held excl by other", excl_other_nonex)

    def excl_other_passive(conn, extra):
        q = "q-excl3"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_declare(q, passive=True)
    case("queue.declare passive 'q-excl3' excl of other conn", excl_other_passive)

    def excl_consume(conn, extra):
        q = "q-excl4"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().basic_consume(q, lambda *a: None)
    case("basic.consume on other conn's exclusive 'q-excl4'", excl_consume)

    def excl_get(conn, extra):
        q = "q-excl5"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().basic_get(q)
    case("basic.get on other conn's exclusive 'q-excl5'", excl_get)

    def excl_delete(conn, extra):
        q = "q-excl6"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_delete(q)
    case("queue.delete on other conn's exclusive 'q-excl6'", excl_delete)

    def excl_purge(conn, extra):
        q = "q-excl7"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_purge(q)
    case("queue.purge on other conn's exclusive 'q-excl7'", excl_purge)

    def excl_bind(conn, extra):
        q = "q-excl8"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().queue_bind(q, "amq.direct", "k")
    case("queue.bind on other conn's exclusive 'q-excl8'", excl_bind)

    def excl_publish(conn, extra):
        q = "q-excl9"
        conn.channel().queue_declare(q, exclusive=True)
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        ch2 = c2.channel()
        ch2.basic_publish("", q, b"x")
        sync_after(ch2)
        return conn.channel().queue_declare(q, passive=True).method.message_count
    case("publish to other conn's exclusive 'q-excl9' (count)", excl_publish)

    def amq_name(conn, extra):
        conn.channel().queue_declare("amq.foo")
    case("queue.declare 'amq.foo'", amq_name)

    def amq_name_passive(conn, extra):
        conn.channel().queue_declare("amq.foo", passive=True)
    case("queue.declare passive 'amq.foo'", amq_name_passive)

    def amq_gen(conn, extra):
        conn.channel().queue_declare("amq.gen-abc")
    case("queue.declare 'amq.gen-abc'", amq_gen)

    def long_name(conn, extra):
        return conn.channel().queue_declare("", exclusive=True).method.queue
    case("queue.declare '' (server-named)", long_name)

    def delete_missing(conn, extra):
        return conn.channel().queue_delete("nosuch-q").method.message_count
    case("queue.delete missing 'nosuch-q'", delete_missing)

    def purge_missing(conn, extra):
        return conn.channel().queue_purge("nosuch-q").method.message_count
    case("queue.purge missing 'nosuch-q'", purge_missing)

    def delete_if_unused(conn, extra):
        q = "q-unused"
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=True)
        ch.basic_consume(q, lambda *a: None)
        conn.channel().queue_delete(q, if_unused=True)
    case("queue.delete if_unused 'q-unused' with consumer", delete_if_unused)

    def delete_if_empty(conn, extra):
        q = "q-notempty"
        ch = conn.channel()
        ch.queue_declare(q)
        ch.basic_publish("", q, b"x")
        try:
            conn.channel().queue_delete(q, if_empty=True)
        finally:
            conn.channel().queue_delete(q)
    case("queue.delete if_empty 'q-notempty' with 1 msg", delete_if_empty)

    def delete_count(conn, extra):
        q = "q-delcount"
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q)
        for _ in range(3):
            ch.basic_publish("", q, b"x")
        return ch.queue_delete(q).method.message_count
    case("queue.delete count after 3 msgs", delete_count)

    def bind_missing_x(conn, extra):
        ch = conn.channel()
        ch.queue_declare("q-bind", exclusive=True)
        ch.queue_bind("q-bind", "nosuch-x", "k")
    case("queue.bind to missing exchange 'nosuch-x'", bind_missing_x)

    def bind_missing_q(conn, extra):
        conn.channel().queue_bind("nosuch-q", "amq.direct", "k")
    case("queue.bind missing queue 'nosuch-q' to amq.direct", bind_missing_q)

    def bind_missing_both(conn, extra):
        conn.channel().queue_bind("nosuch-q", "nosuch-x", "k")
    case("queue.bind missing queue and missing exchange", bind_missing_both)

    def bind_default(conn, extra):
        ch = conn.channel()
        ch.queue_declare("q-bind2", exclusive=True)
        ch.queue_bind("q-bind2", "", "k")
    case("queue.bind to default exchange ''", bind_default)

    def unbind_missing(conn, extra):
        ch = conn.channel()
        ch.queue_declare("q-bind3", exclusive=True)
        ch.queue_unbind("q-bind3", "amq.direct", "never-bound")
        return "unbind-ok"
    case("queue.unbind never-bound key", unbind_missing)

    def unbind_missing_x(conn, extra):
        ch = conn.channel()
        ch.queue_declare("q-bind4", exclusive=True)
        ch.queue_unbind("q-bind4", "nosuch-x", "k")
        return "unbind-ok"
    case("queue.unbind from missing exchange", unbind_missing_x)

    def unbind_missing_q(conn, extra):
        conn.channel().queue_unbind("nosuch-q", "amq.direct", "k")
        return "unbind-ok"
    case("queue.unbind missing queue", unbind_missing_q)

    def excl_consumer(conn, extra):
        q = "q-exclc"
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=True)
        ch.basic_consume(q, lambda *a: None, exclusive=True)
        conn.channel().basic_consume(q, lambda *a: None)
    case("basic.consume when exclusive consumer exists", excl_consumer)

    def excl_consumer2(conn, extra):
        q = "q-exclc2"
        ch = conn.channel()
        ch.queue_declare(q, auto_delete=True)
        ch.basic_consume(q, lambda *a: None)
        conn.channel().basic_consume(q, lambda *a: None, exclusive=True)
    case("basic.consume exclusive when a consumer exists", excl_consumer2)

    def consume_missing(conn, extra):
        conn.channel().basic_consume("nosuch-q", lambda *a: None)
    case("basic.consume missing queue", consume_missing)

    def get_missing(conn, extra):
        conn.channel().basic_get("nosuch-q")
    case("basic.get missing queue", get_missing)


# ---------------------------------------------------------------- exchanges
def exchanges():
    print("== exchanges")

    def passive_missing(conn, extra):
        conn.channel().exchange_declare("nosuch-x", passive=True)
    case("exchange.declare passive missing 'nosuch-x'", passive_missing)

    def retype(conn, extra):
        x = "x-retype"
        ch = conn.channel()
        ch.exchange_declare(x, "direct")
        try:
            ch.exchange_declare(x, "fanout")
        finally:
            conn.channel().exchange_delete(x)
    case("exchange.declare 'x-retype' direct then fanout", retype)

    def redurable(conn, extra):
        x = "x-redur"
        ch = conn.channel()
        ch.exchange_declare(x, "direct")
        try:
            ch.exchange_declare(x, "direct", durable=True)
        finally:
            conn.channel().exchange_delete(x)
    case("exchange.declare 'x-redur' then durable", redurable)

    def passive_retype(conn, extra):
        return conn.channel().exchange_declare("amq.direct", "fanout", passive=True).method.NAME
    case("exchange.declare passive amq.direct with type fanout", passive_retype)

    def unknown_type(conn, extra):
        conn.channel().exchange_declare("x-foo", "foo")
    case("exchange.declare 'x-foo' type 'foo'", unknown_type)

    def amq_foo(conn, extra):
        conn.channel().exchange_declare("amq.foo", "direct")
    case("exchange.declare 'amq.foo'", amq_foo)

    def amq_direct(conn, extra):
        return conn.channel().exchange_declare("amq.direct", "direct", durable=True).method.NAME
    case("exchange.declare 'amq.direct' direct durable", amq_direct)

    def amq_direct_nd(conn, extra):
        return conn.channel().exchange_declare("amq.direct", "direct", durable=False).method.NAME
    case("exchange.declare 'amq.direct' direct non-durable", amq_direct_nd)

    def default_declare(conn, extra):
        return conn.channel().exchange_declare("", "direct").method.NAME
    case("exchange.declare '' (default)", default_declare)

    def default_passive(conn, extra):
        return conn.channel().exchange_declare("", "direct", passive=True).method.NAME
    case("exchange.declare passive '' (default)", default_passive)

    def delete_missing(conn, extra):
        return conn.channel().exchange_delete("nosuch-x").method.NAME
    case("exchange.delete missing 'nosuch-x'", delete_missing)

    def delete_default(conn, extra):
        return conn.channel().exchange_delete("").method.NAME
    case("exchange.delete ''", delete_default)

    def delete_amq(conn, extra):
        return conn.channel().exchange_delete("amq.fanout").method.NAME
    case("exchange.delete 'amq.fanout'", delete_amq)

    def delete_if_unused(conn, extra):
        x = "x-inuse"
        ch = conn.channel()
        ch.exchange_declare(x, "direct")
        ch.queue_declare("q-xinuse", exclusive=True)
        ch.queue_bind("q-xinuse", x, "k")
        try:
            conn.channel().exchange_delete(x, if_unused=True)
        finally:
            conn.channel().exchange_delete(x)
    case("exchange.delete if_unused 'x-inuse' with binding", delete_if_unused)

    def publish_missing(conn, extra):
        ch = conn.channel()
        ch.basic_publish("nosuch-x", "k", b"x")
        return sync_after(ch)
    case("basic.publish to missing exchange 'nosuch-x'", publish_missing)

    def publish_internal(conn, extra):
        x = "x-internal"
        ch = conn.channel()
        ch.exchange_declare(x, "fanout", internal=True)
        try:
            ch.basic_publish(x, "k", b"x")
            return sync_after(ch)
        finally:
            conn.channel().exchange_delete(x)
    case("basic.publish to internal exchange 'x-internal'", publish_internal)

    def publish_amq_default(conn, extra):
        ch = conn.channel()
        ch.basic_publish("amq.default", "k", b"x")
        return sync_after(ch)
    case("basic.publish to 'amq.default'", publish_amq_default)

    def xbind_missing(conn, extra):
        conn.channel().exchange_bind("nosuch-x", "amq.direct", "k")
    case("exchange.bind missing destination", xbind_missing)

    def headers_bad_xmatch(conn, extra):
        ch = conn.channel()
        ch.queue_declare("q-hdr", exclusive=True)
        ch.queue_bind("q-hdr", "amq.headers", arguments={"x-match": "foo"})
    case("queue.bind amq.headers x-match=foo", headers_bad_xmatch)


# ---------------------------------------------------------------- basic / tx / confirm
def basics():
    print("== basic / tx / confirm")

    def ack_unknown(conn, extra):
        ch = conn.channel()
        ch.basic_ack(99)
        return sync_after(ch)
    case("basic.ack unknown delivery tag 99", ack_unknown)

    def nack_unknown(conn, extra):
        ch = conn.channel()
        ch.basic_nack(99)
        return sync_after(ch)
    case("basic.nack unknown delivery tag 99", nack_unknown)

    def reject_unknown(conn, extra):
        ch = conn.channel()
        ch.basic_reject(99)
        return sync_after(ch)
    case("basic.reject unknown delivery tag 99", reject_unknown)

    def ack_multiple_zero(conn, extra):
        ch = conn.channel()
        ch.basic_ack(0, multiple=True)
        return sync_after(ch)
    case("basic.ack tag 0 multiple=True nothing outstanding", ack_multiple_zero)

    def double_ack(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        m = None
        for _ in range(50):
            m, p, b = ch.basic_get(q)
            if m:
                break
        ch.basic_ack(m.delivery_tag)
        ch.basic_ack(m.delivery_tag)
        return sync_after(ch)
    case("double basic.ack of tag 1", double_ack)

    def ack_autoack(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        m = None
        for _ in range(50):
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m:
                break
        ch.basic_ack(m.delivery_tag)
        return sync_after(ch)
    case("basic.ack of a no-ack basic.get delivery", ack_autoack)

    def immediate(conn, extra):
        ch = conn.channel()
        # pika 1.x has no immediate flag; send the method through the channel impl directly
        from pika import spec
        ch._impl._send_method(spec.Basic.Publish(exchange="", routing_key="k", immediate=True),
                              (spec.BasicProperties(), b"x"))
        return sync_after(ch)
    case("basic.publish immediate=True", immediate)

    def mandatory(conn, extra):
        ch = conn.channel()
        got = []
        ch.add_on_return_callback(lambda c, m, p, b: got.append((m.reply_code, m.reply_text, m.exchange, m.routing_key)))
        ch.basic_publish("", "nosuch-q", b"x", mandatory=True)
        sync_after(ch)
        conn.process_data_events(time_limit=0.5)
        ch.basic_publish("amq.direct", "nosuch-key", b"x", mandatory=True)
        sync_after(ch)
        conn.process_data_events(time_limit=0.5)
        return got
    case("basic.publish mandatory unroutable (basic.return)", mandatory)

    def confirm_unroutable(conn, extra):
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", "nosuch-q", b"x", mandatory=True)
    case("confirm + mandatory unroutable (pika raises)", confirm_unroutable)

    def confirm_unroutable_nonmandatory(conn, extra):
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", "nosuch-q", b"x")
        return "acked"
    case("confirm + non-mandatory unroutable", confirm_unroutable_nonmandatory)

    def get_empty(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        return ch.basic_get(q)
    case("basic.get on empty queue", get_empty)

    def dup_tag(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume(q, lambda *a: None, consumer_tag="ctag1")
        ch.basic_consume(q, lambda *a: None, consumer_tag="ctag1")
    case("basic.consume duplicate consumer tag 'ctag1'", dup_tag)

    def dup_tag_raw(conn, extra):
        from pika import spec
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume(q, lambda *a: None, consumer_tag="ctag1")
        ch._impl._send_method(spec.Basic.Consume(queue=q, consumer_tag="ctag1"))
        return sync_after(ch)
    case("basic.consume duplicate tag 'ctag1' (frame level)", dup_tag_raw)

    def dup_tag_other_ch(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume(q, lambda *a: None, consumer_tag="ctag1")
        return conn.channel().basic_consume(q, lambda *a: None, consumer_tag="ctag1")
    case("same consumer tag on a different channel", dup_tag_other_ch)

    def ctag_format(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        return ch.basic_consume(q, lambda *a: None, consumer_tag="")
    case("server-generated consumer tag (pika ctag)", ctag_format)

    def ctag_format_raw(conn, extra):
        from pika import spec
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        got = []
        ch._impl._rpc(spec.Basic.Consume(queue=q, consumer_tag=""),
                      lambda f: got.append(f.method.consumer_tag), [spec.Basic.ConsumeOk])
        conn.process_data_events(time_limit=1)
        return got
    case("server-generated consumer tag (frame level)", ctag_format_raw)

    def cancel_unknown(conn, extra):
        from pika import spec
        ch = conn.channel()
        got = []
        ch._impl._rpc(spec.Basic.Cancel(consumer_tag="nosuch"),
                      lambda f: got.append(f.method.NAME), [spec.Basic.CancelOk])
        conn.process_data_events(time_limit=1)
        return got
    case("basic.cancel unknown consumer tag", cancel_unknown)

    def qos_size(conn, extra):
        ch = conn.channel()
        ch.basic_qos(prefetch_size=1000, prefetch_count=1)
        return "qos-ok"
    case("basic.qos prefetch_size=1000", qos_size)

    def qos_global(conn, extra):
        ch = conn.channel()
        ch.basic_qos(prefetch_count=5, global_qos=True)
        return "qos-ok"
    case("basic.qos prefetch_count=5 global=True", qos_global)

    def recover_requeue(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"x")
        m = None
        for _ in range(50):
            m, p, b = ch.basic_get(q)
            if m:
                break
        ch.basic_recover(requeue=True)
        m2 = None
        for _ in range(50):
            m2, p, b = ch.basic_get(q)
            if m2:
                break
        return "first tag %s, after recover: tag %s redelivered=%s" % (m.delivery_tag, m2 and m2.delivery_tag, m2 and m2.redelivered)
    case("basic.recover requeue=True", recover_requeue)

    def recover_norequeue(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append((m.delivery_tag, m.redelivered)))
        ch.basic_publish("", q, b"x")
        conn.process_data_events(time_limit=0.5)
        ch.basic_recover(requeue=False)
        conn.process_data_events(time_limit=0.5)
        return got
    case("basic.recover requeue=False (consumer)", recover_norequeue)

    def recover_async(conn, extra):
        from pika import spec
        ch = conn.channel()
        ch._impl._send_method(spec.Basic.RecoverAsync(requeue=False))
        return sync_after(ch)
    case("basic.recover-async requeue=False", recover_async)

    def tx_commit_nosel(conn, extra):
        conn.channel().tx_commit()
    case("tx.commit without tx.select", tx_commit_nosel)

    def tx_rollback_nosel(conn, extra):
        conn.channel().tx_rollback()
    case("tx.rollback without tx.select", tx_rollback_nosel)

    def tx_then_confirm(conn, extra):
        ch = conn.channel()
        ch.tx_select()
        ch.confirm_delivery()
    case("confirm.select after tx.select", tx_then_confirm)

    def confirm_then_tx(conn, extra):
        ch = conn.channel()
        ch.confirm_delivery()
        ch.tx_select()
    case("tx.select after confirm.select", confirm_then_tx)

    def tx_select_twice(conn, extra):
        ch = conn.channel()
        ch.tx_select()
        ch.tx_select()
        return "ok"
    case("tx.select twice", tx_select_twice)

    def flow_off(conn, extra):
        from pika import spec
        ch = conn.channel()
        got = []
        ch._impl._rpc(spec.Channel.Flow(active=False), lambda f: got.append(f.method), [spec.Channel.FlowOk])
        conn.process_data_events(time_limit=1)
        return got
    case("channel.flow active=false", flow_off)

    def access_request(conn, extra):
        from pika import spec
        ch = conn.channel()
        got = []
        ch._impl._rpc(spec.Access.Request(realm="/data"), lambda f: got.append(f.method), [spec.Access.RequestOk])
        conn.process_data_events(time_limit=1)
        return got
    case("access.request", access_request)


# ---------------------------------------------------------------- direct reply-to
def reply_to():
    print("== direct reply-to")

    def seen_reply_to(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        ch.basic_publish("", q, b"req", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
        for _ in range(50):
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m:
                return p.reply_to
    case("reply_to seen by RPC server", seen_reply_to)

    def roundtrip(conn, extra):
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        got = []
        tag = ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: got.append((m.consumer_tag, m.exchange, m.routing_key, m.redelivered, p.correlation_id, b)), auto_ack=True)
        ch.basic_publish("", q, b"req", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
        rt = None
        for _ in range(50):
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m:
                rt = p.reply_to
                break
        c2 = pika.BlockingConnection(params())
        extra.append(c2)
        c2.channel().basic_publish("", rt, b"resp", pika.BasicProperties(correlation_id="c1"))
        conn.process_data_events(time_limit=1)
        return "ctag=%s delivered=%r" % (tag, got)
    case("reply delivery to amq.rabbitmq.reply-to consumer", roundtrip)

    def no_consumer(conn, extra):
        ch = conn.channel()
        ch.basic_publish("", "anything", b"req", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        return sync_after(ch)
    case("publish reply_to=amq.rabbitmq.reply-to w/o consumer", no_consumer)

    def with_ack(conn, extra):
        conn.channel().basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
    case("consume amq.rabbitmq.reply-to with auto_ack=False", with_ack)

    def declare_it(conn, extra):
        return conn.channel().queue_declare("amq.rabbitmq.reply-to", passive=True).method
    case("queue.declare passive amq.rabbitmq.reply-to", declare_it)

    def twice(conn, extra):
        ch = conn.channel()
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        ch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
    case("consume amq.rabbitmq.reply-to twice on one channel", twice)

    def stale(conn, extra):
        ch = conn.channel()
        ch.basic_publish("", "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0NTY3OAAAAAAAAAAAAAAAAA==", b"x")
        return sync_after(ch)
    case("publish to bogus amq.rabbitmq.reply-to.XXXX", stale)


def main():
    sections = sys.argv[1:] or ["connection", "frame", "queues", "exchanges", "basics", "reply_to"]
    for s in sections:
        {"connection": connection_level, "frame": frame_level, "queues": queues,
         "exchanges": exchanges, "basics": basics, "reply_to": reply_to}[s]()


if __name__ == "__main__":
    main()

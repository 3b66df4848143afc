# -*- coding: utf-8 -*-
"""Warren's queue move (`POST /api/queues/{vhost}/{queue}/move {"destination": ...}`), which
RabbitMQ 3.10 does not have (its UI moves through a shovel). Warren only: every byte and property
of every moved message is checked, in order, through pika; a destination that refuses
(`x-overflow: reject-publish`) stops the move and leaves the rest in the source, in order."""
import pika
from conftest import connect, uniq
from mgmt import api, error_body, expect, q

def body(i):
    # Sizes from 0 B to ~20 KiB, each body unique and checkable.
    return (b"%06d:" % i) + bytes((i * 7 + k) % 256 for k in range((i * 97) % 20000))


def declare(ch, name, **arguments):
    ch.queue_declare(name, durable=True, arguments=arguments or None)


def drain(ch, name):
    out = []
    while True:
        m, props, b = ch.basic_get(name, auto_ack=True)
        if m is None:
            return out
        out.append((props, b))


def move(src, dst, status=200):
    return expect(api("POST", "/api/queues/%%2F/%s/move" % q(src), json={"destination": dst}),
                  status)


def test_move_keeps_every_message_in_order():
    src, dst = uniq("move-src"), uniq("move-dst")
    c = connect()
    ch = c.channel()
    try:
        declare(ch, src)
        declare(ch, dst)
        ch.confirm_delivery()
        n = 1500  # more than one batch of 1,000
        for i in range(n):
            ch.basic_publish("", src, body(i), pika.BasicProperties(
                delivery_mode=2 if i % 2 else 1, headers={"i": i}, correlation_id="c%d" % i))
        assert move(src, dst).json() == {"moved": n}
        assert ch.queue_declare(src, passive=True).method.message_count == 0
        got = drain(ch, dst)
        assert len(got) == n
        for i, (props, b) in enumerate(got):
            assert b == body(i), "message %d changed" % i
            assert props.headers == {"i": i} and props.correlation_id == "c%d" % i
            assert props.delivery_mode == (2 if i % 2 else 1)
    finally:
        ch.queue_delete(src)
        ch.queue_delete(dst)
        c.close()


def test_a_refusing_destination_stops_the_move_and_keeps_the_rest():
    src, dst = uniq("move-src"), uniq("move-full")
    c = connect()
    ch = c.channel()
    try:
        declare(ch, src)
        declare(ch, dst, **{"x-max-length": 3, "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        for i in range(10):
            ch.basic_publish("", src, body(i), pika.BasicProperties(delivery_mode=2))
        assert move(src, dst).json() == {"moved": 3}
        assert [b for _, b in drain(ch, dst)] == [body(i) for i in range(3)]
        assert [b for _, b in drain(ch, src)] == [body(i) for i in range(3, 10)]
    finally:
        ch.queue_delete(src)
        ch.queue_delete(dst)
        c.close()


def test_move_errors():
    src = uniq("move-src")
    c = connect()
    ch = c.channel()
    try:
        declare(ch, src)
        assert error_body(move(src, src, 400), 400)["reason"] == \
            "the destination queue must differ from the source"
        move(src, uniq("nosuch"), 404)
        move(uniq("nosuch"), src, 404)
        r = api("POST", "/api/queues/%%2F/%s/move" % q(src), json={})
        assert r.status_code == 400
    finally:
        ch.queue_delete(src)
        c.close()

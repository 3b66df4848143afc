# -*- coding: utf-8 -*-
"""Every byte of every body, under the backpressure that once corrupted them.

A consumer with a large prefetch that stops reading for a while makes the broker's
output pile up (bodies of 4 KiB and more are queued as chunks of their own); when the
socket drains again, the frames must leave in order. Bodies are derived from their
index, so one wrong byte anywhere fails the test.
"""
import hashlib
import time

import pytest

from conftest import uniq


def body(i, size):
    seed = hashlib.sha256(b"%d" % i).digest()
    return (b"%08d" % i + seed * (size // len(seed) + 1))[:size]


@pytest.mark.parametrize("size,count,prefetch", [(8192, 3000, 2000), (4096, 2000, 500)])
def test_stalled_consumer_gets_every_body_intact(connection_factory, size, count, prefetch):
    pub = connection_factory().channel()
    q = uniq("stall")
    pub.queue_declare(q, exclusive=False, auto_delete=False)
    try:
        pub.confirm_delivery()
        for i in range(count):
            pub.basic_publish("", q, body(i, size))
        conn = connection_factory()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=prefetch)
        got = []
        paused = []

        def on_message(c, method, props, b):
            if not paused:
                # Stop reading for two seconds after the first message: the
                # broker's output for this consumer backs up meanwhile.
                paused.append(True)
                time.sleep(2)
            got.append(b)
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(q, on_message)
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert len(got) == count, "only %d of %d delivered" % (len(got), count)
        wrong = [i for i, b in enumerate(got) if b != body(i, size)]
        assert not wrong, "%d bodies corrupted or out of order, first at %d" % (len(wrong), wrong[0])
    finally:
        pub.queue_delete(q)

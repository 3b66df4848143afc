"""SIGKILL under mixed load (issue 11): confirming publishers, consumers with manual acks (single
and multiple, some nack/requeue), durable queues declared and deleted beside them. After every
crash and restart: no confirmed message is lost, every body is intact, an acked message comes back
only marked redelivered, and no queue or binding is lost or resurrected.

CRASH_CYCLES (default 4) sets the number of kill/restart cycles; the long form is
`CRASH_CYCLES=100 pytest tests/python/test_crash_soak.py`. These tests run their own broker."""
import hashlib
import os
import random
import threading
import time

import pika
import pytest

from warren_process import warren  # noqa: F401  (fixture)

QUEUES = [f"soak-{i}" for i in range(3)]
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def body_of(mid):
    """The body for message id `mid`: its id and bytes derived from it (checked on the way out)."""
    seed = hashlib.sha256(mid.encode()).digest()
    return mid.encode() + b"|" + seed * (1 + int(seed[0]) % 40)


def id_of(body):
    mid, _, rest = body.partition(b"|")
    mid = mid.decode()
    assert body == body_of(mid), f"corrupted body for {mid}"
    return mid


class Load:
    def __init__(self, w, cycle):
        self.w = w
        self.cycle = cycle
        self.stop = threading.Event()
        self.confirmed = {q: set() for q in QUEUES}
        self.acked = set()
        self.declared = set()   # declare-ok seen, no delete started
        self.deleted = set()    # delete-ok seen
        self.uncertain = set()  # declare or delete in flight at the crash
        self.errors = []

    def run(self, fn):
        def wrapped():
            try:
                fn()
            except (pika.exceptions.AMQPError, OSError, ConnectionError) as e:
                # The connection lost to the SIGKILL (stop is set just before it) is expected.
                if not self.stop.is_set():
                    self.errors.append(repr(e))
            except Exception as e:  # noqa: BLE001 - a corrupt body or a bug: fails the test
                self.errors.append(repr(e))
        t = threading.Thread(target=wrapped, daemon=True)
        t.start()
        return t

    def publisher(self, n):
        c = self.w.connect()
        ch = c.channel()
        ch.confirm_delivery()
        i = 0
        while not self.stop.is_set():
            q = QUEUES[i % len(QUEUES)]
            mid = f"c{self.cycle}-p{n}-{i}"
            ch.basic_publish("", q, body_of(mid), PERSISTENT)
            self.confirmed[q].add(mid)  # basic_publish returned: confirmed
            i += 1

    def consumer(self, q, multiple):
        c = self.w.connect()
        ch = c.channel()
        ch.basic_qos(prefetch_count=20)
        pending = []
        rnd = random.Random(q)
        for m, p, b in ch.consume(q, inactivity_timeout=0.2):
            if self.stop.is_set():
                break
            if m is None:
                continue
            mid = id_of(b)
            if rnd.random() < 0.1:
                ch.basic_nack(m.delivery_tag, requeue=True)
                continue
            pending.append(mid)
            if not multiple or len(pending) >= 5:
                self.acked.update(pending)  # recorded before the ack is sent
                ch.basic_ack(m.delivery_tag, multiple=multiple)
                pending = []

    def declarer(self):
        c = self.w.connect()
        ch = c.channel()
        i = 0
        while not self.stop.is_set():
            name = f"tmp-c{self.cycle}-{i}"
            self.uncertain.add(name)
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, "amq.direct", name)
            self.uncertain.discard(name)
            self.declared.add(name)
            if i % 2 == 0:
                self.declared.discard(name)
                self.uncertain.add(name)
                ch.queue_delete(name)
                self.uncertain.discard(name)
                self.deleted.add(name)
            i += 1


@pytest.mark.timeout(60 + 15 * int(os.environ.get("CRASH_CYCLES", "4")))
def test_sigkill_under_mixed_load_loses_nothing_confirmed(warren):
    cycles = int(os.environ.get("CRASH_CYCLES", "4"))
    w = warren()
    c = w.connect()
    for q in QUEUES:
        c.channel().queue_declare(q, durable=True)
    c.close()
    outstanding = {q: set() for q in QUEUES}  # confirmed, not acked, not yet seen back
    ever_acked = set()
    tmp_expected, tmp_gone = set(), set()
    for cycle in range(cycles):
        load = Load(w, cycle)
        threads = [load.run(lambda n=n: load.publisher(n)) for n in range(2)]
        threads += [load.run(lambda q=q, mu=(i % 2 == 0): load.consumer(q, mu)) for i, q in enumerate(QUEUES)]
        threads.append(load.run(load.declarer))
        time.sleep(random.uniform(1.0, 2.0))
        load.stop.set()
        w.kill9()
        for t in threads:
            t.join(10)
        assert not load.errors, load.errors[:3]
        assert all(t.is_alive() is False for t in threads), f"cycle {cycle}: a load thread hung"
        # A cycle in which nothing was confirmed or acknowledged checked nothing.
        assert any(load.confirmed[q] for q in QUEUES), f"cycle {cycle}: nothing confirmed"
        assert load.acked, f"cycle {cycle}: nothing acknowledged"
        for q in QUEUES:
            outstanding[q] |= load.confirmed[q]
        # The queues are drained after every restart, so only this cycle's
        # acked messages can come back (keeps the long form's memory flat).
        ever_acked = set(load.acked)
        # This cycle's declares and deletes, and a sample of earlier ones
        # (checking every earlier one each cycle would be quadratic).
        earlier_expected = set(random.sample(sorted(tmp_expected), min(50, len(tmp_expected))))
        earlier_gone = set(random.sample(sorted(tmp_gone), min(50, len(tmp_gone))))
        tmp_expected |= load.declared
        tmp_gone |= load.deleted
        check_expected = earlier_expected | load.declared
        check_gone = earlier_gone | load.deleted
        w.start()
        # Drain everything: every confirmed, unacked message is there; acked ones only redelivered.
        c = w.connect()
        ch = c.channel()
        for q in QUEUES:
            seen = set()
            while True:
                m, p, b = ch.basic_get(q, auto_ack=True)
                if m is None:
                    break
                mid = id_of(b)
                if mid in ever_acked:
                    assert m.redelivered, f"{mid} was acked, came back without redelivered"
                seen.add(mid)
            missing = outstanding[q] - ever_acked - seen
            assert not missing, f"cycle {cycle}: {len(missing)} confirmed messages lost in {q}, e.g. {sorted(missing)[:3]}"
            outstanding[q] = set()
        for name in check_expected:
            ch.queue_declare(name, durable=True, passive=True)  # 404 would close the channel: fails here
            ch.queue_unbind(name, "amq.direct", name)  # the binding is there too
            ch.queue_bind(name, "amq.direct", name)
        for name in check_gone:
            probe = c.channel()
            try:
                probe.queue_declare(name, durable=True, passive=True)
                raise AssertionError(f"{name} was deleted and came back")
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.value.reply_code == 404 if hasattr(e, "value") else e.reply_code == 404
        c.close()

# -*- coding: utf-8 -*-
"""The RabbitMQ tutorial scenarios our users learned from (shared/seeds), in pika 1.x form."""
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from conftest import (HERE, Collector, connect, drain, get_message, queue_counts, uniq,
                      wait_until)

GEN_NAME = re.compile(r"^amq\.gen-[A-Za-z0-9_\-]+$")


# ---------------------------------------------------------------- 1. hello world
@pytest.mark.parametrize("queue_base,body", [
    ("hello", "Hello World!"),
    ("水许传", "武松又去打老虎啦2"),
])
def test_hello_world(connection_factory, cleanup, queue_base, body):
    queue = cleanup.queue("%s-%s" % (queue_base, uuid.uuid4().hex[:8]))
    # producer (its own connection, closed right after publishing like the tutorial)
    producer = connection_factory()
    pch = producer.channel()
    pch.queue_declare(queue=queue)
    pch.basic_publish(exchange="", routing_key=queue, body=body)
    producer.close()

    # consumer
    consumer = connection_factory()
    cch = consumer.channel()
    cch.queue_declare(queue=queue)  # idempotent redeclare
    got = Collector()
    cch.basic_consume(queue=queue, on_message_callback=got, auto_ack=True)
    assert wait_until(consumer, lambda: len(got) >= 1)
    method, props, raw = got.items[0]
    assert raw.decode("utf-8") == body
    assert method.routing_key == queue
    assert method.exchange == ""
    assert method.redelivered is False
    assert queue_counts(consumer, queue) == (0, 1)


# ---------------------------------------------------------------- 2. work queues
def test_work_queue_round_robin(connection_factory, cleanup):
    queue = cleanup.queue(uniq("task"))
    workers = []
    for _ in range(2):
        c = connection_factory()
        wch = c.channel()
        wch.queue_declare(queue=queue, durable=True)
        col = Collector(ack=True)  # manual ack after "work"
        wch.basic_consume(queue=queue, on_message_callback=col, auto_ack=False)
        workers.append((c, col))

    pub = connection_factory().channel()
    pub.confirm_delivery()
    for i in range(10):
        pub.basic_publish("", queue, str(i),
                          pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))

    conns = [c for c, _ in workers]
    assert wait_until(conns, lambda: sum(len(col) for _, col in workers) == 10)
    got = [sorted(int(b) for b in col.bodies) for _, col in workers]
    assert [len(g) for g in got] == [5, 5], got
    # strict alternation: one worker has all even message numbers, the other all odd
    assert sorted(got) == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]], got
    # each worker sees its messages in publish order
    for _, col in workers:
        assert [int(b) for b in col.bodies] == sorted(int(b) for b in col.bodies)
    wait_until(conns, lambda: False, timeout=0.1)  # let the acks go out
    assert queue_counts(conns[0], queue) == (0, 2)


def _start_ack_holder(queue):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "tools", "ack_holder.py"), queue],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                            env=dict(os.environ))


def _wait_for_line(proc, prefix, timeout):
    """Read the child's stdout unbuffered until a line starting with prefix, or timeout/EOF."""
    buf = b""
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode("utf-8", "replace").splitlines():
                if line.startswith(prefix):
                    return line
    finally:
        sel.close()
    return None


@pytest.mark.parametrize("how", ["close", "sigkill"])
def test_unacked_message_redelivered_when_consumer_dies(connection_factory, cleanup, how):
    queue = cleanup.queue(uniq("redeliver"))
    pub = connection_factory()
    pch = pub.channel()
    pch.queue_declare(queue=queue, durable=True)
    pch.confirm_delivery()
    pch.basic_publish("", queue, "important-task",
                      pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))

    if how == "close":
        dying = connect()
        dch = dying.channel()
        dch.basic_qos(prefetch_count=1)
        first = Collector()
        dch.basic_consume(queue, first, auto_ack=False)
        assert wait_until(dying, lambda: len(first) == 1)
        assert first.items[0][0].redelivered is False
        assert queue_counts(pub, queue) == (0, 1)  # delivered, unacked
        dying.close()  # worker exits without acking
    else:
        proc = _start_ack_holder(queue)
        try:
            line = _wait_for_line(proc, "GOT", 10)
            assert line == "GOT important-task False", (line, proc.poll())
            os.kill(proc.pid, signal.SIGKILL)  # worker dies hard: TCP connection just drops
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            proc.stdout.close()

    # another worker gets the same message, flagged redelivered
    survivor = connection_factory()
    sch = survivor.channel()
    sch.basic_qos(prefetch_count=1)
    second = Collector(ack=True)
    sch.basic_consume(queue, second, auto_ack=False)
    assert wait_until(survivor, lambda: len(second) == 1, timeout=10)
    method, props, body = second.items[0]
    assert body == b"important-task"
    assert method.redelivered is True
    assert props.delivery_mode == 2
    wait_until(survivor, lambda: False, timeout=0.1)
    assert queue_counts(survivor, queue)[0] == 0


class _Worker(threading.Thread):
    """Tutorial worker: prefetch_count=1, manual ack, `delay` seconds of simulated work per task."""

    def __init__(self, queue, delay, stop):
        super().__init__(daemon=True)
        self.queue, self.delay, self.stop = queue, delay, stop
        self.ready = threading.Event()
        self.bodies = []
        self.error = None

    def run(self):
        try:
            c = connect()
            try:
                wch = c.channel()
                wch.basic_qos(prefetch_count=1)

                def on_task(chan, method, props, body):
                    time.sleep(self.delay)  # the "work" (not synchronisation)
                    self.bodies.append(body)
                    chan.basic_ack(delivery_tag=method.delivery_tag)

                wch.basic_consume(self.queue, on_task, auto_ack=False)
                self.ready.set()
                deadline = time.monotonic() + 30
                while not self.stop.is_set() and time.monotonic() < deadline:
                    c.process_data_events(time_limit=0.02)
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001
            self.error = e
            self.ready.set()


def test_prefetch_one_fair_dispatch(connection_factory, cleanup):
    queue = cleanup.queue(uniq("fair"))
    setup = connection_factory().channel()
    setup.queue_declare(queue=queue, durable=True)
    stop = threading.Event()
    slow = _Worker(queue, 0.4, stop)
    fast = _Worker(queue, 0.0, stop)
    try:
        for w in (slow, fast):
            w.start()
            assert w.ready.wait(10)
            assert w.error is None, w.error
        setup.confirm_delivery()
        n = 20
        for i in range(n):
            setup.basic_publish("", queue, "task-%d" % i)
        deadline = time.monotonic() + 20
        while len(slow.bodies) + len(fast.bodies) < n and time.monotonic() < deadline:
            setup.connection.process_data_events(time_limit=0.05)
    finally:
        stop.set()
        for w in (slow, fast):
            w.join(10)
    assert slow.error is None and fast.error is None, (slow.error, fast.error)
    assert sorted(slow.bodies + fast.bodies) == sorted(b"task-%d" % i for i in range(n))
    # with prefetch_count=1 the busy worker is skipped: the fast one does nearly everything
    assert len(fast.bodies) >= 15, (len(slow.bodies), len(fast.bodies))
    assert len(slow.bodies) <= 5, (len(slow.bodies), len(fast.bodies))


# ---------------------------------------------------------------- durability
def test_durable_queue_persistent_message_properties(connection_factory, cleanup):
    queue = cleanup.queue(uniq("durable"))
    c = connection_factory()
    dch = c.channel()
    ok = dch.queue_declare(queue=queue, durable=True)
    assert ok.method.queue == queue
    assert ok.method.message_count == 0
    dch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                 content_type="text/plain", headers={"lang": "中文"})
    dch.basic_publish("", queue, "持久化消息", props)
    # same-attribute redeclare is fine and reports the stored message
    assert dch.queue_declare(queue=queue, durable=True).method.message_count == 1

    got = Collector(ack=True)
    dch.basic_consume(queue, got, auto_ack=False)
    assert wait_until(c, lambda: len(got) == 1)
    method, p, body = got.items[0]
    assert body.decode("utf-8") == "持久化消息"
    assert p.delivery_mode == 2
    assert p.content_type == "text/plain"
    assert p.headers == {"lang": "中文"}


# ---------------------------------------------------------------- 3. publish/subscribe
def test_fanout_to_server_named_exclusive_queues(connection_factory, cleanup):
    exchange = cleanup.exchange(uniq("logs"))
    subs = []
    for _ in range(3):
        c = connection_factory()
        sch = c.channel()
        sch.exchange_declare(exchange=exchange, exchange_type="fanout")
        result = sch.queue_declare(queue="", exclusive=True)
        qname = result.method.queue
        assert GEN_NAME.match(qname), qname
        sch.queue_bind(exchange=exchange, queue=qname)
        col = Collector()
        sch.basic_consume(queue=qname, on_message_callback=col, auto_ack=True)
        subs.append((c, qname, col))
    assert len({q for _, q, _ in subs}) == 3  # server names are unique

    pub = connection_factory().channel()
    pub.exchange_declare(exchange=exchange, exchange_type="fanout")
    pub.basic_publish(exchange=exchange, routing_key="", body="info: Hello World!")
    pub.basic_publish(exchange=exchange, routing_key="ignored-key", body="second")
    conns = [c for c, _, _ in subs]
    assert wait_until(conns, lambda: all(len(col) == 2 for _, _, col in subs))
    for _, _, col in subs:
        assert col.bodies == [b"info: Hello World!", b"second"]
        assert col.items[0][0].exchange == exchange


# ---------------------------------------------------------------- 4. routing (direct)
def test_direct_exchange_multiple_binding_keys(connection_factory, cleanup):
    exchange = cleanup.exchange(uniq("zll"))
    c = connection_factory()
    sch = c.channel()
    sch.exchange_declare(exchange=exchange, exchange_type="direct")
    q1 = sch.queue_declare(queue="", exclusive=True).method.queue
    q2 = sch.queue_declare(queue="", exclusive=True).method.queue
    sch.queue_bind(exchange=exchange, queue=q1, routing_key="nb")
    sch.queue_bind(exchange=exchange, queue=q1, routing_key="bnb")
    sch.queue_bind(exchange=exchange, queue=q2, routing_key="bnb")
    sch.queue_bind(exchange=exchange, queue=q2, routing_key="bnb")  # duplicate binding is a no-op

    pub = connection_factory().channel()
    pub.confirm_delivery()
    for key in ("nb", "bnb", "other", "NB", "nb.x", ""):
        pub.basic_publish(exchange=exchange, routing_key=key, body=key)

    assert drain(sch, q1, 2) == [b"nb", b"bnb"]
    assert drain(sch, q2, 1) == [b"bnb"]

    # unbinding one key leaves the other in place
    sch.queue_unbind(queue=q1, exchange=exchange, routing_key="bnb")
    pub.basic_publish(exchange=exchange, routing_key="bnb", body="after-unbind")
    pub.basic_publish(exchange=exchange, routing_key="nb", body="nb-again")
    assert drain(sch, q1, 1) == [b"nb-again"]
    assert drain(sch, q2, 1) == [b"after-unbind"]


# ---------------------------------------------------------------- 5. topics
TOPIC_BINDINGS = {
    "q_bnb": ["nb", "bnb.#"],
    "q_orange": ["*.orange.*"],
    "q_all": ["#"],
    "q_lazy": ["lazy.#", "*.*.rabbit"],
    "q_mid": ["a.#.z"],
}

TOPIC_CASES = [
    # routing key, queues it must reach
    ("bnb", {"q_bnb", "q_all"}),               # '#' matches zero words
    ("bnb.xxxx", {"q_bnb", "q_all"}),
    ("bnb.x.y", {"q_bnb", "q_all"}),
    ("nb", {"q_bnb", "q_all"}),
    ("nb.x", {"q_all"}),
    ("xbnb", {"q_all"}),
    ("bnbx.y", {"q_all"}),
    ("quick.orange.rabbit", {"q_orange", "q_all", "q_lazy"}),
    ("lazy.orange.elephant", {"q_orange", "q_all", "q_lazy"}),
    ("quick.orange.fox", {"q_orange", "q_all"}),
    ("lazy.brown.fox", {"q_all", "q_lazy"}),
    ("lazy", {"q_all", "q_lazy"}),
    ("orange", {"q_all"}),
    ("a.orange", {"q_all"}),                   # '*' needs exactly one word
    ("quick.orange.male.rabbit", {"q_all"}),   # '*' does not match two words
    ("a.z", {"q_all", "q_mid"}),
    ("a.b.c.z", {"q_all", "q_mid"}),
    ("a.b.c", {"q_all"}),
    ("", {"q_all"}),
]


def test_topic_exchange_wildcards(connection_factory, cleanup):
    exchange = cleanup.exchange(uniq("aaa"))
    c = connection_factory()
    sch = c.channel()
    sch.exchange_declare(exchange=exchange, exchange_type="topic")
    names = {}
    for label, keys in TOPIC_BINDINGS.items():
        names[label] = sch.queue_declare(queue="", exclusive=True).method.queue
        for k in keys:
            sch.queue_bind(exchange=exchange, queue=names[label], routing_key=k)

    pub = connection_factory().channel()
    pub.confirm_delivery()
    for key, _ in TOPIC_CASES:
        pub.basic_publish(exchange=exchange, routing_key=key, body=key)

    for label in TOPIC_BINDINGS:
        expected = [k.encode() for k, dest in TOPIC_CASES if label in dest]
        assert drain(sch, names[label], len(expected)) == expected, label


# ---------------------------------------------------------------- headers exchange
def test_headers_exchange_all_and_any(connection_factory, cleanup):
    exchange = cleanup.exchange(uniq("hdr"))
    c = connection_factory()
    sch = c.channel()
    sch.exchange_declare(exchange=exchange, exchange_type="headers")
    q_all = sch.queue_declare(queue="", exclusive=True).method.queue
    q_any = sch.queue_declare(queue="", exclusive=True).method.queue
    q_default = sch.queue_declare(queue="", exclusive=True).method.queue
    sch.queue_bind(q_all, exchange, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    sch.queue_bind(q_any, exchange, arguments={"x-match": "any", "format": "pdf", "type": "log"})
    sch.queue_bind(q_default, exchange, arguments={"format": "zip"})  # x-match defaults to all

    pub = connection_factory().channel()
    pub.confirm_delivery()
    cases = [
        ("m1", {"format": "pdf", "type": "report"}),
        ("m2", {"format": "pdf"}),
        ("m3", {"type": "log", "extra": 1}),
        ("m4", {"format": "zip", "type": "report"}),
        ("m5", None),
        ("m6", {"format": "pdf", "type": "report", "more": "x"}),
    ]
    for body, headers in cases:
        pub.basic_publish(exchange, "routing-key-is-ignored", body,
                          pika.BasicProperties(headers=headers))
    assert drain(sch, q_all, 2) == [b"m1", b"m6"]
    assert drain(sch, q_any, 4) == [b"m1", b"m2", b"m3", b"m6"]
    assert drain(sch, q_default, 1) == [b"m4"]


# ---------------------------------------------------------------- exclusive queues
def test_exclusive_server_named_queue_lifecycle(connection_factory):
    owner = connect()
    try:
        och = owner.channel()
        qname = och.queue_declare(queue="", exclusive=True).method.queue
        assert GEN_NAME.match(qname), qname

        other = connection_factory()
        with pytest.raises(ChannelClosedByBroker) as ei:
            other.channel().basic_consume(qname, lambda *a: None)
        assert ei.value.reply_code == 405
        assert ei.value.reply_text.startswith("RESOURCE_LOCKED")
        with pytest.raises(ChannelClosedByBroker) as ei:
            other.channel().queue_declare(qname, passive=True)
        assert ei.value.reply_code == 405
        # a non-passive declare of an amq.* name is refused before the lock check
        with pytest.raises(ChannelClosedByBroker) as ei:
            other.channel().queue_declare(qname, exclusive=True)
        assert ei.value.reply_code == 403

        # the owner still uses it normally; others may publish to it
        other.channel().basic_publish("", qname, "from-other")
        m, p, b = get_message(och, qname, auto_ack=True)
        assert b == b"from-other"
    finally:
        owner.close()

    # the queue disappears with its connection
    def gone():
        tmp = other.channel()
        try:
            tmp.queue_declare(qname, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return True
        tmp.close()
        return False

    assert wait_until(other, gone, timeout=5, step=0.05)


# ---------------------------------------------------------------- 6. RPC
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class _RpcServer(threading.Thread):
    def __init__(self, queue, stop):
        super().__init__(daemon=True)
        self.queue, self.stop = queue, stop
        self.ready = threading.Event()
        self.error = None
        self.served = 0

    def run(self):
        try:
            c = connect()
            try:
                sch = c.channel()
                sch.queue_declare(queue=self.queue)

                def on_request(chan, method, props, body):
                    n = int(body)
                    chan.basic_publish(exchange="", routing_key=props.reply_to,
                                       properties=pika.BasicProperties(
                                           correlation_id=props.correlation_id),
                                       body=str(fib(n)))
                    chan.basic_ack(delivery_tag=method.delivery_tag)
                    self.served += 1

                sch.basic_qos(prefetch_count=1)
                sch.basic_consume(queue=self.queue, on_message_callback=on_request)
                self.ready.set()
                deadline = time.monotonic() + 30
                while not self.stop.is_set() and time.monotonic() < deadline:
                    c.process_data_events(time_limit=0.02)
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001
            self.error = e
            self.ready.set()


class _FibonacciRpcClient:
    """The tutorial's client, with a bounded wait instead of `while response is None`."""

    def __init__(self, rpc_queue):
        self.rpc_queue = rpc_queue
        self.connection = connect()
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(queue=self.callback_queue,
                                   on_message_callback=self.on_response, auto_ack=True)
        self.responses = {}
        self.foreign = []

    def on_response(self, ch, method, props, body):
        self.responses[props.correlation_id] = body

    def call(self, n, timeout=10):
        corr_id = str(uuid.uuid4())
        self.channel.basic_publish(exchange="", routing_key=self.rpc_queue,
                                   properties=pika.BasicProperties(reply_to=self.callback_queue,
                                                                   correlation_id=corr_id),
                                   body=str(n))
        if not wait_until(self.connection, lambda: corr_id in self.responses, timeout=timeout):
            raise TimeoutError("no RPC reply for fib(%d)" % n)
        return int(self.responses.pop(corr_id))

    def close(self):
        self.foreign = list(self.responses)  # replies nobody asked for
        self.connection.close()


def test_rpc_concurrent_clients(cleanup):
    rpc_queue = cleanup.queue(uniq("rpc_queue"))
    stop = threading.Event()
    servers = [_RpcServer(rpc_queue, stop) for _ in range(2)]
    results, errors = {}, []

    def client_main(cid):
        try:
            client = _FibonacciRpcClient(rpc_queue)
            try:
                results[cid] = [(n, client.call(n)) for n in range(cid * 5, cid * 5 + 5)]
            finally:
                client.close()
            if client.foreign:
                errors.append("client %d got stray replies %r" % (cid, client.foreign))
        except Exception as e:  # noqa: BLE001
            errors.append("client %d: %r" % (cid, e))

    try:
        for s in servers:
            s.start()
            assert s.ready.wait(10)
            assert s.error is None, s.error
        clients = [threading.Thread(target=client_main, args=(i,), daemon=True) for i in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(30)
            assert not t.is_alive(), "RPC client thread hung"
    finally:
        stop.set()
        for s in servers:
            s.join(10)
    assert not errors, errors
    assert all(s.error is None for s in servers), [s.error for s in servers]
    for cid in range(4):
        assert results[cid] == [(n, fib(n)) for n in range(cid * 5, cid * 5 + 5)]
    assert sum(s.served for s in servers) == 20


def test_direct_reply_to(connection_factory, cleanup):
    rpc_queue = cleanup.queue(uniq("rpc_direct"))
    server = connection_factory()
    sch = server.channel()
    sch.queue_declare(rpc_queue)

    client = connection_factory()
    cch = client.channel()
    replies = Collector()
    cch.basic_consume("amq.rabbitmq.reply-to", replies, auto_ack=True)
    for i in range(3):
        cch.basic_publish("", rpc_queue, str(i),
                          pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                               correlation_id="corr-%d" % i))

    reply_tos = set()
    for i in range(3):
        method, props, body = get_message(sch, rpc_queue, auto_ack=True)
        assert body == str(i).encode()
        # the server sees a routable pseudo-queue name, not the literal request value
        assert props.reply_to.startswith("amq.rabbitmq.reply-to."), props.reply_to
        reply_tos.add(props.reply_to)
        sch.basic_publish("", props.reply_to, "reply-%d" % i,
                          pika.BasicProperties(correlation_id=props.correlation_id))
    assert len(reply_tos) == 1  # same channel -> same reply address

    assert wait_until(client, lambda: len(replies) == 3)
    assert [(p.correlation_id, b) for _, p, b in replies.items] == \
        [("corr-%d" % i, b"reply-%d" % i) for i in range(3)]
    for method, _, _ in replies.items:
        assert method.exchange == ""
        assert method.routing_key.startswith("amq.rabbitmq.reply-to.")

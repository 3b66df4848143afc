"""Soak (issue 11): bounded mixed load for SOAK_SECONDS (60 in CI): confirming publishers of
mixed sizes, consumers acking (some in batches), one consumer that cancels and comes back. RSS,
open file descriptors and threads are sampled every few seconds and must stay flat after the
warm-up; at the end every confirmed message was consumed exactly once or is still queued, with
every body intact. This test runs its own broker (WARREN_BIN)."""
import hashlib
import os
import threading
import time

import pika
import pytest

from warren_process import warren  # noqa: F401  (fixture)

QUEUES = [f"soak-{i}" for i in range(4)]


def body_of(mid):
    seed = hashlib.sha256(mid.encode()).digest()
    return mid.encode() + b"|" + seed * (int(seed[0]) % 200)


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    value = lambda k: int(status[k].split()[0])  # noqa: E731
    return {"rss_mb": value("VmRSS") / 1024, "threads": value("Threads"),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


@pytest.mark.timeout(float(os.environ.get("SOAK_SECONDS", "60")) + 120)
def test_soak_stays_flat_and_accounts_for_every_message(warren):
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    w = warren()
    c = w.connect()
    for q in QUEUES:
        c.channel().queue_declare(q, durable=True)
    c.close()
    stop = threading.Event()
    confirmed, consumed, errors = set(), [], []
    lock = threading.Lock()

    def publisher(n):
        c = w.connect()
        ch = c.channel()
        ch.confirm_delivery()
        i = 0
        while not stop.is_set():
            mid = f"p{n}-{i}"
            persistent = 2 if i % 3 == 0 else 1
            ch.basic_publish("", QUEUES[i % len(QUEUES)], body_of(mid),
                             pika.BasicProperties(delivery_mode=persistent))
            with lock:
                confirmed.add(mid)
            i += 1
            if i % 200 == 0:
                time.sleep(0.01)  # bounded, not a flood
        c.close()

    def consumer(q, batch, cancel_every):
        c = w.connect()
        ch = c.channel()
        ch.basic_qos(prefetch_count=50)
        n = 0
        while not stop.is_set():
            pending = None
            for m, p, b in ch.consume(q, inactivity_timeout=0.5):
                if m is None:
                    if stop.is_set():
                        break
                    continue
                mid, _, _ = b.partition(b"|")
                if b != body_of(mid.decode()):
                    errors.append(f"corrupt body {mid!r}")
                with lock:
                    consumed.append(mid.decode())
                pending = m.delivery_tag
                n += 1
                if n % batch == 0:
                    ch.basic_ack(pending, multiple=True)
                    pending = None
                if cancel_every and n % cancel_every == 0:
                    break
            if pending is not None:
                ch.basic_ack(pending, multiple=True)
            ch.cancel()
        c.close()

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=consumer, args=(q, 1 if i % 2 else 10, 500 if i == 0 else 0))
                for i, q in enumerate(QUEUES)]
    for t in threads:
        t.start()
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(min(5, seconds / 6))
        samples.append(sample(w.proc.pid))
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    # Flat after the warm-up (the first sample).
    first, worst = samples[0], {k: max(s[k] for s in samples[1:] or samples) for k in samples[0]}
    assert worst["rss_mb"] <= first["rss_mb"] * 1.5 + 30, samples
    assert worst["fds"] <= first["fds"] + 10, samples
    assert worst["threads"] <= first["threads"] + 4, samples
    # Every confirmed message consumed once or still queued; nothing else.
    c = w.connect()
    ch = c.channel()
    left = []
    for q in QUEUES:
        while True:
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            left.append(b.partition(b"|")[0].decode())
    c.close()
    seen = consumed + left
    unacked_redelivered = len(seen) - len(set(seen))  # consumed, not yet acked at a cancel: back again
    assert set(seen) == confirmed, (len(confirmed - set(seen)), len(set(seen) - confirmed))
    assert unacked_redelivered <= 50 * len(QUEUES) * 20, unacked_redelivered
    print(f"soak: {len(confirmed)} messages, {seconds:.0f} s, samples {samples}")

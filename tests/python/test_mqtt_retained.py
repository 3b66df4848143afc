# -*- coding: utf-8 -*-
"""What MQTT clients can make the broker hold in memory (issue 19): retained messages (payloads
on disk, memory bounded, loaded at start from record headers only, a bytes bound with MQTT 5's
0x97, byte-exact across SIGKILL) and packets that announce a large size and never arrive (the
read buffer grows with the bytes, not with the announcement). Each test starts its own broker
and reads its /proc/PID/{status,io}."""
import os
import socket
import struct
import time
import zlib

import pytest

from conftest import uniq
from mqtt_client import WAIT, Client, _packet, _s, body
from warren_process import free_port, warren  # noqa: F401  (fixture)

MIB = 1 << 20
_PATTERN = bytes(range(251)) * (MIB // 251 + 2)


def big(i, size):
    """A payload of `size` bytes that is different for every i (mqtt_client.body is too slow for
    300 MiB)."""
    return (b"%d:" % i + _PATTERN[i % 251:i % 251 + size])[:size]


def status(w, field):
    """A /proc/PID/status figure (VmRSS, VmSize), bytes."""
    with open("/proc/%d/status" % w.proc.pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s" % field)


def rchar(w):
    """Bytes the process has read through read(2) and friends (files and sockets)."""
    with open("/proc/%d/io" % w.proc.pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar")


def settle(w, field, limit, seconds=15):
    """Waits (bounded) for `field` to come under `limit`; returns the last reading."""
    deadline = time.monotonic() + seconds
    while True:
        v = status(w, field)
        if v <= limit or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


def wait_log(w, text, seconds=30):
    deadline = time.monotonic() + seconds
    while text not in w.log():
        assert time.monotonic() < deadline, "no %r in the log:\n%s" % (text, w.log()[-3000:])
        time.sleep(0.05)


@pytest.mark.timeout(240)
def test_retained_payloads_stay_on_disk_and_survive_sigkill_byte_exact(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port), "--mqtt-retained-max-bytes", str(400 * MIB)])
    t = uniq("big")
    pub = Client(uniq("pub"), port=port).connect()
    pub.publish(f"{t}/warm", b"up", qos=1, retain=True)
    base = status(w, "VmRSS")
    n, size = 300, MIB
    for i in range(n):
        pub.publish(f"{t}/{i}", big(i, size), qos=1, retain=True)
    pub.close()
    # 300 MiB retained: the broker holds an index, not the payloads (it held all of them).
    rss = settle(w, "VmRSS", base + 64 * MIB)
    assert rss <= base + 64 * MIB, "RSS grew by %d MiB" % ((rss - base) // MIB)

    log = os.path.join(w.data_dir, "mqtt", "retained-2f.log")
    before = os.stat(log)
    assert before.st_size >= n * size
    w.restart(crash=True)  # SIGKILL: every PUBACKed retain is on disk
    # The first CONNECT is answered; the log is loaded at start from record headers only: it is
    # neither read whole nor rewritten (it was read, rewritten and fsynced on the first CONNECT).
    c = Client(uniq("first"), port=port).connect()
    c.close()
    wait_log(w, "%d retained messages" % (n + 1))
    read = rchar(w)
    assert read < before.st_size // 4, "read %d MiB of a %d MiB log" % (read // MIB, before.st_size // MIB)
    after = os.stat(log)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns), "the log was rewritten"
    assert status(w, "VmRSS") <= base + 64 * MIB

    # Every payload comes back byte for byte, batch by batch, to two subscribers at once.
    subs = [Client(uniq("sub"), port=port).connect() for _ in range(2)]
    try:
        for s in subs:
            s.subscribe(f"{t}/+", qos=1)
        for s in subs:
            got = {}
            for _ in range(n + 1):
                m = s.get(timeout=60)
                assert m.retain
                got[m.topic] = m.payload
            assert got.pop(f"{t}/warm") == b"up"
            assert sorted(got) == sorted(f"{t}/{i}" for i in range(n))
            for i in range(n):
                assert got[f"{t}/{i}"] == big(i, size), "retained message %d differs" % i
            s.nothing(0.3)
    finally:
        for s in subs:
            s.close()


def _raw_connect(port, v5):
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    var = _s("MQTT") + bytes([5 if v5 else 4, 0xC2]) + (60).to_bytes(2, "big")
    if v5:
        var += b"\x00"
    sock.sendall(_packet(0x10, var + _s(uniq("raw")) + _s("guest") + _s("guest")))
    return sock


def _read_packet(sock):
    def exact(k):
        buf = b""
        while len(buf) < k:
            chunk = sock.recv(k - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf
    first = exact(1)[0]
    length, shift = 0, 0
    while True:
        b = exact(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, exact(length) if length else b""


def _retain(sock, v5, topic, pid, payload):
    """A QoS 1 retained PUBLISH; the PUBACK's reason code (0 for 3.1.1)."""
    props = b"\x00" if v5 else b""
    sock.sendall(_packet(0x33, _s(topic) + pid.to_bytes(2, "big") + props + payload))
    while True:
        kind, data = _read_packet(sock)
        if kind >> 4 == 4:
            assert int.from_bytes(data[:2], "big") == pid
            return data[2] if len(data) > 2 else 0


def test_the_retained_bytes_bound_refuses_with_quota_exceeded(warren):
    port = free_port()
    w = warren(["--mqtt-port", str(port), "--mqtt-retained-max-bytes", "250000"])
    t = uniq("quota")
    watcher = Client(uniq("watch"), port=port).connect()
    watcher.subscribe(f"{t}/#", qos=1)
    v5 = _raw_connect(port, True)
    assert _read_packet(v5)[0] == 0x20
    assert _retain(v5, True, f"{t}/a", 1, body(1, 100_000)) == 0
    assert _retain(v5, True, f"{t}/b", 2, body(2, 100_000)) == 0
    # MQTT 5: over the bound, PUBACK 0x97 (quota exceeded), and the message is not routed.
    assert _retain(v5, True, f"{t}/c", 3, body(3, 100_000)) == 0x97
    # Replacing a topic's message by a smaller one, and deleting, are accepted.
    assert _retain(v5, True, f"{t}/a", 4, body(4, 50_000)) == 0
    assert _retain(v5, True, f"{t}/b", 5, b"") == 0
    # MQTT 3.1.1 can't say no: routed, not retained, a warning logged.
    old = _raw_connect(port, False)
    assert _read_packet(old)[0] == 0x20
    assert _retain(old, False, f"{t}/d", 6, body(6, 100_000)) == 0
    assert _retain(old, False, f"{t}/e", 7, body(7, 100_000)) == 0
    wait_log(w, "not retained")
    routed = sorted((m.topic, m.payload) for m in (watcher.get() for _ in range(6)))
    assert routed == sorted([(f"{t}/a", body(1, 100_000)), (f"{t}/b", body(2, 100_000)),
                             (f"{t}/a", body(4, 50_000)), (f"{t}/b", b""),
                             (f"{t}/d", body(6, 100_000)), (f"{t}/e", body(7, 100_000))])
    watcher.nothing(0.3)
    v5.close()
    old.close()
    late = Client(uniq("late"), port=port).connect()
    late.subscribe(f"{t}/#", qos=1)
    got = sorted((m.topic, m.payload) for m in (late.get(), late.get()))
    assert got == [(f"{t}/a", body(4, 50_000)), (f"{t}/d", body(6, 100_000))]
    late.nothing(0.3)
    late.close()
    watcher.close()


def test_announced_packet_sizes_are_not_reserved(warren, tmp_path):
    """40 clients announce the largest PUBLISH MQTT allows (256 MiB) and send a few bytes of it:
    the broker's memory follows the bytes (it reserved 256 MiB each: 1.0 -> 9.6 GiB of virtual
    memory), and another client is served meanwhile."""
    port = free_port()
    conf = tmp_path / "warren.toml"
    conf.write_text("max_message_size = %d\n" % (256 * MIB))
    w = warren(["--mqtt-port", str(port), "--config", str(conf)])
    probe = Client(uniq("probe"), port=port).connect()
    probe.subscribe("probe/#", qos=1)
    probe.publish("probe/x", b"warm", qos=1)
    assert probe.get().payload == b"warm"
    vm, rss = status(w, "VmSize"), status(w, "VmRSS")
    socks = []
    try:
        for _ in range(40):
            s = _raw_connect(port, False)
            assert _read_packet(s)[0] == 0x20
            # A PUBLISH whose remaining length is 268,435,455, then 5 bytes of it.
            s.sendall(b"\x30\xff\xff\xff\x7f" + _s("t") + b"abc")
            socks.append(s)
        # Served meanwhile.
        probe.publish("probe/y", b"still served", qos=1)
        assert probe.get().payload == b"still served"
        grew_vm = status(w, "VmSize") - vm
        grew_rss = status(w, "VmRSS") - rss
        assert grew_vm < 512 * MIB, "VmSize grew by %d MiB" % (grew_vm // MIB)
        assert grew_rss < 32 * MIB, "VmRSS grew by %d MiB" % (grew_rss // MIB)
    finally:
        for s in socks:
            s.close()
        probe.close()
    again = Client(uniq("again"), port=port).connect()
    again.close()


def _retained_log(path, records):
    """Writes a retained log as the broker does: per record `len, crc32, packet`, the packet an
    MQTT 5 PUBLISH (QoS 0, retain) with no properties."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for topic, payload in records:
            packet = _packet(0x31, _s(topic) + b"\x00" + payload)
            f.write(struct.pack(">II", len(packet), zlib.crc32(packet)) + packet)


@pytest.mark.timeout(180)
def test_a_subscription_matching_70000_retained_topics(warren, tmp_path):
    """More retained topics than MQTT has packet ids: loaded at start, sent batch by batch to a
    QoS 0 subscriber, every one once; another client is served meanwhile."""
    port = free_port()
    t = uniq("many")
    n = 70_000
    w = warren(["--mqtt-port", str(port)])
    w.stop()
    _retained_log(os.path.join(w.data_dir, "mqtt", "retained-2f.log"),
                  ((f"{t}/{i}", b"%d" % i) for i in range(n)))
    w.start()
    wait_log(w, "%d retained messages" % n)
    sub = Client(uniq("sub"), port=port).connect()
    probe = Client(uniq("probe"), port=port).connect()
    try:
        sub.c.subscribe(f"{t}/+", 0)
        probe.subscribe(f"{t}-probe", qos=1)
        probe.publish(f"{t}-probe", b"served", qos=1)
        assert probe.get().payload == b"served"
        seen = set()
        for _ in range(n):
            m = sub.get(timeout=60)
            i = int(m.topic.rsplit("/", 1)[1])
            assert m.payload == b"%d" % i and m.retain
            assert i not in seen, "retained message %d sent twice" % i
            seen.add(i)
        assert len(seen) == n
        sub.nothing(0.3)
    finally:
        sub.close()
        probe.close()


def test_a_retain_is_acknowledged_only_once_fsynced(warren):
    """Injected write and fsync failures of the retained log: the retain is refused (MQTT 5:
    PUBACK 0x80; 3.1.1: disconnected), the next one succeeds, another client is served
    meanwhile, and after SIGKILL exactly the acknowledged retains are there, byte for byte."""
    port = free_port()
    w = warren(["--mqtt-port", str(port)], env={"WARREN_FAULT_INJECTION": "1"})
    t = uniq("rfault")
    probe = Client(uniq("probe"), port=port).connect()
    probe.subscribe(f"{t}-probe", qos=1)
    v5 = _raw_connect(port, True)
    assert _read_packet(v5)[0] == 0x20
    kept = {}
    pid = 0

    def retain(topic, payload):
        nonlocal pid
        pid += 1
        return _retain(v5, True, topic, pid, payload)

    assert retain(f"{t}/1", body(1, 5000)) == 0
    kept[f"{t}/1"] = body(1, 5000)
    for i, (op, err) in enumerate([("fsync", "eio"), ("write", "enospc"), ("fsync", "eio")]):
        w.control("inject_fault", op, "/mqtt/retained", "0", "1", err)
        refused = f"{t}/refused{i}"
        assert retain(refused, body(100 + i, 3000)) == 0x80, (op, err)
        # Served meanwhile.
        probe.publish(f"{t}-probe", b"probe %d" % i, qos=1)
        assert probe.get().payload == b"probe %d" % i
        # The next retain goes through (the log is rewritten from the index first).
        ok = f"{t}/ok{i}"
        assert retain(ok, body(200 + i, 7000)) == 0
        kept[ok] = body(200 + i, 7000)
    # An existing topic's message is not replaced by a refused retain.
    w.control("inject_fault", "fsync", "/mqtt/retained", "0", "1", "eio")
    assert retain(f"{t}/1", b"must not replace") == 0x80
    # MQTT 3.1.1 can't be told no: it is disconnected without a PUBACK.
    old = _raw_connect(port, False)
    assert _read_packet(old)[0] == 0x20
    w.control("inject_fault", "fsync", "/mqtt/retained", "0", "1", "eio")
    old.sendall(_packet(0x33, _s(f"{t}/old") + (9).to_bytes(2, "big") + b"never acked"))
    old.settimeout(WAIT)
    try:
        assert old.recv(1) == b"", "a PUBACK for a retain that is not on disk"
    except ConnectionResetError:
        pass
    old.close()
    v5.close()
    probe.close()
    w.restart(crash=True)
    late = Client(uniq("late"), port=port).connect()
    try:
        late.subscribe(f"{t}/#", qos=1)
        got = {}
        for _ in range(len(kept)):
            m = late.get()
            got[m.topic] = m.payload
        late.nothing(0.5)
        assert got == kept
    finally:
        late.close()

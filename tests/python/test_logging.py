"""Logs an operator can use: RabbitMQ's level names (`--log-level warning` once silently turned every
line off), JSON lines, no escape sequences in piped output, a log file rotated by size and on
`warrenctl rotate_logs`, and `warrenctl set_log_level` at runtime. Private brokers only."""
import json
import os
import socket
import time

import pytest

from test_config import BASE, Broker, brokers, clean_env, conf  # noqa: F401 (brokers: fixture)
from warren_process import free_port


def control(b, op, **fields):
    """One control-socket request (each one logs `control request: OP` at debug)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(b.data / "warren.sock"))
    s.sendall((json.dumps(dict(op=op, **fields)) + "\n").encode())
    out = b""
    while not out.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return json.loads(out)


def start(tmp_path, brokers, body="", args=()):
    port = free_port()
    data = tmp_path / "data"
    path = conf(tmp_path, BASE + "listeners.tcp.default = 127.0.0.1:%d\n" % port + body)
    b = Broker(tmp_path, args=list(args), env=clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path,
                                                        RABBITMQ_MNESIA_DIR=data), port=port)
    b.data = data
    brokers.append(b)
    return b.start()


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_warning_level_shows_warnings_and_hides_info(tmp_path, brokers):
    # An ignored key makes the startup warning.
    b = start(tmp_path, brokers, "queue_master_locator = min-masters\n", ["--log-level", "warning"])
    wait_for(lambda: "[warning]" in b.out(), "the warning line")
    assert "queue_master_locator: Warren does not choose queue leaders by locator" in b.out()
    control(b, "await_startup")
    assert "[info]" not in b.out(), b.out()
    assert "[debug]" not in b.out(), b.out()


@pytest.mark.parametrize("level", ["warn", "trace", "loud"])
def test_unknown_level_is_refused(tmp_path, level):
    rc, out, err = Broker(tmp_path, args=["--log-level", level, "--data-dir", str(tmp_path / "d")],
                          env=clean_env(tmp_path)).exit()
    assert rc != 0
    assert "unknown log level '%s'" % level in err, err


def test_unknown_level_in_the_file_names_its_line(tmp_path):
    path = conf(tmp_path, BASE + "log.console.level = verbose\n")
    rc, out, err = Broker(tmp_path, env=clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path,
                                                  RABBITMQ_MNESIA_DIR=tmp_path / "d")).exit()
    assert rc != 0
    assert "line 5: invalid value 'verbose' for 'log.console.level'" in err, err


def test_json_lines_and_no_escape_bytes(tmp_path, brokers):
    b = start(tmp_path, brokers, "log.console.formatter = json\nqueue_master_locator = x\n")
    control(b, "await_startup")
    wait_for(lambda: "Server startup complete" in b.out(), "the startup line")
    lines = [l for l in b.out().splitlines() if l.strip()]
    assert len(lines) >= 3
    levels = set()
    for line in lines:
        obj = json.loads(line)
        assert set(obj) >= {"time", "level", "msg"}, obj
        levels.add(obj["level"])
    assert {"info", "warning"} <= levels, levels
    assert b"\x1b" not in b.out_bytes()


def test_plaintext_piped_has_no_colour(tmp_path, brokers):
    b = start(tmp_path, brokers, "queue_master_locator = x\n")
    wait_for(lambda: "Server startup complete" in b.out(), "the startup line")
    assert b"\x1b" not in b.out_bytes()
    assert "[warning] configuration keys Warren does not act on" in b.out()


def test_console_and_file_with_their_own_levels(tmp_path, brokers):
    log = tmp_path / "logs" / "warren.log"
    b = start(tmp_path, brokers, "log.console.level = warning\nlog.file = %s\nlog.file.level = debug\n"
                                 "log.file.formatter = json\n" % log)
    control(b, "await_startup")
    wait_for(lambda: log.exists() and "control request: await_startup" in log.read_text(), "the debug line")
    entries = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    assert {"debug", "info"} <= {e["level"] for e in entries}
    assert "[info]" not in b.out() and "[debug]" not in b.out(), b.out()


def test_rotation_by_size_keeps_count(tmp_path, brokers):
    log = tmp_path / "w.log"
    b = start(tmp_path, brokers, "log.file = %s\nlog.file.level = debug\nlog.file.rotation.size = 2000\n"
                                 "log.file.rotation.count = 2\n" % log)
    for _ in range(200):
        control(b, "await_startup")
    rotated = [tmp_path / "w.log.0", tmp_path / "w.log.1"]
    wait_for(lambda: all(p.exists() for p in rotated), "w.log.0 and w.log.1")
    assert not (tmp_path / "w.log.2").exists(), os.listdir(tmp_path)
    for p in rotated:
        size = p.stat().st_size
        assert 2000 <= size < 2000 + 400, (p, size)
        assert "[debug] control request: await_startup" in p.read_text()


def test_rotate_logs_now(tmp_path, brokers):
    log = tmp_path / "w.log"
    b = start(tmp_path, brokers, "log.file = %s\n" % log)
    wait_for(lambda: log.exists() and "Server startup complete" in log.read_text(), "the startup line")
    r = b.ctl("rotate_logs")
    assert r.returncode == 0, r.stderr
    assert "Rotating logs for node" in r.stdout
    old = tmp_path / "w.log.0"
    assert old.exists() and "Server startup complete" in old.read_text()
    # The new file gets the next lines (the rotation itself is logged).
    wait_for(lambda: "rotated (warrenctl rotate_logs)" in log.read_text(), "a line in the new file")
    assert "Server startup complete" not in log.read_text()


def test_set_log_level_debug_at_runtime(tmp_path, brokers):
    log = tmp_path / "w.log"
    b = start(tmp_path, brokers, "log.file = %s\n" % log)
    control(b, "await_startup")
    wait_for(lambda: log.exists() and "Server startup complete" in log.read_text(), "the startup line")
    assert "control request" not in b.out() + log.read_text()
    r = b.ctl("set_log_level", "debug")
    assert r.returncode == 0, r.stderr
    assert 'Setting log level to "debug"' in r.stdout
    control(b, "listeners")
    wait_for(lambda: "[debug] control request: listeners" in log.read_text(), "the debug line in the file")
    wait_for(lambda: "[debug] control request: listeners" in b.out(), "the debug line on the console")
    bad = b.ctl("set_log_level", "warn")
    assert bad.returncode == 65 and "not supported" in bad.stderr, (bad.stdout, bad.stderr)
    assert b.ctl("set_log_level", "error").returncode == 0
    control(b, "await_startup")
    # Back to debug: the marker comes after anything the error level let through (one writer, in order).
    assert b.ctl("set_log_level", "debug").returncode == 0
    control(b, "inject_fault")
    wait_for(lambda: "control request: inject_fault" in log.read_text(), "the marker")
    assert "control request: await_startup" not in log.read_text()


def test_a_log_file_that_cannot_be_written_costs_lines_not_the_broker(tmp_path, brokers):
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    b = start(tmp_path, brokers, "log.file = /dev/full\nlog.file.level = debug\n")
    for _ in range(50):
        control(b, "await_startup")
    wait_for(lambda: "cannot write the log file /dev/full" in b.err(), "the failure said once")
    assert b.err().count("cannot write the log file") == 1, b.err()
    env = control(b, "environment")
    assert env.get("ok") is True, env
    wait_for(lambda: control(b, "environment")["result"]["log_lines_dropped"] > 0, "lost lines counted")
    # Still serving.
    socket.create_connection(("127.0.0.1", b.port), 2).close()

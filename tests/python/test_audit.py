"""The audit trail and error logging (issue 20): every administrative change is logged at info with
who made it and through which interface (CLI, HTTP API, definitions file); channel and connection
errors are logged as RabbitMQ logs them, at warning, at most a few per connection per minute."""
import json
import re
import time

import pika
import pytest
import requests

import amqp_raw as raw

from warren_process import free_port, warren  # noqa: F401 - fixture


def wait_for_line(w, pattern, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, w.log())
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError("no log line matching %r in:\n%s" % (pattern, w.log()[-4000:]))


@pytest.fixture
def audited(warren, tmp_path):
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps({
        "users": [{"name": "from-file", "password": "file-secret-pw", "tags": []}],
        "vhosts": [{"name": "file-vhost"}],
        "permissions": [{"user": "from-file", "vhost": "file-vhost",
                         "configure": ".*", "write": ".*", "read": ".*"}],
    }))
    mgmt = free_port()
    w = warren(extra_args=["--management-port", str(mgmt), "--management-login-failures", "0",
                           "--definitions", str(defs)])
    w.mgmt = "http://127.0.0.1:%d" % mgmt
    return w


def test_changes_are_logged_with_who_and_how(audited):
    w = audited
    # At boot, from the definitions file.
    wait_for_line(w, r"Created user 'from-file' .*\(by '.*defs\.json' through a definitions file\)")
    wait_for_line(w, r"Set permissions for user 'from-file' in vhost 'file-vhost' to '\.\*', '\.\*', '\.\*' "
                     r"\(by '.*defs\.json' through a definitions file\)")

    # Through the CLI: the operating-system user on the control socket.
    assert w.ctl("add_user", "cli-user", "cli-secret-pw").returncode == 0
    assert w.ctl("set_user_tags", "cli-user", "monitoring").returncode == 0
    assert w.ctl("change_password", "cli-user", "cli-other-pw").returncode == 0
    assert w.ctl("add_vhost", "cli-vhost").returncode == 0
    assert w.ctl("set_policy", "-p", "cli-vhost", "ttl", "^q", '{"message-ttl": 1000}').returncode == 0
    assert w.ctl("set_vhost_limits", "-p", "cli-vhost", '{"max-queues": 10}').returncode == 0
    assert w.ctl("delete_user", "cli-user").returncode == 0
    via_cli = r" \(by '[^']*uid \d+\)?' through the CLI\)"
    wait_for_line(w, r"Created user 'cli-user'.*" + via_cli)
    wait_for_line(w, r"Updated user 'cli-user': set tags to \[\"monitoring\"\]" + via_cli)
    wait_for_line(w, r"Updated user 'cli-user': changed the password" + via_cli)
    wait_for_line(w, r"Added vhost 'cli-vhost'|Put vhost 'cli-vhost'")
    wait_for_line(w, r"Set policy 'ttl' for vhost 'cli-vhost': pattern '\^q'.*message-ttl.*" + via_cli)
    wait_for_line(w, r"Set limits of vhost 'cli-vhost' to .*max-queues.*" + via_cli)
    wait_for_line(w, r"Deleted user 'cli-user'" + via_cli)

    # Through the HTTP API: the authenticated user.
    auth = ("guest", "guest")
    r = requests.put(w.mgmt + "/api/users/http-user", auth=auth,
                     json={"password": "http-secret-pw", "tags": "management"}, timeout=10)
    assert r.status_code in (201, 204), r.text
    r = requests.put(w.mgmt + "/api/permissions/%2F/http-user", auth=auth,
                     json={"configure": "", "write": "^w", "read": "^r"}, timeout=10)
    assert r.status_code in (201, 204), r.text
    r = requests.delete(w.mgmt + "/api/permissions/%2F/http-user", auth=auth, timeout=10)
    assert r.status_code == 204, r.text
    via_http = r" \(by 'guest' through the HTTP API\)"
    wait_for_line(w, r"Created user 'http-user'.*" + via_http)
    wait_for_line(w, r"Set permissions for user 'http-user' in vhost '/' to '', '\^w', '\^r'" + via_http)
    wait_for_line(w, r"Cleared permissions for user 'http-user' in vhost '/'" + via_http)

    log = w.log()
    for secret in ("file-secret-pw", "cli-secret-pw", "cli-other-pw", "http-secret-pw"):
        assert secret not in log, "a password reached the log"
    # Audit lines are info: not warnings or errors.
    assert re.search(r"INFO.*Created user 'http-user'", log), log[-2000:]


def test_channel_errors_are_logged_as_rabbitmq_does_and_bounded(warren):
    w = warren()
    conn = w.connect()
    try:
        ch = conn.channel()
        ch.queue_declare("audit-q", durable=True)
        for _ in range(20):
            c = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                c.queue_declare("audit-q", durable=False)
            assert e.value.reply_code == 406
    finally:
        conn.close()
    m = wait_for_line(
        w, r"WARN.*Channel error on connection [^\n]*\(vhost: '/', user: 'guest'\), channel \d+: "
           r"operation queue\.declare caused a channel exception precondition_failed: "
           r"inequivalent arg 'durable' for queue 'audit-q' in vhost '/'")
    assert m
    # At most five lines a minute for this connection; the rest counted when it closes.
    lines = re.findall(r"Channel error on connection", w.log())
    assert len(lines) == 5, len(lines)
    wait_for_line(w, r"15 more channel or connection error\(s\) not logged")


def test_connection_errors_are_logged(warren):
    w = warren()
    c, _, _ = raw.handshake("127.0.0.1", w.port, "guest", "guest", "/")
    try:
        # A method on a channel that was never opened: a connection error (504).
        c.send(raw.method(5, 50, 10, raw.queue_declare_args("x", exclusive=True)))
        m = c.read_method(5.0)
        assert m is not None and m[1:3] == (10, 50), m
    finally:
        c.close()
    wait_for_line(w, r"WARN.*Error on AMQP connection .*\(vhost: '/', user: 'guest'\), channel 0: "
                     r"operation queue\.declare caused a connection exception channel_error: "
                     r"expected 'channel\.open'")

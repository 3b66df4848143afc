# -*- coding: utf-8 -*-
"""The admin CLI as the tutorials use it: `list_queues name messages_ready messages_unacknowledged`.

WARRENCTL is a command prefix (split with shlex), e.g. "target/debug/warrenctl" or
"rabbitmqctl -n rabbit@localhost". Unset -> the test fails, unless AMQP_ALLOW_NO_CTL=1 (then skip).
"""
import subprocess
import time
import uuid

import pytest

from conftest import VHOST, ctl_prefix, get_message


def run_ctl(*args, timeout=30):
    cmd = ctl_prefix() + list(args)
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def vhost_args():
    return [] if VHOST == "/" else ["-p", VHOST]


def poll_row(queue, expected, args, timeout=10.0):
    """Run list_queues until the queue's row equals `expected` (stats may lag). Returns last output."""
    deadline = time.monotonic() + timeout
    out = ""
    while True:
        rc, out, err = run_ctl(*args)
        assert rc == 0, (rc, out, err)
        rows = [line for line in out.split("\n") if line.split("\t")[0] == queue]
        if rows == [expected] or time.monotonic() >= deadline:
            return out
        time.sleep(0.25)  # polling interval for an external process, bounded by the deadline


@pytest.fixture
def three_messages_one_unacked(conn, cleanup):
    queue = cleanup.queue("水许传-ctl-%s" % uuid.uuid4().hex[:8])
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", queue, "task-%d" % i)
    m, _, _ = get_message(ch, queue)  # held unacked while the CLI runs
    assert m is not None
    return queue


def test_list_queues_ready_and_unacked(three_messages_one_unacked):
    queue = three_messages_one_unacked
    args = ["list_queues"] + vhost_args() + ["name", "messages_ready", "messages_unacknowledged"]
    out = poll_row(queue, "%s\t2\t1" % queue, args)
    rows = [line for line in out.split("\n") if line.split("\t")[0] == queue]
    assert rows == ["%s\t2\t1" % queue], out
    lines = out.split("\n")
    # RabbitMQ's table format: informational lines, then a tab-separated header row
    assert "name\tmessages_ready\tmessages_unacknowledged" in lines, out
    assert any(line.startswith("Listing queues for vhost %s" % VHOST) for line in lines), out


def test_list_queues_quiet(three_messages_one_unacked):
    queue = three_messages_one_unacked
    args = ["-q", "list_queues"] + vhost_args() + ["name", "messages_ready", "messages_unacknowledged"]
    out = poll_row(queue, "%s\t2\t1" % queue, args)
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "name\tmessages_ready\tmessages_unacknowledged", out
    assert not any(line.startswith(("Timeout", "Listing")) for line in lines), out
    assert "%s\t2\t1" % queue in lines, out

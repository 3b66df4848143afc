# -*- coding: utf-8 -*-
"""Definitions and durable administration, on Warren processes of our own.

- A definitions file exported from real RabbitMQ 3.10 (tests/fixtures/rabbitmq-3.10-definitions.json,
  made by tests/fixtures/make-rabbitmq-definitions.sh) loads at boot (`--definitions`, as RabbitMQ's
  load_definitions) and through `warrenctl import_definitions`: its users log in with their passwords
  (SHA-256, SHA-512 and MD5 hashes), its topology routes, its permissions hold.
- Users, tags, vhosts, permissions and topic permissions made with the CLI survive a restart and a
  SIGKILL (each change is on disk before the CLI exits 0).
- Deleting a vhost removes its queues, and their messages on disk.
- Warren's export imports back into Warren unchanged.

These need WARREN_BIN (scripts/test.sh sets it); against RabbitMQ they are skipped.
"""
import glob
import json
import os

import pika
import pytest

from conftest import login
from warren_process import warren  # noqa: F401 - fixture

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rabbitmq-3.10-definitions.json")
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}


def ok(res):
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout


def connect_as(w, user, password, vhost):
    return w.connect(**login(user, password, vhost))


def check_fixture_loaded(w):
    """What the RabbitMQ fixture defines is there and behaves."""
    for user, password in USERS.items():
        c = connect_as(w, user, password, "shop")  # every hashing algorithm
        c.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect_as(w, "alice", "wrong", "shop")
    c = connect_as(w, "alice", "alice-pw", "shop")
    ch = c.channel()
    ch.confirm_delivery()
    # orders-x (topic) -> orders by "order.*.created"; hdr (headers, any) -> orders too.
    ch.basic_publish("orders-x", "order.42.created", b"by-topic")
    ch.basic_publish("hdr", "", b"by-headers", pika.BasicProperties(headers={"kind": "order"}))
    # orders-x -> dlx (exchange binding "#.failed") -> dead
    ch.basic_publish("orders-x", "order.42.failed", b"by-e2e")
    got = []
    for _ in range(2):
        m, _, body = ch.basic_get("orders", auto_ack=True)
        got.append(body)
    assert sorted(got) == [b"by-headers", b"by-topic"], got
    assert ch.basic_get("dead", auto_ack=True)[2] == b"by-e2e"
    q = ch.queue_declare("orders", passive=True).method
    assert q.message_count == 0
    # Declared with the same arguments as in the file: equivalent.
    ch.queue_declare("orders", durable=True, arguments={"x-dead-letter-exchange": "dlx", "x-max-length": 1000})
    c.close()
    # bob: configure ^bob-.*, write ^(bob-.*|amq\.default)$, topic write ^{username}\. on amq.topic
    c = connect_as(w, "bob", "bob-pw", "shop")
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "bob.news", b"allowed")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("amq.topic", "alice.news", b"refused")
    assert e.value.reply_code == 403
    assert "access to topic 'alice.news' in exchange 'amq.topic' in vhost 'shop' refused for user 'bob'" in \
        e.value.reply_text
    c.close()
    users = {line.split("\t")[0]: line.split("\t")[1] for line in ok(w.ctl("-q", "list_users")).split("\n")[1:] if line}
    assert users["alice"] == "[administrator]" and users["bob"] == "[monitoring]", users
    vhosts = set(ok(w.ctl("-q", "list_vhosts")).split("\n")[1:])
    assert {"/", "shop", "team/a"} <= vhosts, vhosts


def test_rabbitmq_definitions_load_at_boot_and_survive_restart(warren):
    w = warren(["--definitions", FIXTURE])
    check_fixture_loaded(w)
    exported = json.loads(ok(w.ctl("export_definitions", "-")))
    assert [p["name"] for p in exported["policies"]] == ["ttl-orders"], exported["policies"]
    assert {"vhost": "shop", "component": "vhost-limits", "name": "limits",
            "value": {"max-connections": 100}} in exported["parameters"]
    hashes = {u["name"]: u["hashing_algorithm"] for u in exported["users"]}
    assert hashes["carol"] == "rabbit_password_hashing_sha512" and hashes["dave"] == "rabbit_password_hashing_md5"
    w.restart(crash=True)
    check_fixture_loaded(w)


def test_import_definitions_with_the_cli_then_reimport_the_export(warren, tmp_path):
    w = warren()
    out = ok(w.ctl("import_definitions", FIXTURE))
    assert "Successfully started definition import" in out
    check_fixture_loaded(w)
    # Warren's own export imports into a fresh Warren unchanged.
    path = tmp_path / "exported.json"
    ok(w.ctl("export_definitions", str(path)))
    w2 = warren()
    ok(w2.ctl("import_definitions", str(path)))
    check_fixture_loaded(w2)
    first = json.loads(path.read_text())
    second = json.loads(ok(w2.ctl("export_definitions", "-")))
    for key in ("vhosts", "permissions", "topic_permissions", "queues", "exchanges", "bindings", "policies"):
        norm = lambda xs: sorted(json.dumps(x, sort_keys=True) for x in xs)  # noqa: E731
        assert norm(first[key]) == norm(second[key]), key


def test_cli_changes_are_durable(warren):
    w = warren()
    ok(w.ctl("add_user", "ops", "ops-pw"))
    ok(w.ctl("set_user_tags", "ops", "administrator", "management"))
    ok(w.ctl("add_vhost", "ops-v"))
    ok(w.ctl("set_permissions", "-p", "ops-v", "ops", "^ops-", ".*", ".*"))
    ok(w.ctl("set_topic_permissions", "-p", "ops-v", "ops", "amq.topic", "^a", "^b"))
    ok(w.ctl("add_user", "gone", "x"))
    ok(w.ctl("delete_user", "gone"))
    for crash in (False, True):
        w.restart(crash=crash)
        assert "ops\t[administrator, management]" in ok(w.ctl("list_users"))
        assert "gone" not in ok(w.ctl("list_users"))
        assert "ops\t^ops-\t.*\t.*" in ok(w.ctl("list_permissions", "-p", "ops-v"))
        assert "ops\tamq.topic\t^a\t^b" in ok(w.ctl("list_topic_permissions", "-p", "ops-v"))
        c = connect_as(w, "ops", "ops-pw", "ops-v")
        ch = c.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("not-ops")
        assert e.value.reply_code == 403
        c.close()


def test_deleting_a_vhost_removes_its_data(warren):
    w = warren()
    ok(w.ctl("add_vhost", "doomed"))
    ok(w.ctl("set_permissions", "-p", "doomed", "guest", ".*", ".*", ".*"))
    c = w.connect(virtual_host="doomed")
    ch = c.channel()
    ch.queue_declare("q", durable=True)
    ch.confirm_delivery()
    for i in range(100):
        ch.basic_publish("", "q", b"x" * 1000, pika.BasicProperties(delivery_mode=2))
    names = glob.glob(os.path.join(w.data_dir, "vhosts", "*", "name"))
    dirs = [os.path.dirname(n) for n in names if open(n).read() == "doomed"]
    assert len(dirs) == 1 and glob.glob(os.path.join(dirs[0], "msgs", "*.seg"))
    ok(w.ctl("delete_vhost", "doomed"))
    assert not os.path.exists(dirs[0]), os.listdir(dirs[0])
    w.restart(crash=True)
    assert "doomed" not in ok(w.ctl("list_vhosts")).split("\n")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        w.connect(virtual_host="doomed")


def test_status_and_stop(warren):
    w = warren()
    out = ok(w.ctl("status"))
    assert out.startswith("Status of node warren@"), out
    for heading in ("Alarms", "Memory", "Free Disk Space", "Totals"):
        assert "\n%s\n" % heading in out, out
    assert ok(w.ctl("await_startup")) == ""
    out = ok(w.ctl("stop"))
    assert out.startswith("Stopping and halting node warren@"), out
    assert w.proc.wait(15) == 0, w.log()
    w.proc = None
    res = w.ctl("list_users")
    assert res.returncode == 69, (res.returncode, res.stdout, res.stderr)
    # rabbitmqctl's text for a node it cannot reach (the reasons, then DIAGNOSTICS).
    assert res.stderr.startswith("Error: unable to perform an operation on node 'warren@"), res.stderr
    assert "Target node is not running" in res.stderr, res.stderr

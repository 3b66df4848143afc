# -*- coding: utf-8 -*-
"""The real `rabbitmqadmin` (the management plugin's Python CLI) against the management API.

Covered: declare/list/delete queue (string booleans "true"/"false" in the body, arguments JSON),
exchange, binding (delete by properties_key), vhost, user (password and password_hash),
permission; publish (payload=, from stdin, unroutable) and get (raw_json, table, payload_file,
ack_requeue_false) with payload bytes checked over AMQP; purge queue; list connections and
close connection (pika sees 320); export/import of the whole broker and of one vhost (-V);
show overview (-f kvp, raw_json); list nodes; -S/-R sorting; -f raw_json / tsv / table output;
error exits (401 "Access refused", 404 "Not found", 400 reasons printed as "*** <reason>").

The binary is $RABBITMQADMIN (default `rabbitmqadmin` on PATH); it talks to MGMT_URL's host and
port with -H/-P and MGMT_USER/MGMT_PASS (guest/guest), HOME pointed at an empty directory so that
no ~/.rabbitmqadmin.conf interferes. If it is not installed the tests FAIL, unless
MGMT_ALLOW_NO_RABBITMQADMIN=1 (then they skip). Which endpoint each subcommand calls is listed in
tools/probe-http-3.10.8.txt.

Validated with rabbitmqadmin 3.10.8 (Debian's /usr/bin/rabbitmqadmin) against RabbitMQ 3.10.8:
    MGMT_URL=http://127.0.0.1:15682 METRICS_URL=http://127.0.0.1:15692 AMQP_PORT=5682 \\
        WARRENCTL="rabbitmqctl -n rabbit@localhost" \\
        .venv/bin/python -m pytest tests/python/test_rabbitmqadmin.py -q
"""
import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest
from pika.exceptions import ProbableAccessDeniedError

from conftest import connect, login, uniq, wait_closed_by_broker
from mgmt import (MGMT_PASS, MGMT_URL, MGMT_USER, api, expect, get_json, mgmt_objects,  # noqa: F401
                  q, rabbit_password_hash, wait_for)

Res = collections.namedtuple("Res", "rc out err")
_HOME = []


def admin_prefix():
    value = os.environ.get("RABBITMQADMIN", "rabbitmqadmin").strip()
    parts = shlex.split(value)
    if not parts or not shutil.which(parts[0]):
        if os.environ.get("MGMT_ALLOW_NO_RABBITMQADMIN") == "1":
            pytest.skip("rabbitmqadmin not found and MGMT_ALLOW_NO_RABBITMQADMIN=1")
        pytest.fail("rabbitmqadmin not found (RABBITMQADMIN=%r): install it (Debian: apt-get install "
                    "rabbitmq-server ships /usr/bin/rabbitmqadmin; or download it from a running broker's "
                    "/cli/rabbitmqadmin) or set RABBITMQADMIN to its path; MGMT_ALLOW_NO_RABBITMQADMIN=1 "
                    "skips these tests" % value)
    url = urllib.parse.urlparse(MGMT_URL)
    prefix = parts + ["-H", url.hostname, "-P", str(url.port or (443 if url.scheme == "https" else 80)),
                      "-u", MGMT_USER, "-p", MGMT_PASS]
    if url.scheme == "https":
        prefix.append("--ssl")
    return prefix


def host():
    return urllib.parse.urlparse(MGMT_URL).hostname


def admin(*args, stdin=None, rc=0, user=None, password=None):
    """Run rabbitmqadmin; asserts the exit code `rc` (None: any). Returns Res(rc, out, err)."""
    if not _HOME:
        _HOME.append(tempfile.mkdtemp(prefix="rmqadmin-home-"))
    cmd = admin_prefix()
    if user is not None:
        cmd[cmd.index("-u") + 1] = user
    if password is not None:
        cmd[cmd.index("-p") + 1] = password
    env = dict(os.environ, HOME=_HOME[0], LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    proc = subprocess.run(cmd + list(args), capture_output=True, timeout=60, env=env,
                          input=None if stdin is None else stdin.encode("utf-8"),
                          stdin=subprocess.DEVNULL if stdin is None else None)
    res = Res(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))
    if rc is not None:
        assert res.rc == rc, (args, res)
    return res


def raw(*args):
    return json.loads(admin("-f", "raw_json", *args).out)


def tsv(*args, header=True):
    """Rows of `-f tsv` output (split on tabs); with header=True the first row is the header."""
    lines = [ln for ln in admin("-f", "tsv", *args).out.split("\n") if ln != ""]
    return [ln.split("\t") for ln in lines]


def table(out):
    """Rows of the default ASCII table ("| a | b |"), header first."""
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in out.splitlines() if ln.startswith("|")]


def amqp_count(queue, vhost="/"):
    c = connect(virtual_host=vhost)
    try:
        return c.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        c.close()


def drain(queue, vhost="/"):
    c = connect(virtual_host=vhost)
    out = []
    try:
        ch = c.channel()
        while True:
            m, p, b = ch.basic_get(queue, auto_ack=True)
            if m is None:
                return out
            out.append(b)
    finally:
        c.close()


# -----------------------------------------------------------------------------------------------
def test_queue_declare_list_delete(mgmt_objects):
    qa = mgmt_objects.track_queue(uniq("adm-q"))
    qb = mgmt_objects.track_queue(uniq("adm-q"))
    assert admin("declare", "queue", "name=" + qa, "durable=false").out == "queue declared\n"
    assert admin("declare", "queue", "name=" + qb, 'arguments={"x-max-length": 5}').out == "queue declared\n"
    a, b = get_json("/api/queues/%2F/" + q(qa)), get_json("/api/queues/%2F/" + q(qb))
    assert (a["durable"], a["auto_delete"], a["arguments"]) == (False, False, {})
    assert (b["durable"], b["auto_delete"], b["arguments"]) == (True, False, {"x-max-length": 5})

    listed = raw("list", "queues", "name", "durable")
    assert {"name": qa, "durable": False} in listed and {"name": qb, "durable": True} in listed
    rows = tsv("list", "queues", "name", "durable")
    assert rows[0] == ["name", "durable"]
    assert [qa, "False"] in rows and [qb, "True"] in rows
    # default columns name,messages in an ASCII table; -q drops the header
    tab = table(admin("list", "queues").out)
    assert tab[0] == ["name", "messages"] and qa in [r[0] for r in tab[1:]]
    quiet = tsv("-q", "-V", "/", "list", "queues", "name")
    assert [qa] in quiet and ["name"] not in quiet

    res = admin("declare", "queue", "name=" + qa, "durable=true", rc=1)
    assert ("*** inequivalent arg 'durable' for queue '%s' in vhost '/': received 'true' but current is 'false'"
            % qa) in res.err
    assert admin("delete", "queue", "name=" + qa).out == "queue deleted\n"
    assert api("GET", "/api/queues/%2F/" + q(qa)).status_code == 404
    res = admin("delete", "queue", "name=" + qa, rc=1)
    assert "*** Not found: /api/queues/%%2F/%s" % q(qa) in res.err


def test_exchange_binding_publish_get(mgmt_objects, tmp_path):
    x = mgmt_objects.track_exchange(uniq("adm-x"))
    qn = mgmt_objects.track_queue(uniq("adm-q"))
    assert admin("declare", "exchange", "name=" + x, "type=topic").out == "exchange declared\n"
    e = get_json("/api/exchanges/%2F/" + q(x))
    assert (e["type"], e["durable"], e["auto_delete"], e["internal"]) == ("topic", True, False, False)
    admin("declare", "queue", "name=" + qn, "durable=false")
    assert admin("declare", "binding", "source=" + x, "destination=" + qn, "routing_key=a.*").out == \
        "binding declared\n"
    assert {"name": x, "type": "topic"} in raw("list", "exchanges", "name", "type")
    assert [x, qn, "a.*"] in tsv("list", "bindings", "source", "destination", "routing_key")
    assert ["", qn, qn] in tsv("list", "bindings", "source", "destination", "routing_key")

    assert admin("publish", "exchange=" + x, "routing_key=a.b", "payload=hello world").out == "Message published\n"
    assert admin("publish", "exchange=" + x, "routing_key=zz", "payload=lost").out == \
        "Message published but NOT routed\n"
    assert admin("publish", "routing_key=" + qn, "payload=direct").out == "Message published\n"  # amq.default
    stdin_text = "héllo ✓ ünïcode\nsecond line\n"
    assert admin("publish", "exchange=" + x, "routing_key=a.c", stdin=stdin_text).out == "Message published\n"

    got = raw("get", "queue=" + qn, "count=3")  # ack_requeue_true by default
    assert [(m["payload"], m["payload_encoding"], m["routing_key"], m["exchange"], m["redelivered"]) for m in got] == \
        [("hello world", "string", "a.b", x, False), ("direct", "string", qn, "", False),
         (stdin_text, "string", "a.c", x, False)]
    assert [m["payload_bytes"] for m in got] == [11, 6, len(stdin_text.encode("utf-8"))]
    assert amqp_count(qn) == 3

    res = admin("get", "queue=" + qn, "ackmode=ack_requeue_false")
    tab = table(res.out)
    head, row = tab[0], tab[1]
    assert row[head.index("payload")] == "hello world" and row[head.index("redelivered")] == "True"
    assert amqp_count(qn) == 2

    target = tmp_path / "payload.bin"
    res = admin("get", "queue=" + qn, "payload_file=%s" % target)
    assert target.read_bytes() == b"direct"
    assert table(res.out)[0] == ["routing_key", "exchange", "message_count", "payload_bytes", "redelivered"]

    # the bytes that arrive over AMQP are exactly what was published
    assert drain(qn) == [b"direct", stdin_text.encode("utf-8")]
    assert admin("delete", "binding", "source=" + x, "destination_type=queue", "destination=" + qn,
                 "properties_key=a.*").out == "binding deleted\n"
    assert get_json("/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn))) == []
    assert admin("delete", "exchange", "name=" + x).out == "exchange deleted\n"
    assert api("GET", "/api/exchanges/%2F/" + q(x)).status_code == 404


def test_purge_queue(mgmt_objects):
    qn = mgmt_objects.queue(prefix="adm-purge")
    c = connect()
    try:
        ch = c.channel()
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", qn, b"p%d" % i)
    finally:
        c.close()
    assert amqp_count(qn) == 3
    assert admin("purge", "queue", "name=" + qn).out == "queue purged\n"
    assert amqp_count(qn) == 0
    nosuch = uniq("nosuch")
    res = admin("purge", "queue", "name=" + nosuch, rc=1)
    assert "*** Not found: /api/queues/%%2F/%s/contents" % q(nosuch) in res.err


def test_users_vhosts_permissions(mgmt_objects):
    v = mgmt_objects.track_vhost(uniq("adm-vhost"))
    u = mgmt_objects.track_user(uniq("adm-user"))
    u2 = mgmt_objects.track_user(uniq("adm-hashed"))
    assert admin("declare", "vhost", "name=" + v).out == "vhost declared\n"
    assert admin("declare", "user", "name=" + u, "password=adm-secret", "tags=management,policymaker").out == \
        "user declared\n"
    assert admin("declare", "permission", "vhost=" + v, "user=" + u, "configure=.*", "write=.*", "read=.*").out \
        == "permission declared\n"
    users = {x["name"]: x for x in raw("list", "users")}
    assert users[u]["tags"] == ["management", "policymaker"]
    assert users[u]["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    rows = tsv("list", "users", "name", "tags")
    assert rows[0] == ["name", "tags"] and [u, "management policymaker"] in rows  # lists joined by " "
    assert [v] in tsv("-q", "list", "vhosts", "name")
    assert {"user": u, "vhost": v, "configure": ".*", "write": ".*", "read": ".*"} in raw("list", "permissions")
    connect(**login(u, "adm-secret", v)).close()

    admin("declare", "user", "name=" + u2, "password_hash=" + rabbit_password_hash("hash-secret"), "tags=")
    admin("declare", "permission", "vhost=" + v, "user=" + u2, "configure=.*", "write=.*", "read=.*")
    connect(**login(u2, "hash-secret", v)).close()

    assert admin("delete", "permission", "vhost=" + v, "user=" + u).out == "permission deleted\n"
    with pytest.raises(ProbableAccessDeniedError):
        connect(**login(u, "adm-secret", v)).close()
    assert admin("delete", "user", "name=" + u).out == "user deleted\n"
    assert admin("delete", "user", "name=" + u2).out == "user deleted\n"
    assert admin("delete", "vhost", "name=" + v).out == "vhost deleted\n"
    assert u not in {x["name"] for x in raw("list", "users")}
    assert v not in {x["name"] for x in raw("list", "vhosts")}
    res = admin("delete", "user", "name=" + u, rc=1)
    assert "*** Not found: /api/users/%s" % q(u) in res.err


def test_list_and_close_connection(connection_factory):
    cname = uniq("adm-conn")
    conn = connection_factory(client_properties={"connection_name": cname})
    conn.channel()

    def find():
        return [c for c in raw("list", "connections")
                if c.get("client_properties", {}).get("connection_name") == cname]
    (found,) = wait_for(find, what="connection listed by rabbitmqadmin", pump=conn)
    assert found["user"] == MGMT_USER and found["vhost"] == "/"
    rows = tsv("list", "connections", "name", "user", "vhost")
    assert rows[0] == ["name", "user", "vhost"] and [found["name"], MGMT_USER, "/"] in rows
    assert admin("close", "connection", "name=" + found["name"]).out == "connection closed\n"
    exc = wait_closed_by_broker(conn)
    assert (exc.reply_code, exc.reply_text) == (320, "CONNECTION_FORCED - Closed via management plugin")


def test_export_import_vhost(mgmt_objects, tmp_path):
    v = mgmt_objects.vhost(prefix="adm-exp")
    qn, x = uniq("adm-eq"), uniq("adm-ex")
    mgmt_objects.track_queue(qn, v)
    mgmt_objects.track_exchange(x, v)
    admin("-V", v, "declare", "queue", "name=" + qn, 'arguments={"x-max-length": 7}')
    admin("-V", v, "declare", "exchange", "name=" + x, "type=fanout", "durable=false")
    admin("-V", v, "declare", "binding", "source=" + x, "destination=" + qn, "routing_key=rk")
    target = tmp_path / "vhost.json"
    res = admin("-V", v, "export", str(target))
    assert res.out == 'Exported definitions for %s to "%s"\n' % (host(), target)
    defs = json.loads(target.read_text())
    assert set(defs) == {"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"}
    assert defs["queues"] == [{"name": qn, "durable": True, "auto_delete": False, "arguments": {"x-max-length": 7}}]
    assert defs["exchanges"] == [{"name": x, "type": "fanout", "durable": False, "auto_delete": False,
                                  "internal": False, "arguments": {}}]
    assert defs["bindings"] == [{"source": x, "destination": qn, "destination_type": "queue", "routing_key": "rk",
                                 "arguments": {}}]
    admin("-V", v, "delete", "queue", "name=" + qn)
    admin("-V", v, "delete", "exchange", "name=" + x)
    res = admin("-V", v, "import", str(target))
    # (rabbitmqadmin 3.10.8 swaps host and file in this message)
    assert res.out.startswith('Uploaded definitions from "%s" to %s.' % (host(), target))
    assert get_json("/api/queues/%s/%s" % (q(v), q(qn)))["arguments"] == {"x-max-length": 7}
    assert get_json("/api/exchanges/%s/%s" % (q(v), q(x)))["type"] == "fanout"
    assert [b["routing_key"] for b in get_json("/api/bindings/%s/e/%s/q/%s" % (q(v), q(x), q(qn)))] == ["rk"]


def test_export_import_full(mgmt_objects, tmp_path):
    qn = mgmt_objects.queue(prefix="adm-full", body={"durable": True, "arguments": {"x-message-ttl": 1000}})
    u = mgmt_objects.user(prefix="adm-full", password="full-secret", tags="monitoring", grant_vhost="/")
    target = tmp_path / "full.json"
    res = admin("export", str(target))
    assert res.out == 'Exported definitions for %s to "%s"\n' % (host(), target)
    defs = json.loads(target.read_text())
    assert {"rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges", "bindings"} <= set(defs)
    assert {"name": qn, "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-message-ttl": 1000}} in defs["queues"]
    (user,) = [x for x in defs["users"] if x["name"] == u]
    assert user["tags"] == ["monitoring"]
    assert {"user": u, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"} in defs["permissions"]
    expect(api("DELETE", "/api/queues/%2F/" + q(qn)), 204)
    expect(api("DELETE", "/api/users/" + q(u)), 204)
    res = admin("import", str(target))
    assert res.out.startswith('Uploaded definitions from "%s" to %s.' % (host(), target))
    assert get_json("/api/queues/%2F/" + q(qn))["arguments"] == {"x-message-ttl": 1000}
    assert get_json("/api/users/" + q(u))["tags"] == ["monitoring"]
    connect(**login(u, "full-secret")).close()  # the password hash survived the round trip


def test_show_overview():
    ov = get_json("/api/overview")
    (shown,) = raw("show", "overview")
    assert shown["rabbitmq_version"] == ov["rabbitmq_version"] and shown["cluster_name"] == ov["cluster_name"]
    assert isinstance(shown["object_totals"]["queues"], int)
    line = admin("-f", "kvp", "show", "overview").out.strip()
    pairs = re.findall(r'(\S+)="([^"]*)"', line)
    assert [k for k, _ in pairs] == ["rabbitmq_version", "cluster_name", "queue_totals.messages",
                                     "object_totals.queues"]
    values = dict(pairs)
    assert values["rabbitmq_version"] == ov["rabbitmq_version"]
    assert values["queue_totals.messages"].isdigit() and values["object_totals.queues"].isdigit()


def test_list_nodes():
    node = get_json("/api/overview")["node"]
    (listed,) = raw("list", "nodes")
    assert listed["name"] == node and listed["running"] is True
    rows = tsv("list", "nodes")
    assert rows[0] == ["name", "type", "mem_used"]
    assert rows[1][0] == node and rows[1][1] == "disc" and rows[1][2].isdigit()


def test_sorting(mgmt_objects):
    prefix = uniq("adm-sort")
    for s in ("b", "a", "c"):
        mgmt_objects.queue(name="%s-%s" % (prefix, s))
    mine = lambda rows: [r[0] for r in rows if r[0].startswith(prefix)]  # noqa: E731
    assert mine(tsv("-q", "list", "queues", "name", "-S", "name")) == ["%s-%s" % (prefix, s) for s in "abc"]
    assert mine(tsv("-q", "list", "queues", "name", "-S", "name", "-R")) == ["%s-%s" % (prefix, s) for s in "cba"]


def test_output_formats():
    rows = tsv("list", "vhosts")
    assert rows[0] == ["name", "messages"] and "/" in [r[0] for r in rows[1:]]
    assert {"name": "/"} in raw("list", "vhosts", "name")
    pretty = json.loads(admin("-f", "pretty_json", "list", "vhosts", "name").out)
    assert {"name": "/"} in pretty
    tab = table(admin("list", "exchanges").out)
    assert tab[0] == ["name", "type"] and ["amq.topic", "topic"] in tab


def test_error_exits():
    res = admin("list", "queues", rc=1, password=MGMT_PASS + "-wrong")
    assert "*** Access refused: /api/queues?columns=name,messages" in res.err
    novhost = uniq("novhost")
    res = admin("-V", novhost, "list", "queues", rc=1)
    assert "*** Not found: /api/queues/%s?columns=name,messages" % urllib.parse.quote_plus(novhost) in res.err
    res = admin("declare", "exchange", "name=" + uniq("x"), "type=nosuchtype", rc=1)
    assert re.search(r"\*\*\* (invalid|unknown) exchange type 'nosuchtype'", res.err), res

# -*- coding: utf-8 -*-
"""The admin CLI ($WARRENCTL) end to end: every command, its output lines, error texts and exit codes.

Covered: add_user (argument, stdin, -q, existing 70, missing arguments 64, no password 65),
delete_user, change_password, clear_password, authenticate_user, set_user_tags, list_users (banner,
header, -q, --no-table-headers, -s/--silent, --formatter json), add_vhost (idempotent),
delete_vhost, list_vhosts, set_permissions / clear_permissions / list_permissions /
list_user_permissions, the topic-permission commands, list_queues / list_exchanges /
list_bindings / list_connections / list_channels / list_consumers with columns, purge_queue,
delete_queue (--if-empty), close_connection, close_all_connections -p, export_definitions (to "-"
and to a file), import_definitions, await_startup, an unknown command, and a broker that is down.

Expected texts are rabbitmqctl 3.10.8's, measured in tools/probe-rabbitmqctl-3.10.8.txt. Where
rabbitmqctl prints Erlang terms ({:invalid_regexp, ...}, {:no_such_user, "x"}, not_found) only the
exit code and a non-empty stderr are asserted. Rows come in any order (RabbitMQ does not sort), so
tests pick out their own rows by unique names. An empty listing may end with a blank line on
RabbitMQ; trailing blank lines are ignored. Validated against RabbitMQ 3.10.8 with:
    AMQP_PORT=5682 WARRENCTL="rabbitmqctl -n rabbit@localhost" \\
        .venv/bin/python -m pytest tests/python/test_access.py tests/python/test_ctl_admin.py -q
"""
import json
import os
import re
import shutil
import tempfile
import time

import pytest

from conftest import (PORT, VHOST, Collector, connect, ctl, ctl_ok, ctl_prefix, login, uniq,
                      wait_closed_by_broker, wait_until)

PASSWORD = "ctl-secret"
NONEMPTY = object()  # check(err=NONEMPTY): stderr must say something (its text is Erlang-specific)
ADD_USER_DONE = ("Done. Don't forget to grant the user permissions to some virtual hosts! "
                 "See 'rabbitmqctl help set_permissions' to learn more.")
VHOST_ARGS = ["-p", VHOST]


def lines(text):
    """Output lines, trailing blank lines dropped ("" -> [])."""
    text = text.rstrip("\n")
    return text.split("\n") if text else []


def check(res, rc, out=None, err=None):
    """Exit code, and (when given) the exact stdout lines and the exact stderr lines or NONEMPTY."""
    assert res.rc == rc, res
    if out is not None:
        assert lines(res.out) == out, res
    if err is NONEMPTY:
        assert res.err.strip(), res
    elif err is not None:
        assert lines(res.err) == err, res
    return res


def table(res, head):
    """rc 0 and the first lines == head (banners, header row); returns the remaining rows."""
    check(res, 0)
    got = lines(res.out)
    assert got[:len(head)] == head, res
    return got[len(head):]


def poll_rows(args, head, predicate, timeout=10.0):
    """Run the listing until predicate(rows) holds (statistics may lag); returns the last rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = table(ctl(*args), head)
        if predicate(rows) or time.monotonic() >= deadline:
            return rows
        time.sleep(0.25)  # polling an external process, bounded by the deadline


def rows_for(rows, names, column=0):
    return {row for row in rows if row.split("\t")[column] in names}


def poll_own_rows(args, head, expected, column=0):
    """Poll until the rows naming our objects (in `column`) are exactly `expected` (a set)."""
    names = {row.split("\t")[column] for row in expected}
    rows = poll_rows(args, head, lambda r: rows_for(r, names, column) == expected)
    assert rows_for(rows, names, column) == expected, rows


def authenticate(user, password):
    return ctl("authenticate_user", user, password)


def assert_authenticates(user, password):
    check(authenticate(user, password), 0, ['Authenticating user "%s" ...' % user, "Success"])


def assert_auth_fails(user, password):
    res = check(authenticate(user, password), 65, ['Authenticating user "%s" ...' % user])
    assert 'failed to authenticate user "%s"' % user in res.err, res


def adding_user(name):
    return 'Adding user "%s" ...' % name


def setting_permissions(user, vhost):
    return 'Setting permissions for user "%s" in vhost "%s" ...' % (user, vhost)


def setting_topic_permissions(user, vhost, exchange):
    return 'Setting topic permissions on "%s" for user "%s" in vhost "%s" ...' % (exchange, user, vhost)


@pytest.fixture
def user(accounts):
    return accounts.new_user(PASSWORD, "ctl")


@pytest.fixture
def vhost(accounts):
    return accounts.new_vhost("ctl")


@pytest.fixture
def shared_dir():
    """A directory anyone may write: RabbitMQ reads and writes definition files as its own OS user."""
    path = tempfile.mkdtemp(prefix="warren-ctl-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- users
def test_add_user_then_authenticate(accounts):
    name = accounts.user(uniq("add"))
    check(ctl("add_user", name, PASSWORD), 0, [adding_user(name), ADD_USER_DONE], [])
    assert_authenticates(name, PASSWORD)


def test_add_user_quiet_prints_nothing(accounts):
    name = accounts.user(uniq("addq"))
    check(ctl("-q", "add_user", name, PASSWORD), 0, [], [])


def test_add_user_existing_exits_70(user):
    check(ctl("add_user", user, "other"), 70, [adding_user(user)], ["Error:", 'User "%s" already exists' % user])


def test_add_user_missing_arguments_exits_64():
    res = check(ctl("add_user"), 64, [])
    assert "not enough arguments" in res.err, res


def test_add_user_password_from_stdin(accounts):
    name = accounts.user(uniq("stdin"))
    check(ctl("add_user", name, stdin="piped-pw\n"), 0, [adding_user(name), "Password: ", ADD_USER_DONE])
    assert_authenticates(name, "piped-pw")


def test_add_user_without_password_exits_65(accounts):
    name = accounts.user(uniq("nopw"))
    check(ctl("add_user", name), 65, [adding_user(name), "Password: "],
          ["Error:", "Password is not provided via argument or stdin"])
    assert not rows_for(table(ctl("-q", "list_users"), ["user\ttags"]), {name})


def test_delete_user_then_missing_exits_67(user):
    deleting = ['Deleting user "%s" ...' % user]
    check(ctl("delete_user", user), 0, deleting, [])
    check(ctl("delete_user", user), 67, deleting, ["Error:", 'User "%s" does not exist' % user])


def test_change_password(user):
    check(ctl("change_password", user, "new-pw"), 0, ['Changing password for user "%s" ...' % user], [])
    assert_authenticates(user, "new-pw")
    assert_auth_fails(user, PASSWORD)


def test_change_password_missing_user_exits_67():
    ghost = uniq("nosuch")
    check(ctl("change_password", ghost, "x"), 67, ['Changing password for user "%s" ...' % ghost],
          ["Error:", 'User "%s" does not exist' % ghost])


def test_clear_password(user):
    check(ctl("clear_password", user), 0, ['Clearing password for user "%s" ...' % user], [])
    assert_auth_fails(user, PASSWORD)


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_authenticate_user_failure_exits_65(user, who):
    assert_auth_fails(user if who == "wrong-password" else uniq("nosuch"), "wrong")


def test_set_user_tags(user):
    check(ctl("set_user_tags", user, "administrator", "monitoring"), 0,
          ['Setting tags for user "%s" to [administrator, monitoring] ...' % user], [])
    rows = table(ctl("-q", "list_users"), ["user\ttags"])
    assert rows_for(rows, {user}) == {"%s\t[administrator, monitoring]" % user}
    check(ctl("set_user_tags", user), 0, ['Setting tags for user "%s" to [] ...' % user], [])


def test_set_user_tags_missing_user_exits_67():
    ghost = uniq("nosuch")
    check(ctl("set_user_tags", ghost, "administrator"), 67,
          ['Setting tags for user "%s" to [administrator] ...' % ghost], ["Error:", 'User "%s" does not exist' % ghost])


@pytest.mark.parametrize("args,head", [
    (["list_users"], ["Listing users ...", "user\ttags"]),
    (["-q", "list_users"], ["user\ttags"]),
    (["list_users", "--no-table-headers"], ["Listing users ..."]),
    (["-s", "list_users"], []),
    (["--silent", "list_users"], []),
], ids=["plain", "quiet", "no-table-headers", "s", "silent"])
def test_list_users(user, args, head):
    rows = table(ctl(*args), head)
    assert "%s\t[]" % user in rows, rows
    assert not {"Listing users ...", "user\ttags"} & set(rows), rows


def test_list_users_json(user):
    ctl_ok("set_user_tags", user, "administrator")
    listed = json.loads(ctl_ok("list_users", "--formatter", "json"))
    assert {"user": user, "tags": ["administrator"]} in listed, listed


# ---------------------------------------------------------------- vhosts
def test_add_vhost_is_idempotent(vhost):
    check(ctl("add_vhost", vhost), 0, ['Adding vhost "%s" ...' % vhost], [])


@pytest.mark.parametrize("args,head", [
    (["list_vhosts"], ["Listing vhosts ...", "name"]),
    (["list_vhosts", "name"], ["Listing vhosts ...", "name"]),
    (["-q", "list_vhosts", "name"], ["name"]),
], ids=["plain", "name-column", "quiet"])
def test_list_vhosts(vhost, args, head):
    rows = table(ctl(*args), head)
    assert {vhost, "/"} <= set(rows), rows


def test_delete_vhost_then_missing_exits_65(vhost):
    deleting = ['Deleting vhost "%s" ...' % vhost]
    check(ctl("delete_vhost", vhost), 0, deleting, [])
    check(ctl("delete_vhost", vhost), 65, deleting, ["Virtual host '%s' does not exist" % vhost])


# ---------------------------------------------------------------- permissions
def test_set_permissions_and_list(user, vhost):
    check(ctl("set_permissions", "-p", vhost, user, "^c", "^w", "^r"), 0, [setting_permissions(user, vhost)], [])
    check(ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*"), 0, [setting_permissions(user, "/")], [])
    check(ctl("list_permissions", "-p", vhost), 0,
          ['Listing permissions for vhost "%s" ...' % vhost, "user\tconfigure\twrite\tread", "%s\t^c\t^w\t^r" % user])
    rows = table(ctl("list_permissions"), ['Listing permissions for vhost "/" ...', "user\tconfigure\twrite\tread"])
    assert "%s\t.*\t.*\t.*" % user in rows, rows
    rows = table(ctl("list_user_permissions", user),
                 ['Listing permissions for user "%s" ...' % user, "vhost\tconfigure\twrite\tread"])
    assert sorted(rows) == sorted(["/\t.*\t.*\t.*", "%s\t^c\t^w\t^r" % vhost]), rows


@pytest.mark.parametrize("case", ["missing-vhost", "missing-user", "invalid-regex", "too-few-arguments"])
def test_set_permissions_errors(user, case):
    ghost = uniq("nosuch")
    args, rc, out, err = {
        "missing-vhost": (["-p", ghost, user, ".*", ".*", ".*"], 69, [setting_permissions(user, ghost)],
                          ["Error:", "Virtual host %s does not exist" % ghost]),
        "missing-user": (["-p", "/", ghost, ".*", ".*", ".*"], 67, [setting_permissions(ghost, "/")],
                         ["Error:", "User %s does not exist" % ghost]),
        "invalid-regex": (["-p", "/", user, "(", ".*", ".*"], 69, [setting_permissions(user, "/")], NONEMPTY),
        "too-few-arguments": (["-p", "/", user, ".*"], 64, [], NONEMPTY),
    }[case]
    check(ctl("set_permissions", *args), rc, out, err)


def test_clear_permissions(user, vhost):
    ctl_ok("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    clearing = ['Clearing permissions for user "%s" in vhost "%s" ...' % (user, vhost)]
    check(ctl("clear_permissions", "-p", vhost, user), 0, clearing, [])
    check(ctl("list_permissions", "-p", vhost), 0, ['Listing permissions for vhost "%s" ...' % vhost])
    check(ctl("clear_permissions", "-p", vhost, user), 0, clearing, [])


@pytest.mark.parametrize("case", ["missing-user", "missing-vhost"])
def test_clear_permissions_errors(user, case):
    ghost = uniq("nosuch")
    who, where, rc, err = {"missing-user": (ghost, "/", 67, "User %s does not exist" % ghost),
                           "missing-vhost": (user, ghost, 69, "Virtual host %s does not exist" % ghost)}[case]
    check(ctl("clear_permissions", "-p", where, who), rc,
          ['Clearing permissions for user "%s" in vhost "%s" ...' % (who, where)], ["Error:", err])


@pytest.mark.parametrize("command,what", [("list_permissions", "permissions"),
                                          ("list_topic_permissions", "topic permissions")],
                         ids=["permissions", "topic-permissions"])
def test_list_permissions_missing_vhost_exits_65(command, what):
    ghost = uniq("nosuch")
    check(ctl(command, "-p", ghost), 65, ['Listing %s for vhost "%s" ...' % (what, ghost)],
          ["Virtual host '%s' does not exist" % ghost])


@pytest.mark.parametrize("command,what", [("list_user_permissions", "permissions"),
                                          ("list_user_topic_permissions", "topic permissions")],
                         ids=["permissions", "topic-permissions"])
def test_list_user_permissions_missing_user_exits_69(command, what):
    ghost = uniq("nosuch")
    check(ctl(command, ghost), 69, ['Listing %s for user "%s" ...' % (what, ghost)], NONEMPTY)


@pytest.fixture
def topic_permissions(user, vhost):
    """Topic permissions of `user` in `vhost` on amq.topic and on "other"."""
    check(ctl("set_topic_permissions", "-p", vhost, user, "amq.topic", "^{username}", "^x"), 0,
          [setting_topic_permissions(user, vhost, "amq.topic")], [])
    check(ctl("set_topic_permissions", "-p", vhost, user, "other", "^a", "^b"), 0,
          [setting_topic_permissions(user, vhost, "other")], [])
    return user, vhost


def test_list_topic_permissions(topic_permissions):
    user, vhost = topic_permissions
    rows = table(ctl("list_topic_permissions", "-p", vhost),
                 ['Listing topic permissions for vhost "%s" ...' % vhost, "user\texchange\twrite\tread"])
    assert sorted(rows) == sorted(["%s\tamq.topic\t^{username}\t^x" % user, "%s\tother\t^a\t^b" % user]), rows
    # rabbitmqctl 3.10 prints no header row here
    rows = table(ctl("list_user_topic_permissions", user), ['Listing topic permissions for user "%s" ...' % user])
    assert sorted(rows) == sorted(["%s\tamq.topic\t^{username}\t^x" % vhost, "%s\tother\t^a\t^b" % vhost]), rows


def test_clear_topic_permissions(topic_permissions):
    user, vhost = topic_permissions
    listing = ['Listing topic permissions for user "%s" ...' % user]
    check(ctl("clear_topic_permissions", "-p", vhost, user, "amq.topic"), 0,
          ['Clearing topic permissions on "amq.topic" for user "%s" in vhost "%s" ...' % (user, vhost)], [])
    check(ctl("list_user_topic_permissions", user), 0, listing + ["%s\tother\t^a\t^b" % vhost])
    check(ctl("clear_topic_permissions", "-p", vhost, user), 0,
          ['Clearing topic permissions for user "%s" in vhost "%s" ...' % (user, vhost)], [])
    check(ctl("list_user_topic_permissions", user), 0, listing)


def test_set_topic_permissions_invalid_regex_exits_69(user):
    check(ctl("set_topic_permissions", "-p", "/", user, "amq.topic", "(", "^x"), 69,
          [setting_topic_permissions(user, "/", "amq.topic")], NONEMPTY)


# ---------------------------------------------------------------- queues, exchanges, bindings
QUEUE_COLUMNS = ["name", "messages", "messages_ready", "messages_unacknowledged", "consumers", "durable",
                 "auto_delete", "exclusive", "arguments", "state", "type"]


def hold_one_unacked(conn, queue, prefetch=1):
    """A manual-ack consumer on a new channel that holds one delivery; returns (channel, tag)."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=prefetch)
    got = Collector()
    tag = channel.basic_consume(queue, got)
    assert wait_until(conn, lambda: len(got) == 1)
    return channel, tag


def publish(ch, queue, count):
    ch.confirm_delivery()
    for i in range(count):
        ch.basic_publish("", queue, b"m%d" % i)


def test_list_queues_columns(conn, ch, cleanup):
    busy, idle = cleanup.queue(uniq("busy")), cleanup.queue(uniq("idle"))
    ch.queue_declare(busy, durable=True)
    ch.queue_declare(idle, exclusive=True, auto_delete=True, arguments={"x-message-ttl": 60000})
    publish(ch, busy, 3)
    hold_one_unacked(conn, busy)
    head = ["Timeout: 60.0 seconds ...", "Listing queues for vhost %s ..." % VHOST, "\t".join(QUEUE_COLUMNS)]
    poll_own_rows(["list_queues"] + VHOST_ARGS + QUEUE_COLUMNS, head, {
        "%s\t3\t2\t1\t1\ttrue\tfalse\tfalse\t[]\trunning\tclassic" % busy,
        '%s\t0\t0\t0\t0\tfalse\ttrue\ttrue\t[{"x-message-ttl",60000}]\trunning\tclassic' % idle})


def test_list_exchanges_columns(ch, cleanup):
    plain, fancy = cleanup.exchange(uniq("plain")), cleanup.exchange(uniq("fancy"))
    ch.exchange_declare(plain, "topic", durable=True)
    ch.exchange_declare(fancy, "headers", auto_delete=True, internal=True, arguments={"alternate-exchange": plain})
    columns = ["name", "type", "durable", "auto_delete", "internal", "arguments"]
    rows = table(ctl("list_exchanges", *(VHOST_ARGS + columns)),
                 ["Listing exchanges for vhost %s ..." % VHOST, "\t".join(columns)])
    assert rows_for(rows, {plain, fancy, "amq.direct", ""}) == {
        "%s\ttopic\ttrue\tfalse\tfalse\t[]" % plain,
        '%s\theaders\tfalse\ttrue\ttrue\t[{"alternate-exchange","%s"}]' % (fancy, plain),
        "amq.direct\tdirect\ttrue\tfalse\tfalse\t[]",
        "\tdirect\ttrue\tfalse\tfalse\t[]"}, rows


def test_list_bindings(ch, cleanup):
    queue, source, dest = cleanup.queue(uniq("bq")), cleanup.exchange(uniq("bx")), cleanup.exchange(uniq("bd"))
    ch.queue_declare(queue)
    ch.exchange_declare(source, "topic")
    ch.exchange_declare(dest, "headers")
    ch.queue_bind(queue, source, "a.#")
    ch.queue_bind(queue, dest, "", arguments={"x-match": "any", "k": "v"})
    ch.exchange_bind(dest, source, "k")
    rows = table(ctl("list_bindings", *VHOST_ARGS), [
        "Listing bindings for vhost %s..." % VHOST,
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"])
    assert rows_for(rows, {queue, dest}, column=2) == {
        "\texchange\t%s\tqueue\t%s\t[]" % (queue, queue),
        "%s\texchange\t%s\tqueue\ta.#\t[]" % (source, queue),
        '%s\texchange\t%s\tqueue\t\t[{"k","v"},{"x-match","any"}]' % (dest, queue),
        "%s\texchange\t%s\texchange\tk\t[]" % (source, dest)}, rows


def test_purge_queue(ch, cleanup):
    queue = cleanup.queue(uniq("purge"))
    ch.queue_declare(queue)
    publish(ch, queue, 3)
    check(ctl("purge_queue", *(VHOST_ARGS + [queue])), 0, ["Purging queue '%s' in vhost '%s' ..." % (queue, VHOST)], [])
    assert ch.queue_declare(queue, passive=True).method.message_count == 0


def test_purge_queue_missing_fails():
    ghost = uniq("nosuch")
    check(ctl("purge_queue", *(VHOST_ARGS + [ghost])), 69, ["Purging queue '%s' in vhost '%s' ..." % (ghost, VHOST)],
          NONEMPTY)


def deleting_queue(queue, condition=""):
    return "Deleting queue '%s' on vhost '%s'%s ..." % (queue, VHOST, condition)


def test_delete_queue(ch, cleanup):
    queue = cleanup.queue(uniq("del"))
    ch.queue_declare(queue)
    publish(ch, queue, 2)
    check(ctl("delete_queue", *(VHOST_ARGS + [queue])), 0,
          [deleting_queue(queue), "Queue was successfully deleted with 2 ready messages"], [])
    check(ctl("delete_queue", *(VHOST_ARGS + [queue])), 64, [deleting_queue(queue)], ["Error:", "Queue not found"])


def test_delete_queue_if_empty_keeps_non_empty_queue(ch, cleanup):
    queue = cleanup.queue(uniq("ifempty"))
    ch.queue_declare(queue)
    publish(ch, queue, 1)
    check(ctl("delete_queue", *(VHOST_ARGS + [queue, "--if-empty"])), 64,
          [deleting_queue(queue, " if queue is empty")], ["Error:", "Queue is not empty"])
    assert ch.queue_declare(queue, passive=True).method.message_count == 1


# ---------------------------------------------------------------- connections, channels, consumers
@pytest.fixture
def busy_user(accounts, connection_factory, cleanup):
    """A user's connection (named) with 2 channels: channel 1 has a no-ack consumer, channel 2
    (prefetch 5) a manual-ack consumer holding one message."""
    user = accounts.new_user(PASSWORD, "busy")
    accounts.grant(user, VHOST)
    name = uniq("conn")
    conn = connection_factory(client_properties={"connection_name": name}, **login(user, PASSWORD, VHOST))
    first = conn.channel()
    noack, acked = cleanup.queue(uniq("noack")), cleanup.queue(uniq("acked"))
    first.queue_declare(noack)
    first.queue_declare(acked)
    publish(first, acked, 1)
    first.basic_consume(noack, Collector(), auto_ack=True, consumer_tag=noack + "-tag")
    _, tag = hold_one_unacked(conn, acked, prefetch=5)
    return dict(user=user, name=name, conn=conn, noack=noack, acked=acked, tag=tag)


def test_list_connections(busy_user):
    columns = ["name", "user", "vhost", "peer_host", "state", "channels"]
    rows = rows_for(table(ctl("list_connections", *columns), ["Listing connections ...", "\t".join(columns)]),
                    {busy_user["user"]}, column=1)
    assert len(rows) == 1, rows
    assert re.fullmatch(r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d\t%s\t%s\t127\.0\.0\.1\trunning\t2"
                        % (PORT, re.escape(busy_user["user"]), re.escape(VHOST)), rows.pop())
    rows = rows_for(table(ctl("-q", "list_connections", "user", "client_properties"), ["user\tclient_properties"]),
                    {busy_user["user"]})
    assert len(rows) == 1 and '{"connection_name","%s"}' % busy_user["name"] in rows.pop(), rows


def test_list_channels(busy_user):
    columns = ["number", "user", "vhost", "consumer_count", "messages_unacknowledged", "prefetch_count"]
    poll_own_rows(["list_channels"] + columns, ["Listing channels ...", "\t".join(columns)], {
        "1\t%s\t%s\t1\t0\t0" % (busy_user["user"], VHOST),
        "2\t%s\t%s\t1\t1\t5" % (busy_user["user"], VHOST)}, column=1)


def test_list_consumers(busy_user):
    columns = ["queue_name", "consumer_tag", "ack_required", "prefetch_count", "active"]
    poll_own_rows(["list_consumers"] + VHOST_ARGS + columns,
                  ["Listing consumers in vhost %s ..." % VHOST, "\t".join(columns)], {
                      "%s\t%s-tag\tfalse\t0\ttrue" % (busy_user["noack"], busy_user["noack"]),
                      "%s\t%s\ttrue\t5\ttrue" % (busy_user["acked"], busy_user["tag"])})


def test_close_connection(busy_user):
    rows = table(ctl("-q", "list_connections", "pid", "user"), ["pid\tuser"])
    pids = [row.split("\t")[0] for row in rows if row.split("\t")[1] == busy_user["user"]]
    assert len(pids) == 1, rows
    check(ctl("close_connection", pids[0], "closed by the test"), 0,
          ["Closing connection %s, reason: closed by the test..." % pids[0]])
    exc = wait_closed_by_broker(busy_user["conn"])
    assert (exc.reply_code, exc.reply_text) == (320, "CONNECTION_FORCED - closed by the test")


def test_close_all_connections_in_vhost(accounts, vhost, connection_factory):
    user = accounts.new_user(PASSWORD, "closeall")
    accounts.grant(user, vhost)
    victims = [connection_factory(**login(user, PASSWORD, vhost)) for _ in range(2)]
    bystander = connection_factory()  # another vhost: must survive
    check(ctl("close_all_connections", "-p", vhost, "maintenance now"), 0,
          ["Closing all connections in vhost %s, reason: maintenance now..." % vhost, "Closed 2 connections"])
    for conn in victims:
        exc = wait_closed_by_broker(conn)
        assert (exc.reply_code, exc.reply_text) == (320, "CONNECTION_FORCED - maintenance now")
    assert bystander.channel().is_open


# ---------------------------------------------------------------- definitions
EXPORT_KEYS = {"users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
               "policies", "queues", "exchanges", "bindings"}


def test_export_definitions_to_stdout(accounts, user, vhost, connection_factory):
    ctl_ok("set_permissions", "-p", vhost, user, "^[qx]$", ".*", ".*")
    ctl_ok("set_topic_permissions", "-p", vhost, user, "amq.topic", "^{username}", "^x")
    ch = connection_factory(**login(user, PASSWORD, vhost)).channel()
    ch.queue_declare("q", durable=True, arguments={"x-max-length": 10})
    ch.exchange_declare("x", "topic", durable=True)
    ch.queue_bind("q", "x", "a.#")
    res = check(ctl("export_definitions", "-"), 0, err=[])
    defs = json.loads(res.out)
    assert EXPORT_KEYS <= set(defs), sorted(defs)
    assert [u["tags"] for u in defs["users"] if u["name"] == user] == [[]], defs["users"]
    assert vhost in [v["name"] for v in defs["vhosts"]], defs["vhosts"]
    assert {"user": user, "vhost": vhost, "configure": "^[qx]$", "write": ".*", "read": ".*"} in defs["permissions"]
    assert {"user": user, "vhost": vhost, "exchange": "amq.topic", "write": "^{username}",
            "read": "^x"} in defs["topic_permissions"]
    assert {"name": "q", "vhost": vhost, "durable": True, "auto_delete": False, "type": "classic",
            "arguments": {"x-max-length": 10}} in defs["queues"]
    assert {"name": "x", "vhost": vhost, "type": "topic", "durable": True, "auto_delete": False,
            "arguments": {}} in defs["exchanges"]
    assert {"source": "x", "vhost": vhost, "destination": "q", "destination_type": "queue", "routing_key": "a.#",
            "arguments": {}} in defs["bindings"]


def test_export_definitions_to_file(user, shared_dir):
    path = os.path.join(shared_dir, "defs.json")
    check(ctl("export_definitions", path), 0, ['Exporting definitions in JSON to a file at "%s" ...' % path], [])
    with open(path) as f:
        defs = json.load(f)
    assert EXPORT_KEYS <= set(defs), sorted(defs)
    assert user in [u["name"] for u in defs["users"]], defs["users"]


def write_shared(shared_dir, name, text):
    path = os.path.join(shared_dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def test_import_definitions(accounts, shared_dir, connection_factory):
    user, vhost = accounts.user(uniq("imported")), accounts.vhost(uniq("imported"))
    path = write_shared(shared_dir, "import.json", json.dumps({
        "users": [{"name": user, "password": "imported-pw", "tags": ["monitoring"]}],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}]}))
    check(ctl("import_definitions", path), 0, [
        'Importing definitions in JSON from a file at "%s" ...' % path,
        "Successfully started definition import. This process is asynchronous and can take some time."], [])
    # the import is asynchronous on RabbitMQ: wait (bounded) until the user can log in
    deadline = time.monotonic() + 10
    while authenticate(user, "imported-pw").rc != 0 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert_authenticates(user, "imported-pw")
    ch = connection_factory(**login(user, "imported-pw", vhost)).channel()
    assert ch.queue_declare("", exclusive=True).method.queue


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing-file", "bad-json"])
def test_import_definitions_errors_exit_65(shared_dir, content):
    path = os.path.join(shared_dir, "absent.json") if content is None else write_shared(shared_dir, "bad.json", content)
    res = check(ctl("import_definitions", path), 65, err=NONEMPTY)
    assert ("does not exist" if content is None else "Failed to deserialise input") in res.err, res


# ---------------------------------------------------------------- misc
def test_await_startup():
    check(ctl("await_startup"), 0, [], [])


def test_unknown_command_exits_64():
    res = check(ctl("no_such_command"), 64, [])
    assert "Command 'no_such_command' not found" in res.err, res


def test_broker_down_exits_69(tmp_path):
    """warrenctl reaches the broker through the control socket in its data directory: point it at an
    empty one. (rabbitmqctl is covered elsewhere: stopping the shared RabbitMQ is not an option.)"""
    prefix = ctl_prefix()
    if any("rabbitmqctl" in part for part in prefix):
        pytest.skip("needs a CLI with --data-dir (warrenctl); RabbitMQ is shared and stays up")
    kept = []
    for part in prefix:
        if kept and kept[-1] == "--data-dir":
            kept.pop()
        elif not part.startswith("--data-dir="):
            kept.append(part)
    check(ctl("list_vhosts", prefix=kept + ["--data-dir", str(tmp_path)],
              env=dict(os.environ, WARREN_DATA_DIR=str(tmp_path))), 69, err=NONEMPTY)

# -*- coding: utf-8 -*-
"""Access control through pika: configure/write/read permissions, topic permissions, vhost access,
and what happens to open connections when users, vhosts and permissions change.

Covered, each with an allowed and a refused case (refusals assert the exact code and text, e.g.
403 "ACCESS_REFUSED - access to queue 'Q' in vhost '/' refused for user 'U'", and that the refused
operation changed nothing: queues keep their messages, nothing is routed; see snapshot()):
    queue.declare (configure; passive needs none; server-named: configure on the amq.gen- name),
    exchange.declare (configure; passive needs none), queue.delete / exchange.delete (configure),
    queue.bind (write on the queue, read on the exchange), exchange.bind (write on the
    destination, read on the source), basic.publish (write on the exchange, the default exchange
    is 'amq.default'), basic.get / basic.consume / queue.purge (read on the queue),
    x-dead-letter-exchange and alternate-exchange (write on that exchange), topic permissions
    with {username} expansion (publish routing key = write, binding key = read).
    Vhost access (530 NOT_ALLOWED), deleted user / deleted vhost close their connections (320),
    cleared and wrong passwords (403 login refused), a permission revoked while connected.

Permissions are set with the CLI ($WARRENCTL, see conftest.ctl); every user and vhost a test makes
is deleted afterwards. Validated against RabbitMQ 3.10.8 with:
    AMQP_PORT=5682 WARRENCTL="rabbitmqctl -n rabbit@localhost" \\
        .venv/bin/python -m pytest tests/python/test_access.py tests/python/test_ctl_admin.py -q
(reference: tools/probe-access-3.10.8.txt).
"""
import re
import uuid

import pytest
from pika.exceptions import (ChannelClosedByBroker, ProbableAccessDeniedError,
                             ProbableAuthenticationError)

from conftest import Accounts, connect, ctl_ok, login, uniq, wait_closed_by_broker

PASSWORD = "acl-secret"
SERVER_NAMED = "amq.gen-*"  # stands for the generated name in the refusal table below
LOGIN_REFUSED = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"
KINDS = ("ok", "xc", "xw", "xr", "no")


def refusal_re(what_re, user, vhost="/"):
    """Regex of the 403 text; `what_re` is a regex for e.g. "queue 'q'"."""
    return "ACCESS_REFUSED - access to %s in vhost '%s' refused for user '%s'" % (
        what_re, re.escape(vhost), re.escape(user))


def sync(ch):
    """A round trip, so that an asynchronous channel error surfaces."""
    ch.basic_qos(prefetch_count=0)


def as_user(user, vhost="/", password=PASSWORD):
    return login(user, password, vhost)


class Names:
    """Resource names of one module: `n("xw-q")` is "<prefix>-xw-q"; n.users["main"] is a user.

    Prefixes say what the main user may NOT do: ok- everything, xc- no configure, xw- no write,
    xr- no read, no- nothing at all.  fresh_*() are new names (deleted after the test)."""

    def __init__(self, prefix, users, cleanup=None, admin=None):
        self.prefix, self.users, self.cleanup, self.admin = prefix, users, cleanup, admin

    def __call__(self, key):
        return key if key.startswith("amq.") else "%s-%s" % (self.prefix, key)

    def _fresh(self, key):
        return self("%s-%s" % (key, uuid.uuid4().hex[:8]))

    def fresh_queue(self):
        return self.cleanup.queue(self._fresh("ok-q"))

    def fresh_exchange(self):
        return self.cleanup.exchange(self._fresh("ok-x"))

    def admin_queue(self):
        """A new queue made by the admin connection."""
        name = self.fresh_queue()
        self.admin.queue_declare(name)
        return name

    def admin_exchange(self):
        name = self.fresh_exchange()
        self.admin.exchange_declare(name, "direct")
        return name

    def pattern(self, key):
        return r"amq\.gen-[\w-]+" if key == SERVER_NAMED else re.escape(self(key))


def declare_resources(ch, n):
    for kind in KINDS:
        ch.queue_declare(n(kind + "-q"))
        ch.exchange_declare(n(kind + "-x"), "direct")
        ch.basic_publish("", n(kind + "-q"), b"m")
    ch.exchange_declare(n("ok-tx"), "topic")
    ch.queue_declare(n("ok-tq"))


def delete_resources(ch, n):
    for kind in KINDS:
        ch.queue_delete(n(kind + "-q"))
        ch.exchange_delete(n(kind + "-x"))
    ch.queue_delete(n("ok-tq"))
    ch.exchange_delete(n("ok-tx"))


@pytest.fixture(scope="module")
def acl():
    """Two users and the resources their permissions talk about, shared by the module (tests only
    add messages and bindings to them, which no test depends on).

    main:   configure ^(P-(ok|xw|xr)-.*|amq\\.gen-.*)$  write ^(P-(ok|xc|xr)-.*|amq\\.default)$
            read ^P-(ok|xc|xw)-.*$; topic permissions on P-ok-tx: write ^{username}\\.  read ^r\\.
    strict: ^P-ok-.*$ for all three (so no server-named queues and no default exchange)."""
    prefix = uniq("acl")
    accounts = Accounts()
    admin = connect()
    try:
        users = {"main": accounts.new_user(PASSWORD, "acl-main"),
                 "strict": accounts.new_user(PASSWORD, "acl-strict")}
        n = Names(prefix, users)
        declare_resources(admin.channel(), n)
        accounts.grant(users["main"], "/", r"^(%s-(ok|xw|xr)-.*|amq\.gen-.*)$" % prefix,
                       r"^(%s-(ok|xc|xr)-.*|amq\.default)$" % prefix, r"^%s-(ok|xc|xw)-.*$" % prefix)
        ctl_ok("set_topic_permissions", "-p", "/", users["main"], n("ok-tx"), r"^{username}\.", r"^r\.")
        only_ok = "^%s-ok-.*$" % prefix
        accounts.grant(users["strict"], "/", only_ok, only_ok, only_ok)
        yield n
    finally:
        accounts.cleanup()
        delete_resources(admin.channel(), Names(prefix, {}))
        admin.close()


@pytest.fixture
def names(acl, ch, cleanup):
    return Names(acl.prefix, acl.users, cleanup, ch)


@pytest.fixture
def user_channel(acl, connection_factory):
    """user_channel("main"|"strict") -> (user name, channel in confirm mode)."""

    def make(who):
        user = acl.users[who]
        channel = connection_factory(**as_user(user)).channel()
        channel.confirm_delivery()
        return user, channel

    return make


def consume_then_cancel(ch, queue):
    ch.basic_cancel(ch.basic_consume(queue, lambda *a: None))


# (test id, operation(names, channel)) — must succeed for the main user
ALLOWED = [
    ("queue.declare", lambda n, ch: ch.queue_declare(n.fresh_queue())),
    ("queue.declare-passive-needs-none", lambda n, ch: ch.queue_declare(n("no-q"), passive=True)),
    ("queue.declare-server-named", lambda n, ch: ch.queue_declare("", exclusive=True)),
    ("exchange.declare", lambda n, ch: ch.exchange_declare(n.fresh_exchange(), "direct")),
    ("exchange.declare-passive-needs-none",
     lambda n, ch: ch.exchange_declare(n("no-x"), "direct", passive=True)),
    ("queue.delete", lambda n, ch: ch.queue_delete(n.admin_queue())),
    ("exchange.delete", lambda n, ch: ch.exchange_delete(n.admin_exchange())),
    # write on the queue (xr- has write) and read on the exchange (xw- has read) are enough
    ("queue.bind", lambda n, ch: ch.queue_bind(n("xr-q"), n("xw-x"), "k")),
    ("exchange.bind", lambda n, ch: ch.exchange_bind(n("xr-x"), n("xw-x"), "k")),
    ("basic.publish", lambda n, ch: ch.basic_publish(n("xc-x"), "k", b"m")),
    ("basic.publish-default-exchange", lambda n, ch: ch.basic_publish("", n("ok-q"), b"m")),
    ("basic.get", lambda n, ch: ch.basic_get(n("xw-q"))),
    ("basic.consume", lambda n, ch: consume_then_cancel(ch, n("xw-q"))),
    ("queue.purge", lambda n, ch: ch.queue_purge(n.admin_queue())),
    ("queue.declare-dead-letter-exchange",
     lambda n, ch: ch.queue_declare(n.fresh_queue(), arguments={"x-dead-letter-exchange": n("xc-x")})),
    ("exchange.declare-alternate-exchange",
     lambda n, ch: ch.exchange_declare(n.fresh_exchange(), "direct", arguments={"alternate-exchange": n("xc-x")})),
    ("topic-publish", lambda n, ch: ch.basic_publish(n("ok-tx"), n.users["main"] + ".news", b"m")),
    ("topic-bind", lambda n, ch: ch.queue_bind(n("ok-tq"), n("ok-tx"), "r.a")),
]

# (test id, user, operation(names, channel), refused resource kind, resource key)
REFUSED = [
    ("queue.declare", "main", lambda n, ch: ch.queue_declare(n("xc-q")), "queue", "xc-q"),
    ("queue.declare-server-named", "strict", lambda n, ch: ch.queue_declare("", exclusive=True),
     "queue", SERVER_NAMED),
    ("exchange.declare", "main", lambda n, ch: ch.exchange_declare(n("xc-x"), "direct"), "exchange", "xc-x"),
    ("queue.delete", "main", lambda n, ch: ch.queue_delete(n("xc-q")), "queue", "xc-q"),
    ("exchange.delete", "main", lambda n, ch: ch.exchange_delete(n("xc-x")), "exchange", "xc-x"),
    ("queue.bind-write-on-queue", "main", lambda n, ch: ch.queue_bind(n("xw-q"), n("ok-x"), "k"),
     "queue", "xw-q"),
    ("queue.bind-read-on-exchange", "main", lambda n, ch: ch.queue_bind(n("ok-q"), n("xr-x"), "k"),
     "exchange", "xr-x"),
    ("exchange.bind-write-on-destination", "main", lambda n, ch: ch.exchange_bind(n("xw-x"), n("ok-x"), "k"),
     "exchange", "xw-x"),
    ("exchange.bind-read-on-source", "main", lambda n, ch: ch.exchange_bind(n("ok-x"), n("xr-x"), "k"),
     "exchange", "xr-x"),
    ("basic.publish", "main", lambda n, ch: ch.basic_publish(n("xw-x"), "k", b"m"), "exchange", "xw-x"),
    ("basic.publish-default-exchange", "strict", lambda n, ch: ch.basic_publish("", n("ok-q"), b"m"),
     "exchange", "amq.default"),
    ("basic.get", "main", lambda n, ch: ch.basic_get(n("xr-q")), "queue", "xr-q"),
    ("basic.consume", "main", lambda n, ch: ch.basic_consume(n("xr-q"), lambda *a: None), "queue", "xr-q"),
    ("queue.purge", "main", lambda n, ch: ch.queue_purge(n("xr-q")), "queue", "xr-q"),
    ("queue.declare-dead-letter-exchange", "main",
     lambda n, ch: ch.queue_declare(n.fresh_queue(), arguments={"x-dead-letter-exchange": n("xw-x")}),
     "exchange", "xw-x"),
    ("exchange.declare-alternate-exchange", "main",
     lambda n, ch: ch.exchange_declare(n.fresh_exchange(), "direct", arguments={"alternate-exchange": n("xw-x")}),
     "exchange", "xw-x"),
]


@pytest.mark.parametrize("operation", [row[1] for row in ALLOWED], ids=[row[0] for row in ALLOWED])
def test_allowed(names, user_channel, operation):
    _, channel = user_channel("main")
    operation(names, channel)
    sync(channel)
    assert channel.is_open


def assert_refused(operation, pattern):
    with pytest.raises(ChannelClosedByBroker) as ei:
        operation()
    assert ei.value.reply_code == 403, ei.value
    assert re.fullmatch(pattern, ei.value.reply_text), (ei.value.reply_text, pattern)


def snapshot(n, probe):
    """What a refused operation must leave alone: every module queue's (messages, consumers) and
    whether it and every module exchange exist, and the messages routed to `probe` (a queue the
    admin bound to every module exchange: "k" on the direct ones, "#" on the topic one)."""
    conn = connect()
    try:
        def declare(method, name, **kw):
            ch = conn.channel()
            try:
                ok = method(ch)(name, passive=True, **kw).method
                ch.close()
                return (getattr(ok, "message_count", None), getattr(ok, "consumer_count", None))
            except ChannelClosedByBroker as e:
                assert e.reply_code == 404, e
                return "missing"
        state = {}
        for kind in KINDS:
            state[n(kind + "-q")] = declare(lambda ch: ch.queue_declare, n(kind + "-q"))
            state[n(kind + "-x")] = declare(lambda ch: ch.exchange_declare, n(kind + "-x"))
        state["ok-tq"] = declare(lambda ch: ch.queue_declare, n("ok-tq"))
        state["probe"] = declare(lambda ch: ch.queue_declare, probe)
        return state
    finally:
        conn.close()


@pytest.fixture
def probe(names):
    """A queue bound to every module exchange, to see a refused publish route nothing."""
    q = names.admin_queue()
    for kind in KINDS:
        names.admin.queue_bind(q, names(kind + "-x"), "k")
    names.admin.queue_bind(q, names("ok-tx"), "#")
    return q


def assert_refused_and_unchanged(names, probe, operation, pattern):
    """The 403 with its text, and the refused operation changed nothing: the queue a refused
    delete, purge, get or consume named still has its messages (and no consumer), the exchange a
    refused delete named still exists, and a refused publish reached no queue."""
    before = snapshot(names, probe)
    assert before["probe"] == (0, 0), before
    assert_refused(operation, pattern)
    assert snapshot(names, probe) == before


@pytest.mark.parametrize("who,operation,kind,key", [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_refused(names, probe, user_channel, who, operation, kind, key):
    user, channel = user_channel(who)
    what = "%s '%s'" % (kind, names.pattern(key))
    assert_refused_and_unchanged(names, probe, lambda: (operation(names, channel), sync(channel)),
                                 refusal_re(what, user))


@pytest.mark.parametrize("operation,topic", [
    (lambda n, ch: ch.basic_publish(n("ok-tx"), "other.news", b"m"), "other.news"),
    (lambda n, ch: ch.queue_bind(n("ok-tq"), n("ok-tx"), "x.a"), "x.a"),
], ids=["publish-routing-key-needs-write", "queue.bind-binding-key-needs-read"])
def test_topic_refused(names, probe, user_channel, operation, topic):
    user, channel = user_channel("main")
    what = re.escape("topic '%s' in exchange '%s'" % (topic, names("ok-tx")))
    assert_refused_and_unchanged(names, probe, lambda: (operation(names, channel), sync(channel)),
                                 refusal_re(what, user))


# ---------------------------------------------------------------- vhost access and logins
def assert_vhost_refused(user, vhost):
    with pytest.raises(ProbableAccessDeniedError) as ei:
        connect(**as_user(user, vhost=vhost))
    assert "(530)" in str(ei.value), ei.value
    assert "NOT_ALLOWED - access to vhost '%s' refused for user '%s'" % (vhost, user) in str(ei.value)


def test_vhost_without_permissions_refused(accounts):
    user = accounts.new_user(PASSWORD, "novhost")
    assert_vhost_refused(user, "/")


def test_second_vhost_usable_when_permitted(accounts, connection_factory):
    user = accounts.new_user(PASSWORD, "vhost2")
    vhost = accounts.new_vhost("acl")
    accounts.grant(user, vhost)
    channel = connection_factory(**as_user(user, vhost=vhost)).channel()
    assert channel.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    assert_vhost_refused(user, "/")


@pytest.mark.parametrize("spoil", ["clear_password", "wrong_password"])
def test_login_refused(accounts, spoil):
    user = accounts.new_user(PASSWORD, "login")
    accounts.grant(user)
    password = PASSWORD
    if spoil == "clear_password":
        ctl_ok("clear_password", user)
    else:
        password = PASSWORD + "-wrong"
    with pytest.raises(ProbableAuthenticationError) as ei:
        connect(**as_user(user, password=password))
    assert "(403)" in str(ei.value), ei.value
    assert LOGIN_REFUSED in str(ei.value), ei.value


def test_deleting_user_closes_its_connections(accounts, connection_factory):
    user = accounts.new_user(PASSWORD, "deleted")
    accounts.grant(user)
    conn = connection_factory(**as_user(user))
    conn.channel()
    ctl_ok("delete_user", user)
    exc = wait_closed_by_broker(conn)
    assert (exc.reply_code, exc.reply_text) == (320, "CONNECTION_FORCED - user '%s' is deleted" % user)


def test_deleting_vhost_closes_its_connections(accounts, connection_factory):
    user = accounts.new_user(PASSWORD, "vdel")
    vhost = accounts.new_vhost("deleted")
    accounts.grant(user, vhost)
    conn = connection_factory(**as_user(user, vhost=vhost))
    conn.channel().queue_declare(uniq("in-deleted-vhost"))
    ctl_ok("delete_vhost", vhost)
    exc = wait_closed_by_broker(conn)
    assert (exc.reply_code, exc.reply_text) == (320, "CONNECTION_FORCED - vhost '%s' is deleted" % vhost)


def test_revoked_write_refuses_next_publish(accounts, connection_factory, cleanup):
    """set_permissions on a connected user: the next publish is refused.

    RabbitMQ 3.10 caches successful permission checks per channel, so a channel that already
    published keeps publishing after the revoke; only a NEW channel sees it. Warren checks on
    every operation, so on any broker whose product is not "RabbitMQ" the already open channel
    must be refused too."""
    user = accounts.new_user(PASSWORD, "revoke")
    accounts.grant(user)
    queue = cleanup.queue(uniq("revoke"))
    conn = connection_factory(**as_user(user))
    old = conn.channel()
    old.confirm_delivery()
    old.queue_declare(queue)
    old.basic_publish("", queue, b"before")
    accounts.grant(user, "/", ".*", "^$", ".*")
    refused = refusal_re(re.escape("exchange 'amq.default'"), user)
    if conn._impl.server_properties.get("product") != "RabbitMQ":  # noqa: SLF001 - see docstring
        assert_refused(lambda: old.basic_publish("", queue, b"after"), refused)
    new = conn.channel()
    new.confirm_delivery()
    assert_refused(lambda: new.basic_publish("", queue, b"after"), refused)

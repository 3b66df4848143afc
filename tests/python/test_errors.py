# -*- coding: utf-8 -*-
"""Error paths as pika surfaces them; codes and texts as measured on RabbitMQ 3.10
(docs/rabbitmq-behaviour.md). Exact texts are asserted where clients match on them; otherwise
the stable "CODE_NAME - ..." prefix."""
import pika
import pytest
from pika.exceptions import (ChannelClosedByBroker, ConnectionClosedByBroker,
                             ProbableAccessDeniedError, ProbableAuthenticationError)

from conftest import PASS, USER, VHOST, connect, get_message, uniq, wait_until

LOCKED = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '%s'"


def no_queue(q):
    return "NOT_FOUND - no queue '%s' in vhost '%s'" % (q, VHOST)


def no_exchange(x):
    return "NOT_FOUND - no exchange '%s' in vhost '%s'" % (x, VHOST)


def channel_error(fn):
    with pytest.raises(ChannelClosedByBroker) as ei:
        fn()
    return ei.value.reply_code, ei.value.reply_text


def connection_error(fn):
    with pytest.raises(ConnectionClosedByBroker) as ei:
        fn()
    return ei.value.reply_code, ei.value.reply_text


def sync(ch):
    """A round trip, so an asynchronous error (after publish/ack) surfaces."""
    ch.basic_qos(prefetch_count=0)


# ---------------------------------------------------------------- connection
def test_wrong_password():
    with pytest.raises(ProbableAuthenticationError) as ei:
        connect(credentials=pika.PlainCredentials(USER, PASS + "-wrong"))
    text = str(ei.value)
    assert "403" in text
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in text


def test_unknown_user():
    with pytest.raises(ProbableAuthenticationError) as ei:
        connect(credentials=pika.PlainCredentials(uniq("nobody"), "x"))
    assert "ACCESS_REFUSED" in str(ei.value)


def test_missing_vhost():
    vhost = uniq("nosuchvhost")
    with pytest.raises(ProbableAccessDeniedError) as ei:
        connect(virtual_host=vhost)
    assert "(530) 'NOT_ALLOWED - vhost %s not found'" % vhost in str(ei.value)


def test_connection_usable_after_channel_error(conn):
    code, _ = channel_error(lambda: conn.channel().queue_declare(uniq("missing"), passive=True))
    assert code == 404
    assert conn.is_open
    ch = conn.channel()
    assert ch.queue_declare("", exclusive=True).method.queue


# ---------------------------------------------------------------- queues
def test_queue_declare_passive_missing(conn):
    q = uniq("missing")
    assert channel_error(lambda: conn.channel().queue_declare(q, passive=True)) == (404, no_queue(q))


def test_queue_redeclare_different_durable(conn, cleanup):
    q = cleanup.queue(uniq("dur"))
    conn.channel().queue_declare(q, durable=False)
    code, text = channel_error(lambda: conn.channel().queue_declare(q, durable=True))
    assert code == 406
    assert text == ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '%s': "
                    "received 'true' but current is 'false'" % (q, VHOST))


def test_queue_redeclare_different_auto_delete(conn, cleanup):
    q = cleanup.queue(uniq("ad"))
    conn.channel().queue_declare(q)
    code, text = channel_error(lambda: conn.channel().queue_declare(q, auto_delete=True))
    assert code == 406
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s'" % q)


def test_queue_redeclare_different_message_ttl(conn, cleanup):
    q = cleanup.queue(uniq("ttl"))
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 1000})
    code, text = channel_error(
        lambda: conn.channel().queue_declare(q, arguments={"x-message-ttl": 2000}))
    assert code == 406
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s'" % q)
    code, text = channel_error(lambda: conn.channel().queue_declare(q))
    assert code == 406
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl'")
    # same arguments: fine
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 1000})


def test_queue_invalid_message_ttl(conn):
    q = uniq("badttl")
    code, text = channel_error(
        lambda: conn.channel().queue_declare(q, arguments={"x-message-ttl": -1}))
    assert code == 406
    assert text.startswith("PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '%s'" % q)


def test_exclusive_queue_of_other_connection(conn, connection_factory, cleanup):
    q = cleanup.queue(uniq("excl"))
    conn.channel().queue_declare(q, exclusive=True)
    other = connection_factory()
    for action in (lambda c: c.queue_declare(q, exclusive=True),
                   lambda c: c.queue_declare(q),
                   lambda c: c.queue_declare(q, passive=True),
                   lambda c: c.basic_consume(q, lambda *a: None),
                   lambda c: c.basic_get(q),
                   lambda c: c.queue_purge(q),
                   lambda c: c.queue_delete(q),
                   lambda c: c.queue_bind(q, "amq.direct", "k")):
        code, text = channel_error(lambda: action(other.channel()))
        assert code == 405
        assert text.startswith(LOCKED % (q, VHOST)), text
    # publishing to it is allowed
    och = other.channel()
    och.confirm_delivery()
    och.basic_publish("", q, "hi")
    assert get_message(conn.channel(), q, auto_ack=True)[2] == b"hi"


def test_queue_name_reserved_prefix(conn):
    code, text = channel_error(lambda: conn.channel().queue_declare("amq.foo"))
    assert (code, text) == (403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'")
    # passive declare of a missing amq.* name is a plain 404
    assert channel_error(lambda: conn.channel().queue_declare("amq.foo", passive=True)) == \
        (404, no_queue("amq.foo"))


def test_queue_delete_if_unused(conn, cleanup):
    q = cleanup.queue(uniq("inuse"))
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    code, text = channel_error(lambda: conn.channel().queue_delete(q, if_unused=True))
    assert (code, text) == (406, "PRECONDITION_FAILED - queue '%s' in vhost '%s' in use" % (q, VHOST))


def test_queue_delete_if_empty(conn, cleanup):
    q = cleanup.queue(uniq("notempty"))
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, "x")
    code, text = channel_error(lambda: conn.channel().queue_delete(q, if_empty=True))
    assert (code, text) == (406, "PRECONDITION_FAILED - queue '%s' in vhost '%s' not empty" % (q, VHOST))
    # an empty, unused queue passes both checks
    conn.channel().queue_purge(q)
    assert conn.channel().queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0


def test_queue_delete_missing_is_ok(conn):
    assert conn.channel().queue_delete(uniq("missing")).method.message_count == 0


def test_queue_purge_missing(conn):
    q = uniq("missing")
    assert channel_error(lambda: conn.channel().queue_purge(q)) == (404, no_queue(q))


def test_queue_bind_missing_exchange(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    x = uniq("nox")
    assert channel_error(lambda: ch.queue_bind(q, x, "k")) == (404, no_exchange(x))


def test_queue_bind_missing_queue(conn):
    q = uniq("noq")
    assert channel_error(lambda: conn.channel().queue_bind(q, "amq.direct", "k")) == (404, no_queue(q))


def test_queue_bind_default_exchange_refused(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    assert channel_error(lambda: ch.queue_bind(q, "", "k")) == \
        (403, "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_queue_unbind_nonexistent_binding_is_ok(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, "amq.direct", "never-bound")
    assert ch.is_open


def test_consume_and_get_missing_queue(conn):
    q = uniq("missing")
    assert channel_error(lambda: conn.channel().basic_consume(q, lambda *a: None)) == (404, no_queue(q))
    assert channel_error(lambda: conn.channel().basic_get(q)) == (404, no_queue(q))


def test_exclusive_consumer_conflicts(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    code, text = channel_error(lambda: conn.channel().basic_consume(q, lambda *a: None))
    assert (code, text) == (403, "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use" % (q, VHOST))
    q2 = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q2, lambda *a: None)
    code, _ = channel_error(lambda: conn.channel().basic_consume(q2, lambda *a: None, exclusive=True))
    assert code == 403


# ---------------------------------------------------------------- exchanges
def test_exchange_declare_passive_missing(conn):
    x = uniq("nox")
    assert channel_error(lambda: conn.channel().exchange_declare(x, passive=True)) == (404, no_exchange(x))


def test_exchange_redeclare_different_type(conn, cleanup):
    x = cleanup.exchange(uniq("retype"))
    conn.channel().exchange_declare(x, "direct")
    code, text = channel_error(lambda: conn.channel().exchange_declare(x, "fanout"))
    assert code == 406
    assert text == ("PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '%s': "
                    "received 'fanout' but current is 'direct'" % (x, VHOST))


def test_exchange_unknown_type_is_channel_error(conn):
    # RabbitMQ 3.10 closed the whole connection (503 COMMAND_INVALID - invalid exchange type 'foo');
    # releases since 3.12.x (rabbitmq-server PR 11214) close only the channel with 406, which is
    # what Warren does: one bad declare must not kill a pool's other channels.
    code, text = channel_error(lambda: conn.channel().exchange_declare(uniq("x"), "foo"))
    assert (code, text) == (406, "PRECONDITION_FAILED - unknown exchange type 'foo'")
    assert conn.is_open


def test_exchange_name_reserved_prefix(conn):
    code, text = channel_error(lambda: conn.channel().exchange_declare("amq.foo", "direct"))
    assert (code, text) == (403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'")


def test_builtin_exchanges_exist(conn):
    ch = conn.channel()
    for name, kind in (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                       ("amq.headers", "headers"), ("amq.match", "headers")):
        ch.exchange_declare(name, kind, passive=True)
        ch.exchange_declare(name, kind, durable=True)  # equivalent redeclare is allowed


def test_default_exchange_operations_refused(conn):
    refused = (403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    assert channel_error(lambda: conn.channel().exchange_declare("", "direct")) == refused
    assert channel_error(lambda: conn.channel().exchange_delete("")) == refused


def test_exchange_delete_missing_is_ok(conn):
    ch = conn.channel()
    ch.exchange_delete(uniq("nox"))
    assert ch.is_open


def test_exchange_delete_system_exchange_refused(conn):
    code, text = channel_error(lambda: conn.channel().exchange_delete("amq.fanout"))
    assert (code, text) == (403, "ACCESS_REFUSED - deletion of system exchange 'amq.fanout' in vhost '%s' not allowed" % VHOST)


def test_exchange_delete_if_unused(conn, cleanup):
    x = cleanup.exchange(uniq("xinuse"))
    ch = conn.channel()
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    code, text = channel_error(lambda: conn.channel().exchange_delete(x, if_unused=True))
    assert (code, text) == (406, "PRECONDITION_FAILED - exchange '%s' in vhost '%s' in use" % (x, VHOST))
    ch.queue_unbind(q, x, "k")
    conn.channel().exchange_delete(x, if_unused=True)


def test_publish_to_missing_exchange(conn):
    ch = conn.channel()
    x = uniq("nox")
    ch.basic_publish(x, "k", "x")
    assert channel_error(lambda: sync(ch)) == (404, no_exchange(x))


def test_publish_to_missing_exchange_in_confirm_mode(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x = uniq("nox")
    assert channel_error(lambda: ch.basic_publish(x, "k", "x")) == (404, no_exchange(x))


def test_publish_to_internal_exchange(conn, cleanup):
    x = cleanup.exchange(uniq("internal"))
    ch = conn.channel()
    ch.exchange_declare(x, "fanout", internal=True)
    ch.basic_publish(x, "k", "x")
    code, text = channel_error(lambda: sync(ch))
    assert (code, text) == (403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '%s'" % (x, VHOST))


def test_exchange_to_exchange_binding(conn, cleanup):
    src = cleanup.exchange(uniq("src"))
    dst = cleanup.exchange(uniq("dst"))
    ch = conn.channel()
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "fanout", internal=True)
    ch.exchange_bind(destination=dst, source=src, routing_key="a.*")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, dst)
    ch.confirm_delivery()
    ch.basic_publish(src, "a.b", "yes")
    ch.basic_publish(src, "b.b", "no")
    assert get_message(ch, q, auto_ack=True)[2] == b"yes"
    assert ch.basic_get(q) == (None, None, None)
    missing = uniq("nox")
    assert channel_error(lambda: conn.channel().exchange_bind(missing, src, "k")) == (404, no_exchange(missing))


# ---------------------------------------------------------------- basic / tx / confirm
@pytest.mark.parametrize("op", ["ack", "nack", "reject"])
def test_unknown_delivery_tag(conn, op):
    ch = conn.channel()
    getattr(ch, "basic_" + op)(99)
    assert channel_error(lambda: sync(ch)) == (406, "PRECONDITION_FAILED - unknown delivery tag 99")


def test_double_ack(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, "x")
    m, _, _ = get_message(ch, q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    assert channel_error(lambda: sync(ch)) == \
        (406, "PRECONDITION_FAILED - unknown delivery tag %d" % m.delivery_tag)


def test_ack_of_auto_ack_delivery(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, "x")
    m, _, _ = get_message(ch, q, auto_ack=True)
    ch.basic_ack(m.delivery_tag)
    assert channel_error(lambda: sync(ch))[0] == 406


def test_qos_prefetch_size_not_implemented(conn):
    code, text = connection_error(lambda: conn.channel().basic_qos(prefetch_size=1000, prefetch_count=1))
    assert (code, text) == (540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)")


def test_recover_without_requeue_not_implemented(conn):
    code, text = connection_error(lambda: conn.channel().basic_recover(requeue=False))
    assert (code, text) == (540, "NOT_IMPLEMENTED - requeue=false")


def test_tx_commit_and_rollback_without_select(conn):
    not_tx = (406, "PRECONDITION_FAILED - channel is not transactional")
    assert channel_error(lambda: conn.channel().tx_commit()) == not_tx
    assert channel_error(lambda: conn.channel().tx_rollback()) == not_tx


def test_confirm_after_tx_and_tx_after_confirm(conn):
    ch = conn.channel()
    ch.tx_select()
    assert channel_error(ch.confirm_delivery) == \
        (406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")
    ch = conn.channel()
    ch.confirm_delivery()
    assert channel_error(ch.tx_select) == \
        (406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


def test_publish_user_id_mismatch(conn):
    ch = conn.channel()
    ch.basic_publish("", uniq("q"), "x", pika.BasicProperties(user_id=USER + "-someone-else"))
    code, text = channel_error(lambda: sync(ch))
    assert code == 406
    assert text == ("PRECONDITION_FAILED - user_id property set to '%s-someone-else' but "
                    "authenticated user was '%s'" % (USER, USER))


# ---------------------------------------------------------------- direct reply-to
def test_direct_reply_to_requires_consumer(conn):
    ch = conn.channel()
    ch.basic_publish("", uniq("rpc"), "req", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    assert channel_error(lambda: sync(ch)) == \
        (406, "PRECONDITION_FAILED - fast reply consumer does not exist")


def test_direct_reply_to_requires_no_ack(conn):
    code, text = channel_error(
        lambda: conn.channel().basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False))
    assert (code, text) == (406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_direct_reply_to_stale_address_is_dropped(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "amq.rabbitmq.reply-to.bogus-address", "late reply")
    assert ch.is_open
    assert wait_until(conn, lambda: ch.is_open, timeout=0.2)

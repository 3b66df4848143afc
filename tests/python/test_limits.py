"""Vhost and user limits (issue 11), as rabbitmqctl 3.10 and RabbitMQ's AMQP errors (measured
on 3.10.8): set/clear/list_vhost_limits, set/clear/list_user_limits, max-connections (vhost and
user), max-queues, max-channels."""
import json

import pika
import pytest

from conftest import ctl, ctl_ok, params, uniq
from warren_process import warren  # noqa: F401  (fixture)


@pytest.fixture
def limited_vhost():
    name = uniq("limv")
    ctl_ok("add_vhost", name)
    ctl_ok("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    ctl("delete_vhost", name)


def test_vhost_limits_cli(limited_vhost):
    v = limited_vhost
    r = ctl("set_vhost_limits", "-p", v, '{"max-connections":2,"max-queues":3}')
    assert (r.rc, r.out) == (0, f'Setting vhost limits to "{{"max-connections":2,"max-queues":3}}" for vhost "{v}" ...\n')
    assert ctl_ok("list_vhost_limits", "-p", v) == \
        f'Listing limits for vhost "{v}" ...\n{{"max-connections":2,"max-queues":3}}\n'
    assert f'{v}\t{{"max-connections":2,"max-queues":3}}' in ctl_ok("list_vhost_limits", "--global")
    r = ctl("set_vhost_limits", "-p", v, '{"foo":1}')
    assert (r.rc, r.err) == (69, 'Error:\nValidation failed\n\nUnrecognised terms [{<<"foo">>,1}] in limits\n\n')
    r = ctl("set_vhost_limits", "-p", v, '{"max-queues":"x"}')
    assert (r.rc, r.err) == (69, 'Error:\nValidation failed\n\nmax-queues should be a number, actually was <<"x">>\n\n')
    r = ctl("list_vhost_limits", "-p", "nope-vhost")
    assert (r.rc, r.err.strip()) == (65, "Virtual host 'nope-vhost' does not exist")
    assert ctl_ok("clear_vhost_limits", "-p", v) == f'Clearing vhost "{v}" limits ...\n'
    assert ctl_ok("list_vhost_limits", "-p", v) == f'Listing limits for vhost "{v}" ...\n\n'


def test_vhost_max_connections_and_max_queues(limited_vhost):
    v = limited_vhost
    ctl_ok("set_vhost_limits", "-p", v, '{"max-connections":1,"max-queues":1}')
    c1 = pika.BlockingConnection(params(virtual_host=v))
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        pika.BlockingConnection(params(virtual_host=v))
    assert f"NOT_ALLOWED - access to vhost '{v}' refused for user 'guest': connection limit (1) is reached" in str(e.value)
    ch = c1.channel()
    ch.queue_declare("a")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("b")
    assert (e.value.reply_code, e.value.reply_text) == (
        406, f"PRECONDITION_FAILED - cannot declare queue 'b': queue limit in vhost '{v}' (1) is reached")
    c1.channel().queue_declare("a", passive=True)  # existing queues still declare
    # Raised at once: a second connection and queue are allowed now.
    ctl_ok("set_vhost_limits", "-p", v, '{"max-connections":-1,"max-queues":2}')
    c2 = pika.BlockingConnection(params(virtual_host=v))
    c2.channel().queue_declare("b")
    c1.close()
    c2.close()


def test_user_limits(accounts):
    user = uniq("limu")
    accounts.user(user)
    ctl_ok("add_user", user, "pw")
    ctl_ok("set_permissions", user, ".*", ".*", ".*")
    r = ctl("set_user_limits", user, '{"max-connections":1,"max-channels":2}')
    assert (r.rc, r.out) == (0, f'Setting user limits to "{{"max-connections":1,"max-channels":2}}" for user "{user}" ...\n')
    assert ctl_ok("list_user_limits", "--user", user) == \
        f'Listing limits for user "{user}" ...\n{{"max-channels":2,"max-connections":1}}\n'
    r = ctl("set_user_limits", user, '{"foo":1}')
    assert (r.rc, r.err) == (69, 'Error:\nUnrecognised terms [{<<"foo">>,1}] in user-limits\n')
    creds = pika.PlainCredentials(user, "pw")
    c1 = pika.BlockingConnection(params(credentials=creds))
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        pika.BlockingConnection(params(credentials=creds))
    assert f"NOT_ALLOWED - connection refused for user '{user}': user connection limit (1) is reached" in str(e.value)
    c1.channel()
    c1.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c1.channel()
    assert (e.value.reply_code, e.value.reply_text) == (
        530, f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the maximum allowed user limit of (2)")
    assert ctl_ok("clear_user_limits", user, "max-channels") == f'Clearing "max-channels" limit for user "{user}" ...\n'
    assert ctl_ok("clear_user_limits", user, "all") == f'Clearing all limits for user "{user}" ...\n'
    assert ctl_ok("list_user_limits", "--user", user).endswith("\n{}\n")
    pika.BlockingConnection(params(credentials=creds)).close()


def test_node_connection_max(warren):
    w = warren(["--connection-max", "2"])
    a, b = w.connect(), w.connect()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        w.connect()
    assert "NOT_ALLOWED - connection refused: node connection limit (2) is reached" in str(e.value)
    a.close()
    c = w.connect()  # room again
    b.close()
    c.close()
    assert w.log().count("node connection limit (2) is reached") == 1  # logged once


def test_consumer_max_per_channel(warren):
    w = warren(["--consumer-max-per-channel", "2"])
    c = w.connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None)
    ch.basic_consume(q, lambda *a: None)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_consume(q, lambda *a: None)
    assert (e.value.reply_code, e.value.reply_text) == (
        530, "NOT_ALLOWED - reached maximum (2) of consumers per channel")

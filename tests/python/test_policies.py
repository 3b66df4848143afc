"""Policies and operator policies (issue 10), through warrenctl and pika: set/list/clear with
rabbitmqctl 3.10's banners, errors and exit codes (tools/probe-policies-3.10.8.txt), applied at
once to existing and new queues and exchanges, highest priority wins, the least of argument,
policy and operator policy for numeric limits, the argument first for DLX and overflow, the
policy and its effective definition in list_queues and the HTTP API, and persistence across a
restart."""
import json
import time

import pika
import pytest

from conftest import ctl, ctl_ok, uniq
from warren_process import warren  # noqa: F401  (fixture)
import mgmt


def fill(ch, q, n, body=b"m"):
    for i in range(n):
        ch.basic_publish("", q, body + b"%d" % i)


def count(conn, q):
    return conn.channel().queue_declare(q, passive=True).method.message_count


@pytest.fixture
def policy_names():
    names = []
    yield names
    for n, op in names:
        ctl("clear_operator_policy" if op else "clear_policy", n)


def test_set_list_clear_policy_banners_and_exit_codes(policy_names):
    name = uniq("pol")
    policy_names.append((name, False))
    r = ctl("set_policy", "--priority", "3", "--apply-to", "queues", name, "^pq\\.", '{"max-length":5}')
    assert r.rc == 0, r
    assert r.out == (f'Setting policy "{name}" for pattern "^pq\\." to "{{"max-length":5}}" with priority "3" '
                     f'for vhost "/" ...\n')
    out = ctl_ok("list_policies")
    assert out.startswith('Listing policies for vhost "/" ...\nvhost\tname\tpattern\tapply-to\tdefinition\tpriority\n')
    assert f'/\t{name}\t^pq\\.\tqueues\t{{"max-length":5}}\t3\n' in out
    rows = json.loads(ctl_ok("list_policies", "--formatter", "json"))
    assert {"vhost": "/", "name": name, "pattern": "^pq\\.", "apply-to": "queues",
            "definition": {"max-length": 5}, "priority": 3} in rows
    r = ctl("clear_policy", name)
    assert (r.rc, r.out) == (0, f'Clearing policy "{name}" on vhost "/" ...\n')
    policy_names.clear()
    r = ctl("clear_policy", name)
    assert (r.rc, r.err) == (69, "Error:\nParameter does not exist\n")


@pytest.mark.parametrize("definition,reason", [
    ('{"max-length":"x"}', '<<"x">> is not a valid maximum length'),
    ('{"message-ttl":-1}', "-1 is not a valid message TTL"),
    ('{"foo":1}', '[{<<"foo">>,1}] are not recognised policy settings'),
    ('{"overflow":"bad"}', '<<"bad">> is not a valid overflow value'),
    ('{"queue-mode":"bad"}', '<<"bad">> is not a valid queue-mode value'),
    ('{"expires":0}', "0 is not a valid queue expiry"),
    ('{"single-active-consumer":true}', '[{<<"single-active-consumer">>,true}] are not recognised policy settings'),
    ('{"max-priority":5}', '[{<<"max-priority">>,5}] are not recognised policy settings'),
    ("{}", "no policy provided"),
])
def test_policy_validation_errors(definition, reason):
    r = ctl("set_policy", uniq("bad"), ".*", definition)
    assert r.rc == 69, r
    assert r.err == f"Error:\nValidation failed\n\n{reason}\n"


def test_policy_cli_errors():
    r = ctl("set_policy", "p", ".*", "not json")
    assert (r.rc, r.err) == (69, "Error:\nJSON decoding error. Reason: badarg\n")
    r = ctl("set_policy", "--apply-to", "foo", "p", ".*", '{"max-length":1}')
    assert r.rc == 69 and "apply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'" in r.err
    r = ctl("set_policy", "-p", "nope-vhost", "p", ".*", '{"max-length":1}')
    assert (r.rc, r.err.strip()) == (65, "Virtual host 'nope-vhost' does not exist")
    r = ctl("set_operator_policy", "p", ".*", '{"overflow":"reject-publish"}')
    assert r.rc == 69 and '[{<<"overflow">>,<<"reject-publish">>}] are not recognised policy settings' in r.err


def test_policy_applies_to_existing_and_new_queues_at_once(conn, policy_names):
    ch = conn.channel()
    prefix = uniq("pa")
    old = ch.queue_declare(f"{prefix}.old", exclusive=True).method.queue
    fill(ch, old, 10)
    name = uniq("pol")
    policy_names.append((name, False))
    ctl_ok("set_policy", "--apply-to", "queues", name, f"^{prefix}\\.", '{"max-length":4}')
    assert count(conn, old) == 4  # lowered at once: the excess dropped from the head
    new = ch.queue_declare(f"{prefix}.new", exclusive=True).method.queue
    fill(ch, new, 10)
    assert count(conn, new) == 4
    got = [ch.basic_get(new, auto_ack=True)[2] for _ in range(4)]
    assert got == [b"m6", b"m7", b"m8", b"m9"]
    other = ch.queue_declare(uniq("zz"), exclusive=True).method.queue  # does not match
    fill(ch, other, 10)
    assert count(conn, other) == 10
    ctl_ok("clear_policy", name)
    policy_names.clear()
    fill(ch, new, 10)
    assert count(conn, new) == 10  # no limit any more


def test_priority_precedence_and_operator_caps(conn, policy_names):
    ch = conn.channel()
    prefix = uniq("pp")
    low, high, op = uniq("low"), uniq("high"), uniq("op")
    policy_names += [(low, False), (high, False), (op, True)]
    ctl_ok("set_policy", "--priority", "1", low, f"^{prefix}", '{"max-length":2,"message-ttl":60000}')
    ctl_ok("set_policy", "--priority", "5", high, f"^{prefix}", '{"max-length":6}')
    q_arg10 = ch.queue_declare(f"{prefix}.a10", exclusive=True, arguments={"x-max-length": 10}).method.queue
    q_arg3 = ch.queue_declare(f"{prefix}.a3", exclusive=True, arguments={"x-max-length": 3}).method.queue
    for q in (q_arg10, q_arg3):
        fill(ch, q, 20)
    assert count(conn, q_arg10) == 6   # the highest-priority policy; least of argument and policy
    assert count(conn, q_arg3) == 3
    ctl_ok("set_operator_policy", op, f"^{prefix}", '{"max-length":4}')
    assert count(conn, q_arg10) == 4   # the operator policy caps at once
    assert count(conn, q_arg3) == 3
    out = ctl_ok("list_queues", "name", "policy", "operator_policy", "effective_policy_definition")
    assert f"{q_arg10}\t{high}\t{op}\t[{{\"max-length\",4}}]" in out
    q = mgmt.get_json(f"/api/queues/%2F/{q_arg10}")
    assert (q["policy"], q["operator_policy"], q["effective_policy_definition"]) == (high, op, {"max-length": 4})
    assert op in [p["name"] for p in mgmt.get_json("/api/operator-policies")]


def test_dead_letter_and_overflow_argument_wins(conn, policy_names):
    ch = conn.channel()
    prefix = uniq("pd")
    for x in ("polx", "argx"):
        ch.exchange_declare(f"{prefix}.{x}", "fanout", auto_delete=True)
    sink_pol = ch.queue_declare("", exclusive=True).method.queue
    sink_arg = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(sink_pol, f"{prefix}.polx")
    ch.queue_bind(sink_arg, f"{prefix}.argx")
    name = uniq("pol")
    policy_names.append((name, False))
    ctl_ok("set_policy", name, f"^{prefix}\\.q", json.dumps(
        {"dead-letter-exchange": f"{prefix}.polx", "max-length": 1, "overflow": "drop-head"}))
    by_policy = ch.queue_declare(f"{prefix}.q1", exclusive=True).method.queue
    by_arg = ch.queue_declare(f"{prefix}.q2", exclusive=True,
                              arguments={"x-dead-letter-exchange": f"{prefix}.argx"}).method.queue
    rejecting = ch.queue_declare(f"{prefix}.q3", exclusive=True,
                                 arguments={"x-overflow": "reject-publish"}).method.queue
    fill(ch, by_policy, 2)
    fill(ch, by_arg, 2)
    ch.confirm_delivery()
    ch.basic_publish("", rejecting, b"first")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", rejecting, b"second")  # the argument's reject-publish, not drop-head
    time.sleep(0.1)
    assert [ch.basic_get(sink_pol, auto_ack=True)[2]] == [b"m0"]
    assert [ch.basic_get(sink_arg, auto_ack=True)[2]] == [b"m0"]


def test_dead_letter_keys_resolve_one_by_one(conn, policy_names):
    # Measured on RabbitMQ 3.10: an argument DLX with a policy's routing key uses both.
    ch = conn.channel()
    prefix = uniq("pk")
    ch.exchange_declare(f"{prefix}.dlx", "direct", auto_delete=True)
    sink = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(sink, f"{prefix}.dlx", "polkey")
    name = uniq("pol")
    policy_names.append((name, False))
    ctl_ok("set_policy", name, f"^{prefix}\\.q", '{"dead-letter-routing-key":"polkey"}')
    q = ch.queue_declare(f"{prefix}.q", exclusive=True,
                         arguments={"x-dead-letter-exchange": f"{prefix}.dlx", "x-message-ttl": 0}).method.queue
    ch.basic_publish("", q, b"dead")
    for _ in range(50):
        m, _, body = ch.basic_get(sink, auto_ack=True)
        if m:
            break
        time.sleep(0.02)
    assert body == b"dead" and m.routing_key == "polkey"


def test_alternate_exchange_by_policy(conn, policy_names):
    ch = conn.channel()
    prefix = uniq("ae")
    ch.exchange_declare(f"{prefix}.main", "direct", auto_delete=False)
    ch.exchange_declare(f"{prefix}.alt", "fanout", auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, f"{prefix}.alt")
    name = uniq("pol")
    policy_names.append((name, False))
    ctl_ok("set_policy", "--apply-to", "exchanges", name, f"^{prefix}\\.main$",
           json.dumps({"alternate-exchange": f"{prefix}.alt"}))
    ch.basic_publish(f"{prefix}.main", "nowhere", b"unroutable")
    m, _, body = None, None, None
    for _ in range(50):
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m:
            break
        time.sleep(0.02)
    assert body == b"unroutable" and m.exchange == f"{prefix}.main" and m.routing_key == "nowhere"
    assert mgmt.get_json(f"/api/exchanges/%2F/{prefix}.main")["policy"] == name
    ch.exchange_delete(f"{prefix}.main")


def test_policies_survive_restart_and_apply_to_recovered_queues(warren):
    w = warren()
    assert w.ctl("set_policy", "--apply-to", "queues", "cap", "^capped", '{"max-length":3}').returncode == 0
    assert w.ctl("set_operator_policy", "opcap", "^capped", '{"message-ttl":600000}').returncode == 0
    c = w.connect()
    ch = c.channel()
    ch.queue_declare("capped", durable=True)
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", "capped", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    c.close()
    w.restart()
    out = w.ctl("list_policies").stdout
    assert "\tcap\t^capped\tqueues\t" in out
    assert "opcap" in w.ctl("list_operator_policies").stdout
    assert "capped\tcap\topcap" in w.ctl("list_queues", "name", "policy", "operator_policy").stdout
    c = w.connect()
    ch = c.channel()
    for i in range(5):
        ch.basic_publish("", "capped", b"new%d" % i)
    assert ch.queue_declare("capped", durable=True, passive=True).method.message_count == 3
    c.close()


def test_expires_and_message_ttl_by_policy(conn, policy_names):
    ch = conn.channel()
    prefix = uniq("px")
    name = uniq("pol")
    policy_names.append((name, False))
    idle = ch.queue_declare(f"{prefix}.idle").method.queue  # not exclusive: only x-expires removes it
    ttl = ch.queue_declare(f"{prefix}.ttl", exclusive=True).method.queue
    ctl_ok("set_policy", "--apply-to", "queues", name, f"^{prefix}\\.", '{"expires":400,"message-ttl":100}')
    ch.basic_publish("", ttl, b"short-lived")
    time.sleep(0.25)
    assert ch.basic_get(ttl, auto_ack=True)[0] is None  # expired by the policy's TTL
    time.sleep(1.2)
    for q in (idle, ttl):  # both unused for longer than the policy's expiry: deleted
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare(q, passive=True)
        assert e.value.reply_code == 404

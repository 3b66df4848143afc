"""`x-queue-type: quorum` before replication (issue 20): not silently a classic queue. The delivery
limit is honoured as RabbitMQ 3.10's quorum queues honour it (the `x-delivery-count` header on
redeliveries, then dead-letter with reason `delivery_limit`, or drop), policies' `delivery-limit`
too, and listings say plainly that the queue is not replicated."""
import json

import pika
import pytest

from conftest import ctl, get_message, uniq
from mgmt import api


def quorum(ch, cleanup, name, **extra):
    args = {"x-queue-type": "quorum"}
    args.update(extra)
    ch.queue_declare(name, durable=True, arguments=args)
    cleanup.queue(name)
    return name


def nack_requeue(ch, queue):
    method, props, body = get_message(ch, queue)
    assert method is not None, "no message in %s" % queue
    ch.basic_nack(method.delivery_tag, requeue=True)
    return method, props, body


def test_delivery_count_header_and_limit_dead_letters(ch, cleanup):
    dlq = uniq("qq-dlq")
    ch.queue_declare(dlq, durable=True)
    cleanup.queue(dlq)
    q = quorum(ch, cleanup, uniq("qq"), **{"x-delivery-limit": 2, "x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": dlq})
    body = bytes(range(256)) * 3
    ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=2, headers={"app": "kept"}))
    seen = []
    for _ in range(3):
        method, props, got = nack_requeue(ch, q)
        assert got == body
        seen.append(((props.headers or {}).get("x-delivery-count"), method.redelivered))
    # First delivery: no header; then the number of returns so far.
    assert seen == [(None, False), (1, True), (2, True)], seen
    # The third return is over the limit of 2: dead-lettered, not requeued.
    assert get_message(ch, q, timeout=0.5)[0] is None
    method, props, got = get_message(ch, dlq)
    assert method is not None, "the message over its delivery limit was not dead-lettered"
    assert got == body
    death = props.headers["x-death"][0]
    assert death["reason"] == "delivery_limit", death
    assert death["queue"] == q
    assert props.headers["app"] == "kept"


def test_delivery_limit_without_dlx_drops(ch, cleanup):
    q = quorum(ch, cleanup, uniq("qq"), **{"x-delivery-limit": 0})
    ch.basic_publish("", q, b"once", pika.BasicProperties(delivery_mode=2))
    nack_requeue(ch, q)
    assert get_message(ch, q, timeout=0.5)[0] is None


def test_channel_close_with_unacked_counts_as_a_return(conn, cleanup):
    ch = conn.channel()
    q = quorum(ch, cleanup, uniq("qq"))
    ch.basic_publish("", q, b"x", pika.BasicProperties(delivery_mode=2))
    other = conn.channel()
    assert get_message(other, q)[0] is not None
    other.close()
    _, props, _ = get_message(ch, q)
    assert props.headers["x-delivery-count"] == 1


def test_policy_delivery_limit_applies_to_quorum_queues(ch, cleanup):
    name = uniq("qqpol")
    q = quorum(ch, cleanup, name)
    r = api("PUT", "/api/policies/%2F/" + name, json={
        "pattern": "^" + name + "$", "apply-to": "quorum_queues", "definition": {"delivery-limit": 1}})
    assert r.status_code in (201, 204), r.text
    try:
        ch.basic_publish("", q, b"p", pika.BasicProperties(delivery_mode=2))
        nack_requeue(ch, q)
        nack_requeue(ch, q)
        assert get_message(ch, q, timeout=0.5)[0] is None, "policy delivery-limit 1 not honoured"
    finally:
        api("DELETE", "/api/policies/%2F/" + name)


def test_classic_queues_do_not_count(ch, cleanup):
    q = uniq("classic")
    ch.queue_declare(q)
    cleanup.queue(q)
    ch.basic_publish("", q, b"c")
    nack_requeue(ch, q)
    _, props, _ = get_message(ch, q)
    assert "x-delivery-count" not in (props.headers or {})


def test_listings_say_not_replicated(ch, cleanup):
    q = quorum(ch, cleanup, uniq("qqlist"))
    r = api("GET", "/api/queues/%2F/" + q)
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["type"] == "quorum"
    assert info["replicated"] is False
    assert info["members"] == [info["node"]] and info["leader"] == info["node"]
    out = ctl("list_queues", "name", "type")
    assert out.rc == 0, out
    assert "%s\tquorum (not replicated)" % q in out.out, out.out
    j = ctl("list_queues", "name", "type", "--formatter", "json")
    rows = [r for r in json.loads(j.out) if r["name"] == q]
    assert rows and rows[0]["type"] == "quorum", rows


@pytest.mark.parametrize("value", ["two", -1])
def test_bad_delivery_limit_refused(conn, value):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(uniq("qqbad"), durable=True,
                         arguments={"x-queue-type": "quorum", "x-delivery-limit": value})
    assert e.value.reply_code == 406

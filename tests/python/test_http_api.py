# -*- coding: utf-8 -*-
"""The management HTTP API (RabbitMQ's port 15672 plugin), checked with `requests` and pika.

Every expectation here was measured on real RabbitMQ 3.10.8 (management plugin, guest/guest
administrator); the exact bodies and headers are recorded in tools/probe-http-3.10.8.txt.
Covered:
    auth        no credentials / wrong password / unknown user (401, WWW-Authenticate challenge,
                {"error":"not_authorized","reason":"Login failed"}); per-tag access for no tag,
                management, monitoring, policymaker, administrator on 20 requests (exact 401
                reasons: "Not management user", "Not administrator user", "Not monitor user",
                "User not authorised to access object"; error "not_authorised"); vhost access
                without permissions; a management user sees only its own connections/channels
    overview    /api/overview, /api/whoami, /api/nodes[/name], /api/extensions, health checks,
                aliveness test
    queues      PUT 201/204, inequivalent args, bad arguments, string booleans (rabbitmqadmin),
                GET fields and live counts, DELETE (if-empty / if-unused), purge, POST .../get
                (ackmodes, redelivered, base64, truncate, properties), pagination/sorting/filtering
                (page_out_of_range, invalid_pagination_parameters, regex), columns,
                disable_stats
    exchanges   PUT/GET/DELETE, amq.* (401 "Access refused."), publish (routed, base64,
                amq.default, properties, error bodies), bindings/source|destination
    bindings    e->q and e->e, Location header, properties_key ("~", "a.%23", "rk~hash"), GET /
                DELETE by properties key, errors
    connections /api/connections (fields, name format), by name, channels, consumers, DELETE with
                X-Reason (pika sees 320 CONNECTION_FORCED - <reason>)
    users etc.  users (tags as string or list, password_hash, no password), permissions, topic
                permissions, vhosts (creator gets permissions), AMQP login with API-made users
    definitions GET (full, vhost-scoped, ?download=), POST (JSON body, multipart upload), errors
    robustness  10 MB body, odd path encodings, unknown endpoints (404), 405 + Allow

Statistics (queue counts, message_stats, connection byte counters) lag up to 5 s on RabbitMQ
(two emissions, ~10 s, for a connection's channel count), so those checks poll with a bound of
MGMT_STATS_WAIT (15 s). Where RabbitMQ 3.10.8 answers accidentally (500 with an empty body for a
bad ackmode, a malformed binding body, a 10 MB body or an unknown node; Erlang terms in some
reasons), only the status class and the error shape are asserted, as noted at each place.

Run against RabbitMQ:
    MGMT_URL=http://127.0.0.1:15682 METRICS_URL=http://127.0.0.1:15692 AMQP_PORT=5682 \\
        WARRENCTL="rabbitmqctl -n rabbit@localhost" \\
        .venv/bin/python -m pytest tests/python/test_http_api.py -q
Against Warren: MGMT_URL=http://127.0.0.1:15672 AMQP_PORT=5672 (the defaults).
"""
import base64
import json
import re
import time
import urllib.parse
import uuid

import pika
import pytest
import requests
from pika.exceptions import ProbableAuthenticationError

from conftest import connect, login, uniq, wait_closed_by_broker
from mgmt import (AMQP_PORT, AMQP_USER, LOGIN_FAILED, MGMT_PASS, MGMT_USER, NOT_FOUND, REALM,
                  api, describe, error_body, expect, get_json, mgmt_objects,  # noqa: F401
                  module_objects, q, rabbit_password_hash, wait_for, wait_queue)  # noqa: F401

TAG_PW = "tag-secret"


# ----------------------------------------------------------------------------- helpers
def publish(queue, bodies, properties=None, exchange=""):
    """Publish bodies with publisher confirms over a fresh connection."""
    c = connect()
    try:
        ch = c.channel()
        ch.confirm_delivery()
        for b in bodies:
            ch.basic_publish(exchange, queue, b, properties or pika.BasicProperties(delivery_mode=2))
    finally:
        c.close()


def amqp_count(queue, vhost="/"):
    """Ready message count via a passive declare (immediate, not the lagging statistics)."""
    c = connect(virtual_host=vhost)
    try:
        return c.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        c.close()


def api_get_messages(vhost, queue, count, ackmode="ack_requeue_true", encoding="auto", **extra):
    body = dict(count=count, ackmode=ackmode, encoding=encoding, **extra)
    return expect(api("POST", "/api/queues/%s/%s/get" % (q(vhost), q(queue)), json=body), 200).json()


_NODE = []


def node_name():
    if not _NODE:
        _NODE.append(get_json("/api/overview")["node"])
    return _NODE[0]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def not_authorised(resp, reason):
    """A 401 authorisation refusal: exact body, and no WWW-Authenticate challenge."""
    body = error_body(resp, 401)
    assert body == {"error": "not_authorised", "reason": reason}, describe(resp)
    assert "WWW-Authenticate" not in resp.headers, describe(resp)


# ============================================================================ 1. authentication
def test_no_credentials_401_with_challenge():
    r = api("GET", "/api/overview", auth=False)
    expect(r, 401)
    assert r.headers.get("WWW-Authenticate") == REALM
    # RabbitMQ 3.10.8 sends no body at all when the request carries no credentials
    assert r.content == b""


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user", "empty-password"])
def test_login_failed_401(who):
    user, password = {"wrong-password": (MGMT_USER, MGMT_PASS + "-wrong"),
                      "unknown-user": (uniq("nouser"), "whatever"),
                      "empty-password": (MGMT_USER, "")}[who]
    for path in ("/api/overview", "/api/queues", "/api/whoami"):
        r = api("GET", path, user=user, password=password)
        assert error_body(r, 401) == LOGIN_FAILED, describe(r)
        assert r.headers.get("WWW-Authenticate") == REALM, describe(r)


def test_malformed_authorization_header_refused():
    r = api("GET", "/api/overview", auth=False, headers={"Authorization": "Basic !!!not-base64"})
    # RabbitMQ (Cowboy) answers 400 with an empty body; a 401 would be as good
    assert r.status_code in (400, 401), describe(r)
    expect(api("GET", "/api/overview"), 200)


NONE, MGMT, MON, POL, ADM = "none", "management", "monitoring", "policymaker", "administrator"
TAGS = [NONE, MGMT, MON, POL, ADM]
NMU = "Not management user"
NAU = "Not administrator user"
NMON = "Not monitor user"
NOBJ = "User not authorised to access object"


def _row(none, mgmt, mon, pol, adm):
    return {NONE: none, MGMT: mgmt, MON: mon, POL: pol, ADM: adm}


# (id, method, path, body, expectations per tag: a status, or a 401 reason string)
TAG_CASES = [
    ("overview", "GET", "/api/overview", None, _row(NMU, 200, 200, 200, 200)),
    ("whoami", "GET", "/api/whoami", None, _row(NMU, 200, 200, 200, 200)),
    ("queues", "GET", "/api/queues", None, _row(NMU, 200, 200, 200, 200)),
    ("exchanges-vhost", "GET", "/api/exchanges/%2F", None, _row(NMU, 200, 200, 200, 200)),
    ("connections", "GET", "/api/connections", None, _row(NMU, 200, 200, 200, 200)),
    ("channels", "GET", "/api/channels", None, _row(NMU, 200, 200, 200, 200)),
    ("consumers", "GET", "/api/consumers", None, _row(NMU, 200, 200, 200, 200)),
    ("vhosts", "GET", "/api/vhosts", None, _row(NMU, 200, 200, 200, 200)),
    ("extensions", "GET", "/api/extensions", None, _row(NMU, 200, 200, 200, 200)),
    ("health-alarms", "GET", "/api/health/checks/alarms", None, _row(NMU, 200, 200, 200, 200)),
    ("policies", "GET", "/api/policies", None, _row(NMU, 200, 200, 200, 200)),
    ("users", "GET", "/api/users", None, _row(NMU, NAU, NAU, NAU, 200)),
    ("user-self", "GET", "/api/users/{user}", None, _row(NMU, NAU, NAU, NAU, 200)),
    ("permissions", "GET", "/api/permissions", None, _row(NMU, NAU, NAU, NAU, 200)),
    ("definitions", "GET", "/api/definitions", None, _row(NMU, NAU, NAU, NAU, 200)),
    ("vhost-get", "GET", "/api/vhosts/%2F", None, _row(NMU, NAU, NAU, NAU, 200)),
    ("nodes", "GET", "/api/nodes", None, _row(NMU, NMON, 200, NMON, 200)),
    ("node", "GET", "/api/nodes/{node}", None, _row(NMU, NMON, 200, NMON, 200)),
    ("vhost-put", "PUT", "/api/vhosts/{new}", {}, _row(NMU, NAU, NAU, NAU, 201)),
    ("policy-put", "PUT", "/api/policies/%2F/{new}",
     {"pattern": "^{new}$", "definition": {"max-length": 3}}, _row(NMU, NOBJ, NOBJ, 201, 201)),
]


@pytest.fixture(scope="module")
def tag_users(module_objects):
    """One user per tag (none, management, ...), password TAG_PW, full permissions on "/"."""
    users = {}
    for tag in TAGS:
        users[tag] = module_objects.user(prefix="tag-" + tag, password=TAG_PW,
                                         tags="" if tag == NONE else tag, grant_vhost="/")
    return users


@pytest.mark.parametrize("case", TAG_CASES, ids=[c[0] for c in TAG_CASES])
@pytest.mark.parametrize("tag", TAGS)
def test_tag_access(tag_users, module_objects, tag, case):
    _, method, path, body, expected = case
    new = uniq("tagobj")
    ctx = {"user": q(tag_users[tag]), "node": q(node_name()), "new": q(new)}
    if path.startswith("/api/vhosts/{new}"):
        module_objects.track_vhost(new)
    if path.startswith("/api/policies/%2F/{new}"):
        module_objects.track_policy(new)
        body = {"pattern": "^%s$" % new, "definition": {"max-length": 3}}
    r = api(method, path.format(**ctx), user=tag_users[tag], password=TAG_PW, json=body) \
        if body is not None else api(method, path.format(**ctx), user=tag_users[tag], password=TAG_PW)
    want = expected[tag]
    if isinstance(want, str):
        not_authorised(r, want)
    else:
        expect(r, want)
        if method == "GET":
            assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
            r.json()


def test_whoami_per_tag(tag_users):
    for tag in (MGMT, MON, POL, ADM):
        body = get_json("/api/whoami", user=tag_users[tag], password=TAG_PW)
        assert body == {"name": tag_users[tag], "tags": [tag]}


def test_management_user_sees_only_own_connections(tag_users, connection_factory):
    mgmt_user, mon_user = tag_users[MGMT], tag_users[MON]
    mine, other = uniq("conn-mine"), uniq("conn-other")
    c1 = connection_factory(client_properties={"connection_name": mine}, **login(mgmt_user, TAG_PW))
    c2 = connection_factory(client_properties={"connection_name": other})
    c1.channel()
    c2.channel()

    def names(conns):
        return {c.get("client_properties", {}).get("connection_name"): c for c in conns}

    # the administrator (and a monitoring user) see both
    wait_for(lambda: {mine, other} <= set(names(get_json("/api/connections"))),
             what="both connections listed", pump=[c1, c2])
    mon_view = names(get_json("/api/connections", user=mon_user, password=TAG_PW))
    assert {mine, other} <= set(mon_view)

    own = get_json("/api/connections", user=mgmt_user, password=TAG_PW)
    assert own and all(c["user"] == mgmt_user for c in own), own
    assert mine in names(own) and other not in names(own)
    other_name = names(get_json("/api/connections"))[other]["name"]
    mine_name = names(own)[mine]["name"]

    not_authorised(api("GET", "/api/connections/" + q(other_name), user=mgmt_user, password=TAG_PW), NOBJ)
    not_authorised(api("DELETE", "/api/connections/" + q(other_name), user=mgmt_user, password=TAG_PW),
                   NOBJ)
    not_authorised(api("GET", "/api/connections/%s/channels" % q(other_name), user=mgmt_user,
                       password=TAG_PW), NOBJ)
    assert get_json("/api/connections/" + q(mine_name), user=mgmt_user, password=TAG_PW)["name"] == mine_name
    chans = wait_for(lambda: get_json("/api/channels", user=mgmt_user, password=TAG_PW),
                     what="own channel listed", pump=[c1, c2])
    assert all(ch["user"] == mgmt_user for ch in chans), chans
    assert c2.is_open  # the refused DELETE did not close it


def test_vhost_without_permissions(tag_users, mgmt_objects):
    vhost = mgmt_objects.vhost()  # made by the administrator, who gets permissions on it
    qn = mgmt_objects.queue(vhost=vhost)
    mgmt_user, mon_user, adm_user = tag_users[MGMT], tag_users[MON], tag_users[ADM]
    refused = "User not authorised to access virtual host"
    for method, path, body in [("GET", "/api/queues/%s" % q(vhost), None),
                               ("GET", "/api/queues/%s/%s" % (q(vhost), q(qn)), None),
                               ("GET", "/api/exchanges/%s" % q(vhost), None),
                               ("PUT", "/api/queues/%s/%s" % (q(vhost), q(uniq("q"))), {})]:
        for user in (mgmt_user, mon_user):
            r = api(method, path, user=user, password=TAG_PW, **({} if body is None else {"json": body}))
            not_authorised(r, refused)
    # the all-vhosts listing silently leaves that vhost out for a management user
    listed = get_json("/api/queues", user=mgmt_user, password=TAG_PW)
    assert all(x["vhost"] != vhost for x in listed)
    assert vhost not in {v["name"] for v in get_json("/api/vhosts", user=mgmt_user, password=TAG_PW)}
    # monitoring sees every vhost in /api/vhosts
    assert vhost in {v["name"] for v in get_json("/api/vhosts", user=mon_user, password=TAG_PW)}
    # an administrator without permissions can list, but not declare
    assert qn in {x["name"] for x in get_json("/api/queues/%s" % q(vhost), user=adm_user, password=TAG_PW)}
    r = api("PUT", "/api/queues/%s/%s" % (q(vhost), q(uniq("q"))), user=adm_user, password=TAG_PW, json={})
    not_authorised(r, "Access refused.")
    # unknown vhost: 404 for anyone with a management tag
    r = api("GET", "/api/queues/" + q(uniq("novhost")), user=mgmt_user, password=TAG_PW)
    assert error_body(r, 404) == NOT_FOUND


# ============================================================================ 2. overview & co
def test_overview(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [b"ov-1", b"ov-2"])
    ov = wait_for(lambda: (lambda o: o if o.get("message_stats", {}).get("publish") is not None
                           and "messages" in o.get("queue_totals", {}) else None)(get_json("/api/overview")),
                  what="overview message_stats/queue_totals")
    for key in ("management_version", "rabbitmq_version", "product_version", "product_name",
                "cluster_name", "node"):
        assert isinstance(ov[key], str) and ov[key], (key, ov.get(key))
    assert ov["node"] == node_name()
    ms = ov["message_stats"]
    assert is_int(ms["publish"]) and ms["publish"] >= 2
    assert is_number(ms["publish_details"]["rate"])
    for key in ("messages", "messages_ready", "messages_unacknowledged"):
        assert is_int(ov["queue_totals"][key]), key
    assert ov["queue_totals"]["messages"] >= 2
    ot = ov["object_totals"]
    for key in ("connections", "channels", "exchanges", "queues", "consumers"):
        assert is_int(ot[key]) and ot[key] >= 0, key
    assert ot["queues"] >= 1 and ot["exchanges"] >= 6  # "", amq.direct/fanout/topic/headers/match
    amqp = [lst for lst in ov["listeners"] if lst["protocol"] == "amqp"]
    assert amqp and any(lst["port"] == AMQP_PORT for lst in amqp), ov["listeners"]
    assert all(is_int(lst["port"]) and isinstance(lst["node"], str) for lst in ov["listeners"])
    names = {x["name"] for x in ov["exchange_types"]}
    assert {"direct", "fanout", "topic", "headers"} <= names
    assert all(isinstance(x.get("description"), str) and x.get("enabled") is True
               for x in ov["exchange_types"])


def test_overview_columns():
    body = get_json("/api/overview", params={"columns": "rabbitmq_version,node"})
    assert body == {"rabbitmq_version": get_json("/api/overview")["rabbitmq_version"], "node": node_name()}


def test_whoami_admin():
    assert get_json("/api/whoami") == {"name": MGMT_USER, "tags": ["administrator"]}


NODE_FIELDS = {"name": str, "type": str, "running": bool, "mem_used": int, "mem_limit": int,
               "mem_alarm": bool, "disk_free": int, "disk_free_limit": int, "disk_free_alarm": bool,
               "fd_used": int, "fd_total": int, "uptime": int, "processors": int, "partitions": list}


def check_node(node):
    for key, typ in NODE_FIELDS.items():
        assert isinstance(node.get(key), typ), (key, node.get(key))
    assert node["name"] == node_name()
    assert node["running"] is True and node["type"] == "disc"
    assert node["mem_used"] > 0 and node["mem_limit"] > 0
    assert node["disk_free"] > 0 and node["disk_free_limit"] > 0
    assert node["mem_alarm"] is False and node["disk_free_alarm"] is False
    assert node["uptime"] > 0 and node["processors"] >= 1
    assert node["partitions"] == []


def test_nodes():
    nodes = get_json("/api/nodes")
    assert isinstance(nodes, list) and len(nodes) == 1
    check_node(nodes[0])
    check_node(get_json("/api/nodes/" + q(node_name())))


def test_unknown_node():
    r = api("GET", "/api/nodes/" + q("nosuch@nowhere"))
    # RabbitMQ 3.10.8 crashes into a 500 with an empty body here; a 404 is the sensible answer
    assert r.status_code in (404, 500), describe(r)
    expect(api("GET", "/api/overview"), 200)


def test_extensions():
    ext = get_json("/api/extensions")
    assert isinstance(ext, list) and all(isinstance(e, dict) for e in ext)


@pytest.mark.parametrize("path", ["/api/health/checks/alarms", "/api/health/checks/local-alarms",
                                  "/api/health/checks/virtual-hosts"])
def test_health_checks_ok(path):
    assert get_json(path) == {"status": "ok"}


def test_health_port_listener():
    assert get_json("/api/health/checks/port-listener/%d" % AMQP_PORT) == {"status": "ok", "port": AMQP_PORT}
    r = api("GET", "/api/health/checks/port-listener/1")
    expect(r, 503)
    body = r.json()
    assert {k: body[k] for k in ("status", "reason", "missing")} == \
        {"status": "failed", "reason": "No active listener", "missing": 1}
    assert AMQP_PORT in body["ports"] and all(is_int(p) for p in body["ports"])
    r = api("GET", "/api/health/checks/port-listener/notaport")
    assert error_body(r, 400) == {"error": "bad_request", "reason": "Invalid port"}


def test_health_protocol_listener():
    assert get_json("/api/health/checks/protocol-listener/amqp") == {"status": "ok", "protocol": "amqp"}
    assert get_json("/api/health/checks/protocol-listener/amqp091") == {"status": "ok", "protocol": "amqp"}
    r = api("GET", "/api/health/checks/protocol-listener/nosuchproto")
    expect(r, 503)
    body = r.json()
    assert {k: body[k] for k in ("status", "reason", "missing")} == \
        {"status": "failed", "reason": "No active listener", "missing": "nosuchproto"}
    assert "amqp" in body["protocols"]


def test_aliveness_test(mgmt_objects):
    existed = api("GET", "/api/queues/%2F/aliveness-test").status_code == 200
    try:
        assert get_json("/api/aliveness-test/%2F") == {"status": "ok"}
    finally:
        if not existed:  # the check declares (and keeps) a queue named "aliveness-test"
            api("DELETE", "/api/queues/%2F/aliveness-test")
    vhost = mgmt_objects.vhost()
    assert get_json("/api/aliveness-test/" + q(vhost)) == {"status": "ok"}
    r = api("GET", "/api/aliveness-test/" + q(uniq("novhost")))
    assert error_body(r, 404) == NOT_FOUND


# ============================================================================ 3. queues
def test_queue_put_created_then_no_content(mgmt_objects):
    qn = mgmt_objects.track_queue(uniq("q"))
    path = "/api/queues/%2F/" + q(qn)
    r = expect(api("PUT", path, json={"durable": True, "arguments": {"x-max-length": 10}}), 201)
    assert r.content == b""
    r = expect(api("PUT", path, json={"durable": True, "arguments": {"x-max-length": 10}}), 204)
    assert r.content == b""
    r = api("PUT", path, json={"durable": False, "arguments": {"x-max-length": 10}})
    assert error_body(r, 400) == {
        "error": "bad_request",
        "reason": "inequivalent arg 'durable' for queue '%s' in vhost '/': received 'false' but "
                  "current is 'true'" % qn}
    r = api("PUT", path, json={"durable": True, "arguments": {"x-max-length": 11}})
    assert error_body(r, 400) == {
        "error": "bad_request",
        "reason": "inequivalent arg 'x-max-length' for queue '%s' in vhost '/': received '11' but "
                  "current is '10'" % qn}
    r = api("PUT", path, json={"durable": True, "auto_delete": True, "arguments": {"x-max-length": 10}})
    assert "inequivalent arg 'auto_delete'" in error_body(r, 400)["reason"]
    r = api("PUT", path, json={"durable": True})
    assert "inequivalent arg 'x-max-length'" in error_body(r, 400)["reason"]
    # the queue is unchanged
    body = get_json(path)
    assert (body["durable"], body["auto_delete"], body["arguments"]) == (True, False, {"x-max-length": 10})


def test_queue_put_defaults_and_string_booleans(mgmt_objects):
    # an empty body makes a transient queue; rabbitmqadmin sends booleans as the strings
    # "true"/"false", which RabbitMQ accepts
    a = mgmt_objects.queue(body={})
    body = get_json("/api/queues/%2F/" + q(a))
    assert (body["durable"], body["auto_delete"], body["exclusive"], body["arguments"]) == (False, False, False, {})
    b = mgmt_objects.queue(body={"durable": "true", "auto_delete": "false", "arguments": {}})
    body = get_json("/api/queues/%2F/" + q(b))
    assert (body["durable"], body["auto_delete"]) == (True, False)
    # a body with no Content-Type is read as JSON too
    c = mgmt_objects.track_queue(uniq("q"))
    expect(api("PUT", "/api/queues/%2F/" + q(c), data=b'{"durable":true}'), 201)
    assert get_json("/api/queues/%2F/" + q(c))["durable"] is True


def test_queue_put_errors(mgmt_objects):
    qn = mgmt_objects.track_queue(uniq("q"))
    path = "/api/queues/%2F/" + q(qn)
    r = api("PUT", path, data=b"{not json", headers={"Content-Type": "application/json"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "not_json"}
    r = api("PUT", path, json={"durable": "yes"})
    assert error_body(r, 400)["error"] == "bad_request"  # reason is an Erlang term: ["not_boolean","yes"]
    r = api("PUT", path, json={"arguments": {"x-max-length": "abc"}})
    assert error_body(r, 400) == {
        "error": "bad_request",
        "reason": "invalid arg 'x-max-length' for queue '%s' in vhost '/': "
                  "\"expected integer, got longstr\"" % qn}
    assert api("GET", path).status_code == 404  # nothing was created
    r = api("PUT", "/api/queues/%s/%s" % (q(uniq("novhost")), q(qn)), json={})
    assert error_body(r, 404) == {"error": "not_found", "reason": "vhost_not_found"}
    reserved = mgmt_objects.track_queue("amq.%s" % uniq("q"))
    r = api("PUT", "/api/queues/%2F/" + q(reserved), json={})
    not_authorised(r, "Access refused.")


def test_queue_fields(mgmt_objects):
    qn = mgmt_objects.queue(body={"durable": True, "arguments": {"x-max-length": 10}})
    body = wait_queue("/", qn, lambda b: "messages" in b and "memory" in b, what="queue stats")
    assert body["name"] == qn and body["vhost"] == "/"
    assert (body["durable"], body["auto_delete"], body["exclusive"]) == (True, False, False)
    assert body["arguments"] == {"x-max-length": 10}
    for key in ("messages", "messages_ready", "messages_unacknowledged", "consumers", "message_bytes"):
        assert body[key] == 0, key
    assert is_int(body["memory"]) and body["memory"] > 0
    assert body["state"] == "running" and body["type"] == "classic"
    assert body["node"] == node_name()
    assert body["consumer_details"] == []


@pytest.mark.timeout(120)
def test_queue_counts_follow_traffic(mgmt_objects):
    qn = mgmt_objects.queue(body={"durable": True, "arguments": {"x-max-length": 10}})
    path = "/api/queues/%2F/" + q(qn)
    bodies = [b"first", b"second!", b"third.."]
    publish(qn, bodies)
    body = wait_queue("/", qn, lambda b: b["messages_ready"] == 3 and b["message_stats"]["publish"] == 3,
                      what="messages_ready == 3")
    assert body["messages"] == 3 and body["messages_unacknowledged"] == 0
    assert body["message_bytes"] == sum(len(b) for b in bodies)
    assert is_number(body["message_stats"]["publish_details"]["rate"])
    assert is_number(body["messages_details"]["rate"])

    # one message fetched without ack: 2 ready + 1 unacknowledged
    c = connect()
    try:
        ch = c.channel()
        m, _, b = ch.basic_get(qn, auto_ack=False)
        assert b == b"first"
        body = wait_queue("/", qn, lambda b: b["messages_unacknowledged"] == 1 and b["messages_ready"] == 2,
                          what="1 unacked")
        assert body["messages"] == 3
    finally:
        c.close()
    body = wait_queue("/", qn, lambda b: b["messages_ready"] == 3 and b["messages_unacknowledged"] == 0,
                      what="requeued after close")
    # the same queue in the vhost listing, same shape
    listed = [x for x in get_json("/api/queues/%2F") if x["name"] == qn]
    assert len(listed) == 1 and listed[0]["durable"] is True and listed[0]["arguments"] == {"x-max-length": 10}
    assert any(x["name"] == qn and x["vhost"] == "/" for x in get_json("/api/queues"))
    assert get_json(path, params={"columns": "name,durable"}) == {"name": qn, "durable": True}


def test_queue_not_found():
    assert error_body(api("GET", "/api/queues/%2F/" + q(uniq("nosuch"))), 404) == NOT_FOUND
    assert error_body(api("GET", "/api/queues/" + q(uniq("novhost"))), 404) == NOT_FOUND
    assert error_body(api("GET", "/api/queues/%s/x" % q(uniq("novhost"))), 404) == NOT_FOUND
    assert error_body(api("DELETE", "/api/queues/%2F/" + q(uniq("nosuch"))), 404) == NOT_FOUND


def test_queue_delete(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [b"x"])
    r = expect(api("DELETE", "/api/queues/%2F/" + q(qn)), 204)
    assert r.content == b""
    assert error_body(api("GET", "/api/queues/%2F/" + q(qn)), 404) == NOT_FOUND
    assert error_body(api("DELETE", "/api/queues/%2F/" + q(qn)), 404) == NOT_FOUND


def test_queue_delete_if_empty_and_if_unused(mgmt_objects):
    qn = mgmt_objects.queue()
    path = "/api/queues/%2F/" + q(qn)
    publish(qn, [b"x", b"y"])
    r = api("DELETE", path, params={"if-empty": "true"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "queue '%s' in vhost '/' not empty" % qn}
    assert amqp_count(qn) == 2
    c = connect()
    try:
        ch = c.channel()
        ch.basic_consume(qn, lambda *a: None)  # auto-ack off: messages become unacked, queue "in use"
        r = api("DELETE", path, params={"if-unused": "true"})
        assert error_body(r, 400) == {"error": "bad_request", "reason": "queue '%s' in vhost '/' in use" % qn}
    finally:
        c.close()
    expect(api("DELETE", path + "/contents"), 204)
    expect(api("DELETE", path, params={"if-empty": "true", "if-unused": "true"}), 204)
    assert api("GET", path).status_code == 404


def test_queue_purge(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [b"1", b"2", b"3"])
    assert amqp_count(qn) == 3
    r = expect(api("DELETE", "/api/queues/%%2F/%s/contents" % q(qn)), 204)
    assert r.content == b""
    assert amqp_count(qn) == 0
    wait_queue("/", qn, lambda b: b["messages"] == 0, what="purged queue stats")
    r = api("DELETE", "/api/queues/%%2F/%s/contents" % q(uniq("nosuch")))
    assert error_body(r, 404) == NOT_FOUND


def test_queue_get_requeue_and_remove(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [b"m0", b"m1", b"m2"])
    msgs = api_get_messages("/", qn, 2, truncate=50000)
    assert len(msgs) == 2
    for i, m in enumerate(msgs):
        assert set(m) == {"payload_bytes", "redelivered", "exchange", "routing_key", "message_count",
                          "properties", "payload", "payload_encoding"}, m
        assert m["payload"] == "m%d" % i and m["payload_encoding"] == "string"
        assert m["payload_bytes"] == 2 and m["redelivered"] is False
        assert m["exchange"] == "" and m["routing_key"] == qn
        assert m["properties"]["delivery_mode"] == 2
    assert [m["message_count"] for m in msgs] == [2, 1]  # messages left behind each one
    assert amqp_count(qn) == 3  # requeued
    again = api_get_messages("/", qn, 5)
    assert [(m["payload"], m["redelivered"]) for m in again] == [("m0", True), ("m1", True), ("m2", False)]
    # reject_requeue_true also keeps them
    assert len(api_get_messages("/", qn, 1, ackmode="reject_requeue_true")) == 1
    assert amqp_count(qn) == 3
    # count as a string (what rabbitmqadmin sends) works
    assert len(api_get_messages("/", qn, "2")) == 2
    # ack_requeue_false removes
    gone = api_get_messages("/", qn, 2, ackmode="ack_requeue_false")
    assert [m["payload"] for m in gone] == ["m0", "m1"]
    assert amqp_count(qn) == 1
    assert [m["payload"] for m in api_get_messages("/", qn, 5, ackmode="reject_requeue_false")] == ["m2"]
    assert amqp_count(qn) == 0
    assert api_get_messages("/", qn, 3) == []


def test_queue_get_binary_truncate_and_encoding(mgmt_objects):
    qn = mgmt_objects.queue()
    binary = bytes(range(255, -1, -1))  # starts with \xff: not UTF-8 even when truncated
    text = "héllo wörld ✓ " * 10
    publish(qn, [binary, text.encode("utf-8")])
    m_bin, m_text = api_get_messages("/", qn, 2)
    assert m_bin["payload_encoding"] == "base64" and base64.b64decode(m_bin["payload"]) == binary
    assert m_bin["payload_bytes"] == 256
    assert m_text["payload_encoding"] == "string" and m_text["payload"] == text
    assert m_text["payload_bytes"] == len(text.encode("utf-8"))
    # encoding=base64 forces base64 for text too
    m_bin, m_text = api_get_messages("/", qn, 2, encoding="base64")
    assert base64.b64decode(m_text["payload"]) == text.encode("utf-8")
    assert m_text["payload_encoding"] == "base64"
    # truncate shortens the payload, payload_bytes stays the full size
    m_bin, m_text = api_get_messages("/", qn, 2, truncate=5)
    assert base64.b64decode(m_bin["payload"]) == binary[:5] and m_bin["payload_bytes"] == 256
    assert m_bin["payload_encoding"] == "base64"
    assert (m_text["payload"], m_text["payload_encoding"]) == ("héll", "string")  # 5 bytes: h \xc3\xa9 l l
    assert m_text["payload_bytes"] == len(text.encode("utf-8"))
    # "auto" looks at the truncated bytes: cutting inside "é" leaves invalid UTF-8 -> base64
    m_bin, m_text = api_get_messages("/", qn, 2, truncate=2)
    assert (base64.b64decode(m_text["payload"]), m_text["payload_encoding"]) == (b"h\xc3", "base64")
    assert amqp_count(qn) == 2


def test_queue_get_auto_encoding_judges_truncated_bytes(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [bytes(range(256))])  # 0x00..0x7f are valid UTF-8 (control characters included)
    (m,) = api_get_messages("/", qn, 1)
    assert m["payload_encoding"] == "base64" and base64.b64decode(m["payload"]) == bytes(range(256))
    (m,) = api_get_messages("/", qn, 1, truncate=100)
    assert (m["payload"], m["payload_encoding"], m["payload_bytes"]) == (bytes(range(100)).decode("ascii"),
                                                                         "string", 256)


def test_queue_get_properties_round_trip(mgmt_objects):
    qn = mgmt_objects.queue()
    headers = {"h": "v", "n": 1, "flag": True, "nested": {"a": [1, "x"]}}
    props = pika.BasicProperties(content_type="text/plain", content_encoding="identity", headers=headers,
                                 delivery_mode=2, priority=3, correlation_id="cid-1", reply_to="rt",
                                 expiration="60000", message_id="mid-1", timestamp=12345, type="ty",
                                 user_id=AMQP_USER, app_id="app")
    publish(qn, [b"with-props"], props)
    publish(qn, [b"no-props"], pika.BasicProperties())
    m1, m2 = api_get_messages("/", qn, 2)
    assert m1["properties"] == {"content_type": "text/plain", "content_encoding": "identity",
                                "headers": headers, "delivery_mode": 2, "priority": 3,
                                "correlation_id": "cid-1", "reply_to": "rt", "expiration": "60000",
                                "message_id": "mid-1", "timestamp": 12345, "type": "ty",
                                "user_id": AMQP_USER, "app_id": "app"}
    # a message without properties: RabbitMQ 3.10.8 renders the empty property list as [] (an
    # Erlang proplist artefact); {} is accepted as well
    assert m2["properties"] in ([], {})


def test_queue_get_errors(mgmt_objects):
    qn = mgmt_objects.queue()
    publish(qn, [b"keep"])
    path = "/api/queues/%%2F/%s/get" % q(qn)
    r = api("POST", path, json={"count": 1, "ackmode": "ack_requeue_true", "encoding": "rot13"})
    assert error_body(r, 400) == {"error": "bad_request",
                                  "reason": "Unsupported encoding. Please use auto or base64."}
    for missing in ("count", "ackmode", "encoding"):
        body = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
        del body[missing]
        r = api("POST", path, json=body)
        err = error_body(r, 400)  # reason: "[{key_missing,count}]"
        assert err["error"] == "bad_request" and missing in err["reason"], err
    # an unknown ackmode: RabbitMQ 3.10.8 crashes into a 500 with an empty body (accidental); any
    # 4xx/5xx refusal is accepted, and the message must still be there
    r = api("POST", path, json={"count": 1, "ackmode": "bogus", "encoding": "auto"})
    assert 400 <= r.status_code < 600, describe(r)
    assert amqp_count(qn) == 1
    nosuch = uniq("nosuch")
    r = api("POST", "/api/queues/%%2F/%s/get" % q(nosuch),
            json={"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert error_body(r, 404) == {"error": "not_found", "reason": "NOT_FOUND - no queue '%s' in vhost '/'" % nosuch}
    r = api("GET", path)
    expect(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


# ----------------------------------------------------------------------------- pagination
READY = {"a": 3, "b": 1, "c": 4, "d": 0, "e": 2}


@pytest.fixture(scope="module")
def paged(module_objects):
    """Five queues <prefix>-a..e in "/" holding 3,1,4,0,2 ready messages (statistics caught up)."""
    prefix = uniq("pg")
    names = {}
    c = connect()
    try:
        ch = c.channel()
        ch.confirm_delivery()
        for suffix, n in READY.items():
            names[suffix] = module_objects.queue(name="%s-%s" % (prefix, suffix))
            for i in range(n):
                ch.basic_publish("", names[suffix], b"p%d" % i)
    finally:
        c.close()

    def caught_up():
        body = get_json("/api/queues/%2F", params={"page": 1, "page_size": 100, "name": prefix,
                                                   "columns": "name,messages_ready"})
        got = {x["name"]: x.get("messages_ready") for x in body["items"]}
        return got == {names[s]: n for s, n in READY.items()}
    wait_for(caught_up, what="paged queue stats")
    return prefix, names


def page(prefix, **params):
    p = {"page": 1, "page_size": 100, "name": prefix, "use_regex": "false", "pagination": "true",
         "columns": "name"}
    p.update(params)
    return api("GET", "/api/queues/%2F", params=p)


def test_pagination_pages(paged):
    prefix, names = paged
    pages = []
    for n in (1, 2, 3):
        body = expect(page(prefix, page=n, page_size=2), 200).json()
        assert set(body) == {"filtered_count", "item_count", "items", "page", "page_count", "page_size",
                             "total_count"}
        assert (body["filtered_count"], body["page"], body["page_count"], body["page_size"]) == (5, n, 3, 2)
        assert is_int(body["total_count"]) and body["total_count"] >= 5
        assert body["item_count"] == len(body["items"])
        pages.append([x["name"] for x in body["items"]])
    # default order is by name
    assert pages == [[names["a"], names["b"]], [names["c"], names["d"]], [names["e"]]]
    assert all(set(x) == {"name"} for x in expect(page(prefix), 200).json()["items"])


def test_pagination_sorting(paged):
    prefix, names = paged
    body = expect(page(prefix, page=2, page_size=2, sort="name", sort_reverse="true"), 200).json()
    assert [x["name"] for x in body["items"]] == [names["c"], names["b"]]
    body = expect(page(prefix, sort="messages_ready", columns="name,messages_ready"), 200).json()
    assert [(x["name"], x["messages_ready"]) for x in body["items"]] == \
        [(names[s], READY[s]) for s in ("d", "b", "e", "a", "c")]
    body = expect(page(prefix, sort="messages_ready", sort_reverse="true", columns="name,messages_ready"),
                  200).json()
    assert [x["name"] for x in body["items"]] == [names[s] for s in ("c", "a", "e", "b", "d")]


def test_pagination_name_filter(paged):
    prefix, names = paged
    # a plain filter is a case-insensitive substring match
    body = expect(page(prefix.upper()), 200).json()
    assert [x["name"] for x in body["items"]] == [names[s] for s in "abcde"]
    body = expect(page(prefix[len("warren-test-"):] + "-c"), 200).json()
    assert [x["name"] for x in body["items"]] == [names["c"]]
    # use_regex=true makes it a regular expression
    rx = "^%s-[bd]$" % prefix  # the prefix is [a-z0-9-] only
    body = expect(page(rx, use_regex="true"), 200).json()
    assert [x["name"] for x in body["items"]] == [names["b"], names["d"]]
    assert body["filtered_count"] == 2
    body = expect(page(rx, use_regex="false"), 200).json()
    assert (body["items"], body["filtered_count"], body["item_count"], body["page_count"]) == ([], 0, 0, 0)
    r = page("(", use_regex="true")
    assert error_body(r, 400) == {"error": "bad_request", "reason": "Pagination parameters are invalid"}


def test_pagination_errors(paged):
    prefix, _ = paged
    r = page(prefix, page=4, page_size=2)
    assert error_body(r, 400) == {"error": "page_out_of_range",
                                  "reason": "Page out of range, page: 4 page size: 2, len: 5"}
    for pg, size in ((1, 501), (0, 2), (-1, 2), (1, 0)):
        r = page(prefix, page=pg, page_size=size)
        assert error_body(r, 400) == {
            "error": "invalid_pagination_parameters",
            "reason": "Invalid pagination parameters: page number %d, page size %d" % (pg, size)}
    for pg, size in (("x", 2), (1, "y")):
        r = page(prefix, page=pg, page_size=size)
        assert error_body(r, 400) == {"error": "bad_request", "reason": "Pagination parameters are invalid"}
    body = expect(page(prefix, page_size=500), 200).json()
    assert body["page_size"] == 500 and body["item_count"] == 5


def test_pagination_triggers(paged):
    prefix, names = paged
    # page alone switches pagination on (page_size defaults to 100)
    body = get_json("/api/queues/%2F", params={"page": 1, "name": prefix, "columns": "name"})
    assert isinstance(body, dict) and body["page_size"] == 100 and body["filtered_count"] == 5
    # no page parameter: a plain list, and the name filter is ignored
    body = get_json("/api/queues/%2F", params={"name": prefix, "columns": "name,messages"})
    assert isinstance(body, list)
    mine = [x for x in body if x["name"].startswith(prefix)]
    assert [(x["name"], x["messages"]) for x in mine] == [(names[s], READY[s]) for s in "abcde"]
    assert all(set(x) == {"name", "messages"} for x in mine)
    # the all-vhosts listing paginates as well
    body = get_json("/api/queues", params={"page": 1, "page_size": 10, "name": prefix,
                                           "columns": "name,vhost"})
    assert [x for x in body["items"]] == [{"name": names[s], "vhost": "/"} for s in "abcde"]


def test_disable_stats(paged):
    prefix, names = paged
    body = get_json("/api/queues/%2F", params={"disable_stats": "true", "enable_queue_totals": "true",
                                               "page": 1, "page_size": 100, "name": prefix})
    items = {x["name"]: x for x in body["items"]}
    assert set(items) == set(names.values())
    for suffix, name in names.items():
        item = items[name]
        assert (item["messages_ready"], item["messages"], item["messages_unacknowledged"]) == \
            (READY[suffix], READY[suffix], 0)
        assert (item["vhost"], item["durable"], item["type"]) == ("/", False, "classic")
        assert "message_stats" not in item and "memory" not in item


# ============================================================================ 4. exchanges
def test_exchange_put_get_delete(mgmt_objects):
    x = mgmt_objects.track_exchange(uniq("x"))
    path = "/api/exchanges/%2F/" + q(x)
    expect(api("PUT", path, json={"type": "topic", "durable": True}), 201)
    expect(api("PUT", path, json={"type": "topic", "durable": True}), 204)
    r = api("PUT", path, json={"type": "direct", "durable": True})
    assert error_body(r, 400) == {
        "error": "bad_request",
        "reason": "inequivalent arg 'type' for exchange '%s' in vhost '/': received 'direct' but current is 'topic'" % x}
    r = api("PUT", path, json={"type": "topic", "durable": False})
    assert "inequivalent arg 'durable'" in error_body(r, 400)["reason"]
    body = get_json(path)
    assert {k: body[k] for k in ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments")} == \
        {"name": x, "vhost": "/", "type": "topic", "durable": True, "auto_delete": False, "internal": False,
         "arguments": {}}
    assert any(e["name"] == x and e["type"] == "topic" for e in get_json("/api/exchanges/%2F"))
    assert any(e["name"] == x and e["vhost"] == "/" for e in get_json("/api/exchanges"))
    r = expect(api("DELETE", path), 204)
    assert r.content == b""
    assert error_body(api("GET", path), 404) == NOT_FOUND
    assert error_body(api("DELETE", path), 404) == NOT_FOUND


def test_exchange_full_options(mgmt_objects):
    x = mgmt_objects.exchange(body={"type": "direct", "durable": False, "auto_delete": True, "internal": True,
                                    "arguments": {"alternate-exchange": "amq.fanout"}})
    body = get_json("/api/exchanges/%2F/" + q(x))
    assert (body["durable"], body["auto_delete"], body["internal"], body["arguments"]) == \
        (False, True, True, {"alternate-exchange": "amq.fanout"})


def test_exchange_list_has_defaults():
    listed = {e["name"]: e for e in get_json("/api/exchanges/%2F")}
    for name, typ in [("", "direct"), ("amq.direct", "direct"), ("amq.fanout", "fanout"),
                      ("amq.topic", "topic"), ("amq.headers", "headers"), ("amq.match", "headers")]:
        assert listed[name]["type"] == typ and listed[name]["durable"] is True, name
        assert listed[name]["vhost"] == "/"
    default = get_json("/api/exchanges/%2F/amq.default")
    assert default["name"] == "" and default["type"] == "direct"


def test_exchange_errors(mgmt_objects):
    x = mgmt_objects.track_exchange(uniq("x"))
    path = "/api/exchanges/%2F/" + q(x)
    r = api("PUT", path, json={"type": "nosuch"})
    # "invalid exchange type 'nosuch'" when the name is not an Erlang atom yet, "unknown exchange
    # type 'nosuch'" once it is (an atom-table artefact); Warren should say "invalid"
    err = error_body(r, 400)
    assert err["error"] == "bad_request"
    assert re.fullmatch(r"(invalid|unknown) exchange type 'nosuch'", err["reason"]), err
    r = api("PUT", path, data=b"{bad", headers={"Content-Type": "application/json"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "not_json"}
    assert api("GET", path).status_code == 404
    reserved = mgmt_objects.track_exchange("amq.%s" % uniq("x"))
    not_authorised(api("PUT", "/api/exchanges/%2F/" + q(reserved), json={"type": "direct"}), "Access refused.")
    not_authorised(api("DELETE", "/api/exchanges/%2F/amq.direct"), "Access refused.")
    not_authorised(api("DELETE", "/api/exchanges/%2F/amq.default"), "Access refused.")
    # re-declaring a predefined exchange with its own properties is fine, with others it is not
    expect(api("PUT", "/api/exchanges/%2F/amq.direct", json={"type": "direct", "durable": True}), 204)
    r = api("PUT", "/api/exchanges/%2F/amq.direct", json={"type": "fanout", "durable": True})
    assert "inequivalent arg 'type'" in error_body(r, 400)["reason"]
    r = api("PUT", "/api/exchanges/%s/%s" % (q(uniq("novhost")), q(x)), json={"type": "direct"})
    assert error_body(r, 404) == {"error": "not_found", "reason": "vhost_not_found"}
    assert error_body(api("GET", "/api/exchanges/" + q(uniq("novhost"))), 404) == NOT_FOUND


def test_exchange_delete_if_unused(mgmt_objects):
    x = mgmt_objects.exchange(type="fanout")
    qn = mgmt_objects.queue()
    expect(api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn)), json={"routing_key": "", "arguments": {}}), 201)
    r = api("DELETE", "/api/exchanges/%2F/" + q(x), params={"if-unused": "true"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "exchange '%s' in vhost '/' in use" % x}
    expect(api("DELETE", "/api/exchanges/%2F/" + q(x)), 204)
    assert get_json("/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn))) == []


def test_exchange_publish(mgmt_objects):
    x = mgmt_objects.exchange(type="topic")
    qn = mgmt_objects.queue()
    expect(api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn)), json={"routing_key": "a.#", "arguments": {}}),
           201)
    pub = "/api/exchanges/%%2F/%s/publish" % q(x)
    r = expect(api("POST", pub, json={"properties": {}, "routing_key": "a.b", "payload": "hello",
                                      "payload_encoding": "string"}), 200)
    assert r.json() == {"routed": True}
    assert r.headers["Content-Type"].startswith("application/json")
    assert expect(api("POST", pub, json={"properties": {}, "routing_key": "zz", "payload": "lost",
                                         "payload_encoding": "string"}), 200).json() == {"routed": False}
    binary = b"\xff\x00\xfe binary \x80"
    props = {"delivery_mode": 2, "headers": {"a": 1, "b": "s", "c": True, "d": [1, "x"], "e": {"f": "g"}},
             "content_type": "application/octet-stream", "content_encoding": "gzip", "correlation_id": "c1",
             "priority": 5, "message_id": "m1", "timestamp": 1000, "expiration": "50000",
             "user_id": MGMT_USER, "app_id": "a", "type": "t", "reply_to": "r"}
    assert expect(api("POST", pub, json={"properties": props, "routing_key": "a.c",
                                         "payload": base64.b64encode(binary).decode(),
                                         "payload_encoding": "base64"}), 200).json() == {"routed": True}
    # amq.default routes by queue name
    r = api("POST", "/api/exchanges/%2F/amq.default/publish",
            json={"properties": {}, "routing_key": qn, "payload": "via-default", "payload_encoding": "string"})
    assert expect(r, 200).json() == {"routed": True}
    # what arrived, read over AMQP
    c = connect()
    try:
        ch = c.channel()
        got = []
        for _ in range(3):
            m, p, b = ch.basic_get(qn, auto_ack=True)
            assert m is not None
            got.append((m.exchange, m.routing_key, p, b))
        assert ch.basic_get(qn, auto_ack=True)[0] is None
    finally:
        c.close()
    assert [(e, rk, b) for e, rk, _, b in got] == [(x, "a.b", b"hello"), (x, "a.c", binary), ("", qn, b"via-default")]
    p = got[1][2]
    assert (p.delivery_mode, p.content_type, p.content_encoding, p.correlation_id, p.priority, p.message_id,
            p.timestamp, p.expiration, p.user_id, p.app_id, p.type, p.reply_to) == \
        (2, "application/octet-stream", "gzip", "c1", 5, "m1", 1000, "50000", MGMT_USER, "a", "t", "r")
    assert p.headers == {"a": 1, "b": "s", "c": True, "d": [1, "x"], "e": {"f": "g"}}


def test_exchange_publish_into_a_reject_publish_queue(mgmt_objects):
    """A queue full with x-overflow reject-publish refuses the HTTP publish with 400, as its
    confirm is a nack (RabbitMQ 3.10.8); the message is not added."""
    qn = uniq("rp")
    expect(api("PUT", "/api/queues/%%2F/%s" % q(qn), json={
        "durable": False, "arguments": {"x-max-length": 1, "x-overflow": "reject-publish"}}), 201)
    try:
        pub = "/api/exchanges/%2F/amq.default/publish"
        body = {"properties": {}, "routing_key": qn, "payload": "x", "payload_encoding": "string"}
        r = api("POST", pub, json=body)
        expect(r, 200)
        assert r.json() == {"routed": True}
        assert error_body(api("POST", pub, json=body), 400) == {
            "error": "bad_request", "reason": "rejected Unable to publish message. Check queue limits."}
        got = api("POST", "/api/queues/%%2F/%s/get" % q(qn),
                  json={"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"})
        expect(got, 200)
        assert len(got.json()) == 1
    finally:
        api("DELETE", "/api/queues/%%2F/%s" % q(qn))


def test_exchange_publish_errors(mgmt_objects):
    x = mgmt_objects.exchange(type="fanout")
    pub = "/api/exchanges/%%2F/%s/publish" % q(x)
    good = {"properties": {}, "routing_key": "k", "payload": "p", "payload_encoding": "string"}
    r = api("POST", pub, data=b"{bad", headers={"Content-Type": "application/json"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "not_json"}
    for missing in ("properties", "routing_key", "payload", "payload_encoding"):
        body = dict(good)
        del body[missing]
        err = error_body(api("POST", pub, json=body), 400)  # reason: "[{key_missing,routing_key}]"
        assert err["error"] == "bad_request" and missing in err["reason"], err
    # Erlang-term reasons (["unsupported_encoding","bogus"], ["not_base64","..."], ["not_int",...])
    for bad in ({"payload_encoding": "bogus"}, {"payload": "!!!not base64", "payload_encoding": "base64"},
                {"properties": {"delivery_mode": "x"}}):
        body = dict(good)
        body.update(bad)
        assert error_body(api("POST", pub, json=body), 400)["error"] == "bad_request", bad
    body = dict(good, properties={"user_id": "someone-else"})
    assert error_body(api("POST", pub, json=body), 400) == {
        "error": "bad_request",
        "reason": "406 PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user "
                  "was '%s'" % MGMT_USER}
    # A bad expiration is refused as basic.publish refuses it (texts from RabbitMQ 3.10.8).
    for exp, term in (("bad", "no_integer"), ("-5", "{value_negative,-5}"),
                      ("12abc", '{leftover_string,"abc"}')):
        body = dict(good, properties={"expiration": exp})
        assert error_body(api("POST", pub, json=body), 400) == {
            "error": "bad_request",
            "reason": "406 PRECONDITION_FAILED - invalid expiration '%s': %s" % (exp, term)}
    nosuch = uniq("nosuch")
    r = api("POST", "/api/exchanges/%%2F/%s/publish" % q(nosuch), json=good)
    assert error_body(r, 400) == {"error": "bad_request",
                                  "reason": "404 NOT_FOUND - no exchange '%s' in vhost '/'" % nosuch}
    r = api("GET", pub)
    expect(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_exchange_bindings_source_destination(mgmt_objects):
    src = mgmt_objects.exchange(type="topic")
    dst = mgmt_objects.exchange(type="fanout")
    qn = mgmt_objects.queue()
    expect(api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(src), q(qn)), json={"routing_key": "a.#", "arguments": {}}), 201)
    expect(api("POST", "/api/bindings/%%2F/e/%s/e/%s" % (q(src), q(dst)), json={"routing_key": "k", "arguments": {}}), 201)
    source = get_json("/api/exchanges/%%2F/%s/bindings/source" % q(src))
    assert sorted((b["destination"], b["destination_type"], b["routing_key"]) for b in source) == \
        sorted([(qn, "queue", "a.#"), (dst, "exchange", "k")])
    assert get_json("/api/exchanges/%%2F/%s/bindings/destination" % q(src)) == []
    dest = get_json("/api/exchanges/%%2F/%s/bindings/destination" % q(dst))
    assert dest == [{"source": src, "vhost": "/", "destination": dst, "destination_type": "exchange",
                     "routing_key": "k", "arguments": {}, "properties_key": "k"}]


# ============================================================================ 5. bindings
def test_binding_queue_lifecycle(mgmt_objects):
    x = mgmt_objects.exchange(type="topic")
    qn = mgmt_objects.queue()
    base = "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn))
    r = expect(api("POST", base, json={"routing_key": "a.#", "arguments": {}}), 201)
    # Location is relative to the request URL: <destination>/<properties_key, quoted once more>
    assert r.headers["Location"] == "%s/a.%%2523" % qn
    assert r.content == b""
    # posting the same binding again is fine
    expect(api("POST", base, json={"routing_key": "a.#", "arguments": {}}), 201)
    listed = get_json(base)
    assert listed == [{"source": x, "vhost": "/", "destination": qn, "destination_type": "queue",
                       "routing_key": "a.#", "arguments": {}, "properties_key": "a.%23"}]
    # by properties key (quoted as a path segment) -- Location resolves to the same resource
    assert get_json(base + "/" + q("a.%23")) == listed[0]
    location = urllib.parse.urljoin(base, r.headers["Location"])
    assert get_json(location) == listed[0]
    # it routes
    assert expect(api("POST", "/api/exchanges/%%2F/%s/publish" % q(x),
                      json={"properties": {}, "routing_key": "a.b.c", "payload": "r", "payload_encoding": "string"}),
                  200).json() == {"routed": True}
    # the queue's own binding list has the default-exchange binding first
    qb = get_json("/api/queues/%%2F/%s/bindings" % q(qn))
    assert qb == [{"source": "", "vhost": "/", "destination": qn, "destination_type": "queue",
                   "routing_key": qn, "arguments": {}, "properties_key": qn}, listed[0]]
    r = expect(api("DELETE", base + "/" + q("a.%23")), 204)
    assert r.content == b""
    assert get_json(base) == []
    assert error_body(api("GET", base + "/" + q("a.%23")), 404) == NOT_FOUND
    assert error_body(api("DELETE", base + "/" + q("a.%23")), 404) == NOT_FOUND


def test_binding_properties_keys(mgmt_objects):
    x = mgmt_objects.exchange(type="direct")
    qn = mgmt_objects.queue()
    base = "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn))
    cases = [("", {}), ("k1", {"x-foo": "bar"}), ("", {"x-a": 1}), ("sp ace/sl~t", {})]
    locations = {}
    for rk, args in cases:
        r = expect(api("POST", base, json={"routing_key": rk, "arguments": args}), 201)
        locations[(rk, json.dumps(args, sort_keys=True))] = r.headers["Location"]
    listed = get_json(base)
    assert len(listed) == 4
    keys = {(b["routing_key"], json.dumps(b["arguments"], sort_keys=True)): b["properties_key"] for b in listed}
    assert keys[("", "{}")] == "~"
    assert keys[("sp ace/sl~t", "{}")] == "sp+ace%2Fsl%7Et"  # form-encoded routing key
    assert re.fullmatch(r"k1~[A-Za-z0-9_\-]+", keys[("k1", '{"x-foo": "bar"}')])  # rk~<hash of arguments>
    assert re.fullmatch(r"~[A-Za-z0-9_\-]+", keys[("", '{"x-a": 1}')])
    for k, pk in keys.items():
        assert locations[k] == "%s/%s" % (qn, q(pk)), (k, locations[k])
        assert get_json(base + "/" + q(pk))["properties_key"] == pk
    for pk in keys.values():
        expect(api("DELETE", base + "/" + q(pk)), 204)
    assert get_json(base) == []


def test_binding_exchange_to_exchange(mgmt_objects):
    src = mgmt_objects.exchange(type="direct")
    dst = mgmt_objects.exchange(type="fanout")
    qn = mgmt_objects.queue()
    expect(api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(dst), q(qn)), json={"routing_key": "", "arguments": {}}), 201)
    base = "/api/bindings/%%2F/e/%s/e/%s" % (q(src), q(dst))
    r = expect(api("POST", base, json={"routing_key": "r", "arguments": {}}), 201)
    assert r.headers["Location"] == "%s/r" % dst
    r = expect(api("POST", base, json={"routing_key": "r2", "arguments": {"x-match": "any", "h": "v"}}), 201)
    assert r.headers["Location"].startswith("%s/r2~" % dst)
    listed = get_json(base)
    assert [(b["routing_key"], b["destination_type"], b["arguments"]) for b in listed] == \
        [("r", "exchange", {}), ("r2", "exchange", {"x-match": "any", "h": "v"})]
    assert expect(api("POST", "/api/exchanges/%%2F/%s/publish" % q(src),
                      json={"properties": {}, "routing_key": "r", "payload": "e2e", "payload_encoding": "string"}),
                  200).json() == {"routed": True}
    assert amqp_count(qn) == 1
    for b in listed:
        expect(api("DELETE", base + "/" + q(b["properties_key"])), 204)
    assert get_json(base) == []


def test_binding_listings(mgmt_objects):
    x = mgmt_objects.exchange(type="direct")
    qn = mgmt_objects.queue()
    expect(api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn)), json={"routing_key": "rk", "arguments": {}}), 201)
    mine = [b for b in get_json("/api/bindings/%2F") if b["destination"] == qn]
    assert mine == [
        {"source": "", "vhost": "/", "destination": qn, "destination_type": "queue", "routing_key": qn,
         "arguments": {}, "properties_key": qn},
        {"source": x, "vhost": "/", "destination": qn, "destination_type": "queue", "routing_key": "rk",
         "arguments": {}, "properties_key": "rk"}]
    assert [b for b in get_json("/api/bindings") if b["destination"] == qn] == mine
    assert error_body(api("GET", "/api/bindings/" + q(uniq("novhost"))), 404) == NOT_FOUND


def test_binding_errors(mgmt_objects):
    x = mgmt_objects.exchange(type="direct")
    qn = mgmt_objects.queue()
    nx, nq = uniq("nosuch-x"), uniq("nosuch-q")
    r = api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(nx), q(qn)), json={"routing_key": "k", "arguments": {}})
    assert error_body(r, 404) == {"error": "not_found", "reason": "no exchange '%s' in vhost '/'" % nx}
    r = api("POST", "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(nq)), json={"routing_key": "k", "arguments": {}})
    assert error_body(r, 404) == {"error": "not_found", "reason": "no queue '%s' in vhost '/'" % nq}
    r = api("POST", "/api/bindings/%s/e/%s/q/%s" % (q(uniq("novhost")), q(x), q(qn)),
            json={"routing_key": "k", "arguments": {}})
    assert error_body(r, 404) == {"error": "not_found", "reason": "vhost_not_found"}
    not_authorised(api("POST", "/api/bindings/%%2F/e/amq.default/q/%s" % q(qn),
                       json={"routing_key": "k", "arguments": {}}), "Access refused.")
    base = "/api/bindings/%%2F/e/%s/q/%s" % (q(x), q(qn))
    assert error_body(api("GET", base + "/nosuch"), 404) == NOT_FOUND
    assert error_body(api("DELETE", base + "/nosuch"), 404) == NOT_FOUND
    r = api("PUT", base, json={})
    expect(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"HEAD", "GET", "POST", "OPTIONS"}
    # a malformed body: RabbitMQ 3.10.8 answers 500 with an empty body (accidental); a 400 is the
    # sensible answer. Either way nothing is bound and the server keeps working.
    r = api("POST", base, data=b"{bad", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 600, describe(r)
    assert get_json(base) == []


# ============================================================================ 6. connections
class Live:
    pass


@pytest.fixture(scope="module")
def live(module_objects):
    """A connection (named, heartbeat 60) with channel 1: prefetch 7, confirms, a consumer with
    tag/arguments holding 2 unacked messages; its API entry once the statistics show it."""
    lv = Live()
    lv.user_name = uniq("live-conn")
    lv.queue = module_objects.queue(prefix="live-q")
    lv.tag = "ctag-" + uuid.uuid4().hex[:10]
    lv.conn = connect(client_properties={"connection_name": lv.user_name}, heartbeat=60)
    try:
        ch = lv.conn.channel()
        ch.basic_qos(prefetch_count=7)
        ch.confirm_delivery()
        for i in range(2):
            ch.basic_publish("", lv.queue, b"live-%d" % i)
        got = []
        ch.basic_consume(lv.queue, lambda c, m, p, b: got.append(m.delivery_tag), consumer_tag=lv.tag,
                         arguments={"x-priority": 5})
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            lv.conn.process_data_events(time_limit=0.05)
        assert len(got) == 2
        lv.ch = ch

        def find():
            for c in get_json("/api/connections"):
                if c.get("client_properties", {}).get("connection_name") == lv.user_name and "recv_oct" in c:
                    return c
            return None
        lv.api = wait_for(find, what="connection listed", pump=lv.conn)
        lv.name = lv.api["name"]
        yield lv
    finally:
        try:
            lv.conn.close()
        except Exception:  # noqa: BLE001
            pass


def test_connection_fields(live):
    c = live.api
    params = live.conn._impl.params  # negotiated values (pika keeps them in its parameters)
    assert c["user"] == AMQP_USER and c["vhost"] == "/"
    assert c["protocol"] == "AMQP 0-9-1" and c["state"] == "running"
    assert c["port"] == AMQP_PORT and is_int(c["peer_port"]) and c["peer_port"] > 0
    assert isinstance(c["host"], str) and isinstance(c["peer_host"], str)
    assert c["name"] == "%s:%d -> %s:%d" % (c["peer_host"], c["peer_port"], c["host"], c["port"])
    assert c["user_provided_name"] == live.user_name
    cp = c["client_properties"]
    assert cp["connection_name"] == live.user_name
    assert cp["product"] == "Pika Python Client Library" and cp["version"] == pika.__version__
    assert cp["capabilities"]["publisher_confirms"] is True and cp["capabilities"]["basic.nack"] is True
    assert is_int(c["connected_at"]) and abs(c["connected_at"] / 1000.0 - time.time()) < 600
    assert is_int(c["recv_oct"]) and c["recv_oct"] > 0 and is_int(c["send_oct"]) and c["send_oct"] > 0
    assert c["timeout"] == params.heartbeat == 60
    assert c["frame_max"] == params.frame_max and c["channel_max"] == params.channel_max
    assert is_int(c["channels"]) and c["channels"] >= 0
    assert c["auth_mechanism"] == "PLAIN" and c["ssl"] is False and c["type"] == "network"
    assert c["node"] == node_name()


def test_connection_by_name_and_channels(live):
    c = get_json("/api/connections/" + q(live.name))
    assert c["name"] == live.name and c["user_provided_name"] == live.user_name
    chans = wait_for(lambda: get_json("/api/connections/%s/channels" % q(live.name)),
                     what="connection's channels", pump=live.conn)
    assert [(x["name"], x["number"]) for x in chans] == [(live.name + " (1)", 1)]
    wait_for(lambda: get_json("/api/connections/" + q(live.name))["channels"] == 1,
             what="connection channel count 1", pump=live.conn)
    assert live.name in {x["name"] for x in get_json("/api/vhosts/%2F/connections")}
    assert live.name + " (1)" in {x["name"] for x in get_json("/api/vhosts/%2F/channels")}


def test_channel_fields(live):
    def find():
        for ch in get_json("/api/channels"):
            if ch["connection_details"]["name"] == live.name and \
                    ch.get("message_stats", {}).get("publish") == 2 and ch.get("consumer_count") == 1:
                return ch
        return None
    ch = wait_for(find, what="channel with 2 publishes", pump=live.conn)
    assert ch["name"] == live.name + " (1)" and ch["number"] == 1
    assert ch["user"] == AMQP_USER and ch["vhost"] == "/" and ch["node"] == node_name()
    assert ch["connection_details"] == {"name": live.name, "peer_host": live.api["peer_host"],
                                        "peer_port": live.api["peer_port"]}
    assert (ch["consumer_count"], ch["messages_unacknowledged"], ch["prefetch_count"]) == (1, 2, 7)
    assert (ch["confirm"], ch["transactional"], ch["state"]) == (True, False, "running")
    assert is_number(ch["message_stats"]["publish_details"]["rate"])
    assert ch["message_stats"]["confirm"] == 2
    one = get_json("/api/channels/" + q(ch["name"]))
    assert one["name"] == ch["name"]
    assert [d["consumer_tag"] for d in one["consumer_details"]] == [live.tag]
    assert error_body(api("GET", "/api/channels/" + q(uniq("nosuch"))), 404) == NOT_FOUND


def check_consumer(c, live):
    assert c["consumer_tag"] == live.tag
    assert c["queue"] == {"name": live.queue, "vhost": "/"}
    cd = c["channel_details"]
    assert (cd["name"], cd["number"], cd["connection_name"], cd["user"]) == \
        (live.name + " (1)", 1, live.name, AMQP_USER)
    assert (cd["peer_host"], cd["peer_port"]) == (live.api["peer_host"], live.api["peer_port"])
    assert (c["ack_required"], c["prefetch_count"], c["exclusive"], c["active"]) == (True, 7, False, True)
    assert c["arguments"] == {"x-priority": 5}


def test_consumers(live):
    def mine(path):
        return [c for c in get_json(path) if c["consumer_tag"] == live.tag]
    found = wait_for(lambda: mine("/api/consumers"), what="consumer listed", pump=live.conn)
    assert len(found) == 1
    check_consumer(found[0], live)
    found = mine("/api/consumers/%2F")
    assert len(found) == 1
    check_consumer(found[0], live)
    assert error_body(api("GET", "/api/consumers/" + q(uniq("novhost"))), 404) == NOT_FOUND


def test_queue_consumer_details(live):
    body = wait_queue("/", live.queue, lambda b: b["consumers"] == 1 and b["messages_unacknowledged"] == 2
                      and len(b["consumer_details"]) == 1, what="queue consumer details")
    assert body["messages_ready"] == 0 and body["messages"] == 2
    check_consumer(body["consumer_details"][0], live)


@pytest.mark.parametrize("reason", ["bye", None])
def test_connection_close_via_api(connection_factory, reason):
    cname = uniq("doomed")
    conn = connection_factory(client_properties={"connection_name": cname})
    conn.channel()

    def find():
        return [c["name"] for c in get_json("/api/connections")
                if c.get("client_properties", {}).get("connection_name") == cname]
    name = wait_for(find, what="connection listed", pump=conn)[0]
    headers = {"X-Reason": reason} if reason else {}
    r = expect(api("DELETE", "/api/connections/" + q(name), headers=headers), 204)
    assert r.content == b""
    exc = wait_closed_by_broker(conn)
    assert exc.reply_code == 320
    assert exc.reply_text == "CONNECTION_FORCED - " + (reason or "Closed via management plugin")
    wait_for(lambda: api("GET", "/api/connections/" + q(name)).status_code == 404, what="connection gone")
    assert error_body(api("GET", "/api/connections/" + q(name)), 404) == NOT_FOUND
    assert error_body(api("DELETE", "/api/connections/" + q(name)), 404) == NOT_FOUND


# ============================================================================ 7. users, permissions, vhosts
def test_user_lifecycle(mgmt_objects):
    u = mgmt_objects.track_user(uniq("user"))
    path = "/api/users/" + q(u)
    r = expect(api("PUT", path, json={"password": "p1", "tags": "management"}), 201)
    assert r.content == b""
    expect(api("PUT", path, json={"password": "p1", "tags": "management"}), 204)
    body = get_json(path)
    assert set(body) == {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
    assert (body["name"], body["tags"], body["limits"]) == (u, ["management"], {})
    assert body["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(body["password_hash"])
    assert len(raw) == 36 and rabbit_password_hash("p1", raw[:4]) == body["password_hash"]
    # tags as a list, and as a comma separated string (whitespace trimmed)
    expect(api("PUT", path, json={"password": "p1", "tags": ["monitoring", "policymaker"]}), 204)
    assert get_json(path)["tags"] == ["monitoring", "policymaker"]
    expect(api("PUT", path, json={"password": "p1", "tags": "a, b ,c"}), 204)
    assert get_json(path)["tags"] == ["a", "b", "c"]
    expect(api("PUT", path, json={"password": "p1", "tags": ""}), 204)
    assert get_json(path)["tags"] == []
    assert u in {x["name"] for x in get_json("/api/users")}
    assert any(x["name"] == u for x in get_json("/api/users/without-permissions"))
    r = expect(api("DELETE", path), 204)
    assert r.content == b""
    assert error_body(api("GET", path), 404) == NOT_FOUND
    assert error_body(api("DELETE", path), 404) == NOT_FOUND


def test_user_put_errors(mgmt_objects):
    u = mgmt_objects.track_user(uniq("user"))
    path = "/api/users/" + q(u)
    r = api("PUT", path, json={"password": "p"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "tags_not_present"}
    r = api("PUT", path, data=b"{bad", headers={"Content-Type": "application/json"})
    assert error_body(r, 400) == {"error": "bad_request", "reason": "not_json"}
    r = api("PUT", path, json={"password_hash": "not base64!!", "tags": ""})
    assert error_body(r, 400)["error"] == "bad_request"  # reason: ["not_base64","not base64!!"]
    assert api("GET", path).status_code == 404


def test_user_without_password_cannot_log_in(mgmt_objects):
    u = mgmt_objects.track_user(uniq("nopw"))
    expect(api("PUT", "/api/users/" + q(u), json={"tags": "management"}), 201)
    assert get_json("/api/users/" + q(u))["tags"] == ["management"]
    mgmt_objects.grant(u)
    with pytest.raises(ProbableAuthenticationError):
        connect(**login(u, "anything")).close()
    assert error_body(api("GET", "/api/overview", user=u, password="anything"), 401) == LOGIN_FAILED


def test_user_with_password_hash_logs_in(mgmt_objects):
    u = mgmt_objects.track_user(uniq("hashed"))
    pw_hash = rabbit_password_hash("hashed-secret")
    expect(api("PUT", "/api/users/" + q(u), json={"password_hash": pw_hash, "tags": "management"}), 201)
    assert get_json("/api/users/" + q(u))["password_hash"] == pw_hash
    mgmt_objects.grant(u)
    c = connect(**login(u, "hashed-secret"))
    c.close()
    with pytest.raises(ProbableAuthenticationError):
        connect(**login(u, "hashed-secret-wrong")).close()
    assert get_json("/api/whoami", user=u, password="hashed-secret") == {"name": u, "tags": ["management"]}
    # an empty hash makes a passwordless user
    expect(api("PUT", "/api/users/" + q(u), json={"password_hash": "", "tags": ""}), 204)
    assert get_json("/api/users/" + q(u))["password_hash"] == ""
    with pytest.raises(ProbableAuthenticationError):
        connect(**login(u, "hashed-secret")).close()


def test_tutorial_user_made_in_the_web_ui(mgmt_objects):
    """Create a user in the management UI, give it "/" and use it from a client."""
    u = mgmt_objects.track_user(uniq("webuser"))
    expect(api("PUT", "/api/users/" + q(u), json={"password": "web-secret", "tags": ""}), 201)
    expect(api("PUT", "/api/permissions/%2F/" + q(u), json={"configure": ".*", "write": ".*", "read": ".*"}), 201)
    qn = mgmt_objects.track_queue(uniq("webq"))
    c = connect(**login(u, "web-secret"))
    try:
        ch = c.channel()
        ch.queue_declare(qn)
        ch.confirm_delivery()
        ch.basic_publish("", qn, "héllo from the web user".encode("utf-8"))
        m, _, b = ch.basic_get(qn, auto_ack=True)
        assert b == "héllo from the web user".encode("utf-8")
    finally:
        c.close()
    assert get_json("/api/queues/%2F/" + q(qn))["name"] == qn
    # but it may not use the HTTP API (no tag)
    not_authorised(api("GET", "/api/overview", user=u, password="web-secret"), NMU)


def test_permissions_lifecycle(mgmt_objects):
    u = mgmt_objects.user()
    vhost = mgmt_objects.vhost()
    path = "/api/permissions/%s/%s" % (q(vhost), q(u))
    r = expect(api("PUT", path, json={"configure": ".*", "write": ".*", "read": ".*"}), 201)
    assert r.content == b""
    expect(api("PUT", path, json={"configure": "^a", "write": ".*", "read": "^r"}), 204)
    entry = {"user": u, "vhost": vhost, "configure": "^a", "write": ".*", "read": "^r"}
    assert get_json(path) == entry
    assert get_json("/api/users/%s/permissions" % q(u)) == [entry]
    assert entry in get_json("/api/permissions")
    assert entry in get_json("/api/vhosts/%s/permissions" % q(vhost))
    r = expect(api("DELETE", path), 204)
    assert r.content == b""
    assert error_body(api("GET", path), 404) == NOT_FOUND
    assert error_body(api("DELETE", path), 404) == NOT_FOUND
    assert get_json("/api/users/%s/permissions" % q(u)) == []


def test_permissions_errors(mgmt_objects):
    u = mgmt_objects.user()
    vhost = mgmt_objects.vhost()
    good = {"configure": ".*", "write": ".*", "read": ".*"}
    r = api("PUT", "/api/permissions/%s/%s" % (q(vhost), q(u)), json=dict(good, configure="("))
    # reason is an Erlang term: ["invalid_regexp",[40],[[109,105,...],1]]
    assert error_body(r, 400)["error"] == "bad_request"
    r = api("PUT", "/api/permissions/%s/%s" % (q(vhost), q(u)), json={"configure": ".*", "write": ".*"})
    err = error_body(r, 400)  # "[{key_missing,read}]"
    assert err["error"] == "bad_request" and "read" in err["reason"]
    for v, user in ((uniq("novhost"), u), (vhost, uniq("nouser"))):
        r = api("PUT", "/api/permissions/%s/%s" % (q(v), q(user)), json=good)
        assert error_body(r, 400) == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
        assert error_body(api("GET", "/api/permissions/%s/%s" % (q(v), q(user))), 404) == NOT_FOUND
    assert error_body(api("GET", "/api/users/%s/permissions" % q(uniq("nouser"))), 404) == NOT_FOUND
    assert get_json("/api/users/%s/permissions" % q(u)) == []


def test_permissions_enforced_over_amqp(mgmt_objects):
    u = mgmt_objects.user(password="perm-secret")
    vhost = mgmt_objects.vhost()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(**login(u, "perm-secret", vhost)).close()
    expect(api("PUT", "/api/permissions/%s/%s" % (q(vhost), q(u)),
               json={"configure": ".*", "write": ".*", "read": ".*"}), 201)
    connect(**login(u, "perm-secret", vhost)).close()


def test_topic_permissions(mgmt_objects):
    u = mgmt_objects.user()
    vhost = mgmt_objects.vhost()
    path = "/api/topic-permissions/%s/%s" % (q(vhost), q(u))
    body = {"exchange": "amq.topic", "write": "^x", "read": ".*"}
    r = expect(api("PUT", path, json=body), 201)
    assert r.content == b""
    expect(api("PUT", path, json=body), 204)
    entry = {"user": u, "vhost": vhost, "exchange": "amq.topic", "write": "^x", "read": ".*"}
    assert get_json(path) == [entry]  # a list, even for one user and vhost
    assert get_json("/api/users/%s/topic-permissions" % q(u)) == [entry]
    assert entry in get_json("/api/topic-permissions")
    assert get_json("/api/vhosts/%s/topic-permissions" % q(vhost)) == [entry]
    r = api("PUT", path, json={"write": "^x", "read": ".*"})
    err = error_body(r, 400)  # "[{key_missing,exchange}]"
    assert err["error"] == "bad_request" and "exchange" in err["reason"]
    r = api("PUT", path, json=dict(body, write="("))
    assert error_body(r, 400)["error"] == "bad_request"  # ["invalid_regexp","(",...]
    expect(api("DELETE", path), 204)
    assert error_body(api("GET", path), 404) == NOT_FOUND
    assert get_json("/api/users/%s/topic-permissions" % q(u)) == []


def test_vhost_lifecycle(mgmt_objects):
    vhost = mgmt_objects.track_vhost(uniq("vhost"))
    path = "/api/vhosts/" + q(vhost)
    r = expect(api("PUT", path, json={"description": "d", "tags": "a,b"}), 201)
    assert r.content == b""
    expect(api("PUT", path, json={"description": "d", "tags": "a,b"}), 204)
    body = get_json(path)
    assert (body["name"], body["description"], body["tags"], body["tracing"]) == (vhost, "d", ["a", "b"], False)
    # the creating user gets full permissions on the new vhost
    assert get_json(path + "/permissions") == [
        {"vhost": vhost, "user": MGMT_USER, "configure": ".*", "write": ".*", "read": ".*"}]
    # message counts once it has a queue with messages
    qn = mgmt_objects.queue(vhost=vhost)
    c = connect(virtual_host=vhost)
    try:
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("", qn, b"1")
        ch.basic_publish("", qn, b"2")
    finally:
        c.close()
    body = wait_for(lambda: (lambda b: b if b.get("messages") == 2 else None)(get_json(path)),
                    what="vhost message count")
    assert body["messages_ready"] == 2 and body["messages_unacknowledged"] == 0
    listed = {v["name"]: v for v in get_json("/api/vhosts")}
    assert listed[vhost]["description"] == "d" and listed[vhost]["tags"] == ["a", "b"]
    r = expect(api("DELETE", path), 204)
    assert r.content == b""
    assert error_body(api("GET", path), 404) == NOT_FOUND
    assert error_body(api("DELETE", path), 404) == NOT_FOUND
    assert error_body(api("GET", "/api/queues/" + q(vhost)), 404) == NOT_FOUND


def test_vhost_tags_list_and_tracing(mgmt_objects):
    if get_json("/api/overview")["product_name"] == "Warren":
        # Warren has no firehose: it refuses to turn tracing on rather than store a dead flag
        # (docs/compatibility.md).
        name = mgmt_objects.track_vhost(uniq("vhost"))
        r = api("PUT", "/api/vhosts/" + q(name), json={"description": "d2", "tracing": True})
        assert error_body(r, 400)["reason"] == "tracing (the firehose) is not supported by Warren"
        assert api("GET", "/api/vhosts/" + q(name)).status_code == 404
        vhost = mgmt_objects.vhost(body={"description": "d2", "tags": ["x", "y"], "tracing": False})
        body = get_json("/api/vhosts/" + q(vhost))
        assert (body["description"], body["tags"], body["tracing"]) == ("d2", ["x", "y"], False)
    else:
        vhost = mgmt_objects.vhost(body={"description": "d2", "tags": ["x", "y"], "tracing": True})
        body = get_json("/api/vhosts/" + q(vhost))
        assert (body["description"], body["tags"], body["tracing"]) == ("d2", ["x", "y"], True)
    plain = mgmt_objects.vhost()
    body = get_json("/api/vhosts/" + q(plain))
    assert (body["description"], body["tags"], body["tracing"]) == ("", [], False)


def test_vhost_with_slash_in_name(mgmt_objects):
    vhost = mgmt_objects.vhost(name=uniq("team") + "/a")
    qn = mgmt_objects.queue(vhost=vhost)
    assert [x["vhost"] for x in get_json("/api/queues/" + q(vhost))] == [vhost]
    assert get_json("/api/queues/%s/%s" % (q(vhost), q(qn)))["vhost"] == vhost
    assert get_json("/api/aliveness-test/" + q(vhost)) == {"status": "ok"}


def test_vhost_created_by_other_admin_grants_that_admin(mgmt_objects):
    admin = mgmt_objects.user(tags="administrator", password="adm-secret")
    vhost = mgmt_objects.track_vhost(uniq("vhost"))
    expect(api("PUT", "/api/vhosts/" + q(vhost), user=admin, password="adm-secret", json={}), 201)
    assert get_json("/api/vhosts/%s/permissions" % q(vhost)) == [
        {"vhost": vhost, "user": admin, "configure": ".*", "write": ".*", "read": ".*"}]
    connect(**login(admin, "adm-secret", vhost)).close()


# ============================================================================ 8. definitions
DEF_KEYS = {"rabbit_version", "rabbitmq_version", "product_name", "product_version", "users", "vhosts",
            "permissions", "topic_permissions", "parameters", "global_parameters", "policies", "queues",
            "exchanges", "bindings"}


def test_definitions_export(mgmt_objects):
    vhost = mgmt_objects.vhost(body={"description": "exported", "tags": "t1"})
    u = mgmt_objects.user(tags="management,monitoring")
    mgmt_objects.grant(u, vhost, "c", "w", "r")
    expect(api("PUT", "/api/topic-permissions/%s/%s" % (q(vhost), q(u)),
               json={"exchange": "amq.topic", "write": "tw", "read": "tr"}), 201)
    qn = mgmt_objects.queue(vhost=vhost, body={"durable": True, "arguments": {"x-message-ttl": 100}})
    x = mgmt_objects.exchange(vhost=vhost, body={"type": "fanout", "durable": False, "internal": True})
    expect(api("POST", "/api/bindings/%s/e/%s/q/%s" % (q(vhost), q(x), q(qn)),
               json={"routing_key": "k", "arguments": {"a": 1}}), 201)
    r = expect(api("GET", "/api/definitions"), 200)
    assert r.headers["Content-Type"].startswith("application/json")
    d = r.json()
    assert set(d) == DEF_KEYS
    for key in ("rabbit_version", "rabbitmq_version", "product_name", "product_version"):
        assert isinstance(d[key], str) and d[key], key
    mine = lambda items, **kv: [i for i in items if all(i.get(k) == v for k, v in kv.items())]  # noqa: E731
    assert mine(d["vhosts"], name=vhost) == [{"name": vhost}]  # 3.10.8 exports the name only
    users = mine(d["users"], name=u)
    assert len(users) == 1 and set(users[0]) == {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
    assert users[0]["tags"] == ["management", "monitoring"]
    assert users[0]["hashing_algorithm"] == "rabbit_password_hashing_sha256" and users[0]["limits"] == {}
    assert mine(d["permissions"], user=u) == [{"user": u, "vhost": vhost, "configure": "c", "write": "w", "read": "r"}]
    assert mine(d["topic_permissions"], user=u) == [
        {"user": u, "vhost": vhost, "exchange": "amq.topic", "write": "tw", "read": "tr"}]
    assert mine(d["queues"], vhost=vhost) == [
        {"name": qn, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 100}}]
    assert mine(d["exchanges"], vhost=vhost) == [
        {"name": x, "vhost": vhost, "type": "fanout", "durable": False, "auto_delete": False, "internal": True,
         "arguments": {}}]
    assert mine(d["bindings"], vhost=vhost) == [
        {"source": x, "vhost": vhost, "destination": qn, "destination_type": "queue", "routing_key": "k",
         "arguments": {"a": 1}}]
    # predefined exchanges and default-exchange bindings are not exported
    assert not [e for e in d["exchanges"] if e["name"] == "" or e["name"].startswith("amq.")]
    assert not [b for b in d["bindings"] if b["source"] == ""]
    assert all(isinstance(d[k], list) for k in DEF_KEYS - {"rabbit_version", "rabbitmq_version", "product_name",
                                                           "product_version"})

    # vhost-scoped: fewer keys, and no "vhost" in queues/exchanges/bindings
    v = get_json("/api/definitions/" + q(vhost))
    assert set(v) == {"rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"}
    assert v["queues"] == [{"name": qn, "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 100}}]
    assert v["exchanges"] == [{"name": x, "type": "fanout", "durable": False, "auto_delete": False,
                               "internal": True, "arguments": {}}]
    assert v["bindings"] == [{"source": x, "destination": qn, "destination_type": "queue", "routing_key": "k",
                              "arguments": {"a": 1}}]
    assert v["parameters"] == [] and v["policies"] == []
    # ?download= makes it an attachment (the web UI's "Download broker definitions")
    r = expect(api("GET", "/api/definitions", params={"download": "defs.json"}), 200)
    assert r.headers["Content-Disposition"] == "attachment; filename=defs.json"
    assert set(r.json()) == DEF_KEYS


def test_definitions_import(mgmt_objects):
    vhost = mgmt_objects.track_vhost(uniq("imp-vhost"))
    u = mgmt_objects.track_user(uniq("imp-user"))
    qn, x = uniq("imp-q"), uniq("imp-x")
    defs = {"users": [{"name": u, "password": "imp-secret", "tags": "management"}],
            "vhosts": [{"name": vhost}],
            "permissions": [{"user": u, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
            "queues": [{"name": qn, "vhost": vhost, "durable": True, "auto_delete": False,
                        "arguments": {"x-max-length": 5}}],
            "exchanges": [{"name": x, "vhost": vhost, "type": "fanout", "durable": True, "auto_delete": False,
                           "internal": False, "arguments": {}}],
            "bindings": [{"source": x, "vhost": vhost, "destination": qn, "destination_type": "queue",
                          "routing_key": "rk", "arguments": {}}]}
    r = expect(api("POST", "/api/definitions", json=defs), 204)
    assert r.content == b""
    assert get_json("/api/users/" + q(u))["tags"] == ["management"]
    assert get_json("/api/vhosts/" + q(vhost))["name"] == vhost
    assert get_json("/api/queues/%s/%s" % (q(vhost), q(qn)), params={"columns": "name,durable,arguments"}) == \
        {"name": qn, "durable": True, "arguments": {"x-max-length": 5}}
    assert get_json("/api/exchanges/%s/%s" % (q(vhost), q(x)))["type"] == "fanout"
    assert [b["routing_key"] for b in get_json("/api/bindings/%s/e/%s/q/%s" % (q(vhost), q(x), q(qn)))] == ["rk"]
    c = connect(**login(u, "imp-secret", vhost))
    try:
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish(x, "", b"imported")
        assert ch.queue_declare(qn, passive=True).method.message_count == 1
    finally:
        c.close()
    # importing the same again is fine
    expect(api("POST", "/api/definitions", json=defs), 204)


def test_definitions_import_vhost_scoped_and_multipart(mgmt_objects):
    vhost = mgmt_objects.vhost()
    qa, qb = uniq("imp-a"), uniq("imp-b")
    mgmt_objects.track_queue(qa, vhost)
    mgmt_objects.track_queue(qb, vhost)
    body = {"queues": [{"name": qa, "durable": True, "auto_delete": False, "arguments": {}}]}
    expect(api("POST", "/api/definitions/" + q(vhost), json=body), 204)
    assert get_json("/api/queues/%s/%s" % (q(vhost), q(qa)))["vhost"] == vhost
    # the web UI uploads a file as multipart/form-data (field "file")
    defs = {"queues": [{"name": qb, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": {}}]}
    r = api("POST", "/api/definitions", files={"file": ("defs.json", json.dumps(defs), "application/json")})
    expect(r, 204)
    assert get_json("/api/queues/%s/%s" % (q(vhost), q(qb)))["name"] == qb


def test_definitions_errors(mgmt_objects):
    for garbage in (b"garbage", b"[]"):
        r = api("POST", "/api/definitions", data=garbage, headers={"Content-Type": "application/json"})
        assert error_body(r, 400) == {"error": "bad_request", "reason": "failed_to_parse_json"}
    r = api("POST", "/api/definitions", data=b"{}", headers={"Content-Type": "application/json"})
    expect(r, 204)
    qn = mgmt_objects.track_queue(uniq("q"))
    r = api("POST", "/api/definitions", json={"queues": [{"name": qn, "vhost": uniq("novhost"), "durable": True,
                                                          "auto_delete": False, "arguments": {}}]})
    assert error_body(r, 400)["error"] == "bad_request"  # reason: ["no_such_vhost","<name>"]
    r = api("POST", "/api/definitions", data=b"{}", headers={"Content-Type": "text/plain"})
    expect(r, 415)
    r = api("POST", "/api/definitions/" + q(uniq("novhost")), json={"queues": []})
    assert error_body(r, 404) == {"error": "not_found", "reason": "vhost_not_found"}
    # GET for an unknown vhost: RabbitMQ 3.10.8 says 400 {"error":"bad_request","reason":"vhost_not_found"}
    # (while POST says 404); either is accepted
    r = api("GET", "/api/definitions/" + q(uniq("novhost")))
    assert error_body(r, (400, 404))["reason"] == "vhost_not_found"


# ============================================================================ 9. robustness
def test_huge_body_refused_and_server_survives(mgmt_objects):
    qn = mgmt_objects.track_queue(uniq("huge"))
    big = b'{"durable":false,"arguments":{"x-pad":"' + b"a" * (10 * 1024 * 1024) + b'"}}'
    try:
        r = api("PUT", "/api/queues/%2F/" + q(qn), data=big, headers={"Content-Type": "application/json"},
                timeout=60)
        # RabbitMQ 3.10.8 answers 500 with an empty body (accidental); 413 or 400 is the sensible answer
        assert r.status_code in (400, 413, 500), describe(r)
    except requests.exceptions.ConnectionError:
        pass  # closing the connection on an oversized body is acceptable too
    expect(api("GET", "/api/overview"), 200)
    assert api("GET", "/api/queues/%2F/" + q(qn)).status_code == 404
    # a 1 MB body is accepted
    ok = mgmt_objects.track_queue(uniq("mb"))
    mb = b'{"durable":false,"arguments":{"x-pad":"' + b"a" * (1024 * 1024) + b'"}}'
    expect(api("PUT", "/api/queues/%2F/" + q(ok), data=mb, headers={"Content-Type": "application/json"}), 201)


def test_odd_names_round_trip(mgmt_objects):
    name = "sp ace/ü?#%%-" + uuid.uuid4().hex[:8]
    mgmt_objects.queue(name=name)
    assert get_json("/api/queues/%2F/" + q(name), params={"columns": "name,vhost"}) == {"name": name, "vhost": "/"}
    assert name in {x["name"] for x in get_json("/api/queues/%2F")}
    assert amqp_count(name) == 0
    expect(api("DELETE", "/api/queues/%2F/" + q(name)), 204)
    # lower-case escapes are the same
    assert isinstance(get_json("/api/queues/%2f"), list)


def test_bad_paths():
    for path in ("/api/queues/%2F/%ZZ", "/api/queues/%2F/a%00b", "/api/nosuch", "/api/nosuch/deeper",
                 "/api/queues/%2F/" + q("ü-" + uuid.uuid4().hex)):
        r = api("GET", path)
        assert error_body(r, 404) == NOT_FOUND, path
    r = api("GET", "/api/queues/%2F//x")  # an empty segment: Cowboy says 400 (empty body)
    assert 400 <= r.status_code < 500, describe(r)
    expect(api("GET", "/api/overview"), 200)


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/api/overview", {"HEAD", "GET", "OPTIONS"}),
    ("PUT", "/api/overview", {"HEAD", "GET", "OPTIONS"}),
    ("DELETE", "/api/users", {"HEAD", "GET", "OPTIONS"}),
    ("POST", "/api/whoami", {"HEAD", "GET", "OPTIONS"}),
    ("PATCH", "/api/queues/%2F/x", {"HEAD", "GET", "PUT", "DELETE", "OPTIONS"}),
    ("POST", "/api/queues/%2F/x", {"HEAD", "GET", "PUT", "DELETE", "OPTIONS"}),
])
def test_method_not_allowed(method, path, allow):
    r = api(method, path, json={}) if method in ("POST", "PUT", "PATCH") else api(method, path)
    expect(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == allow
    assert r.content == b""

# -*- coding: utf-8 -*-
"""Helpers for the management HTTP API / Prometheus / rabbitmqadmin tests.

Environment (besides conftest's AMQP_* and WARRENCTL):
    MGMT_URL         management API base URL, default http://127.0.0.1:15672
    METRICS_URL      Prometheus endpoint base URL, default http://127.0.0.1:15692
    MGMT_USER        administrator used for the API, default $AMQP_USER (guest)
    MGMT_PASS        its password, default $AMQP_PASS (guest)
    MGMT_STATS_WAIT  upper bound in seconds for statistics to catch up, default 15
                     (RabbitMQ emits stats every 5 s; a connection's channel count can take two
                     emissions, ~10 s; Warren is expected to be immediate)

`api(method, path, ...)` returns a requests.Response; `q(name)` quotes one path segment;
`wait_for(fn)` polls until fn() returns something truthy (bounded); the `mgmt_objects` fixture
creates queues/exchanges/users/vhosts through the API and deletes them at teardown.
"""
import base64
import hashlib
import os
import time
import urllib.parse

import pytest
import requests

from conftest import HOST as AMQP_HOST  # noqa: F401 - re-exported for the test modules
from conftest import PASS as AMQP_PASS
from conftest import PORT as AMQP_PORT  # noqa: F401
from conftest import USER as AMQP_USER
from conftest import uniq

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672").rstrip("/")
METRICS_URL = os.environ.get("METRICS_URL", "http://127.0.0.1:15692").rstrip("/")
MGMT_USER = os.environ.get("MGMT_USER", AMQP_USER)
MGMT_PASS = os.environ.get("MGMT_PASS", AMQP_PASS)
STATS_WAIT = float(os.environ.get("MGMT_STATS_WAIT", "15"))
HTTP_TIMEOUT = 30

_NOJSON = object()

# Exact bodies RabbitMQ 3.10.8 sends (see tools/probe-http-3.10.8.txt).
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
LOGIN_FAILED = {"error": "not_authorized", "reason": "Login failed"}
REALM = 'Basic realm="RabbitMQ Management"'


def q(name):
    """Quote one path segment (vhost, queue, exchange, user, connection name...)."""
    return urllib.parse.quote(name, safe="")


def api(method, path, user=None, password=None, json=_NOJSON, params=None, data=None,
        headers=None, auth=True, timeout=HTTP_TIMEOUT, files=None):
    """One request to MGMT_URL + path. Credentials default to MGMT_USER/MGMT_PASS; auth=False
    sends none. `json` is serialised as the body (Content-Type application/json)."""
    kw = dict(params=params, headers=headers or {}, timeout=timeout)
    if auth:
        kw["auth"] = (MGMT_USER if user is None else user, MGMT_PASS if password is None else password)
    if json is not _NOJSON:
        kw["json"] = json
    if data is not None:
        kw["data"] = data
    if files is not None:
        kw["files"] = files
    return requests.request(method, MGMT_URL + path, **kw)


def metrics(path="/metrics", timeout=HTTP_TIMEOUT):
    return requests.get(METRICS_URL + path, timeout=timeout)


def describe(resp):
    return "%s %s -> %s %r" % (resp.request.method, resp.request.url, resp.status_code, resp.text[:600])


def expect(resp, status):
    """Assert the status (an int or a tuple of ints) and return the response."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in allowed, describe(resp)
    return resp


def get_json(path, status=200, **kw):
    return expect(api("GET", path, **kw), status).json()


def error_body(resp, status):
    """Assert an error response: status, JSON content type, and {"error", "reason"} keys."""
    expect(resp, status)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), describe(resp)
    body = resp.json()
    assert isinstance(body, dict) and "error" in body and "reason" in body, describe(resp)
    return body


def wait_for(fn, timeout=STATS_WAIT, step=0.25, what="condition", pump=None):
    """Call fn() until it returns a truthy value (returned) or `timeout` passes (test fails).
    `pump`: pika connection(s) whose I/O is processed while waiting (heartbeats, deliveries)."""
    deadline = time.monotonic() + timeout
    pumps = [] if pump is None else (list(pump) if isinstance(pump, (list, tuple)) else [pump])
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))
        if pumps:
            for c in pumps:
                c.process_data_events(time_limit=step / len(pumps))
        else:
            time.sleep(step)


def rabbit_password_hash(password, salt=None):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + utf8 password))."""
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def queue_stats(vhost, name, key="messages"):
    """GET the queue; falsy until the statistics include `key` (RabbitMQ adds them later)."""
    r = api("GET", "/api/queues/%s/%s" % (q(vhost), q(name)))
    if r.status_code != 200:
        return None
    body = r.json()
    return body if key in body else None


def wait_queue(vhost, name, pred, what=None):
    """Poll GET /api/queues/{vhost}/{name} until pred(body) holds; returns the body."""
    def check():
        r = api("GET", "/api/queues/%s/%s" % (q(vhost), q(name)))
        if r.status_code != 200:
            return None
        body = r.json()
        try:
            return body if pred(body) else None
        except (KeyError, TypeError):
            return None
    return wait_for(check, what=what or "queue %r stats" % name)


class Objects:
    """Things created through the API, deleted at teardown (errors ignored)."""

    def __init__(self):
        self.queues, self.exchanges, self.users, self.vhosts, self.policies = [], [], [], [], []

    # -- registration only (the test creates the object itself)
    def track_queue(self, name, vhost="/"):
        self.queues.append((vhost, name))
        return name

    def track_exchange(self, name, vhost="/"):
        self.exchanges.append((vhost, name))
        return name

    def track_user(self, name):
        self.users.append(name)
        return name

    def track_vhost(self, name):
        self.vhosts.append(name)
        return name

    def track_policy(self, name, vhost="/"):
        self.policies.append((vhost, name))
        return name

    # -- create + register
    def queue(self, name=None, vhost="/", body=None, prefix="q"):
        name = name or uniq(prefix)
        self.track_queue(name, vhost)
        expect(api("PUT", "/api/queues/%s/%s" % (q(vhost), q(name)), json=body or {}), 201)
        return name

    def exchange(self, name=None, vhost="/", type="direct", body=None, prefix="x"):
        name = name or uniq(prefix)
        self.track_exchange(name, vhost)
        payload = dict(body or {})
        payload.setdefault("type", type)
        expect(api("PUT", "/api/exchanges/%s/%s" % (q(vhost), q(name)), json=payload), 201)
        return name

    def user(self, name=None, password="pw-secret", tags="", prefix="user", grant_vhost=None):
        name = name or uniq(prefix)
        self.track_user(name)
        expect(api("PUT", "/api/users/%s" % q(name), json={"password": password, "tags": tags}), 201)
        if grant_vhost is not None:
            self.grant(name, grant_vhost)
        return name

    def vhost(self, name=None, prefix="vhost", body=None):
        name = name or uniq(prefix)
        self.track_vhost(name)
        expect(api("PUT", "/api/vhosts/%s" % q(name), json=body or {}), 201)
        return name

    def grant(self, user, vhost="/", configure=".*", write=".*", read=".*"):
        expect(api("PUT", "/api/permissions/%s/%s" % (q(vhost), q(user)),
                   json={"configure": configure, "write": write, "read": read}), (201, 204))

    def cleanup(self):
        def quiet(method, path):
            try:
                api(method, path, timeout=10)
            except Exception:  # noqa: BLE001 - teardown must not mask the test result
                pass
        for vhost, name in self.policies:
            quiet("DELETE", "/api/policies/%s/%s" % (q(vhost), q(name)))
        for vhost, name in self.queues:
            quiet("DELETE", "/api/queues/%s/%s" % (q(vhost), q(name)))
        for vhost, name in self.exchanges:
            quiet("DELETE", "/api/exchanges/%s/%s" % (q(vhost), q(name)))
        for name in self.users:
            quiet("DELETE", "/api/users/%s" % q(name))
        for name in self.vhosts:
            quiet("DELETE", "/api/vhosts/%s" % q(name))


@pytest.fixture
def mgmt_objects():
    """Objects created through the management API in one test, deleted afterwards."""
    objs = Objects()
    yield objs
    objs.cleanup()


@pytest.fixture(scope="module")
def module_objects():
    """Like mgmt_objects but shared by a module (deleted when the module finishes)."""
    objs = Objects()
    yield objs
    objs.cleanup()

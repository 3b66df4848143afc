"""Moving a RabbitMQ 3.10 node's definitions to Warren: no silent migration traps.

fixtures/rabbitmq-3.10-definitions.json is a real RabbitMQ 3.10.8 export (see fixtures/README.md)
holding a shovel, a federation upstream and upstream set, HA policies (one mixing ha-mode with
message-ttl), a federation policy, a stream, a quorum queue, an operator policy, vhost and user
limits and global parameters. What Warren does not do must be reported by name, kind and reason
(CLI, HTTP, at boot and in the log), everything else imported, and a strict import must refuse
the whole file and change nothing. Also: user limits round-trip, the parameter and limit
endpoints and commands answer as RabbitMQ 3.10.8 does (measured), and the cluster name is applied.
"""
import json
import os
import subprocess

import pika
import pytest
import requests

from conftest import login
from warren_process import free_port, start_with_management as start, warren  # noqa: F401 - fixture

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "rabbitmq-3.10-definitions.json")
CTL_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "rabbitmq-3.10-rabbitmqctl-definitions.json")

MIRRORING = "classic queue mirroring"
# (kind, name, vhost, action, a part of the reason) of every item the fixture's import reports.
EXPECTED = {
    ("global_parameter", "mqtt_port_to_vhost_mapping", None, "skipped", "MQTT plugin"),
    ("federation-upstream", "dc-west", "prod", "skipped", "federation is not supported"),
    ("federation-upstream-set", "all-dcs", "prod", "skipped", "federation is not supported"),
    ("shovel", "orders-to-archive", "prod", "skipped", "shovels are not supported"),
    ("policy", "federate-fed", "prod", "skipped", "federation is not supported"),
    ("policy", "ha-all", "prod", "skipped", MIRRORING),
    ("policy", "ha-two-ttl", "prod", "imported without ha-mode, ha-params", MIRRORING),
    ("queue", "events-stream", "prod", "skipped", "streams are not supported"),
    ("binding", "orders-x -> events-stream (#)", "prod", "skipped", "'events-stream' was not imported"),
}


def ok(res):
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout


def check_report(items):
    """`items`: the report's dicts; each expected item is there with its kind, reason and action."""
    got = {(i["kind"], i["name"], i.get("vhost"), i["action"]): i["reason"] for i in items}
    assert len(items) == len(EXPECTED), items
    for kind, name, vhost, action, reason in EXPECTED:
        key = (kind, name, vhost, action)
        assert key in got, (key, items)
        assert reason in got[key], (key, got[key])
    assert "quorum queues are the replacement" in got[("policy", "ha-all", "prod", "skipped")]


def report_line(kind, name, vhost, action):
    where = " in vhost '%s'" % vhost if vhost else ""
    return "%s '%s'%s: %s: " % (kind, name, where, action)


def check_lines(text):
    """Each expected item has its line in `text` (the CLI's output or the log)."""
    for kind, name, vhost, action, reason in EXPECTED:
        line = report_line(kind, name, vhost, action)
        assert line in text, (line, text)
        assert reason in text.split(line, 1)[1].split("\n", 1)[0], (line, reason)


def check_imported(w):
    """Everything of the fixture that Warren does is there (checked through the CLI)."""
    users = ok(w.ctl("-q", "list_users"))
    assert "alice\t[administrator]" in users and "bob\t[policymaker]" in users, users
    assert "prod" in ok(w.ctl("-q", "list_vhosts")).split("\n")
    queues = set(ok(w.ctl("-q", "list_queues", "-p", "prod", "name")).split())
    assert queues == {"name", "orders", "orders-quorum", "lazy.batch", "ha.critical", "dead-letters"}, queues
    policies = {line.split("\t")[1]: line for line in ok(w.ctl("-q", "list_policies", "-p", "prod")).split("\n")[1:]
                if line}
    assert set(policies) == {"lazy", "limits", "ha-two-ttl"}, policies
    assert '{"message-ttl":60000}' in policies["ha-two-ttl"], policies["ha-two-ttl"]
    assert "locator" in ok(w.ctl("-q", "list_policies", "-p", "/"))
    assert "cap" in ok(w.ctl("-q", "list_operator_policies", "-p", "prod"))
    params = ok(w.ctl("-q", "list_parameters", "-p", "prod"))
    assert "shovel" not in params and "federation" not in params, params
    assert "vhost-limits\tlimits\t" in params and "operator_policy\tcap\t" in params, params
    assert ok(w.ctl("-q", "list_vhost_limits", "-p", "prod")).strip() == '{"max-connections":50,"max-queues":100}'
    assert ok(w.ctl("-q", "list_user_limits", "--user", "alice")).strip() == '{"max-channels":20,"max-connections":10}'
    globals_ = ok(w.ctl("-q", "list_global_parameters"))
    assert 'cluster_name\t"rabbit-prod-eu"' in globals_ and "mqtt_port_to_vhost_mapping" not in globals_, globals_
    bindings = ok(w.ctl("-q", "list_bindings", "-p", "prod", "source_name", "destination_name"))
    assert "orders-x\torders-quorum" in bindings and "events-stream" not in bindings, bindings
    # The stripped policy is in force: orders gets message-ttl 60000 (no ha-*).
    c = w.connect(**login("alice", "alicepw", "prod"))
    ch = c.channel()
    ch.queue_declare("orders", durable=True, passive=True)
    c.close()


def nothing_imported(w):
    assert ok(w.ctl("-q", "list_vhosts")).split() == ["name", "/"]
    assert "alice" not in ok(w.ctl("-q", "list_users"))
    assert ok(w.ctl("-q", "list_global_parameters")).strip() == ""




def load(path=FIXTURE):
    with open(path) as f:
        return json.load(f)


# ---- the import report ---------------------------------------------------------


def test_cli_import_reports_what_is_left_out_and_imports_the_rest(warren):
    w = warren()
    res = w.ctl("import_definitions", FIXTURE)
    out = ok(res)
    assert "Successfully started definition import" in out
    check_lines(res.stderr)
    assert res.stderr.count("Warning: ") == len(EXPECTED), res.stderr
    check_imported(w)
    check_lines(w.log())  # the same lines in the log, as warnings
    # rabbitmqctl's export format names each queue's type.
    exported = json.loads(ok(w.ctl("export_definitions", "-")))
    types = {q["name"]: q["type"] for q in exported["queues"] if q["vhost"] == "prod"}
    assert types["orders-quorum"] == "quorum" and types["orders"] == "classic", types
    assert "[warning]" in [line for line in w.log().split("\n") if "shovel 'orders-to-archive'" in line][0]


def test_cli_strict_import_refuses_the_whole_file(warren):
    w = warren()
    res = w.ctl("import_definitions", "--strict", FIXTURE)
    assert res.returncode == 65, (res.returncode, res.stdout, res.stderr)
    assert "nothing was imported" in res.stderr
    check_lines(res.stderr)
    nothing_imported(w)
    # The rabbitmqctl-format export (rabbitmqctl export_definitions) is refused too.
    res = w.ctl("import_definitions", "--strict", CTL_FIXTURE)
    assert res.returncode == 65, (res.returncode, res.stdout, res.stderr)
    nothing_imported(w)


def test_http_import_reports_and_strict_refuses(warren):
    w, http = start(warren)
    r = http("POST", "/api/definitions?strict=true", json=load())
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "bad_request" and "nothing was imported" in body["reason"], body
    check_report(body["skipped"])
    assert [v["name"] for v in http("GET", "/api/vhosts").json()] == ["/"]
    r = http("POST", "/api/definitions", json=load())
    assert r.status_code == 200, r.text
    check_report(r.json()["skipped"])
    check_imported(w)
    # Nothing left to report (Warren's own export): RabbitMQ's answer, 204 and no body.
    exported = http("GET", "/api/definitions").json()
    r = http("POST", "/api/definitions", json=exported)
    assert r.status_code == 204 and r.content == b"", r.text
    r = http("POST", "/api/definitions?strict=true", json=exported)
    assert r.status_code == 204, r.text


def test_http_vhost_scoped_import_reports_that_vhost_only(warren):
    w, http = start(warren)
    assert http("PUT", "/api/vhosts/prod").status_code == 201
    r = http("POST", "/api/definitions/prod", json=load())
    assert r.status_code == 200, r.text
    kinds = {(i["kind"], i["name"]) for i in r.json()["skipped"]}
    # No global parameter in a vhost's import.
    assert kinds == {(k, n) for k, n, v, _, _ in EXPECTED if v == "prod"}, kinds
    queues = {q["name"] for q in http("GET", "/api/queues/prod").json()}
    assert "orders-quorum" in queues and "events-stream" not in queues, queues


def test_boot_import_logs_the_report_and_applies_the_cluster_name(warren):
    w, http = start(warren, "--definitions", FIXTURE)
    check_imported(w)
    log = w.log()
    check_lines(log)
    assert "9 item(s) Warren does not support were left out" in log, log
    assert http("GET", "/api/overview").json()["cluster_name"] == "rabbit-prod-eu"
    assert http("GET", "/api/cluster-name").json() == {"name": "rabbit-prod-eu"}
    # A rename persists across a restart (the definitions file is imported again at boot
    # and sets it back: so rename through a broker started without it).
    w2, http2 = start(warren)
    assert http2("GET", "/api/cluster-name").json()["name"] != "renamed"
    assert http2("PUT", "/api/cluster-name", json={"name": "renamed"}).status_code == 204
    w2.restart()
    assert http2("GET", "/api/overview").json()["cluster_name"] == "renamed"
    assert "Setting cluster name to again" in ok(w2.ctl("set_cluster_name", "again"))
    assert http2("GET", "/api/cluster-name").json() == {"name": "again"}


def test_bad_shapes_are_clear_errors(warren):
    w, http = start(warren)
    for bad, text in [
        ({"policies": 5}, "'policies' must be a list"),
        ({"parameters": [{"component": 1, "name": "x", "vhost": "/"}]}, "'component' missing or not a string"),
        ({"queues": [{"name": "q", "vhost": "/", "arguments": 5}]}, ""),
        ({"users": [{"name": "u", "limits": {"max-foo": 1}}]}, "Unrecognised terms"),
        ({"parameters": [{"component": "vhost-limits", "name": "limits", "vhost": "/", "value": {"max-x": 1}}]},
         "Unrecognised terms"),
        ({"global_parameters": [{"value": 1}]}, "'name' missing"),
    ]:
        r = http("POST", "/api/definitions", json=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"] == "bad_request" and text in r.json()["reason"], (bad, r.text)
    r = http("POST", "/api/definitions", data=b"[1,2]", headers={"content-type": "application/json"})
    assert r.status_code == 400


# ---- limits and operator policies round-trip ------------------------------------


def test_user_limits_and_operator_policies_round_trip(warren, tmp_path):
    w = warren()
    ok(w.ctl("add_user", "carol", "pw"))
    ok(w.ctl("set_permissions", "carol", ".*", ".*", ".*"))
    ok(w.ctl("set_user_limits", "carol", '{"max-connections": 2, "max-channels": 3}'))
    ok(w.ctl("set_operator_policy", "cap", ".*", '{"max-length": 5}', "--apply-to", "queues"))
    exported = json.loads(ok(w.ctl("export_definitions", "-")))
    carol = [u for u in exported["users"] if u["name"] == "carol"][0]
    assert carol["limits"] == {"max-connections": 2, "max-channels": 3}, carol
    # RabbitMQ's shape for operator policies: a parameter of component operator_policy.
    assert {"vhost": "/", "component": "operator_policy", "name": "cap",
            "value": {"pattern": ".*", "definition": {"max-length": 5}, "priority": 0, "apply-to": "queues"}} \
        in exported["parameters"], exported["parameters"]
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(exported))
    w2 = warren()
    res = w2.ctl("import_definitions", str(path))
    ok(res)
    assert "Warning" not in res.stderr, res.stderr
    assert ok(w2.ctl("-q", "list_user_limits", "--user", "carol")).strip() == '{"max-channels":3,"max-connections":2}'
    assert "cap" in ok(w2.ctl("-q", "list_operator_policies"))
    # The limit is in force after the import: a third connection is refused.
    conns = [w2.connect(**login("carol", "pw"))]
    conns.append(w2.connect(**login("carol", "pw")))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        w2.connect(**login("carol", "pw"))
    for c in conns:
        c.close()


def test_imported_vhost_limits_are_in_force(warren):
    w, http = start(warren)
    defs = {"vhosts": [{"name": "small"}],
            "permissions": [{"user": "guest", "vhost": "small", "configure": ".*", "write": ".*", "read": ".*"}],
            "parameters": [{"vhost": "small", "component": "vhost-limits", "name": "limits",
                            "value": {"max-queues": 1}}]}
    assert http("POST", "/api/definitions", json=defs).status_code == 204
    assert http("PUT", "/api/queues/small/q1", json={}).status_code == 201
    r = http("PUT", "/api/queues/small/q2", json={})
    assert r.status_code == 400 and "queue limit in vhost 'small' (1) is reached" in r.text, r.text


# ---- policies with ha-* keys -----------------------------------------------------


def test_set_policy_with_ha_keys_is_refused(warren):
    w, http = start(warren)
    res = w.ctl("set_policy", "mirrored", ".*", '{"ha-mode": "all", "message-ttl": 1000}')
    assert res.returncode == 69, (res.returncode, res.stdout, res.stderr)
    assert "ha-mode not supported" in res.stderr and "quorum queues" in res.stderr, res.stderr
    r = http("PUT", "/api/policies/%2F/mirrored", json={"pattern": ".*", "definition": {"ha-mode": "exactly",
                                                                                           "ha-params": 2}})
    assert r.status_code == 400, r.text
    assert "ha-mode, ha-params not supported" in r.json()["reason"] and MIRRORING in r.json()["reason"]
    assert http("GET", "/api/policies").json() == []
    # Federation's keys are unknown, as to a RabbitMQ without the federation plugin.
    r = http("PUT", "/api/policies/%2F/fed", json={"pattern": ".*", "definition": {"federation-upstream-set": "all"}})
    assert r.status_code == 400 and "are not recognised policy settings" in r.text, r.text


# ---- parameters: CLI ---------------------------------------------------------------


def test_parameter_commands(warren):
    w = warren()
    # A component no plugin provides: RabbitMQ's text and exit code (69).
    res = w.ctl("set_parameter", "shovel", "s", '{"src-uri": "amqp://"}')
    assert res.returncode == 69, (res.returncode, res.stderr)
    assert res.stdout.startswith('Setting runtime parameter "s" for component "shovel" to "{"src-uri": "amqp://"}" '
                                 'in vhost "/" ...'), res.stdout
    assert res.stderr == "Error:\nValidation failed\n\ncomponent shovel not found\n\n", repr(res.stderr)
    res = w.ctl("set_parameter", "vhost-limits", "limits", "{bad")
    assert res.returncode == 69 and "JSON decoding error. Reason: badarg" in res.stderr, res.stderr
    res = w.ctl("set_parameter", "-p", "nope", "vhost-limits", "limits", "{}")
    assert res.returncode == 65 and "Virtual host 'nope' does not exist" in res.stderr, res.stderr
    # vhost-limits: validated and in force, as set_vhost_limits.
    ok(w.ctl("set_parameter", "vhost-limits", "limits", '{"max-queues": 7}'))
    assert ok(w.ctl("-q", "list_vhost_limits")).strip() == '{"max-queues":7}'
    out = ok(w.ctl("list_parameters"))
    assert out == 'Listing runtime parameters for vhost "/" ...\ncomponent\tname\tvalue\n' \
                  'vhost-limits\tlimits\t{"max-queues":7}\n', out
    rows = json.loads(ok(w.ctl("list_parameters", "--formatter", "json")))
    assert rows == [{"component": "vhost-limits", "name": "limits", "value": '{"max-queues":7}'}], rows
    assert ok(w.ctl("clear_parameter", "vhost-limits", "limits")) == \
        'Clearing runtime parameter "limits" for component "vhost-limits" on vhost "/" ...\n'
    assert ok(w.ctl("-q", "list_vhost_limits")).strip() == ""
    res = w.ctl("clear_parameter", "vhost-limits", "limits")
    assert res.returncode == 69 and res.stderr == "Error:\nParameter does not exist\n", repr(res.stderr)
    res = w.ctl("clear_parameter", "federation-upstream", "x")
    assert res.returncode == 69 and "Parameter does not exist" in res.stderr


def test_global_parameter_commands(warren):
    w = warren()
    assert ok(w.ctl("set_global_parameter", "team", '{"owner": "ops"}')) == \
        'Setting global runtime parameter "team" to "{"owner": "ops"}" ...\n'
    res = w.ctl("set_global_parameter", "bad", "notjson")
    assert res.returncode == 69 and "JSON decoding error" in res.stderr
    ok(w.ctl("set_cluster_name", "rabbit-prod-eu"))
    assert "Cluster name: rabbit-prod-eu" in ok(w.ctl("cluster_status"))
    out = ok(w.ctl("list_global_parameters"))
    assert out == 'Listing global runtime parameters ...\nname\tvalue\ncluster_name\t"rabbit-prod-eu"\n' \
                  'team\t{"owner":"ops"}\n', out
    assert ok(w.ctl("clear_global_parameter", "team")) == 'Clearing global runtime parameter "team" ...\n'
    res = w.ctl("clear_global_parameter", "team")
    assert res.returncode == 69 and res.stderr == "Error:\nParameter does not exist\n", repr(res.stderr)
    w.restart()
    assert 'cluster_name\t"rabbit-prod-eu"' in ok(w.ctl("list_global_parameters"))


# ---- parameters, global parameters and limits: HTTP -------------------------------


def test_parameter_endpoints(warren):
    w, http = start(warren)
    r = http("PUT", "/api/parameters/shovel/%2F/s", json={"value": {"src-uri": "amqp://"}})
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "bad_request", "reason": "Validation failed\n\ncomponent shovel not found\n"}
    assert http("GET", "/api/parameters/shovel/%2F/s").json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert http("PUT", "/api/parameters/vhost-limits/%2F/limits", json={}).json()["reason"] == \
        "[{key_missing,value}]"
    r = http("PUT", "/api/parameters/vhost-limits/%2F/limits", json={"value": {"max-queues": 9}})
    assert r.status_code == 201, r.text
    r = http("PUT", "/api/parameters/vhost-limits/%2F/limits", json={"value": {"max-queues": 8}})
    assert r.status_code == 204, r.text
    one = {"value": {"max-queues": 8}, "vhost": "/", "component": "vhost-limits", "name": "limits"}
    assert http("GET", "/api/parameters/vhost-limits/%2F/limits").json() == one
    assert http("GET", "/api/parameters").json() == [one]
    assert http("GET", "/api/parameters/vhost-limits").json() == [one]
    assert http("GET", "/api/parameters/vhost-limits/%2F").json() == [one]
    assert http("GET", "/api/parameters/shovel").json() == []
    assert http("GET", "/api/parameters/vhost-limits/nope").status_code == 404
    assert http("DELETE", "/api/parameters/vhost-limits/%2F/limits").status_code == 204
    assert http("DELETE", "/api/parameters/vhost-limits/%2F/limits").status_code == 404
    assert http("GET", "/api/parameters").json() == []


def test_global_parameter_and_cluster_name_endpoints(warren):
    pport = free_port()
    w, http = start(warren, "--prometheus-port", str(pport))
    assert http("PUT", "/api/global-parameters/foo", json={"value": {"a": 1}}).status_code == 201
    assert http("PUT", "/api/global-parameters/foo", json={"value": {"a": 2}}).status_code == 204
    assert http("GET", "/api/global-parameters/foo").json() == {"value": {"a": 2}, "name": "foo"}
    assert http("GET", "/api/global-parameters").json() == [{"name": "foo", "value": {"a": 2}}]
    assert http("DELETE", "/api/global-parameters/foo").status_code == 204
    r = http("DELETE", "/api/global-parameters/foo")
    assert r.status_code == 404 and r.json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert http("GET", "/api/global-parameters/foo").status_code == 404
    assert http("PUT", "/api/cluster-name", json={"name": "eu-1"}).status_code == 204
    assert http("GET", "/api/cluster-name").json() == {"name": "eu-1"}
    assert http("GET", "/api/overview").json()["cluster_name"] == "eu-1"
    assert {"name": "cluster_name", "value": "eu-1"} in http("GET", "/api/global-parameters").json()
    # The AMQP handshake's server properties and Prometheus's identity say it too.
    c = w.connect()
    assert c._impl.server_properties["cluster_name"] == "eu-1"
    c.close()
    metrics = requests.get("http://127.0.0.1:%d/metrics" % pport, timeout=30).text
    assert 'rabbitmq_cluster="eu-1"' in metrics, metrics[:2000]


def test_limit_endpoints(warren):
    w, http = start(warren)
    ok(w.ctl("add_user", "bob", "pw"))
    assert http("GET", "/api/user-limits").json() == []
    assert http("GET", "/api/user-limits/bob").json() == []
    assert http("GET", "/api/user-limits/nobody").status_code == 404
    assert http("PUT", "/api/user-limits/bob/max-connections", json={"value": 5}).status_code == 204
    assert http("PUT", "/api/user-limits/bob/max-channels", json={"value": 6}).status_code == 204
    assert http("GET", "/api/user-limits/bob").json() == [
        {"user": "bob", "value": {"max-channels": 6, "max-connections": 5}}]
    r = http("PUT", "/api/user-limits/bob/max-foo", json={"value": 5})
    assert r.status_code == 400 and r.json()["reason"] == 'Unrecognised terms [{<<"max-foo">>,5}] in user-limits'
    r = http("PUT", "/api/user-limits/nobody/max-connections", json={"value": 5})
    assert r.status_code == 400 and r.json() == {"error": "bad_request", "reason": ["no_such_user", "nobody"]}
    assert http("DELETE", "/api/user-limits/bob/max-connections").status_code == 204
    assert http("DELETE", "/api/user-limits/bob/max-connections").status_code == 204
    assert http("GET", "/api/user-limits").json() == [{"user": "bob", "value": {"max-channels": 6}}]

    assert http("GET", "/api/vhost-limits").json() == []
    assert http("GET", "/api/vhost-limits/%2F").json() == []
    assert http("GET", "/api/vhost-limits/nope").status_code == 404
    assert http("PUT", "/api/vhost-limits/%2F/max-queues", json={"value": 5}).status_code == 204
    assert http("GET", "/api/vhost-limits").json() == [{"vhost": "/", "value": {"max-queues": 5}}]
    r = http("PUT", "/api/vhost-limits/%2F/max-foo", json={"value": 5})
    assert r.status_code == 400
    assert r.json()["reason"] == 'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,5}] in limits\n'
    assert http("DELETE", "/api/vhost-limits/%2F/max-queues").status_code == 204
    assert http("DELETE", "/api/vhost-limits/%2F/max-queues").status_code == 204
    assert http("GET", "/api/vhost-limits/%2F").json() == []


def test_parameter_and_limit_endpoints_permissions(warren):
    """As RabbitMQ 3.10.8: policymakers read and write parameters and global parameters;
    limits and the cluster name are written by administrators only."""
    w, http = start(warren)
    for user, tag in [("pm", "policymaker"), ("mon", "management")]:
        ok(w.ctl("add_user", user, "pw"))
        ok(w.ctl("set_user_tags", user, tag))
        ok(w.ctl("set_permissions", user, ".*", ".*", ".*"))
    assert http("GET", "/api/parameters", "pm", "pw").status_code == 200
    assert http("PUT", "/api/global-parameters/x", "pm", "pw", json={"value": 1}).status_code == 201
    assert http("PUT", "/api/parameters/vhost-limits/%2F/limits", "pm", "pw",
                json={"value": {"max-queues": 9}}).status_code == 201
    # Operator policies, in parameter form too, are for administrators.
    op = {"value": {"pattern": ".*", "definition": {"max-length": 1}, "priority": 0, "apply-to": "queues"}}
    r = http("PUT", "/api/parameters/operator_policy/%2F/cap", "pm", "pw", json=op)
    assert r.status_code == 401 and r.json()["reason"] == "User not authorised to access object", r.text
    assert http("PUT", "/api/parameters/operator_policy/%2F/cap", json=op).status_code == 201
    assert http("GET", "/api/operator-policies/%2F/cap").json()["definition"] == {"max-length": 1}
    assert http("DELETE", "/api/parameters/operator_policy/%2F/cap", "pm", "pw").status_code == 401
    assert http("DELETE", "/api/parameters/operator_policy/%2F/cap").status_code == 204
    assert http("GET", "/api/operator-policies").json() == []
    for method, path, body in [("PUT", "/api/user-limits/pm/max-channels", {"value": 1}),
                               ("PUT", "/api/vhost-limits/%2F/max-queues", {"value": 1}),
                               ("PUT", "/api/cluster-name", {"name": "x"})]:
        r = http(method, path, "pm", "pw", json=body)
        assert r.status_code == 401 and r.json()["reason"] == "Not administrator user", (path, r.text)
    for path in ["/api/parameters", "/api/global-parameters"]:
        r = http("GET", path, "mon", "pw")
        assert r.status_code == 401 and r.json()["reason"] == "User not authorised to access object", r.text
    assert http("GET", "/api/user-limits", "mon", "pw").status_code == 200
    assert http("GET", "/api/vhost-limits", "mon", "pw").json() == [{"vhost": "/", "value": {"max-queues": 9}}]


def test_rabbitmqadmin_import_still_works(warren, tmp_path):
    """rabbitmqadmin's `import` takes the 200 with a report, and the 204, as success."""
    from test_rabbitmqadmin import admin_prefix
    w, http = start(warren)
    port = http.base.rsplit(":", 1)[1]
    cmd = admin_prefix()
    cmd[cmd.index("-P") + 1] = port
    cmd[cmd.index("-u") + 1], cmd[cmd.index("-p") + 1] = "guest", "guest"
    env = dict(os.environ, HOME=str(tmp_path), LC_ALL="C.UTF-8")

    def run(*args):
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60, env=env)

    res = run("import", FIXTURE)
    assert res.returncode == 0 and "Uploaded definitions" in res.stderr + res.stdout, res
    check_imported(w)
    exported = tmp_path / "again.json"
    exported.write_text(json.dumps(http("GET", "/api/definitions").json()))
    res = run("import", str(exported))
    assert res.returncode == 0, res

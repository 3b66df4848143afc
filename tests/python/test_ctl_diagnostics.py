# -*- coding: utf-8 -*-
"""The CLI runbooks and probes use (issue 20): rabbitmq-diagnostics' checks as warrenctl commands
and under the name warren-diagnostics, cluster_status, report, feature flags, hash_password,
per-command help and -n. Texts and exit codes are rabbitmq-diagnostics 3.10's
(deps/rabbitmq_cli/lib/rabbitmq/cli/diagnostics/commands/*.ex): a failed check exits 69.

Runs against the shared broker ($WARRENCTL); the alarm test lowers its memory watermark for a moment
and restores it. The broker-down cases use a private broker (WARREN_BIN) killed with SIGKILL.
"""
import json
import os
import socket
import threading

import pika
import pytest

from conftest import VHOST, connect, ctl, ctl_ok, ctl_prefix, login, uniq
from warren_process import WarrenProcess, free_port

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 64, 65, 69

# RabbitMQ 3.10.8's feature flags (rabbit_core_ff.erl, rabbit_mgmt_ff.erl at tag v3.10.8).
FLAGS_3_10 = [
    "classic_mirrored_queue_version", "drop_unroutable_metric", "empty_basic_get_metric",
    "implicit_default_bindings", "maintenance_mode_status", "quorum_queue", "stream_queue",
    "user_limits", "virtual_host_metadata",
]


def node_name():
    return json.loads(ctl_ok("status", "--formatter", "json"))["node"]


def diagnostics_prefix():
    """$WARRENCTL with the program replaced by the warren-diagnostics binary beside it."""
    prefix = ctl_prefix()
    if os.path.basename(prefix[0]) != "warrenctl":
        pytest.skip("WARRENCTL is not Warren's warrenctl")
    binary = os.path.join(os.path.dirname(prefix[0]), "warren-diagnostics")
    assert os.path.exists(binary), "no %s: cargo build --workspace --bins makes it" % binary
    return [binary] + prefix[1:]


def warrenctl_only():
    if os.path.basename(ctl_prefix()[0]) != "warrenctl":
        pytest.skip("Warren's own texts (WARRENCTL is not warrenctl)")


# ---------------------------------------------------------------- health checks


def test_ping_and_check_running():
    node = node_name()
    res = ctl("ping")
    assert res.rc == 0, res
    assert res.out.splitlines()[-1] == "Ping succeeded", res
    assert res.out.startswith("Will ping %s." % node), res
    res = ctl("check_running")
    assert res.rc == 0, res
    assert res.out.splitlines() == [
        "Checking if RabbitMQ is running on node %s ..." % node,
        "RabbitMQ on node %s is fully booted and running" % node,
    ], res
    res = ctl("-q", "check_running")
    assert res.out == "RabbitMQ on node %s is fully booted and running\n" % node, res
    res = ctl("--formatter", "json", "check_running")
    assert json.loads(res.out) == {"message": "RabbitMQ on node %s is fully booted and running" % node}


def test_checks_with_no_alarms_and_virtual_hosts():
    node = node_name()
    res = ctl("check_local_alarms")
    assert res.rc == 0 and res.out.splitlines()[-1] == "Node %s reported no local alarms" % node, res
    res = ctl("check_alarms")
    assert res.rc == 0, res
    assert res.out.splitlines()[-1] == "Node %s reported no alarms, local or clusterwide" % node, res
    res = ctl("alarms")
    assert res.rc == 0 and res.out.splitlines()[-1] == "Node %s reported no alarms, local or clusterwide" % node
    assert json.loads(ctl_ok("--formatter", "json", "alarms")) == {"result": "ok", "node": node, "alarms": []}
    assert json.loads(ctl_ok("--formatter", "json", "check_local_alarms")) == {"result": "ok"}
    res = ctl("check_virtual_hosts")
    assert res.rc == 0 and res.out.splitlines()[-1] == "Node %s reported all vhosts as running" % node, res
    # --silent: the exit code alone.
    res = ctl("-s", "check_alarms")
    assert (res.rc, res.out, res.err) == (0, "", ""), res


def watermark_restorer():
    """A function that puts the shared broker's memory watermark back as it was."""
    status = json.loads(ctl_ok("status", "--formatter", "json"))
    limit, total = status["memory_high_watermark"], status["total_memory"]
    fraction = round(limit / total, 4)
    if abs(int(total * fraction) - limit) <= total * 1e-4:
        args = ["%g" % fraction]
    else:
        args = ["absolute", str(limit)]
    return lambda: ctl_ok("set_vm_memory_high_watermark", *args)


def test_memory_alarm_fails_the_checks_then_clears():
    node = node_name()
    restore = watermark_restorer()
    try:
        ctl_ok("set_vm_memory_high_watermark", "0.0000001")
        res = ctl("check_local_alarms")
        assert res.rc == EX_UNAVAILABLE, res
        assert res.err == "Error:\nMemory alarm on node %s\n" % node, res
        res = ctl("check_alarms")
        assert res.rc == EX_UNAVAILABLE, res
        assert res.err == "Memory alarm on node %s\n" % node, res
        res = ctl("-s", "check_alarms")
        assert (res.rc, res.out, res.err) == (EX_UNAVAILABLE, "", ""), res
        res = ctl("--formatter", "json", "check_local_alarms")
        assert res.rc == EX_UNAVAILABLE, res
        assert json.loads(res.err) == {"result": "error", "local": ["Memory alarm on node %s" % node],
                                       "message": "Node %s reported local alarms" % node}, res
        # alarms lists them and is not a check: exit 0.
        res = ctl("alarms")
        assert res.rc == 0 and res.out.splitlines()[-1] == "Memory alarm on node %s" % node, res
        res = ctl("cluster_status")
        assert "Memory alarm on node %s" % node in res.out.splitlines(), res
        status = json.loads(ctl_ok("--formatter", "json", "cluster_status"))
        assert status["alarms"] == [{"type": "resource_limit", "resource": "memory", "node": node}]
    finally:
        restore()
    res = ctl("check_local_alarms")
    assert res.rc == 0, res
    assert ctl("check_alarms").rc == 0


def test_listeners_port_connectivity_and_protocols():
    node = node_name()
    listeners = json.loads(ctl_ok("--formatter", "json", "listeners"))
    assert listeners["result"] == "ok" and listeners["node"] == node, listeners
    amqp = [l for l in listeners["listeners"] if l["protocol"] == "amqp"]
    assert [l["port"] for l in amqp] == [int(os.environ.get("AMQP_PORT", "5672"))], listeners
    assert amqp[0]["purpose"] == "AMQP 0-9-1"
    lines = ctl_ok("-q", "listeners").splitlines()
    assert "Interface: %s, port: %d, protocol: amqp, purpose: AMQP 0-9-1" % (
        amqp[0]["interface"], amqp[0]["port"]) in lines, lines

    ports = sorted(l["port"] for l in listeners["listeners"])
    res = ctl("check_port_connectivity")
    assert res.rc == 0, res
    assert res.out.splitlines()[-1] == "Successfully connected to ports %s on node %s." % (
        ", ".join(map(str, ports)), node), res

    for alias in ("amqp", "AMQP0-9-1", "amqp091"):
        res = ctl("check_protocol_listener", alias)
        assert res.rc == 0, res
        assert res.out.splitlines()[-1] == "A listener for protocol amqp is running on node %s." % node
    protocols = ", ".join(sorted(l["protocol"] for l in listeners["listeners"]))
    res = ctl("check_protocol_listener", "stomp")
    assert res.rc == EX_UNAVAILABLE, res
    assert res.err == ("Error:\nNo listener for protocol stomp is active on node %s. "
                       "Found listeners for the following protocols: %s\n" % (node, protocols)), res
    res = ctl("check_protocol_listener")
    assert res.rc == EX_USAGE, res


def test_server_version_and_memory_breakdown(cleanup):
    version = json.loads(ctl_ok("status", "--formatter", "json"))["version"]
    assert ctl_ok("-q", "server_version") == version + "\n"
    assert json.loads(ctl_ok("--formatter", "json", "server_version")) == {"result": "ok", "value": version}

    # 4 MB of bodies held by a queue show as queue_procs.
    queue = cleanup.queue(uniq("membreak"))
    with connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.confirm_delivery()
        for _ in range(64):
            ch.basic_publish("", queue, b"m" * 65536)
        breakdown = json.loads(ctl_ok("--formatter", "json", "memory_breakdown"))
    assert set(breakdown) == {"queue_procs", "code", "other"}, breakdown
    assert breakdown["queue_procs"]["bytes"] >= 64 * 65536, breakdown
    assert abs(sum(v["percentage"] for v in breakdown.values()) - 100.0) < 0.1, breakdown

    lines = ctl_ok("-q", "memory_breakdown", "--unit", "bytes").strip().splitlines()
    assert len(lines) == 3, lines
    values = []
    for line in lines:
        key, rest = line.split(": ", 1)
        amount, unit, pct = rest.split(" ")
        assert unit == "bytes" and pct.startswith("(") and pct.endswith("%)"), line
        values.append(int(amount))
    assert values == sorted(values, reverse=True), lines  # largest first
    assert ctl_ok("-q", "memory_breakdown").strip().splitlines()[0].split(" ")[2] == "gb"
    res = ctl("memory_breakdown", "--unit", "furlongs")
    assert res.rc == EX_USAGE, res
    assert "unit 'furlongs' is not supported. Please use one of: bytes, mb, gb" in res.err, res


# ---------------------------------------------------------------- broker down


def test_checks_exit_69_when_the_broker_is_down(tmp_path):
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("WARREN_BIN unset")
    w = WarrenProcess(binary, tmp_path / "data")
    w.start()
    try:
        assert w.ctl("check_port_connectivity").returncode == 0
        assert w.ctl("check_running").returncode == 0
    finally:
        w.kill9()
    for command in (["ping"], ["check_running"], ["check_port_connectivity"], ["check_local_alarms"],
                    ["listeners"], ["check_protocol_listener", "amqp"], ["cluster_status"]):
        res = w.ctl(*command)
        assert res.returncode == EX_UNAVAILABLE, (command, res)
        if command != ["ping"]:
            # rabbitmqctl's unreachable-node text, adapted.
            assert res.stderr.startswith("Error: unable to perform an operation on node '"), res
    res = w.ctl("-n", "warren@somewhere", "ping")
    assert res.stderr == "Error:\nFailed to connect and authenticate to warren@somewhere in 60000 ms\n", res


class FakeNode:
    """A control socket that answers every request with one `diagnostics` result: the failures a
    live broker can't be made to show on demand (a listener that refuses, a node still booting)."""

    def __init__(self, path, result):
        self.path, self.result = str(path), result
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(30)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.makefile().readline()
                reply = {"ok": True, "result": self.result, "node": "warren@fake"}
                conn.sendall((json.dumps(reply) + "\n").encode())

    def ctl(self, *args):
        warrenctl_only()
        return ctl("--socket", self.path, *args, prefix=ctl_prefix()[:1])

    def close(self):
        self.sock.close()


def closed_port():
    return free_port()


def test_port_connectivity_failure_and_booting_node(tmp_path):
    port = closed_port()
    listener = {"protocol": "amqp", "addr": "127.0.0.1:%d" % port}
    fake = FakeNode(tmp_path / "warren.sock", {"booted": False, "version": "0.0.0", "alarms": [],
                                               "listeners": [listener]})
    try:
        res = fake.ctl("check_port_connectivity")
        assert res.rc == EX_UNAVAILABLE, res
        assert res.err == ("Error:\nConnection to ports of the following listeners on node warren@fake failed: \n"
                           "Interface: 127.0.0.1, port: %d, protocol: amqp, purpose: AMQP 0-9-1\n" % port), res
        res = fake.ctl("--formatter", "json", "check_port_connectivity")
        assert res.rc == EX_UNAVAILABLE, res
        assert json.loads(res.err)["failures"][0]["port"] == port, res
        # Listening, but still starting: check_running fails, ping succeeds.
        res = fake.ctl("check_running")
        assert res.rc == EX_UNAVAILABLE, res
        assert res.err == ("Error:\nRabbitMQ on node warren@fake is not running or has not fully booted yet "
                           "(check with is_booting)\n"), res
        assert fake.ctl("ping").rc == 0
    finally:
        fake.close()


# ---------------------------------------------------------------- -n


def test_node_flag_refuses_other_nodes():
    warrenctl_only()
    node = node_name()
    for other in ("other@somehost", "rabbit"):
        res = ctl("-n", other, "list_queues")
        assert res.rc == EX_UNAVAILABLE, res
        expanded = other if "@" in other else "%s@%s" % (other, socket.gethostname().split(".")[0])
        assert res.err.startswith("Error: unable to perform an operation on node '%s'." % expanded), res
        assert "attempted to contact: [%s]" % expanded in res.err, res
        assert res.err.rstrip("\n").endswith("local node: %s" % node), res
        assert res.out == "", res
    res = ctl("--node", "other@somehost", "check_running")
    assert res.rc == EX_UNAVAILABLE, res


def test_node_flag_accepts_the_local_node():
    node = node_name()
    assert ctl("-n", node, "check_running").rc == 0
    assert ctl("--node", node, "list_queues").rc == 0
    # The bare name, as rabbitmqctl completes `-n rabbit` with the local host name.
    assert ctl("-n", node.split("@", 1)[0], "ping").rc == 0


# ---------------------------------------------------------------- warren-diagnostics


def test_warren_diagnostics_name():
    prefix = diagnostics_prefix()
    node = node_name()
    res = ctl("ping", prefix=prefix)
    assert res.rc == 0 and res.out.splitlines()[-1] == "Ping succeeded", res
    res = ctl("check_running", prefix=prefix)
    assert res.rc == 0 and res.out.splitlines()[-1] == "RabbitMQ on node %s is fully booted and running" % node
    res = ctl("help", prefix=prefix)
    assert res.rc == 0 and "check_port_connectivity" in res.out and "add_user" not in res.out, res
    assert "warren-diagnostics help <command>" in res.out, res
    # rabbitmq-diagnostics has no list_queues.
    res = ctl("list_queues", prefix=prefix)
    assert res.rc == EX_USAGE and "Command 'list_queues' not found." in res.err, res


# ---------------------------------------------------------------- cluster, report, feature flags


def test_cluster_status():
    node = node_name()
    res = ctl("cluster_status")
    assert res.rc == 0, res
    lines = res.out.splitlines()
    assert lines[0] == "Cluster status of node %s ..." % node
    for section in ("Basics", "Disk Nodes", "Running Nodes", "Versions", "Maintenance status", "Alarms",
                    "Network Partitions", "Listeners", "Feature flags"):
        assert section in lines, (section, lines)
    assert lines[lines.index("Disk Nodes") + 2] == node
    assert lines[lines.index("Running Nodes") + 2] == node
    assert "Node: %s, status: not under maintenance" % node in lines
    assert lines[lines.index("Network Partitions") + 2] == "(none)"
    assert ["Flag: %s, state: enabled" % f for f in FLAGS_3_10] == lines[lines.index("Feature flags") + 2:]
    assert any(l.startswith("Node: %s, interface: " % node) and "protocol: amqp," in l for l in lines), lines

    status = json.loads(ctl_ok("--formatter", "json", "cluster_status"))
    assert set(status) == {"cluster_name", "disk_nodes", "ram_nodes", "running_nodes", "alarms",
                           "maintenance_status", "partitions", "listeners", "versions", "feature_flags"}
    assert status["disk_nodes"] == [node] and status["running_nodes"] == [node] and status["ram_nodes"] == []
    assert status["partitions"] == {}
    assert [l["protocol"] for l in status["listeners"][node]].count("amqp") == 1
    assert set(status["versions"][node]) == {"rabbitmq_name", "rabbitmq_version", "erlang_version"}
    assert [f["name"] for f in status["feature_flags"]] == FLAGS_3_10


def test_feature_flags():
    res = ctl("list_feature_flags")
    assert res.rc == 0, res
    lines = res.out.splitlines()
    assert lines[0] == "Listing feature flags ..." and lines[1] == "name\tstate", lines
    assert lines[2:] == ["%s\tenabled" % f for f in FLAGS_3_10], lines
    rows = json.loads(ctl_ok("--formatter", "json", "list_feature_flags", "name", "state", "stability"))
    assert rows == [{"name": f, "state": "enabled", "stability": "stable"} for f in FLAGS_3_10]
    res = ctl("list_feature_flags", "colour")
    assert res.rc == EX_USAGE, res

    res = ctl("enable_feature_flag", "quorum_queue")
    assert (res.rc, res.out) == (0, 'Enabling feature flag "quorum_queue" ...\n'), res
    res = ctl("enable_feature_flag", "all")
    assert (res.rc, res.out) == (0, "Enabling all feature flags ...\n"), res
    res = ctl("enable_feature_flag", "no_such_flag")
    assert res.rc == EX_USAGE, res
    assert res.err == "Error:\nThis feature flag is not supported by node %s\n" % node_name(), res
    assert ctl("enable_feature_flag").rc == EX_USAGE


def test_report(cleanup):
    queue = cleanup.queue(uniq("report"))
    with connect() as conn:
        conn.channel().queue_declare(queue)
        res = ctl("report")
    assert res.rc == 0, res
    node = node_name()
    out = res.out
    assert out.startswith("Reporting server status of node %s ..." % node), out[:200]
    for banner in ("Status of node %s ..." % node, "Cluster status of node %s ..." % node,
                   "Listing connections ...", "Listing channels ...",
                   "Listing queues for vhost %s ..." % VHOST, "Listing exchanges for vhost %s ..." % VHOST,
                   "Listing bindings for vhost %s..." % VHOST, "Listing permissions for vhost \"%s\" ..." % VHOST,
                   "Listing policies for vhost \"%s\" ..." % VHOST):
        assert banner in out.splitlines(), banner
    assert any(line.startswith(queue + "\t") for line in out.splitlines()), out
    # Every column of list_queues, as rabbitmqctl's report lists them.
    assert "name\tvhost\tdurable\tauto_delete\texclusive\targuments\tmessages" in out
    res = ctl("report", "--formatter", "json")
    assert res.rc == EX_USAGE and "Only report formatter is supported" in res.err, res


# ---------------------------------------------------------------- hash_password


def test_hash_password_logs_in(cleanup):
    warrenctl_only()
    user, password = uniq("hash"), "s3cret-%s" % uniq("pw")
    res = ctl("hash_password", password)
    assert res.rc == 0, res
    assert res.out.splitlines()[0] == "Will hash password %s" % password
    hashed = res.out.splitlines()[-1]
    assert ctl_ok("-q", "hash_password", password).strip() != hashed  # a fresh salt each time
    # Works with the broker down: a data directory with nothing in it.
    res = ctl("--data-dir", "/nonexistent-warren-dir", "-q", "hash_password", password)
    assert res.rc == 0 and len(res.out.strip()) == len(hashed), res
    assert ctl("hash_password", "").rc == EX_DATAERR
    # From standard input when no argument is given, as add_user reads its password.
    res = ctl("-q", "hash_password", stdin=password + "\n")
    assert res.rc == 0 and len(res.out.strip()) == len(hashed), res
    assert len(json.loads(ctl_ok("--formatter", "json", "hash_password", password))["message"]) == len(hashed)

    definitions = {
        "users": [{"name": user, "password_hash": hashed, "tags": "",
                   "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        "permissions": [{"user": user, "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}],
    }
    try:
        ctl_ok("import_definitions", "-", stdin=json.dumps(definitions))
        assert ctl("authenticate_user", user, password).rc == 0
        assert ctl("authenticate_user", user, password + "x").rc == EX_DATAERR
        with connect(**login(user, password, VHOST)) as conn:
            assert conn.is_open
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            connect(**login(user, "wrong", VHOST))
    finally:
        ctl("delete_user", user)


# ---------------------------------------------------------------- help


def test_per_command_help():
    warrenctl_only()
    for args in (["help", "list_queues"], ["list_queues", "--help"]):
        res = ctl(*args)
        assert res.rc == 0, res
        assert "warrenctl [--node <node>] [--longnames] [--quiet] list_queues [--vhost <vhost>]" in res.out
        assert "messages_unacknowledged" in res.out and "Without columns: name, messages." in res.out
        assert "Exit codes:" in res.out
    res = ctl("help", "check_port_connectivity")
    assert res.rc == 0 and "TCP connection to every listener" in res.out, res
    res = ctl("help", "no_such_command")
    assert res.rc == EX_USAGE and "Command 'no_such_command' not found." in res.err, res
    listing = ctl_ok("help")
    for command in ("list_queues", "add_user", "check_running", "ping", "cluster_status", "report",
                    "hash_password", "memory_breakdown", "list_feature_flags", "enable_feature_flag",
                    "check_virtual_hosts", "listeners", "alarms", "server_version", "status"):
        assert "   %s " % command in listing, command
    for section in ("Users:", "Access Control:", "Monitoring, observability and health checks:",
                    "Feature flags:", "Cluster:"):
        assert section in listing.splitlines(), section

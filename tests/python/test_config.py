"""Configuration as RabbitMQ's: private brokers started with a rabbitmq.conf, RabbitMQ's environment
variables and env file (never the suite's shared broker), checked by connecting (AMQP, HTTP, MQTT)
and with `warrenctl status` / `environment` run WITHOUT --data-dir, which must find the broker
through the same resolution the broker used. No file outside tmp_path is read or written: every
broker gets RABBITMQ_CONF_ENV_FILE and RABBITMQ_CONFIG_FILE pointing at temp files."""
import json
import os
import subprocess
import time
import urllib.request

import pika
import pytest

from warren_process import free_port

BASE = "warren.bind = 127.0.0.1\nwarren.management = false\nwarren.prometheus = false\nmqtt.listeners.tcp = none\n"


def binaries():
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        if os.environ.get("AMQP_ALLOW_NO_WARREN_BIN") == "1":
            pytest.skip("WARREN_BIN not set")
        raise AssertionError("set WARREN_BIN to the warren binary (or AMQP_ALLOW_NO_WARREN_BIN=1)")
    return binary, os.path.join(os.path.dirname(binary), "warrenctl")


def clean_env(tmp, **extra):
    """The test's environment without the caller's WARREN_*/RABBITMQ_* and with private files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARREN_", "RABBITMQ_"))}
    empty_env = tmp / "empty-env.conf"
    empty_env.write_text("")
    empty_conf = tmp / "empty.conf"
    empty_conf.write_text("")
    env.update(RABBITMQ_CONF_ENV_FILE=str(empty_env), RABBITMQ_CONFIG_FILE=str(empty_conf),
               HOME=str(tmp), XDG_DATA_HOME=str(tmp / "xdg"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Broker:
    """A warren process with exactly the given arguments and environment."""

    def __init__(self, tmp, args=(), env=None, port=None):
        self.binary, self.ctl_bin = binaries()
        self.tmp = tmp
        self.args = list(args)
        self.env = env if env is not None else clean_env(tmp)
        self.port = port
        self.out_path = tmp / ("warren-%d.out" % time.monotonic_ns())
        self.err_path = tmp / ("warren-%d.err" % time.monotonic_ns())
        self.proc = None

    def start(self, timeout=15.0):
        self.proc = subprocess.Popen([self.binary] + self.args, env=self.env,
                                     stdout=open(self.out_path, "wb"), stderr=open(self.err_path, "wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("warren exited with %s:\n%s%s" % (self.proc.returncode, self.out(), self.err()))
            try:
                pika.BlockingConnection(pika.ConnectionParameters(
                    "127.0.0.1", self.port, connection_attempts=1, socket_timeout=2,
                    credentials=pika.PlainCredentials("x-probe", "x"))).close()
                return self
            except pika.exceptions.ProbableAuthenticationError:
                return self
            except Exception:
                time.sleep(0.05)
        raise AssertionError("warren did not listen on %s within %ss:\n%s" % (self.port, timeout, self.out()))

    def exit(self, timeout=15.0):
        """Runs a broker expected to refuse to start: (exit code, stdout, stderr)."""
        p = subprocess.run([self.binary] + self.args, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def out(self):
        return self.out_path.read_bytes().decode(errors="replace") if self.out_path.exists() else ""

    def out_bytes(self):
        return self.out_path.read_bytes() if self.out_path.exists() else b""

    def err(self):
        return self.err_path.read_bytes().decode(errors="replace") if self.err_path.exists() else ""

    def ctl(self, *args, env=None):
        return subprocess.run([self.ctl_bin] + list(args), env=env if env is not None else self.env,
                              capture_output=True, text=True, timeout=30)

    def environment(self, env=None):
        p = self.ctl("environment", "--formatter", "json", env=env)
        assert p.returncode == 0, p.stderr
        return {row["name"]: row for row in json.loads(p.stdout)["settings"]}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def brokers():
    made = []
    yield made
    for b in made:
        b.stop()
        assert "panicked" not in b.out() + b.err(), b.out() + b.err()


def conf(tmp, body, name="rabbitmq.conf"):
    p = tmp / name
    p.write_text(body)
    return p


def amqp(port, user="guest", password="guest"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, credentials=pika.PlainCredentials(user, password),
        connection_attempts=1, socket_timeout=5))


def test_rabbitmq_conf_listeners_and_default_user(tmp_path, brokers):
    amqp_port, mgmt, prom, mqtt_port = free_port(), free_port(), free_port(), free_port()
    path = conf(tmp_path, f"""# a RabbitMQ node's file
listeners.tcp.default = 127.0.0.1:{amqp_port}
management.tcp.port = {mgmt}
management.tcp.ip = 127.0.0.1
prometheus.tcp.port = {prom}
mqtt.listeners.tcp.default = {mqtt_port}
warren.bind = 127.0.0.1
default_user = ops
default_pass = pass with spaces
default_user_tags.administrator = true
default_user_tags.monitoring = true
default_permissions.configure = ^ops-.*
heartbeat = 17
""")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "data")
    b = Broker(tmp_path, env=env, port=amqp_port)
    brokers.append(b)
    b.start()
    c = amqp(amqp_port, "ops", "pass with spaces")
    ch = c.channel()
    ch.queue_declare("ops-q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("other-q")
    assert e.value.reply_code == 403
    c.close()
    req = urllib.request.Request("http://127.0.0.1:%d/api/overview" % mgmt)
    req.add_header("Authorization", "Basic " + __import__("base64").b64encode(b"ops:pass with spaces").decode())
    overview = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert overview["node"].startswith("warren@")
    metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % prom, timeout=10).read()
    assert b"rabbitmq_" in metrics
    from mqtt_client import Client
    m = Client(port=mqtt_port, user="ops", password="pass with spaces")
    m.connect()
    m.close()
    users = b.ctl("list_users", "-q")
    assert users.returncode == 0, users.stderr
    assert "ops\t[administrator, monitoring]" in users.stdout, users.stdout
    rows = b.environment()
    assert rows["heartbeat"]["value"] == "17"
    assert rows["heartbeat"]["source"].endswith("line 13 (heartbeat)"), rows["heartbeat"]
    assert rows["default_pass"]["value"] == "********"
    assert "pass with spaces" not in b.ctl("environment").stdout


def test_rabbitmq_environment_variables(tmp_path, brokers):
    port = free_port()
    data = tmp_path / "mnesia"
    env = clean_env(tmp_path, RABBITMQ_NODE_PORT=port, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                    RABBITMQ_MNESIA_DIR=data, RABBITMQ_NODENAME="bunny",
                    RABBITMQ_CONFIG_FILE=conf(tmp_path, BASE.replace("warren.bind = 127.0.0.1\n", "")))
    b = Broker(tmp_path, env=env, port=port)
    brokers.append(b)
    b.start()
    amqp(port).close()
    assert (data / "warren.sock").exists()
    status = b.ctl("status")
    assert status.returncode == 0, status.stderr
    assert "Node name: bunny@" in status.stdout, status.stdout
    rows = b.environment()
    assert rows["data_dir"]["value"] == str(data)
    assert rows["data_dir"]["source"] == "environment RABBITMQ_MNESIA_DIR"
    assert rows["node_name"]["value"].startswith("bunny@")
    assert rows["amqp_port"]["source"] == "environment RABBITMQ_NODE_PORT"
    # RABBITMQ_MNESIA_BASE: <base>/<node name>.
    b.stop()
    env2 = dict(env, RABBITMQ_MNESIA_BASE=str(tmp_path / "base"))
    del env2["RABBITMQ_MNESIA_DIR"]
    b2 = Broker(tmp_path, env=env2, port=port)
    brokers.append(b2)
    b2.start()
    node = b2.environment()["node_name"]["value"]
    assert (tmp_path / "base" / node / "warren.sock").exists()


def test_precedence_flag_over_environment_over_file(tmp_path, brokers):
    port = free_port()
    path = conf(tmp_path, BASE + "heartbeat = 5\nchannel_max = 100\nframe_max = 8192\n")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d",
                    WARREN_HEARTBEAT=7, WARREN_CHANNEL_MAX=200)
    b = Broker(tmp_path, args=["--amqp-port", str(port), "--channel-max", "300"], env=env, port=port)
    brokers.append(b)
    b.start()
    rows = b.environment()
    assert (rows["channel_max"]["value"], rows["channel_max"]["source"]) == ("300", "flag --channel-max")
    assert (rows["heartbeat"]["value"], rows["heartbeat"]["source"]) == ("7", "environment WARREN_HEARTBEAT")
    assert rows["frame_max"]["value"] == "8192" and "line 7" in rows["frame_max"]["source"]
    assert (rows["handshake_timeout"]["value"], rows["handshake_timeout"]["source"]) == ("10000", "default")
    c = amqp(port)
    assert c._impl.params.channel_max == 300
    assert c._impl.params.frame_max == 8192
    c.close()


def test_unknown_key_refuses_to_start(tmp_path):
    path = conf(tmp_path, BASE + "heartbeat = 10\nfoo.bar = 1\n")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    rc, out, err = Broker(tmp_path, env=env).exit()
    assert rc != 0
    assert "%s line 6: unknown key 'foo.bar'" % path in err, (out, err)


def test_bad_value_names_key_and_line(tmp_path):
    path = conf(tmp_path, BASE + "\nheartbeat = often\n")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    rc, out, err = Broker(tmp_path, env=env).exit()
    assert rc != 0
    assert "line 6: invalid value 'often' for 'heartbeat'" in err, (out, err)


def test_unsupported_keys_in_one_warning(tmp_path, brokers):
    port = free_port()
    path = conf(tmp_path, BASE + f"""listeners.tcp.1 = 127.0.0.1:{port}
cluster_formation.peer_discovery_backend = dns
cluster_partition_handling = autoheal
auth_backends.1 = ldap
collect_statistics_interval = 10000
stomp.listeners.tcp.1 = 61613
""")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    b = Broker(tmp_path, env=env, port=port)
    brokers.append(b)
    b.start()
    lines = [l for l in b.out().splitlines() if "Warren does not act on" in l]
    assert len(lines) == 1, b.out()
    line = lines[0]
    assert "[warning]" in line
    for expected in ("cluster_formation.peer_discovery_backend = dns: Warren's only peer discovery is classic_config",
                     "cluster_partition_handling: Warren's partition handling is Raft's majority rule",
                     "auth_backends.1: ", "collect_statistics_interval: ", "stomp.listeners.tcp.1: STOMP is not supported"):
        assert expected in line, line
    ignored = json.loads(b.ctl("environment", "--formatter", "json").stdout)["ignored_keys"]
    assert len(ignored) == 5


def test_warrenctl_finds_the_broker_through_the_env_file(tmp_path, brokers):
    """The package's layout: /etc/warren/rabbitmq-env.conf sets MNESIA_DIR; here a temp file."""
    port = free_port()
    envfile = tmp_path / "rabbitmq-env.conf"
    envfile.write_text("# as the package's\nMNESIA_DIR=%s\nNODE_PORT=%d\nNODENAME=pkg\n" % (tmp_path / "lib", port))
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=conf(tmp_path, BASE))
    env["RABBITMQ_CONF_ENV_FILE"] = str(envfile)
    b = Broker(tmp_path, env=env, port=port)
    brokers.append(b)
    b.start()
    status = b.ctl("status")
    assert status.returncode == 0, status.stderr
    assert "Node name: pkg@" in status.stdout
    rows = b.environment()
    assert rows["data_dir"]["source"] == "environment RABBITMQ_MNESIA_DIR (from %s)" % envfile
    # Without the env file warrenctl looks elsewhere and finds nothing.
    other = tmp_path / "other"
    other.mkdir()
    lost = b.ctl("status", env=clean_env(other))
    assert lost.returncode == 69, (lost.stdout, lost.stderr)


def test_warrenctl_finds_the_broker_through_a_toml_data_dir(tmp_path, brokers):
    port = free_port()
    data = tmp_path / "toml-data"
    toml = conf(tmp_path, 'amqp_port = %d\nbind = "127.0.0.1"\ndata_dir = "%s"\nmanagement = false\n'
                'prometheus = false\nmqtt = false\n' % (port, data), name="warren.toml")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=toml)
    b = Broker(tmp_path, env=env, port=port)
    brokers.append(b)
    b.start()
    status = b.ctl("status")
    assert status.returncode == 0, status.stderr
    assert (data / "warren.sock").exists()
    # WARREN_CONFIG names the file too.
    env2 = clean_env(tmp_path)
    env2["WARREN_CONFIG"] = str(toml)
    assert b.ctl("status", env=env2).returncode == 0


def test_toml_unknown_key_still_refused(tmp_path):
    toml = conf(tmp_path, "amqp_port = 1\nno_such_key = 1\n", name="warren.toml")
    rc, out, err = Broker(tmp_path, args=["--config", str(toml)], env=clean_env(tmp_path)).exit()
    assert rc != 0 and "unknown key 'no_such_key'" in err, err


# Clustering (issue 21): configured from flags or rabbitmq.conf, checked, never ignored.

def test_cluster_of_one_from_rabbitmq_conf_forms_and_makes_its_secret(tmp_path, brokers):
    cport, amqp = free_port(), free_port()
    path = conf(tmp_path, BASE + """listeners.tcp.default = 127.0.0.1:%d
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = n1@localhost
cluster_formation.warren.addresses.n1@localhost = 127.0.0.1:%d
warren.cluster.port = %d
warren.node_name = n1@localhost
""" % (amqp, cport, cport))
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    b = Broker(tmp_path, env=env, port=amqp)
    brokers.append(b)
    b.start()
    secret = tmp_path / "d" / ".cluster_secret"
    assert secret.exists() and (secret.stat().st_mode & 0o777) == 0o600
    # A cluster of one has its majority: changes commit, the defaults are made once.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = b.ctl("cluster_status")
        if "Leader: n1@localhost" in status.stdout:
            break
        time.sleep(0.2)
    assert "Leader: n1@localhost" in status.stdout, status
    assert b.ctl("add_vhost", "from-a-cluster").returncode == 0


def test_a_node_not_among_its_members_joins_and_never_forms(tmp_path, brokers):
    amqp = free_port()
    env = clean_env(tmp_path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    args = ["--bind", "127.0.0.1", "--node-name", "n3@localhost", "--amqp-port", str(amqp),
            "--disable-management", "--disable-prometheus", "--disable-mqtt", "--cluster-port", str(free_port()),
            "--cluster-node", "n1@localhost=127.0.0.1:%d" % free_port(),
            "--cluster-node", "n2@localhost=127.0.0.1:%d" % free_port()]
    b = Broker(tmp_path, args=args, env=env, port=amqp)
    brokers.append(b)
    b.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "no seed has a cluster to join" not in b.out():
        time.sleep(0.2)
    assert "no seed has a cluster to join, and this node (n3@localhost) is not among its own --cluster-node members" \
        in b.out(), b.out()


def test_cluster_configuration_errors(tmp_path):
    env = clean_env(tmp_path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    rc, out, err = Broker(tmp_path, args=["--cluster-node", "n2@localhost"], env=env).exit()
    assert rc != 0
    assert "flag --cluster-node: invalid cluster node 'n2@localhost': expected NAME=HOST:PORT" in err, err
    rc, out, err = Broker(tmp_path, args=["--cluster-node", "a@h=h:1", "--cluster-node", "a@h=h:2"], env=env).exit()
    assert rc != 0 and "cluster node 'a@h' is given two addresses: h:1 and h:2" in err, err
    path = conf(tmp_path, BASE + "cluster_formation.classic_config.nodes.1 = n2@localhost\n")
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    rc, out, err = Broker(tmp_path, env=env).exit()
    assert rc != 0
    assert "%s line 5: cluster node 'n2@localhost'" % path in err and "has no address" in err, err


def test_cluster_settings_in_environment(tmp_path, brokers):
    port = free_port()
    path = conf(tmp_path, BASE + "listeners.tcp.1 = 127.0.0.1:%d\nwarren.cluster.port = 25999\n" % port)
    data = tmp_path / "d"
    env = clean_env(tmp_path, RABBITMQ_CONFIG_FILE=path, RABBITMQ_MNESIA_DIR=data)
    b = Broker(tmp_path, args=["--cluster-bind", "127.0.0.1"], env=env, port=port)
    brokers.append(b)
    b.start()
    rows = b.environment()
    assert rows["cluster_port"]["value"] == "25999"
    assert rows["cluster_port"]["source"] == "%s line 6 (warren.cluster.port)" % path
    assert rows["cluster_bind"]["value"] == "127.0.0.1"
    assert rows["cluster_bind"]["origin"] == "flag"
    assert rows["cluster_nodes"]["value"] == "" and rows["cluster_nodes"]["origin"] == "default"
    assert rows["cluster_secret_file"]["value"] == str(data / ".cluster_secret")
    assert "Warren does not act on" not in b.out(), b.out()


def test_cluster_settings_without_members_are_reported(tmp_path, brokers):
    amqp = free_port()
    env = clean_env(tmp_path, RABBITMQ_MNESIA_DIR=tmp_path / "d")
    args = ["--bind", "127.0.0.1", "--amqp-port", str(amqp), "--disable-management", "--disable-prometheus",
            "--disable-mqtt", "--cluster-port", str(free_port()), "--cluster-tls"]
    b = Broker(tmp_path, args=args, env=env, port=amqp)
    brokers.append(b)
    b.start()
    assert "cluster settings without cluster members (--cluster-node) do nothing: " \
           "cluster_port (flag --cluster-port); cluster_tls (flag --cluster-tls)" in b.out(), b.out()

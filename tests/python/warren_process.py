"""Start, stop, SIGKILL and restart a Warren broker of our own, for tests that need restarts.

The binary comes from $WARREN_BIN (scripts/test.sh sets it). Without it these tests fail,
unless AMQP_ALLOW_NO_WARREN_BIN=1 (running the suite against RabbitMQ), which skips them.
"""
import json
import os
import signal
import socket
import subprocess
import time

import pika
import pytest
import requests


from ports import free_port  # noqa: F401 (re-exported: tests import it from here)


class WarrenProcess:
    # Every broker a test starts, whoever starts it (the `warren` fixture or the test itself):
    # conftest's autouse fixture checks their logs for panics after each test (check_panics).
    started = []

    def __init__(self, binary, data_dir, extra_args=(), env=None):
        WarrenProcess.started.append(self)
        self.binary = binary
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.log_path = os.path.join(os.path.dirname(self.data_dir), "warren-%d.log" % self.port)
        self.proc = None
        self.starts = 0

    def http_args(self):
        """No HTTP listeners on the default ports unless the test asks for them."""
        out = []
        if "--management-port" not in self.extra_args:
            out.append("--disable-management")
        if "--prometheus-port" not in self.extra_args:
            out.append("--disable-prometheus")
        if "--mqtt-port" not in self.extra_args:
            out.append("--disable-mqtt")
        return out

    def start(self, timeout=15.0):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--amqp-port", str(self.port),
             "--data-dir", self.data_dir, "--log-level", "info"] + self.http_args() + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("warren exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("warren did not start listening within %ss:\n%s" % (timeout, self.log()))

    def stop(self, timeout=15.0):
        """Clean stop (SIGTERM), as a service manager would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, crash=False):
        self.kill9() if crash else self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def params(self, **kw):
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("blocked_connection_timeout", 20)
        return pika.ConnectionParameters("127.0.0.1", self.port, **kw)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def control(self, op, *args):
        """One request to the broker's control socket (e.g. inject_fault); asserts it was ok."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(self.data_dir, "warren.sock"))
        s.sendall((json.dumps({"op": op, "args": list(args)}) + "\n").encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        reply = json.loads(out)
        assert reply.get("ok") is True, reply
        return reply

    def ctl(self, *args):
        ctl = os.path.join(os.path.dirname(self.binary), "warrenctl")
        return subprocess.run([ctl, "--data-dir", self.data_dir] + list(args),
                              capture_output=True, text=True, timeout=30)


class Http:
    """The management API of a broker of our own: http(method, path, **requests kwargs)."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.port = port

    def __call__(self, method, path, user="guest", password="guest", **kw):
        kw.setdefault("timeout", 30)
        return requests.request(method, self.base + path, auth=(user, password), **kw)


def start_with_management(warren, *extra):
    """A broker from the `warren` fixture with the management API on a free port: (w, Http)."""
    mport = free_port()
    w = warren(["--management-port", str(mport)] + list(extra))
    return w, Http(mport)


def check_panics(brokers):
    """Stops (SIGKILL) what is still running of `brokers` and fails if any log shows a panic."""
    panicked = []
    for w in brokers:
        w.kill9()
        log = w.log()
        if "panicked" in log:
            at = log.index("panicked")
            panicked.append("%s:\n%s" % (w.log_path, log[max(0, log.rfind("\n", 0, at)):at + 2000]))
    if panicked:
        pytest.fail("a broker started by this test panicked:\n" + "\n".join(panicked), pytrace=False)


@pytest.fixture
def warren(tmp_path):
    """warren(extra_args=(), env=None) -> a started WarrenProcess; stopped at teardown."""
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        if os.environ.get("AMQP_ALLOW_NO_WARREN_BIN") == "1":
            pytest.skip("WARREN_BIN not set (restart tests need a Warren binary)")
        raise AssertionError("set WARREN_BIN to the warren binary (or AMQP_ALLOW_NO_WARREN_BIN=1)")
    made = []

    def make(extra_args=(), env=None):
        w = WarrenProcess(binary, tmp_path / ("data%d" % len(made)), extra_args, env)
        made.append(w)
        return w.start()

    yield make
    check_panics(made)

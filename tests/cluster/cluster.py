"""Several `warren` processes on 127.0.0.1 forming a cluster, with a partition proxy on every
directed inter-node link.

Node i listens for inter-node traffic on its own port; node i reaches node j through the proxy
links[(i, j)] (its `--cluster-node` address for j), so a test cuts, blackholes or delays exactly
the traffic i sends to j (and j's answers on that connection). Faults: SIGKILL, SIGSTOP/SIGCONT,
and the proxies. Every wait is bounded.

The binaries come from $WARREN_BIN and $WARRENCTL (scripts/test.sh sets them).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ports import free_port
from proxy import Proxy

WARREN = os.environ.get("WARREN_BIN", "target/debug/warren")
WARRENCTL = os.environ.get("WARRENCTL", "target/debug/warrenctl").split()[0]


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = "n%d@localhost" % index
        self.data_dir = os.path.join(cluster.root, "n%d" % index)
        self.cluster_port = free_port()
        self.amqp_port = free_port()
        self.mgmt_port = free_port()
        self.mqtt_port = free_port()
        self.proc = None
        self.log_path = os.path.join(cluster.root, "n%d.log" % index)

    def args(self):
        nodes = []
        for other in self.cluster.nodes:
            if other is self:
                port = self.cluster_port
            else:
                port = self.cluster.links[(self.index, other.index)].listen_port
            nodes += ["--cluster-node", "%s=127.0.0.1:%d" % (other.name, port)]
        return [WARREN, "--bind", "127.0.0.1", "--node-name", self.name,
                "--data-dir", self.data_dir, "--amqp-port", str(self.amqp_port),
                "--management-port", str(self.mgmt_port), "--disable-prometheus",
                "--mqtt-port", str(self.mqtt_port), "--management-login-failures", "0",
                "--cluster-port", str(self.cluster_port),
                "--cluster-secret-file", self.cluster.secrets.get(self.index, self.cluster.secret_file),
                "--log-level", "info"] + nodes + self.cluster.extra_args.get(self.index, [])

    def single_args(self):
        """This node's command line without the cluster flags: a single node on the same ports."""
        args = self.args()
        return [a for i, a in enumerate(args)
                if not (a.startswith("--cluster") or (i > 0 and args[i - 1].startswith("--cluster")))]

    def start(self):
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s:\n%s" % (self.name, self.proc.returncode, self.log()))
            try:
                if self.ctl("await_startup", timeout=5).returncode == 0:
                    return self
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise AssertionError("%s did not start within 30 s:\n%s" % (self.name, self.log()))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def ctl(self, *args, timeout=60):
        return subprocess.run([WARRENCTL, "--data-dir", self.data_dir] + list(args),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ctl_ok(self, *args, timeout=60):
        r = self.ctl(*args, timeout=timeout)
        assert r.returncode == 0, (self.name, args, r.returncode, r.stdout, r.stderr)
        return r.stdout

    def users(self):
        out = self.ctl_ok("list_users", "-q", "--no-table-headers")
        return {line.split("\t")[0] for line in out.splitlines() if line.strip()}

    def vhosts(self):
        out = self.ctl_ok("list_vhosts", "-q", "--no-table-headers")
        return {line.strip() for line in out.splitlines() if line.strip()}

    def status(self):
        import json
        out = self.ctl_ok("cluster_status", "--formatter", "json")
        return json.loads(out)


class Cluster:
    def __init__(self, size=3, extra_args=None):
        self.root = tempfile.mkdtemp(prefix="warren-cluster-")
        self.secret_file = os.path.join(self.root, "secret")
        with open(os.open(self.secret_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("test-cluster-secret-%d\n" % os.getpid())
        self.extra_args = extra_args or {}
        # A node's own secret file (a test's wrong one), by index.
        self.secrets = {}
        self.nodes = []
        self.links = {}
        for i in range(size):
            self.nodes.append(Node(self, i))
        for a in self.nodes:
            for b in self.nodes:
                if a is not b:
                    self.links[(a.index, b.index)] = Proxy(free_port(), "127.0.0.1", b.cluster_port)

    def start(self):
        for n in self.nodes:
            n.start()
        self.wait_leader()
        # Every link up (a link dialed before its peer listened is in its redial backoff).
        everyone = sorted(n.name for n in self.nodes)
        self.eventually(lambda: all(sorted(n.status()["running_nodes"]) == everyone for n in self.nodes),
                        "every node reaches every other")
        return self

    def close(self):
        for n in self.nodes:
            n.stop()
        for p in self.links.values():
            p.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self):
        return "\n".join("---- %s\n%s" % (n.name, n.log()) for n in self.nodes)

    def running(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def wait_leader(self, among=None, timeout=30):
        """The definitions leader as `among` (default: every running node) agree on it."""
        among = among or self.running()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = set()
            for n in among:
                try:
                    leaders.add(n.status().get("definitions_leader"))
                except (AssertionError, ValueError, subprocess.TimeoutExpired):
                    leaders.add(None)
            if len(leaders) == 1 and None not in leaders:
                return self.node(leaders.pop())
            time.sleep(0.2)
        raise AssertionError("no agreed leader among %s within %d s:\n%s"
                             % ([n.name for n in among], timeout, self.logs()))

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def partition(self, side_a, side_b, how="cut"):
        """Cuts every link between the two sides, both directions."""
        for a in side_a:
            for b in side_b:
                for link in (self.links[(a.index, b.index)], self.links[(b.index, a.index)]):
                    getattr(link, how)()

    def heal(self):
        for p in self.links.values():
            p.heal()

    def eventually(self, check, what, timeout=30):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (AssertionError, subprocess.TimeoutExpired) as e:
                last = e
            time.sleep(0.2)
        raise AssertionError("%s: not within %d s (%s)\n%s" % (what, timeout, last, self.logs()))

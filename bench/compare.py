"""Runs the same warren-perf scenarios against Warren and RabbitMQ, alternating,
and prints both figures and the ratio. Started by bench/compare.sh."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERF = os.path.join(ROOT, "target/release/warren-perf")
WARREN = os.path.join(ROOT, "target/release/warren")
WORK = "/tmp/warren-bench"
RUN = float(os.environ.get("SECONDS_PER_RUN", "10"))
TICK = os.sysconf("SC_CLK_TCK")
# No management/Prometheus listeners (builds without them ignore these).
QUIET_HTTP = dict(os.environ, WARREN_DISABLE_MANAGEMENT="true", WARREN_DISABLE_PROMETHEUS="true")
PAGE = os.sysconf("SC_PAGE_SIZE")


def wait_port(port, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def listener_pid(port):
    out = subprocess.run(["ss", "-ltnpH", "sport = :%d" % port], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


class Broker:
    def __init__(self, name, port):
        self.name, self.port, self.proc, self.pid = name, port, None, None

    def amqp(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2f" % self.port


class Warren(Broker):
    def __init__(self):
        super().__init__("warren", 5692)
        self.data = os.path.join(WORK, "warren")
        self.env = QUIET_HTTP

    def start(self, fresh=True):
        if fresh:
            shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data, exist_ok=True)
        log = open(os.path.join(WORK, "warren.log"), "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([WARREN, "--bind", "127.0.0.1", "--amqp-port", str(self.port),
                                      "--data-dir", self.data, "--log-level", "warning"],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env)
        assert wait_port(self.port), "warren did not start"
        self.pid = self.proc.pid
        return time.monotonic() - t0

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.proc = None


class RabbitMQ(Broker):
    def __init__(self):
        super().__init__("rabbitmq", 5682)
        self.base = os.path.join(WORK, "rmq")
        # Extra `NAME=value` settings for rabbitmq-server's environment.
        self.extra_env = ""

    def start(self, fresh=True):
        if fresh:
            shutil.rmtree(self.base, ignore_errors=True)
        for d in ("mnesia", "log"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", self.base], check=True)
        env = ("ulimit -n $(ulimit -Hn); cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq " + self.extra_env +
               " RABBITMQ_NODENAME=bench@localhost "
               "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=%d RABBITMQ_DIST_PORT=25692 "
               "ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE=%s/mnesia RABBITMQ_LOG_BASE=%s/log "
               "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' "
               "exec /usr/lib/rabbitmq/bin/rabbitmq-server" % (self.port, self.base, self.base))
        log = open(os.path.join(WORK, "rabbitmq.log"), "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(["su", "rabbitmq", "-s", "/bin/sh", "-c", env],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        assert wait_port(self.port, 180), "rabbitmq did not start"
        took = time.monotonic() - t0
        self.pid = listener_pid(self.port)
        return took

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and os.path.exists("/proc/%d" % self.pid):
                time.sleep(0.2)
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc = None
        subprocess.run(["epmd", "-kill"], capture_output=True)
        self.pid = None


def perf(broker, args):
    """Runs warren-perf with --json; returns (summary, broker cpu seconds)."""
    cpu0 = cpu_seconds(broker.pid)
    out = subprocess.run([PERF, "-u", broker.amqp(), "--json", "--quiet"] + args,
                         capture_output=True, text=True, timeout=900)
    cpu = cpu_seconds(broker.pid) - cpu0
    if out.returncode != 0:
        raise RuntimeError("%s: warren-perf %s failed: %s" % (broker.name, " ".join(args), out.stderr))
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]), cpu


T = str(RUN)
SCENARIOS = [
    ("a", "1 producer -> 1 queue -> 1 consumer, 16 B, transient, auto-ack",
     ["-x", "1", "-y", "1", "-s", "16", "-a", "-z", T], "receive_rate"),
    ("b", "1 -> 1, 1 KiB persistent, durable, confirms (256), manual ack, prefetch 100",
     ["-x", "1", "-y", "1", "-s", "1024", "--persistent", "-c", "256", "-q", "100", "-A", "10", "-z", T],
     "receive_rate"),
    ("c", "fanout to 8 queues, 8 consumers, 256 B (deliveries/s)",
     ["-x", "1", "-y", "8", "--queues", "8", "-e", "bench-fanout", "-t", "fanout", "-s", "256", "-a", "-z", T],
     "receive_rate"),
    ("d", "topic exchange, 1,000 bindings, 4 queues/consumers",
     ["-x", "1", "-y", "4", "--queues", "4", "-e", "bench-topic", "-t", "topic", "-k", "perf.%d.x",
      "--binding-key", "perf.%d.#", "--extra-bindings", "996", "-s", "16", "-a", "-z", T], "receive_rate"),
    ("e", "sequential RPC round trips (reply_to + correlation_id)",
     ["--rpc", "-x", "1", "-y", "1", "-z", T], "receive_rate"),
    ("f", "4 producers, 4 consumers, 4 queues, 128 B",
     ["-x", "4", "-y", "4", "--queues", "4", "-s", "128", "-a", "-z", T], "receive_rate"),
    ("g", "publish 1 M x 100 B into one queue, then drain it",
     ["-x", "1", "-y", "1", "-s", "100", "-C", "1000000", "-D", "1000000", "--publish-then-consume", "-a",
      "-z", "600"], "phases"),
    ("p", "as (a) into a priority queue (x-max-priority 10), every message priority 5",
     ["-x", "1", "-y", "1", "-s", "16", "-a", "--max-priority", "10", "--priority", "5", "-z", T], "receive_rate"),
    ("l", "latency at a fixed 10 k msg/s, 16 B",
     ["-x", "1", "-y", "1", "-s", "16", "-r", "10000", "-a", "-z", T], "latency"),
]


def fmt_rate(x):
    return "%.0f k/s" % (x / 1000) if x >= 1000 else "%.0f /s" % x


def scenario(key, desc, args, metric, brokers, results):
    row = {"scenario": key, "description": desc}
    order = brokers if len(results) % 2 == 0 else list(reversed(brokers))
    for b in order:
        a = args + ["--queue-pattern", "bench-%s-%s-%%d" % (key, b.name), "--cleanup"]
        # Two cores: the idle broker must not take CPU from the measured one
        # (RabbitMQ keeps working after a run: GC, stats). Freeze it.
        others = [o for o in brokers if o is not b and o.pid]
        for o in others:
            os.kill(o.pid, signal.SIGSTOP)
        try:
            s, cpu = perf(b, a)
        finally:
            for o in others:
                os.kill(o.pid, signal.SIGCONT)
        msgs = s["sent"] + s["received"]
        row[b.name] = {
            "summary": s,
            "broker_cpu_seconds": cpu,
            "broker_cpu_us_per_msg": cpu * 1e6 / msgs if msgs else 0,
        }
    results.append(row)
    w, r = row["warren"], row["rabbitmq"]
    if metric == "phases":
        wp, rp = w["summary"], r["summary"]
        line = "publish %.2fs vs %.2fs (%.1fx), drain %.2fs vs %.2fs (%.1fx)" % (
            wp["publish_seconds"], rp["publish_seconds"], rp["publish_seconds"] / wp["publish_seconds"],
            wp["consume_seconds"], rp["consume_seconds"], rp["consume_seconds"] / wp["consume_seconds"])
    elif metric == "latency":
        wl, rl = w["summary"]["latency_us"], r["summary"]["latency_us"]
        line = "p50 %.0f vs %.0f us, p99 %.0f vs %.0f us (%.2fx)" % (
            wl["p50"], rl["p50"], wl["p99"], rl["p99"], wl["p99"] / max(rl["p99"], 1))
    else:
        wr, rr = w["summary"][metric], r["summary"][metric]
        line = "%s vs %s  (%.1fx)" % (fmt_rate(wr), fmt_rate(rr), wr / rr if rr else float("inf"))
        if key == "e":
            wl, rl = w["summary"]["latency_us"], r["summary"]["latency_us"]
            line += ", p50 %.0f vs %.0f us, p99 %.0f vs %.0f us" % (wl["p50"], rl["p50"], wl["p99"], rl["p99"])
    line += "; broker CPU/msg %.2f vs %.2f us, perf CPU/msg %.2f us" % (
        w["broker_cpu_us_per_msg"], r["broker_cpu_us_per_msg"], w["summary"]["cpu_us_per_message"])
    print("(%s) %-72s warren vs rabbitmq: %s" % (key, desc, line), flush=True)


def resources(brokers, results):
    for b in brokers:
        r = {}
        try:
            measure_resources(b, r)
        except Exception as e:  # noqa: BLE001 - a broker may fall over; record it
            r["failed"] = str(e)
            b.stop()
            b.start()
        results.append({"resources": b.name, **r})
        print("%-9s %s" % (b.name, ", ".join("%s=%s" % (k, ("%.2f" % v) if isinstance(v, float) else v)
                                              for k, v in r.items())), flush=True)


def measure_resources(b, r):
    """Fills `r` as it goes, so a broker that dies midway leaves what it had."""
    b.stop()
    b.start()
    time.sleep(3)
    r["idle_rss_mb"] = rss_mb(b.pid)
    perf(b, ["-x", "1", "-y", "0", "-s", "100", "-C", "1000000", "-z", "600", "--queue-pattern", "rss1m-%d"])
    time.sleep(2)
    r["rss_1m_queued_100b_mb"] = rss_mb(b.pid)
    for n in (1000, 10000):
        b.stop()
        b.start()
        time.sleep(2)
        idle = rss_mb(b.pid)
        holder = subprocess.Popen([PERF, "-u", b.amqp(), "--idle-connections", str(n), "-z", "20", "--json"],
                                  stdout=subprocess.PIPE, text=True)
        line = holder.stdout.readline()
        time.sleep(5)
        r["rss_%d_connections_mb" % n] = rss_mb(b.pid)
        r["rss_per_connection_kb_%d" % n] = (r["rss_%d_connections_mb" % n] - idle) * 1000 / n
        r["open_%d_connections" % n] = json.loads(line) if line.startswith("{") else line.strip()
        holder.kill()
        holder.wait()
    b.stop()
    b.start()
    time.sleep(2)
    perf(b, ["-x", "0", "-y", "0", "--queues", "10000", "--queue-pattern", "q10k-%d", "-z", "0.1"])
    time.sleep(2)
    r["rss_10k_queues_mb"] = rss_mb(b.pid)
    b.stop()
    b.start()
    perf(b, ["-x", "1", "-y", "0", "-s", "100", "--persistent", "-c", "256", "-C", "1000000", "-z", "900",
             "--queue-pattern", "restart-%d"])
    b.stop()
    r["start_with_1m_persistent_s"] = b.start(fresh=False)


def main():
    want = set(sys.argv[1:])
    os.makedirs(WORK, exist_ok=True)
    brokers = [Warren(), RabbitMQ()]
    results = []
    try:
        for b in brokers:
            took = b.start()
            print("%s started in %.2fs (pid %s)" % (b.name, took, b.pid), flush=True)
        for key, desc, args, metric in SCENARIOS:
            if not want or key in want:
                scenario(key, desc, args, metric, brokers, results)
        if not want or "resources" in want:
            resources(brokers, results)
    finally:
        for b in brokers:
            try:
                b.stop()
            except Exception as e:  # noqa: BLE001
                print("stopping %s: %s" % (b.name, e))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", "%s.json" % time.strftime("%Y-%m-%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print("results written to", out)


if __name__ == "__main__":
    main()

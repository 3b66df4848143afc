"""What the cluster costs (docs/benchmarks.md, issue 21):

  definitions  latency of a definitions change over HTTP (PUT /api/users/NAME), sequential, on a
               single node and on a three-node cluster (through the leader and through a
               follower): p50, p99, max.
  idle         three idle cluster nodes against one single node: CPU per node over a window
               (from /proc: utime + stime) and RSS.

    WARREN_BIN=target/release/warren WARRENCTL=target/release/warrenctl \
        .venv/bin/python bench/cluster.py [definitions|idle|all] [N]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))

import requests  # noqa: E402

from cluster import Cluster  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def changes(node, n, tag):
    s = requests.Session()
    url = "http://127.0.0.1:%d/api/users/" % node.mgmt_port
    lat = []
    for i in range(n):
        t = time.perf_counter()
        r = s.put(url + "%s-%d" % (tag, i), json={"password": "pw", "tags": ""}, auth=("guest", "guest"))
        lat.append((time.perf_counter() - t) * 1000)
        assert r.status_code in (201, 204), r.text
    return lat


def report(what, lat):
    print("%-34s n=%d  p50 %.2f ms  p99 %.2f ms  max %.2f ms"
          % (what, len(lat), percentile(lat, 0.5), percentile(lat, 0.99), max(lat)))


def definitions(n):
    single = Cluster(1)
    try:
        # A node without --cluster-node: start it as Cluster(1) would, minus the cluster flags.
        node = single.nodes[0]
        args = node.single_args()
        node.args = lambda: args
        node.start()
        changes(node, 50, "warm")
        report("single node", changes(node, n, "single"))
    finally:
        single.close()
    c = Cluster(3)
    try:
        c.start()
        leader = c.wait_leader()
        follower = next(x for x in c.nodes if x is not leader)
        changes(leader, 50, "warm")
        report("cluster of 3, through the leader", changes(leader, n, "leader"))
        report("cluster of 3, through a follower", changes(follower, n, "follower"))
    finally:
        c.close()


def idle(window=30):
    single = Cluster(1)
    c = Cluster(3)
    try:
        node = single.nodes[0]
        args = node.single_args()
        node.args = lambda: args
        node.start()
        c.start()
        time.sleep(5)
        procs = [("single", node.proc.pid)] + [(x.name, x.proc.pid) for x in c.nodes]
        before = {name: cpu_seconds(pid) for name, pid in procs}
        time.sleep(window)
        for name, pid in procs:
            used = cpu_seconds(pid) - before[name]
            print("%-16s CPU %.2f%% of a core over %d s, RSS %.1f MiB"
                  % (name, 100 * used / window, window, rss_mib(pid)))
    finally:
        c.close()
        single.close()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    if what in ("definitions", "all"):
        definitions(n)
    if what in ("idle", "all"):
        idle()

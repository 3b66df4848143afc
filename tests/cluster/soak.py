"""A Jepsen-style soak of the cluster's definitions: faults cycle while clients change
definitions on every node; afterwards every node must hold exactly what was acknowledged.

Workload: one client per node, each adding users with unique names through `warrenctl` on its
node and deleting some of those it added. Every operation's outcome is recorded:
  ok          acknowledged (exit 0): it happened;
  refused     certainly not made (exit 75, "was not made");
  unknown     handed to the cluster without an answer in time (exit 75, "may or may not").
Faults (one at a time, every few seconds, on a random node or link): SIGKILL then restart,
SIGSTOP then SIGCONT, a partition of one node through the proxies (cut or blackhole), a one-way
loss, and healing.

The checker, after healing everything and restarting every node: all nodes hold the same users,
and for each name: added ok and not deleted ok -> present (unless its delete is unknown);
added ok and deleted ok -> absent; add refused -> absent; add unknown -> either.

Short form: tests/cluster/test_soak.py (CI). Long form: scripts/cluster-soak.sh SECONDS.
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from cluster import Cluster  # noqa: E402
from proxy import TO_SERVER  # noqa: E402

EX_TEMPFAIL = 75
EX_UNAVAILABLE = 69


def outcome(r):
    if r.returncode == 0:
        return "ok"
    if r.returncode == EX_TEMPFAIL and "was not made" in r.stderr:
        return "refused"
    if r.returncode == EX_TEMPFAIL:
        return "unknown"
    if r.returncode == EX_UNAVAILABLE:
        # The node stopped (a fault) with the request in hand, or was down.
        return "unknown"
    # Anything else (a crash of the CLI, an unexpected refusal) is a finding.
    return "error: rc=%s %s" % (r.returncode, r.stderr.strip()[:300])


class Client(threading.Thread):
    def __init__(self, cluster, node, stop, seed):
        super().__init__(daemon=True)
        self.cluster, self.node, self.stop = cluster, node, stop
        self.rng = random.Random(seed)
        self.history = []  # (op, name, outcome)
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            if self.node.proc is None or self.node.proc.poll() is not None:
                time.sleep(0.2)
                continue
            added = [h[1] for h in self.history if h[0] == "add" and h[2] == "ok"
                     and not any(d[0] == "delete" and d[1] == h[1] for d in self.history)]
            try:
                if added and self.rng.random() < 0.2:
                    name = self.rng.choice(added)
                    r = self.node.ctl("delete_user", name, timeout=60)
                    self.history.append(("delete", name, outcome(r)))
                else:
                    self.n += 1
                    name = "soak-%s-%d" % (self.node.name.split("@")[0], self.n)
                    r = self.node.ctl("add_user", name, "pw", timeout=60)
                    self.history.append(("add", name, outcome(r)))
            except Exception as e:  # a CLI that hung past 60 s: unknown outcome
                self.history.append(("add" if not added else "op", "?", "unknown (%s)" % e))
            time.sleep(self.rng.uniform(0, 0.05))


def faults(cluster, stop, rng, log):
    nodes = cluster.nodes
    while not stop.is_set():
        time.sleep(rng.uniform(1.0, 3.0))
        if stop.is_set():
            break
        victim = rng.choice(nodes)
        others = [n for n in nodes if n is not victim]
        kind = rng.choice(["kill", "pause", "cut", "blackhole", "one_way", "none"])
        log.append((round(time.monotonic(), 1), kind, victim.name))
        if kind == "kill":
            victim.kill()
            time.sleep(rng.uniform(0.5, 3.0))
            victim.start()
        elif kind == "pause":
            victim.pause()
            time.sleep(rng.uniform(0.5, 3.0))
            victim.resume()
        elif kind in ("cut", "blackhole"):
            cluster.partition([victim], others, how=kind)
            time.sleep(rng.uniform(0.5, 4.0))
            cluster.heal()
        elif kind == "one_way":
            cluster.links[(victim.index, rng.choice(others).index)].one_way(drop=TO_SERVER)
            time.sleep(rng.uniform(0.5, 4.0))
            cluster.heal()


def check(cluster, clients):
    findings = []
    for n in cluster.nodes:
        if n.proc is None or n.proc.poll() is not None:
            n.start()
    cluster.heal()
    cluster.wait_leader(timeout=60)
    # Every node applies everything committed: a change made now is applied after them.
    leader = cluster.wait_leader(timeout=60)
    leader.ctl_ok("add_user", "soak-barrier", "pw", timeout=60)
    deadline = time.monotonic() + 60
    states = {}
    while time.monotonic() < deadline:
        states = {n.name: {u for u in n.users() if u.startswith("soak-")} for n in cluster.nodes}
        if all("soak-barrier" in s for s in states.values()):
            break
        time.sleep(0.5)
    distinct = {frozenset(s) for s in states.values()}
    if len(distinct) != 1:
        findings.append("nodes disagree: %s" % {k: sorted(v) for k, v in states.items()})
    final = next(iter(states.values()))
    counts = {"ok": 0, "refused": 0, "unknown": 0}
    for c in clients:
        by_name = {}
        for op, name, out in c.history:
            by_name.setdefault(name, {})[op] = out
            key = out if out in counts else None
            if key:
                counts[key] += 1
            elif out.startswith("error"):
                findings.append("%s %s on %s: %s" % (op, name, c.node.name, out))
        for name, ops in by_name.items():
            if name == "?":
                continue
            add, delete = ops.get("add"), ops.get("delete")
            present = name in final
            if add == "ok" and delete in (None, "refused") and not present:
                findings.append("LOST: %s was acknowledged and is on no node" % name)
            if add == "ok" and delete == "ok" and present:
                findings.append("RESURRECTED: %s was deleted (acknowledged) and is back" % name)
            if add == "refused" and present:
                findings.append("PHANTOM: %s was refused and is there" % name)
    return findings, counts


def run(seconds, seed=None, size=3):
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    cluster = Cluster(size)
    stop = threading.Event()
    fault_log = []
    try:
        cluster.start()
        clients = [Client(cluster, n, stop, rng.random()) for n in cluster.nodes]
        for c in clients:
            c.start()
        f = threading.Thread(target=faults, args=(cluster, stop, rng, fault_log), daemon=True)
        f.start()
        time.sleep(seconds)
        stop.set()
        f.join(30)
        for c in clients:
            c.join(90)
        findings, counts = check(cluster, clients)
        for n in cluster.nodes:
            if "panicked" in n.log():
                findings.append("%s panicked" % n.name)
        return {"seed": seed, "seconds": seconds, "operations": counts, "faults": len(fault_log),
                "fault_log": fault_log, "findings": findings}
    finally:
        stop.set()
        cluster.close()


if __name__ == "__main__":
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else None
    report = run(seconds, seed)
    print(json.dumps({k: v for k, v in report.items() if k != "fault_log"}, indent=2))
    sys.exit(1 if report["findings"] else 0)

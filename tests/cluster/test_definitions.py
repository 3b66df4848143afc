"""Three nodes, replicated definitions: an acknowledged change is on every node, a refused one on
none; a node lost (SIGKILL, SIGSTOP) or cut off (the partition proxies) does not lose what was
acknowledged, and catches up when it returns."""
import os
import socket

import pika
import pytest

from cluster import Cluster
from proxy import TO_SERVER

EX_TEMPFAIL = 75


@pytest.fixture
def cluster():
    c = Cluster(3)
    try:
        c.start()
        yield c
    finally:
        for n in c.nodes:
            if "panicked" in n.log():
                c.close()
                raise AssertionError("%s panicked:\n%s" % (n.name, n.log()))
        c.close()


def everywhere(cluster, check, what):
    cluster.eventually(lambda: all(check(n) for n in cluster.running()), what)


def test_a_change_on_any_node_is_on_every_node(cluster):
    n0, n1, n2 = cluster.nodes
    # The default user and vhost, made once for the new cluster.
    everywhere(cluster, lambda n: n.users() == {"guest"} and n.vhosts() == {"/"}, "defaults")
    n2.ctl_ok("add_user", "alice", "s3cret")
    n1.ctl_ok("add_vhost", "orders")
    n0.ctl_ok("set_permissions", "-p", "orders", "alice", ".*", ".*", ".*")
    n1.ctl_ok("set_policy", "-p", "orders", "cap", "^q", '{"max-length": 10}', "--apply-to", "queues")
    # Acknowledged means applied on the node that answered, at once.
    assert "alice" in n2.users()
    assert "orders" in n1.vhosts()
    everywhere(cluster, lambda n: "alice" in n.users() and "orders" in n.vhosts(), "replicated")
    for n in cluster.nodes:
        perms = n.ctl_ok("list_permissions", "-p", "orders", "-q", "--no-table-headers")
        assert "alice\t.*\t.*\t.*" in perms, (n.name, perms)
        assert "cap" in n.ctl_ok("list_policies", "-p", "orders", "-q"), n.name
    # The user can log in on every node, with the replicated password.
    for n in cluster.nodes:
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", n.amqp_port, "orders", pika.PlainCredentials("alice", "s3cret")))
        conn.close()
    status = n0.status()
    assert sorted(status["disk_nodes"]) == sorted(n.name for n in cluster.nodes)
    assert sorted(status["running_nodes"]) == sorted(n.name for n in cluster.nodes)
    assert status["partitions"] == {}
    # Versions and maintenance of every member, as each reports them.
    assert sorted(status["versions"]) == sorted(n.name for n in cluster.nodes), status
    assert sorted(status["maintenance_status"]) == sorted(n.name for n in cluster.nodes), status


def test_the_minority_refuses_and_refusals_never_appear(cluster):
    leader = cluster.wait_leader()
    lonely = next(n for n in cluster.nodes if n is not leader)
    rest = [n for n in cluster.nodes if n is not lonely]
    cluster.partition([lonely], rest)
    refused = lonely.ctl("add_user", "refused-user", "pw", timeout=90)
    assert refused.returncode == EX_TEMPFAIL, (refused.returncode, refused.stdout, refused.stderr)
    assert "no majority" in refused.stderr, refused.stderr
    # Reads go on on the minority side, and what is not a definitions change.
    assert "guest" in lonely.users()
    lonely.ctl_ok("close_all_connections", "maintenance")
    # The majority goes on.
    cluster.wait_leader(among=rest)
    rest[0].ctl_ok("add_user", "majority-user", "pw")
    status = lonely.status()
    assert status["partitions"] == {lonely.name: sorted(n.name for n in rest)}, status
    cluster.heal()
    everywhere(cluster, lambda n: "majority-user" in n.users(), "the majority's change everywhere")
    for n in cluster.nodes:
        assert "refused-user" not in n.users(), n.name


def test_a_killed_leader_loses_nothing_and_catches_up(cluster):
    leader = cluster.wait_leader()
    leader.ctl_ok("add_vhost", "before")
    leader.kill()
    survivors = [n for n in cluster.nodes if n is not leader]
    cluster.wait_leader(among=survivors)
    for n in survivors:
        assert "before" in n.vhosts(), n.name
    survivors[1].ctl_ok("add_vhost", "while-down")
    leader.start()
    # Once it answers, it serves at least what it had committed before it was killed.
    assert "before" in leader.vhosts()
    cluster.eventually(lambda: {"before", "while-down"} <= leader.vhosts(), "the restarted node caught up")


def test_a_paused_node_rejoins(cluster):
    n0, n1, n2 = cluster.nodes
    n2.pause()
    try:
        cluster.wait_leader(among=[n0, n1])
        n0.ctl_ok("add_user", "while-paused", "pw")
    finally:
        n2.resume()
    cluster.eventually(lambda: "while-paused" in n2.users(), "the paused node caught up")


@pytest.mark.timeout(240)
def test_one_way_loss_and_delay_keep_acks_and_refusals_exact(cluster):
    """n0's requests to n1 vanish (a one-way partition: Raft may take a while to settle on a
    leader everyone hears), and n2's links crawl. Changes are retried until one commits; every
    acknowledged one is on every node after healing, every certainly refused one on none."""
    n0, n1, n2 = cluster.nodes
    cluster.links[(0, 1)].one_way(drop=TO_SERVER)
    cluster.links[(2, 0)].delay(0.05)
    cluster.links[(2, 1)].delay(0.05)
    acked, refused = [], []
    for attempt in range(8):
        name = "lossy-%d" % attempt
        r = n2.ctl("add_vhost", name, timeout=90)
        if r.returncode == 0:
            acked.append(name)
            break
        assert r.returncode == EX_TEMPFAIL, (r.returncode, r.stderr)
        if "was not made" in r.stderr:
            refused.append(name)
    assert acked, "nothing committed in 8 attempts with a majority connected:\n" + cluster.logs()
    cluster.heal()
    everywhere(cluster, lambda n: set(acked) <= n.vhosts(), "acknowledged everywhere")
    for n in cluster.nodes:
        assert not (set(refused) & n.vhosts()), (n.name, refused)


def test_topology_is_refused_on_a_cluster_not_half_made(cluster):
    n0 = cluster.nodes[0]
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", n0.amqp_port))
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.queue_declare("q", durable=True)
    assert e.value.reply_code == 540
    assert "can't be declared or deleted on a cluster yet" in e.value.reply_text


def test_a_node_with_the_wrong_secret_gets_nothing():
    c = Cluster(3)
    try:
        wrong = os.path.join(c.root, "wrong-secret")
        with open(os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("not-the-cluster-secret\n")
        c.secrets[2] = wrong
        for n in c.nodes:
            n.start()
        c.wait_leader(among=c.nodes[:2])
        c.nodes[0].ctl_ok("add_user", "secret-user", "pw")
        assert "secret-user" in c.nodes[1].users()
        # The outsider knows nothing: no users, no vhosts, no leader.
        assert c.nodes[2].users() == set()
        assert c.nodes[2].status().get("definitions_leader") is None
        assert "wrong cluster secret" in c.nodes[0].log() + c.nodes[1].log() + c.nodes[2].log()
    finally:
        c.close()


def test_a_node_with_a_single_nodes_definitions_is_refused(tmp_path):
    c = Cluster(1)
    try:
        n = c.nodes[0]
        # First a single node on that directory...
        single = n.single_args()
        os.makedirs(n.data_dir, mode=0o700, exist_ok=True)
        import subprocess
        import time
        p = subprocess.Popen(single, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", n.amqp_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        p.terminate()
        p.wait(15)
        # ...then as a cluster member: refused, saying what to do.
        r = subprocess.run(n.args(), capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "holds a single node's definitions" in r.stderr, r.stderr
    finally:
        c.close()


def test_warrenctl_n_runs_a_command_on_another_member(cluster):
    n0, n1, n2 = cluster.nodes
    out = n0.ctl_ok("-n", n1.name, "cluster_status")
    assert "Cluster status of node %s" % n1.name in out, out
    n0.ctl_ok("-n", n2.name, "add_user", "via-n", "pw")
    cluster.eventually(lambda: "via-n" in n1.users(), "a change made through -n")
    # The audit line on n2 names who asked, and on which node.
    cluster.eventually(lambda: "on %s" % n0.name in n2.log() and "via-n" in n2.log(), "audit names the origin")
    # A name that is no member is refused as rabbitmqctl refuses an unreachable node.
    r = n0.ctl("-n", "stranger@localhost", "list_users")
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert "unable to perform an operation on node 'stranger@localhost'" in r.stderr


@pytest.mark.timeout(240)
def test_forget_a_stopped_node_which_comes_back_only_empty(cluster):
    n0, n1, n2 = cluster.nodes
    r = n0.ctl("forget_cluster_node", n2.name)
    assert r.returncode != 0 and "is running" in r.stderr, (r.returncode, r.stderr)
    n2.kill()
    cluster.wait_leader(among=[n0, n1])
    n0.ctl_ok("forget_cluster_node", n2.name)
    cluster.eventually(lambda: n1.status()["disk_nodes"] == sorted([n0.name, n1.name]), "n2 forgotten")
    n0.ctl_ok("add_user", "after-forget", "pw")
    # Back with its old state: the others refuse it; it never gets a leader or a change.
    n2.start()
    r = n2.ctl("add_user", "stale", "pw", timeout=90)
    assert r.returncode == EX_TEMPFAIL, (r.returncode, r.stderr)
    assert "after-forget" not in n2.users()
    for n in (n0, n1):
        assert "stale" not in n.users()
    # From an empty data directory it joins again, and gets everything.
    n2.stop()
    import shutil
    shutil.rmtree(n2.data_dir)
    n2.start()
    cluster.eventually(lambda: "after-forget" in n2.users(), "the reset node joined and caught up", timeout=60)
    cluster.eventually(lambda: n0.status()["disk_nodes"] == sorted(n.name for n in cluster.nodes), "a member again")
    n2.ctl_ok("add_vhost", "from-the-rejoined")
    cluster.eventually(lambda: "from-the-rejoined" in n0.vhosts(), "its changes replicate")


def test_api_nodes_lists_every_member_running_or_not(cluster):
    import requests
    n0, n1, n2 = cluster.nodes
    url = "http://127.0.0.1:%d/api/nodes" % n0.mgmt_port

    def nodes():
        r = requests.get(url, auth=("guest", "guest"), timeout=30)
        assert r.status_code == 200, r.text
        return {n["name"]: n for n in r.json()}

    listed = nodes()
    assert sorted(listed) == sorted(n.name for n in cluster.nodes)
    for n in cluster.nodes:
        assert listed[n.name]["running"] is True, listed[n.name]
        # Each member's own figures, as it reports them.
        assert listed[n.name]["mem_used"] > 0 and "disk_free" in listed[n.name], listed[n.name]
    r = requests.get(url + "/" + n1.name, auth=("guest", "guest"), timeout=30)
    assert r.status_code == 200 and r.json()["name"] == n1.name
    n2.kill()
    cluster.eventually(lambda: nodes()[n2.name]["running"] is False, "a stopped member shows as not running")
    assert nodes()[n0.name]["partitions"] == [n2.name]


def test_an_alarm_on_one_node_blocks_publishers_on_all(cluster):
    import time
    n0, n1, n2 = cluster.nodes
    events = []
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", n0.amqp_port))
    conn.add_on_connection_blocked_callback(lambda c, m: events.append("blocked"))
    conn.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
    ch = conn.channel()
    ch.basic_publish("", "nowhere", b"before")
    n2.ctl_ok("set_disk_free_limit", "1000000GB")
    deadline = time.monotonic() + 20
    while "blocked" not in events and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert "blocked" in events, "a publisher on n0 was not blocked by n2's disk alarm:\n" + cluster.logs()
    assert "Free disk space alarm on node %s" % n2.name in n0.ctl_ok("cluster_status")
    n2.ctl_ok("set_disk_free_limit", "1MB")
    deadline = time.monotonic() + 20
    while "unblocked" not in events and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert events[-1] == "unblocked", events
    conn.close()


def test_inter_node_tls():
    from ports import free_port
    here = os.path.dirname(os.path.abspath(__file__))
    testdata = os.path.join(here, "..", "..", "crates", "server", "src", "cluster", "link", "testdata")
    c = Cluster(3)
    try:
        for n in c.nodes:
            c.extra_args[n.index] = [
                "--cluster-tls", "--ssl-certfile", os.path.join(testdata, "cluster-node.pem"),
                "--ssl-keyfile", os.path.join(testdata, "cluster-node.key"),
                "--ssl-cacertfile", os.path.join(testdata, "cluster-ca.pem"),
                "--ssl-port", str(free_port()), "--mqtt-ssl-port", str(free_port())]
        c.start()
        c.nodes[1].ctl_ok("add_user", "over-tls", "pw")
        c.eventually(lambda: all("over-tls" in n.users() for n in c.nodes), "replicated over TLS")
    finally:
        c.close()
    # Without the certificate options, --cluster-tls refuses to start.
    c = Cluster(1)
    try:
        c.extra_args[0] = ["--cluster-tls"]
        import subprocess
        r = subprocess.run(c.nodes[0].args(), capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "needs ssl_options.certfile" in r.stderr, r.stderr
    finally:
        c.close()

//! Groups of three in one process over an in-memory transport that can
//! cut directed links: election, forwarding, failover, partitions (a
//! refusal on the minority is never applied), restarts, snapshots, joins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::{
    BoxFuture, Group, GroupConfig, Groups, ProposeError, Role, StateMachine, Timing, Transport,
    TransportError,
};

/// A map that applies `set k v` and answers with the previous value.
#[derive(Default)]
struct Kv {
    map: BTreeMap<String, String>,
    seen: Arc<Mutex<Vec<(u64, String)>>>,
}

impl StateMachine for Kv {
    fn apply(&mut self, index: u64, command: &str) -> String {
        if let Ok(mut s) = self.seen.lock() {
            s.push((index, command.to_string()));
        }
        let mut parts = command.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("set"), Some(k), Some(v)) => {
                self.map.insert(k.into(), v.into()).unwrap_or_default()
            }
            _ => "bad command".into(),
        }
    }
    fn snapshot(&self) -> String {
        serde_json::to_string(&self.map).unwrap_or_default()
    }
    fn restore(&mut self, snapshot: &str) -> Result<(), String> {
        self.map = serde_json::from_str(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// What a node's state machine applied: (index, command).
type Applied = Arc<Mutex<Vec<(u64, String)>>>;

#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<String, Groups>>,
    /// Directed links that drop everything: (from, to).
    cut: Mutex<HashSet<(String, String)>>,
}

struct Endpoint {
    me: String,
    net: Arc<Net>,
}

impl Transport for Endpoint {
    fn call(
        &self,
        to: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>> {
        let net = self.net.clone();
        let (me, to) = (self.me.clone(), to.to_string());
        Box::pin(async move {
            let blocked = |a: &str, b: &str| {
                net.cut
                    .lock()
                    .map(|c| c.contains(&(a.into(), b.into())))
                    .unwrap_or(true)
            };
            if blocked(&me, &to) {
                tokio::time::sleep(timeout.min(Duration::from_millis(50))).await;
                return Err(TransportError::NotSent(format!("{me} -> {to}: cut")));
            }
            let target = net.nodes.lock().ok().and_then(|n| n.get(&to).cloned());
            let Some(target) = target else {
                return Err(TransportError::NotSent(format!("{to} is down")));
            };
            let reply = tokio::time::timeout(timeout, target.handle(&me, payload))
                .await
                .map_err(|_| TransportError::NoAnswer("timeout".into()))?
                .map_err(TransportError::NoAnswer)?;
            if blocked(&to, &me) {
                return Err(TransportError::NoAnswer(format!("{to} -> {me}: cut")));
            }
            Ok(reply)
        })
    }
}

struct Cluster {
    net: Arc<Net>,
    root: PathBuf,
    groups: HashMap<String, Group>,
    kvs: HashMap<String, Applied>,
}

const FAST: Timing = Timing {
    heartbeat_ms: 50,
    election_min_ms: 300,
    election_max_ms: 600,
};
const WAIT: Duration = Duration::from_secs(10);

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let root = std::env::temp_dir().join(format!("warren-raft-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Cluster {
            net: Arc::default(),
            root,
            groups: HashMap::new(),
            kvs: HashMap::new(),
        }
    }

    async fn start(&mut self, name: &str, snapshot_every: u64) -> Group {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kv = Kv {
            map: BTreeMap::new(),
            seen: seen.clone(),
        };
        let cfg = GroupConfig {
            group: "test".into(),
            me: name.into(),
            dir: self.root.join(name),
            timing: FAST,
            snapshot_every,
        };
        let transport = Arc::new(Endpoint {
            me: name.into(),
            net: self.net.clone(),
        });
        let g = Group::open(cfg, Box::new(kv), transport)
            .await
            .expect("open group");
        let groups = Groups::default();
        groups.insert(g.clone());
        self.net.nodes.lock().unwrap().insert(name.into(), groups);
        self.groups.insert(name.into(), g.clone());
        self.kvs.insert(name.into(), seen);
        g
    }

    async fn stop(&mut self, name: &str) {
        self.net.nodes.lock().unwrap().remove(name);
        if let Some(g) = self.groups.remove(name) {
            g.shutdown().await;
        }
    }

    fn isolate(&self, name: &str, names: &[&str]) {
        let mut cut = self.net.cut.lock().unwrap();
        for other in names {
            if *other != name {
                cut.insert((name.into(), (*other).into()));
                cut.insert(((*other).into(), name.into()));
            }
        }
    }

    fn heal(&self) {
        self.net.cut.lock().unwrap().clear();
    }

    async fn leader(&self) -> String {
        for _ in 0..200 {
            for (name, g) in &self.groups {
                let s = g.status();
                if s.role == Role::Leader && s.leader.as_deref() == Some(name) {
                    return name.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 10 s");
    }

    /// Proposes a probe on the leader and waits until every running node
    /// has applied it (and so everything before it).
    async fn sync_all(&self, tag: &str) {
        let leader = self.leader().await;
        let probe = format!("set probe-{tag} x");
        self.groups[&leader]
            .propose(probe.clone(), WAIT)
            .await
            .expect("probe");
        for name in self.groups.keys() {
            let mut applied = false;
            for _ in 0..200 {
                applied = self.kvs[name]
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(_, c)| *c == probe);
                if applied {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(applied, "{name} did not apply {probe} within 10 s");
        }
    }
}

fn names() -> [&'static str; 3] {
    ["a@test", "b@test", "c@test"]
}

async fn three(tag: &str) -> Cluster {
    let mut c = Cluster::new(tag);
    let members: Vec<String> = names().iter().map(|s| s.to_string()).collect();
    for n in names() {
        let g = c.start(n, 1000).await;
        g.bootstrap(&members).await.expect("bootstrap");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_from_any_node_apply_in_one_order_everywhere() {
    let c = three("order").await;
    let leader = c.leader().await;
    // From every node, followers forwarding to the leader.
    for (i, n) in names().iter().enumerate() {
        let prev = c.groups[*n]
            .propose(format!("set k{i} v{i}"), WAIT)
            .await
            .expect("propose");
        assert_eq!(prev, "");
        let prev = c.groups[*n]
            .propose(format!("set k{i} w{i}"), WAIT)
            .await
            .expect("propose");
        assert_eq!(
            prev,
            format!("v{i}"),
            "the response is the state machine's, from {n}"
        );
    }
    c.sync_all("order").await;
    let orders: Vec<Vec<(u64, String)>> = names()
        .iter()
        .map(|n| c.kvs[*n].lock().unwrap().clone())
        .collect();
    assert!(orders[0].len() >= 7, "{orders:?}");
    assert!(
        orders.iter().all(|o| *o == orders[0]),
        "same entries, same order: {orders:?}"
    );
    let s = c.groups[&leader].status();
    assert_eq!(s.voters.len(), 3);
    assert!(s.initialized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minority_refuses_and_its_refusals_never_apply() {
    let c = three("minority").await;
    let leader = c.leader().await;
    let lonely = names().into_iter().find(|n| *n != leader).unwrap();
    c.isolate(lonely, &names());
    // Past an election timeout the lonely node knows no leader it can
    // reach; its proposals fail without being applied anywhere.
    let mut refused = Vec::new();
    for i in 0..5 {
        let cmd = format!("set minority{i} x");
        match c.groups[lonely]
            .propose(cmd.clone(), Duration::from_millis(1500))
            .await
        {
            Err(ProposeError::NoQuorum(_)) => refused.push(cmd),
            Err(ProposeError::Indeterminate(_)) => {}
            other => panic!("a minority node committed: {other:?}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "at least the later proposals are certain refusals"
    );
    // The majority goes on.
    let majority = c.leader().await;
    assert_ne!(majority, lonely);
    c.groups[&majority]
        .propose("set majority y".into(), WAIT)
        .await
        .expect("majority commits");
    c.heal();
    c.sync_all("healed").await;
    // Every node applied the same entries; none of them a refused one.
    let orders: Vec<Vec<(u64, String)>> = names()
        .iter()
        .map(|n| c.kvs[*n].lock().unwrap().clone())
        .collect();
    assert!(orders.iter().all(|o| *o == orders[0]), "{orders:?}");
    for cmd in &refused {
        assert!(
            !orders[0].iter().any(|(_, c)| c == cmd),
            "refused {cmd} was applied: {orders:?}"
        );
    }
    assert!(orders[0].iter().any(|(_, c)| c == "set majority y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_lost_is_replaced_and_a_restarted_node_catches_up() {
    let mut c = three("failover").await;
    let old = c.leader().await;
    c.groups[&old]
        .propose("set before 1".into(), WAIT)
        .await
        .expect("propose");
    c.stop(&old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    for i in 0..20 {
        c.groups[&new]
            .propose(format!("set after{i} 2"), WAIT)
            .await
            .expect("propose on the new leader");
    }
    // The old leader comes back from its own files.
    let g = c.start(&old, 1000).await;
    let target = c.groups[&new].status().last_applied_index.unwrap();
    assert!(
        g.wait_applied(target, WAIT).await,
        "the restarted node catches up"
    );
    let orders: Vec<Vec<(u64, String)>> =
        c.kvs.values().map(|k| k.lock().unwrap().clone()).collect();
    assert!(
        orders
            .iter()
            .all(|o| o.ends_with(&orders[0][orders[0].len() - 5..])),
        "{orders:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restore_on_restart_and_seed_a_new_member() {
    let mut c = Cluster::new("snap");
    let members: Vec<String> = names()[..2].iter().map(|s| s.to_string()).collect();
    for n in &names()[..2] {
        let g = c.start(n, 10).await;
        g.bootstrap(&members).await.expect("bootstrap");
    }
    let leader = c.leader().await;
    for i in 0..45 {
        c.groups[&leader]
            .propose(format!("set s{i} {i}"), WAIT)
            .await
            .expect("propose");
    }
    // A third node joins: it has none of the purged log, so it is sent a
    // snapshot, then the rest.
    let newcomer = names()[2];
    let g = c.start(newcomer, 10).await;
    assert!(!g.is_initialized().await);
    c.groups[&leader]
        .add_member(newcomer, WAIT)
        .await
        .expect("add member");
    let s = c.groups[&leader].status();
    assert_eq!(s.voters.len(), 3, "{s:?}");
    let prev = c.groups[newcomer]
        .propose("set s3 again".into(), WAIT)
        .await
        .expect("propose via newcomer");
    assert_eq!(prev, "3", "the value came through the snapshot or the log");
    // Restart everyone: state comes back from snapshot + log.
    for n in names() {
        c.stop(n).await;
    }
    for n in names() {
        c.start(n, 10).await;
    }
    let leader = c.leader().await;
    let prev = c.groups[&leader]
        .propose("set s44 last".into(), WAIT)
        .await
        .expect("after restart");
    assert_eq!(prev, "44");
    // Removing a member shrinks the voters.
    let gone = names().into_iter().find(|n| *n != leader).unwrap();
    c.groups[&leader]
        .remove_member(gone, WAIT)
        .await
        .expect("remove member");
    assert_eq!(c.groups[&leader].status().voters.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_naming_another_sender_or_from_a_stranger_is_refused() {
    let c = three("strangers").await;
    c.leader().await;
    let groups = c.net.nodes.lock().unwrap().get("a@test").cloned().unwrap();
    let vote = serde_json::json!({"group": "test", "from": "b@test", "rpc": {"Vote": {
        "vote": {"leader_id": {"term": 99, "node_id": 1}, "committed": false},
        "last_log_id": null}}});
    let raw = Bytes::from(vote.to_string());
    let err = groups.handle("c@test", raw.clone()).await.unwrap_err();
    assert!(err.contains("claims to come from"), "{err}");
    let stranger = serde_json::json!({"group": "test", "from": "x@test", "rpc": {"Vote": {
        "vote": {"leader_id": {"term": 99, "node_id": 1}, "committed": false},
        "last_log_id": null}}});
    let err = groups
        .handle("x@test", Bytes::from(stranger.to_string()))
        .await
        .unwrap_err();
    assert!(err.contains("not a member"), "{err}");
    assert!(groups
        .handle("b@test", Bytes::from_static(b"{not json"))
        .await
        .is_err());
}

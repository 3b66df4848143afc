//! This node as a cluster member: the inter-node link and the definitions
//! Raft group on it, membership (forming, joining, forgetting), relaying
//! `warrenctl -n`, and what `cluster_status` and `/api/nodes` show.
//! `services.rs` serves the link's requests, `replicator.rs` is the
//! broker's way into the group, `watch.rs` the background tasks.
//!
//! The link and the group run on a runtime of their own (two threads,
//! `warren-cluster`), so that a broker whose workers are all busy (or
//! blocked waiting for a definitions change to commit, which holds the
//! definitions lock) never starves the consensus it is waiting for.
//!
//! Forming: a node with no membership yet asks the seeds it reaches; it
//! joins the cluster one of them has, or, when every seed answers that it
//! has none, forms it with all of them (every fresh seed does the same with
//! the same list; openraft accepts that). The first member to find the
//! replicated definitions empty proposes the default user and vhost, as a
//! single node's first start makes them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use warren_broker::broker::Broker;
use warren_broker::cluster::machine::DefinitionsMachine;
use warren_raft::{Group, GroupConfig, Groups, Timing};

use super::link::{Link, LinkConfig, PeerState, Service};
use super::replicator::{GroupHandle, RaftReplicator};
use super::services::{ControlHandler, LinkHandler, LinkTransport, Relayed};
use super::watch::{log_leaders, watch_alarms};
use crate::config::Config;

/// How long a definitions change may wait for a majority before it is
/// refused (RabbitMQ 4's Khepri waits 30 s; a CLI or HTTP caller would
/// rather hear sooner).
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// How long a command run on another node (`warrenctl -n`) may take.
const RELAY_WAIT: Duration = Duration::from_secs(60);

/// How long adding or removing a member may take (a joining node catches
/// up first).
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// The definitions group's name on every node.
pub(crate) const DEFINITIONS: &str = "definitions";

pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("warren-cluster")
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                // Without threads the node can't run at all.
                eprintln!("cannot start the cluster's runtime: {e}");
                std::process::exit(70)
            })
    })
}

/// This node's membership, shared by the control socket and the tasks.
pub(crate) struct Member {
    pub me: String,
    pub link: Link,
    pub group: Group,
    pub seeds: Vec<String>,
    control: Arc<OnceLock<ControlHandler>>,
    /// This node's `/api/nodes` entry, when its management API runs.
    node_info: OnceLock<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
}

impl Member {
    /// Joins (or forms) the cluster: the link, the definitions group, the
    /// broker's replicator. Returns once the group is running; forming
    /// and electing go on in the background.
    pub(crate) async fn start(cfg: &Config, broker: Arc<Broker>) -> anyhow::Result<Arc<Member>> {
        let me = cfg.node_name.clone();
        let seeds: Vec<String> = cfg.cluster.nodes.iter().map(|(n, _)| n.clone()).collect();
        // A node that does not list itself can only join a cluster that
        // exists (it never forms one).
        let forms = seeds.contains(&me);
        let secret = crate::config::secret::load_or_create_secret(&cfg.cluster.secret_file)?;
        let link_cfg = LinkConfig {
            node: me.clone(),
            listen: cfg.cluster.listen_addr(),
            secret,
            peers: cfg
                .cluster
                .peers(&me)
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
        };
        let groups = Groups::default();
        let control = Arc::new(OnceLock::new());
        let handler = Arc::new(LinkHandler {
            groups: groups.clone(),
            control: control.clone(),
        });
        let tls = if cfg.cluster.tls {
            let ssl = &cfg.ssl;
            match (&ssl.certfile, &ssl.keyfile, &ssl.cacertfile) {
                (Some(cert), Some(key), Some(ca)) => Some(super::link::LinkTls::from_files(cert, key, ca)?),
                _ => anyhow::bail!(
                    "inter-node TLS (--cluster-tls, warren.cluster.tls) needs ssl_options.certfile, \
                     ssl_options.keyfile and ssl_options.cacertfile"
                ),
            }
        } else {
            None
        };
        let link = runtime()
            .spawn(Link::start_with_tls(link_cfg, handler, tls))
            .await??;
        let group_cfg = GroupConfig {
            group: DEFINITIONS.into(),
            me: me.clone(),
            dir: cfg.data_dir.join("cluster").join(DEFINITIONS),
            timing: Timing::default(),
            snapshot_every: 1000,
        };
        let machine = Box::new(DefinitionsMachine::new(broker.clone()));
        let transport = Arc::new(LinkTransport { link: link.clone() });
        let group = runtime()
            .spawn(Group::open(group_cfg, machine, transport))
            .await?
            .map_err(|e| anyhow::anyhow!("cannot open the cluster's definitions log: {e}"))?;
        groups.insert(group.clone());
        broker.set_replicator(Arc::new(RaftReplicator {
            me: me.clone(),
            group: GroupHandle(group.clone()),
        }));
        let member = Arc::new(Member {
            me,
            link,
            group,
            seeds,
            control,
            node_info: OnceLock::new(),
        });
        runtime().spawn(log_leaders(member.group.clone()));
        runtime().spawn(watch_alarms(member.clone(), broker.clone()));
        runtime().spawn(member.clone().form_or_join(forms));
        Ok(member)
    }

    /// Once a leader is known: the first start's defaults (if the
    /// replicated definitions are empty), then `after` (the configured
    /// cluster name and definitions file), on the broker's runtime.
    pub(crate) fn when_formed(
        self: &Arc<Self>,
        broker: Arc<Broker>,
        setup: warren_broker::broker::BrokerSetup,
        after: impl FnOnce() + Send + 'static,
    ) {
        let member = self.clone();
        tokio::spawn(async move {
            // Bounded: an hour of waiting for a majority, then give up
            // (logged); the node keeps serving what it has meanwhile.
            for _ in 0..36_000 {
                if member.group.status().leader.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if member.group.status().leader.is_none() {
                tracing::error!(
                    "no cluster leader after an hour; the first start's defaults were not made"
                );
                return;
            }
            let fresh = broker.vhosts().is_empty() && broker.auth.users().is_empty();
            if fresh {
                let b = broker.clone();
                let made = tokio::task::spawn_blocking(move || {
                    warren_broker::admin::Admin::new(b).make_defaults(&setup)
                })
                .await;
                match made {
                    Ok(Ok(())) => {
                        tracing::info!("made the default user and vhost for the new cluster")
                    }
                    Ok(Err(e)) => tracing::error!("cannot make the default user and vhost: {e}"),
                    Err(e) => tracing::error!("cannot make the default user and vhost: {e}"),
                }
            }
            let _ = tokio::task::spawn_blocking(after).await;
        });
    }
}

impl Member {
    /// A node with no membership yet: joins the cluster a reachable seed
    /// already has, or, when every seed answers that it has none, forms
    /// it with all of them (every fresh seed does the same with the same
    /// list). Bounded: a seed that has not answered within 5 s is taken as
    /// having no cluster.
    async fn form_or_join(self: Arc<Self>, forms: bool) {
        if self.group.is_initialized().await {
            return;
        }
        let others: Vec<String> = self
            .seeds
            .iter()
            .filter(|s| **s != self.me)
            .cloned()
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut answered = std::collections::HashSet::new();
        loop {
            for seed in &others {
                if answered.contains(seed) {
                    continue;
                }
                let up = self
                    .link
                    .peers()
                    .iter()
                    .any(|p| p.name == *seed && p.state == PeerState::Up);
                if !up {
                    continue;
                }
                let Ok(view) = self
                    .relay_async(
                        seed,
                        "cluster",
                        &serde_json::json!({"op": "cluster_members"}).to_string(),
                    )
                    .await
                else {
                    continue;
                };
                let result = &view["result"];
                if result["initialized"].as_bool() == Some(true) {
                    let listed = result["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|n| n.as_str() == Some(self.me.as_str())));
                    if listed {
                        // Formed with this node among its members (a seed
                        // that started first): its leader brings the log.
                        tracing::info!("a member of the cluster {seed} formed");
                        return;
                    }
                    tracing::info!("joining the cluster through {seed}");
                    let join = serde_json::json!({"op": "add_cluster_member", "node": self.me})
                        .to_string();
                    match self.relay_async(seed, "cluster", &join).await {
                        Ok(v) if v["ok"].as_bool() == Some(true) => {
                            tracing::info!("joined the cluster through {seed}")
                        }
                        Ok(v) => tracing::error!(
                            "{seed} did not add this node: {}",
                            v["error"]["message"]
                        ),
                        Err(e) => tracing::error!("{seed} did not add this node: {e}"),
                    }
                    return;
                }
                if view["ok"].as_bool() == Some(true) {
                    answered.insert(seed.clone());
                }
            }
            if answered.len() == others.len() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !forms {
            tracing::error!(
                "no seed has a cluster to join, and this node ({}) is not among its own --cluster-node members, so it does not form one; run warrenctl join_cluster NODE once a member is up",
                self.me
            );
            return;
        }
        if self.group.is_initialized().await {
            return;
        }
        tracing::info!("forming the cluster with {}", self.seeds.join(", "));
        if let Err(e) = self.group.bootstrap(&self.seeds).await {
            tracing::error!("cannot form the cluster: {e}");
        }
    }

    /// [`Member::relay`] from the cluster runtime.
    async fn relay_async(
        &self,
        node: &str,
        user: &str,
        request: &str,
    ) -> Result<serde_json::Value, String> {
        let payload = serde_json::to_vec(&Relayed {
            user: user.to_string(),
            request: request.to_string(),
        })
        .map_err(|e| e.to_string())?;
        let raw = self
            .link
            .call(node, Service::CONTROL, Bytes::from(payload), RELAY_WAIT)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&raw).map_err(|e| format!("bad answer: {e}"))
    }

    /// Makes `node` a voting member (through the leader), blocking.
    pub(crate) fn add_member(&self, node: &str) -> Result<(), String> {
        self.on_runtime({
            let (g, n) = (self.group.clone(), node.to_string());
            async move {
                g.add_member(&n, JOIN_WAIT)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
    }

    /// Removes `node` from the members (through the leader), blocking.
    pub(crate) fn forget(&self, node: &str) -> Result<(), String> {
        self.on_runtime({
            let (g, n) = (self.group.clone(), node.to_string());
            async move {
                g.remove_member(&n, JOIN_WAIT)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })?;
        // The link keeps dialing it: a forgotten node's Raft messages are
        // refused by membership, and from an empty data directory it can
        // join again at the address this node's configuration gives.
        Ok(())
    }

    /// Whether this node reaches `node` now.
    pub(crate) fn reaches(&self, node: &str) -> bool {
        self.link
            .peers()
            .iter()
            .any(|p| p.name == node && p.state == PeerState::Up)
    }

    /// Runs `fut` on the cluster's runtime and waits for it (from a
    /// blocking thread).
    fn on_runtime<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(JOIN_WAIT + Duration::from_secs(5))
            .unwrap_or_else(|_| Err("no answer".into()))
    }

    /// What this node answers when another asks for its `/api/nodes` entry.
    pub(crate) fn serve_node_info(&self, f: Arc<dyn Fn() -> serde_json::Value + Send + Sync>) {
        let _ = self.node_info.set(f);
    }

    /// This node's `/api/nodes` entry (a minimal one without the
    /// management API).
    pub(crate) fn node_info(&self) -> serde_json::Value {
        match self.node_info.get() {
            Some(f) => f(),
            None => serde_json::json!({"name": self.me, "type": "disc", "running": true}),
        }
    }

    /// Another member's `/api/nodes` entry, or `None` when it does not
    /// answer within 5 s (blocking).
    pub(crate) fn node_json_of(&self, node: &str) -> Option<serde_json::Value> {
        if !self.reaches(node) {
            return None;
        }
        let payload = serde_json::to_vec(&Relayed {
            user: "management".into(),
            request: serde_json::json!({"op": "node_json"}).to_string(),
        })
        .ok()?;
        let (link, node) = (self.link.clone(), node.to_string());
        let answer = self
            .on_runtime(async move {
                link.call(
                    &node,
                    Service::CONTROL,
                    Bytes::from(payload),
                    Duration::from_secs(5),
                )
                .await
                .map_err(|e| e.to_string())
            })
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&answer).ok()?;
        (v["ok"].as_bool() == Some(true)).then(|| v["result"].clone())
    }

    /// The members, sorted (the configured seeds until the group has a
    /// membership).
    pub(crate) fn members(&self) -> Vec<String> {
        let s = self.group.status();
        let mut m: Vec<String> = s.voters.iter().chain(s.learners.iter()).cloned().collect();
        if m.is_empty() {
            m = self.seeds.clone();
        }
        m.sort();
        m.dedup();
        m
    }

    /// The members this node does not reach now.
    pub(crate) fn unreachable(&self) -> Vec<String> {
        self.members()
            .into_iter()
            .filter(|m| *m != self.me && !self.reaches(m))
            .collect()
    }

    /// Serves other members' `warrenctl -n` requests with `handler`.
    pub(crate) fn serve_control(&self, handler: ControlHandler) {
        let _ = self.control.set(handler);
    }

    /// Whether `name` is a member of the cluster as this node knows it.
    pub(crate) fn is_member(&self, name: &str) -> bool {
        let s = self.group.status();
        s.voters.iter().chain(s.learners.iter()).any(|m| m == name)
            || self.seeds.iter().any(|m| m == name)
    }

    /// Runs a control request on another member (`warrenctl -n NODE`) and
    /// returns its answer as that node gave it.
    pub(crate) fn relay(
        &self,
        node: &str,
        user: &str,
        request: String,
    ) -> Result<serde_json::Value, String> {
        // A link that is (re)connecting gets a moment: the node just
        // started, or the link is in its redial backoff (at most 2 s).
        for _ in 0..50 {
            if self.reaches(node) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let payload = serde_json::to_vec(&Relayed {
            user: user.to_string(),
            request,
        })
        .map_err(|e| e.to_string())?;
        let link = self.link.clone();
        let node = node.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let r = link
                .call(&node, Service::CONTROL, Bytes::from(payload), RELAY_WAIT)
                .await;
            let _ = tx.send(r);
        });
        match rx.recv_timeout(RELAY_WAIT + Duration::from_secs(5)) {
            Ok(Ok(raw)) => serde_json::from_slice(&raw).map_err(|e| format!("bad answer: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    }

    /// The cluster as this node sees it (`warrenctl cluster_status`):
    /// members, which of them it reaches, the definitions group's leader.
    pub(crate) fn view(&self) -> serde_json::Value {
        let s = self.group.status();
        let up: Vec<String> = self
            .link
            .peers()
            .into_iter()
            .filter(|p| p.state == PeerState::Up)
            .map(|p| p.name)
            .collect();
        let members = self.members();
        let reached = |m: &String| *m == self.me || up.contains(m);
        let running: Vec<&String> = members.iter().filter(|m| reached(m)).collect();
        let unreachable: Vec<&String> = members.iter().filter(|m| !reached(m)).collect();
        serde_json::json!({
            "node": self.me,
            "members": members,
            "running": running,
            "unreachable": unreachable,
            "leader": s.leader,
            "term": s.term,
            "role": format!("{:?}", s.role).to_lowercase(),
            "last_applied": s.last_applied_index,
            "initialized": s.initialized,
        })
    }
}

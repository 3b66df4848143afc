//! This node as a cluster member: the inter-node link, the definitions Raft
//! group on it, and the broker's [`Replicator`].
//!
//! Both run on a runtime of their own (two threads, `warren-cluster`), so
//! that a broker whose workers are all busy (or blocked waiting for a
//! definitions change to commit, which holds the definitions lock) never
//! starves the consensus it is waiting for.
//!
//! Forming: a node whose group has no membership yet, and which is among
//! its own `--cluster-node` members, forms the group with all of them
//! (every seed does the same with the same list; openraft accepts that).
//! The first member to find the replicated definitions empty proposes the
//! default user and vhost, as a single node's first start makes them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use warren_broker::broker::Broker;
use warren_broker::cluster::machine::{DefinitionsMachine, Reply};
use warren_broker::cluster::{Command, ReplicationError, Replicator, Verdict};
use warren_broker::definitions::Change;
use warren_raft::{
    BoxFuture, Group, GroupConfig, Groups, ProposeError, Timing, Transport, TransportError,
};

use super::link::{Handler, Link, LinkConfig, LinkError, PeerState, Service};
use crate::config::Config;

/// How long a definitions change may wait for a majority before it is
/// refused (RabbitMQ 4's Khepri waits 30 s; a CLI or HTTP caller would
/// rather hear sooner).
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// The definitions group's name on every node.
pub(crate) const DEFINITIONS: &str = "definitions";

fn runtime() -> &'static tokio::runtime::Runtime {
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
}

struct LinkTransport {
    link: Link,
}

impl Transport for LinkTransport {
    fn call(
        &self,
        to: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>> {
        let link = self.link.clone();
        let to = to.to_string();
        Box::pin(async move {
            // No connection now: nothing is sent (a proposal refused here
            // is certainly not made).
            let up = link
                .peers()
                .iter()
                .any(|p| p.name == to && p.state == PeerState::Up);
            if !up {
                return Err(TransportError::NotSent(format!("no connection to {to}")));
            }
            link.call(&to, Service::RAFT, payload, timeout)
                .await
                .map_err(|e| match e {
                    LinkError::UnknownPeer(_) | LinkError::Overloaded(_) => {
                        TransportError::NotSent(e.to_string())
                    }
                    LinkError::Disconnected(_) | LinkError::Timeout(_) | LinkError::Remote(_) => {
                        TransportError::NoAnswer(e.to_string())
                    }
                })
        })
    }
}

struct LinkHandler {
    groups: Groups,
}

#[async_trait::async_trait]
impl Handler for LinkHandler {
    async fn request(&self, from: &str, service: Service, payload: Bytes) -> Result<Bytes, String> {
        match service {
            Service::RAFT => self.groups.handle(from, payload).await,
            other => Err(format!("service {} is not served by this node", other.0)),
        }
    }

    fn message(&self, from: &str, service: Service, _payload: Bytes) {
        tracing::debug!(
            "ignoring a one-way message from {from} for service {}",
            service.0
        );
    }
}

/// The broker's way into the definitions group.
#[derive(Debug)]
struct RaftReplicator {
    me: String,
    group: GroupHandle,
}

/// `Group` is not `Debug`; the replicator needs to be.
#[derive(Clone)]
struct GroupHandle(Group);

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group(definitions)")
    }
}

impl Replicator for RaftReplicator {
    fn sync(&self) -> Result<(), ReplicationError> {
        let group = self.group.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let _ = tx.send(group.sync(COMMIT_WAIT).await);
        });
        match rx.recv_timeout(COMMIT_WAIT * 2) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(ReplicationError::Unavailable(format!(
                "the change was not made: no majority of the cluster's nodes could be reached within {} s",
                COMMIT_WAIT.as_secs()
            ))),
        }
    }

    fn propose(&self, change: &Change) -> Result<(), ReplicationError> {
        let command = serde_json::to_string(&Command {
            node: self.me.clone(),
            change: change.clone(),
        })
        .map_err(|e| ReplicationError::Unavailable(e.to_string()))?;
        let group = self.group.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime().spawn(async move {
            let r = group.propose(command, COMMIT_WAIT).await;
            // Read-your-writes on this node: wait until it applied the
            // entry itself (the leader answered; this node may lag).
            let r = match r {
                Ok(text) => match serde_json::from_str::<Reply>(&text) {
                    Ok(reply) => {
                        if group.wait_applied(reply.index, COMMIT_WAIT).await {
                            Ok(reply.verdict)
                        } else {
                            Err(ReplicationError::Unknown(format!(
                                "the change was committed but this node did not apply it within {} s",
                                COMMIT_WAIT.as_secs()
                            )))
                        }
                    }
                    Err(e) => Err(ReplicationError::Unknown(format!("unreadable answer from the cluster: {e}"))),
                },
                Err(ProposeError::NoQuorum(_)) => Err(ReplicationError::Unavailable(format!(
                    "the change was not made: no majority of the cluster's nodes could be reached within {} s",
                    COMMIT_WAIT.as_secs()
                ))),
                Err(e @ ProposeError::Indeterminate(_)) => Err(ReplicationError::Unknown(e.to_string())),
                Err(e) => Err(ReplicationError::Unavailable(e.to_string())),
            };
            let _ = tx.send(r);
        });
        match rx.recv_timeout(COMMIT_WAIT * 3) {
            Ok(Ok(Verdict::Applied)) => Ok(()),
            Ok(Ok(Verdict::Refused(e))) => Err(ReplicationError::Refused(e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReplicationError::Unknown(
                "the cluster did not answer".into(),
            )),
        }
    }
}

impl Member {
    /// Joins (or forms) the cluster: the link, the definitions group, the
    /// broker's replicator. Returns once the group is running; forming
    /// and electing go on in the background.
    pub(crate) async fn start(cfg: &Config, broker: Arc<Broker>) -> anyhow::Result<Arc<Member>> {
        let me = cfg.node_name.clone();
        let seeds: Vec<String> = cfg.cluster.nodes.iter().map(|(n, _)| n.clone()).collect();
        if !seeds.contains(&me) {
            anyhow::bail!(
                "this node ({me}) is not among the cluster's members ({}): list every member, this \
                 one included, with --cluster-node NAME=HOST:PORT (joining a running cluster from \
                 outside its member list is not supported yet)",
                cfg.cluster.nodes_source.locate("cluster_nodes")
            );
        }
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
        let handler = Arc::new(LinkHandler {
            groups: groups.clone(),
        });
        let link = runtime().spawn(Link::start(link_cfg, handler)).await??;
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
        });
        runtime().spawn(log_leaders(member.group.clone()));
        let g = member.group.clone();
        let seeds = member.seeds.clone();
        runtime()
            .spawn(async move {
                if !g.is_initialized().await {
                    tracing::info!("forming the cluster with {}", seeds.join(", "));
                    if let Err(e) = g.bootstrap(&seeds).await {
                        tracing::error!("cannot form the cluster: {e}");
                    }
                }
            })
            .await?;
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
        let mut members: Vec<String> = s.voters.iter().chain(s.learners.iter()).cloned().collect();
        if members.is_empty() {
            members = self.seeds.clone();
        }
        members.sort();
        members.dedup();
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
        })
    }
}

/// Says when the definitions group's leader changes (openraft's own lines
/// are off by default), at most once a second.
async fn log_leaders(group: Group) {
    let mut last: Option<Option<String>> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = group.status();
        if s.role == warren_raft::Role::Shutdown {
            return;
        }
        // A new leader is said once; having none once, not at every
        // failed election.
        let now = s.leader.clone();
        if last.as_ref() != Some(&now) {
            match &now {
                Some(l) => tracing::info!("cluster definitions leader: {l} (term {})", s.term),
                None => {
                    tracing::warn!("cluster definitions: no leader; changes wait for a majority")
                }
            }
            last = Some(now);
        }
    }
}

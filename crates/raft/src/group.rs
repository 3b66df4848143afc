//! One replicated group: its Raft instance, proposing, membership, status
//! and the messages it receives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Raft, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::log_store::LogStore;
use crate::network::{encode, Envelope, Network, Op, Reply, Rpc, Transport, TransportError};
use crate::state_machine::{SmStore, StateMachine};
use crate::types::{node_id, Member, NodeId, TypeConfig};

/// Raft's clock, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl Default for Timing {
    /// A leader's loss is noticed within 1–2 s on a LAN; heartbeats every
    /// 250 ms cost a few hundred bytes a second per follower.
    fn default() -> Timing {
        Timing {
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
        }
    }
}

/// Where and as whom a group runs.
pub struct GroupConfig {
    /// The group's name, the same on every member (`definitions`).
    pub group: String,
    /// This node's name.
    pub me: String,
    /// The group's own directory (its log, vote and snapshot).
    pub dir: PathBuf,
    pub timing: Timing,
    /// Entries applied since the last snapshot that trigger a new one.
    pub snapshot_every: u64,
}

/// Why a proposal or a membership change did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// Nothing was proposed: no leader with a majority behind it could be
    /// found in time. The change is certainly not applied.
    #[error("no majority of the cluster's nodes could be reached within {0} ms; the change was not made")]
    NoQuorum(u64),
    /// The change was handed to a leader but no answer came in time; it may
    /// or may not take effect.
    #[error("the cluster did not confirm the change within {0} ms; it may or may not take effect")]
    Indeterminate(u64),
    /// The change itself was refused (a membership change that isn't
    /// allowed, for one).
    #[error("{0}")]
    Refused(String),
    /// This node's Raft has stopped (a storage failure).
    #[error("replication on this node has stopped: {0}")]
    Fatal(String),
}

/// A node's role in a group, as RabbitMQ and operators name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// A group as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub role: Role,
    pub term: u64,
    pub leader: Option<String>,
    /// Voting members, by name, sorted.
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// On a leader: how long since a majority last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Whether the group has a membership at all (a fresh node's has none).
    pub initialized: bool,
}

#[derive(Clone)]
pub struct Group {
    raft: Raft<TypeConfig>,
    net: Network,
    id: NodeId,
}

impl Group {
    /// Opens (or creates) the group's storage and starts its Raft instance.
    pub async fn open(
        cfg: GroupConfig,
        sm: Box<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> std::io::Result<Group> {
        let log = LogStore::open(&cfg.dir)?;
        let committed = log.committed_index().await;
        let sm = SmStore::open(&cfg.dir, sm)?;
        let config = openraft::Config {
            cluster_name: cfg.group.clone(),
            heartbeat_interval: cfg.timing.heartbeat_ms,
            election_timeout_min: cfg.timing.election_min_ms,
            election_timeout_max: cfg.timing.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(crate::types::io_error)?);
        let net = Network {
            group: cfg.group.clone(),
            me: cfg.me.clone(),
            transport,
        };
        let id = node_id(&cfg.me);
        let raft = Raft::new(id, config, net.clone(), log, sm)
            .await
            .map_err(crate::types::io_error)?;
        let group = Group { raft, net, id };
        // What this node had committed before it stopped is applied again
        // before the group is handed out (no majority needed): a node that
        // restarts serves its last known state, not an empty one.
        if let Some(c) = committed {
            if !group.wait_applied(c, Duration::from_secs(30)).await {
                tracing::warn!(
                    "group {}: the committed log (to {c}) was not re-applied within 30 s",
                    cfg.group
                );
            }
        }
        Ok(group)
    }

    pub fn name(&self) -> &str {
        &self.net.group
    }

    /// Forms the group with `members` (names, this node's among them) if
    /// this node has never been part of it. Every seed may call this with
    /// the same list; a node that already has a membership ignores it.
    pub async fn bootstrap(&self, members: &[String]) -> Result<(), ProposeError> {
        let nodes: BTreeMap<NodeId, Member> = members
            .iter()
            .map(|n| (node_id(n), Member { name: n.clone() }))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ProposeError::Refused(e.to_string())),
        }
    }

    /// Whether this node has a membership (formed, joined, or restored).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Proposes `command`; returns the state machine's response once the
    /// command is committed on a majority and applied on this group's
    /// leader. Waits at most `wait`.
    pub async fn propose(&self, command: String, wait: Duration) -> Result<String, ProposeError> {
        self.submit(Op::Propose(command), wait).await
    }

    /// Waits until this node has applied every command committed before
    /// the call (a read barrier: the leader's read index, confirmed by a
    /// majority, then this node's own apply up to it). A node cut off from
    /// the majority fails with [`ProposeError::NoQuorum`].
    pub async fn sync(&self, wait: Duration) -> Result<(), ProposeError> {
        let start = Instant::now();
        let index: u64 = self.submit(Op::ReadIndex, wait).await?.parse().unwrap_or(0);
        let left = wait.saturating_sub(start.elapsed());
        if self.wait_applied(index, left).await {
            Ok(())
        } else {
            Err(ProposeError::NoQuorum(wait.as_millis() as u64))
        }
    }

    /// Makes `name` a voting member: it joins as a learner, catches up, then
    /// votes.
    pub async fn add_member(&self, name: &str, wait: Duration) -> Result<String, ProposeError> {
        self.submit(Op::AddMember(name.to_string()), wait).await
    }

    /// Removes `name` from the members.
    pub async fn remove_member(&self, name: &str, wait: Duration) -> Result<String, ProposeError> {
        self.submit(Op::RemoveMember(name.to_string()), wait).await
    }

    /// Runs `rpc` on the leader: here when this node leads, else forwarded.
    async fn submit(&self, op: Op, wait: Duration) -> Result<String, ProposeError> {
        let deadline = Instant::now() + wait;
        let ms = wait.as_millis() as u64;
        let mut pause = Duration::from_millis(20);
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(l) if l == self.id => match self.on_leader(&op, deadline, ms).await {
                    Err(ProposeError::Refused(r)) if r == NOT_LEADER => {}
                    other => return other,
                },
                Some(l) => {
                    if let Some(name) = self.member_name(l) {
                        let env = Envelope {
                            group: self.net.group.clone(),
                            from: self.net.me.clone(),
                            rpc: Rpc::Submit(op.clone()),
                        };
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self.net.transport.call(&name, encode(&env), left).await {
                            Ok(raw) => match serde_json::from_slice::<Reply>(&raw) {
                                Ok(Reply::Proposed(Err(ProposeError::Refused(r))))
                                    if r == NOT_LEADER => {}
                                Ok(Reply::Proposed(r)) => return r,
                                _ => return Err(ProposeError::Indeterminate(ms)),
                            },
                            // Never sent: try again (the leader may change).
                            Err(TransportError::NotSent(_)) => {}
                            // The request may have reached the leader.
                            Err(TransportError::NoAnswer(_)) => {
                                return Err(ProposeError::Indeterminate(ms))
                            }
                        }
                    }
                }
                None => {}
            }
            if Instant::now() + pause >= deadline {
                return Err(ProposeError::NoQuorum(ms));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// `rpc` on this node, which believes it leads.
    async fn on_leader(&self, op: &Op, deadline: Instant, ms: u64) -> Result<String, ProposeError> {
        // First make sure a majority still follows this leader: a leader cut
        // off from it refuses here, before anything is appended, so the
        // refusal is certain.
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(_))) => {
                return Err(ProposeError::Refused(NOT_LEADER.into()))
            }
            Ok(Err(RaftError::Fatal(f))) => return Err(ProposeError::Fatal(f.to_string())),
            Err(_) => return Err(ProposeError::NoQuorum(ms)),
        }
        if let Op::ReadIndex = op {
            // ensure_linearizable above confirmed leadership with a majority
            // and waited for this leader to apply up to its read index.
            let applied = self
                .raft
                .metrics()
                .borrow()
                .last_applied
                .map(|l| l.index)
                .unwrap_or(0);
            return Ok(applied.to_string());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let write = async {
            match op {
                Op::Propose(cmd) => self.raft.client_write(cmd.clone()).await.map(|r| r.data),
                Op::AddMember(name) => {
                    let id = node_id(name);
                    let node = Member { name: name.clone() };
                    self.raft.add_learner(id, node, true).await?;
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map(|_| String::new())
                }
                Op::RemoveMember(name) => {
                    let id = node_id(name);
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                        .await
                        .map(|_| String::new())
                }
                Op::ReadIndex => Ok(String::new()),
            }
        };
        match tokio::time::timeout(left, write).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(ProposeError::Refused(NOT_LEADER.into()))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(ProposeError::Refused(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(ProposeError::Fatal(f.to_string())),
            Err(_) => Err(ProposeError::Indeterminate(ms)),
        }
    }

    fn member_name(&self, id: NodeId) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let name = m
            .membership_config
            .nodes()
            .find(|(i, _)| **i == id)
            .map(|(_, n)| n.name.clone());
        name
    }

    /// Whether `name` is in this node's view of the membership, or the
    /// membership is empty (a fresh node accepts its first leader).
    fn hears_from(&self, name: &str) -> bool {
        let id = node_id(name);
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let empty = m.membership_config.nodes().next().is_none();
        let known = empty || m.membership_config.nodes().any(|(i, _)| *i == id);
        drop(m);
        known
    }

    /// A message from another node (see [`crate::Groups::handle`]).
    pub(crate) async fn handle(&self, env: Envelope) -> Result<Reply, String> {
        let raft_rpc = matches!(env.rpc, Rpc::Append(_) | Rpc::Vote(_) | Rpc::Snapshot(_));
        if raft_rpc && !self.hears_from(&env.from) {
            return Err(format!(
                "{} is not a member of group {}",
                env.from, self.net.group
            ));
        }
        Ok(match env.rpc {
            Rpc::Append(r) => Reply::Append(self.raft.append_entries(r).await),
            Rpc::Vote(r) => Reply::Vote(self.raft.vote(r).await),
            Rpc::Snapshot(r) => Reply::Snapshot(self.raft.install_snapshot(r).await),
            Rpc::Submit(op) => {
                let is_leader = self.raft.metrics().borrow().current_leader == Some(self.id);
                if !is_leader {
                    Reply::Proposed(Err(ProposeError::Refused(NOT_LEADER.into())))
                } else {
                    let wait = Duration::from_secs(10);
                    Reply::Proposed(
                        self.on_leader(&op, Instant::now() + wait, wait.as_millis() as u64)
                            .await,
                    )
                }
            }
        })
    }

    pub fn status(&self) -> Status {
        let m = self.raft.metrics();
        let m = m.borrow();
        let name_of = |id: NodeId| {
            m.membership_config
                .nodes()
                .find(|(i, _)| **i == id)
                .map(|(_, n)| n.name.clone())
        };
        let mut voters: Vec<String> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter_map(name_of)
            .collect();
        voters.sort();
        let mut learners: Vec<String> = m
            .membership_config
            .membership()
            .learner_ids()
            .filter_map(name_of)
            .collect();
        learners.sort();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let status = Status {
            role,
            term: m.current_term,
            leader: m.current_leader.and_then(name_of),
            initialized: m.membership_config.nodes().next().is_some(),
            voters,
            learners,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        };
        status
    }

    /// Waits until this node has applied at least `index`, or `wait` passes.
    pub async fn wait_applied(&self, index: u64, wait: Duration) -> bool {
        self.raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "wait_applied")
            .await
            .is_ok()
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

const NOT_LEADER: &str = "not the leader";

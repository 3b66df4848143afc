//! Raft's messages between nodes, over whatever [`Transport`] the server
//! gives (Warren's inter-node link). A message is an [`Envelope`]: the
//! group it is for and one [`Rpc`], as JSON; the reply is a [`Reply`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::types::{Member, NodeId, TypeConfig};

/// A boxed future, as [`Transport`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How a group's messages reach another node. `to` is the node's name; the
/// transport knows (from its own configuration) where that node is.
pub trait Transport: Send + Sync + 'static {
    fn call(
        &self,
        to: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>>;
}

/// Why a call got no answer. The difference matters to a proposal: one
/// that was never sent is certainly not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Nothing was sent (no connection to the node, or its queue is full).
    #[error("{0}")]
    NotSent(String),
    /// Sent, or perhaps sent, but no answer came (the connection broke, the
    /// time ran out, or the other side failed).
    #[error("{0}")]
    NoAnswer(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The group's name (`definitions`, or a queue's).
    pub group: String,
    /// The sender's name: a group only hears from its members (and, for
    /// `Join`, from anyone who holds the secret the link checked).
    pub from: String,
    pub rpc: Rpc,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Rpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A change for the leader, from a node that is not the leader.
    Submit(Op),
}

/// What only a group's leader can do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Op {
    /// Commit a command.
    Propose(String),
    /// Make `name` a voting member.
    AddMember(String),
    /// Remove `name` from the members.
    RemoveMember(String),
    /// The log index a read must wait for to see every change committed
    /// before it (Raft's read index, confirmed by a majority).
    ReadIndex,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The outcome of a forwarded proposal or membership change.
    Proposed(Result<String, crate::ProposeError>),
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// The factory openraft asks for a client per target.
#[derive(Clone)]
pub(crate) struct Network {
    pub group: String,
    pub me: String,
    pub transport: Arc<dyn Transport>,
}

pub(crate) struct Client {
    net: Network,
    target: NodeId,
    name: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Client;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Client {
        Client {
            net: self.clone(),
            target,
            name: node.name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unexpected(String);

impl Client {
    async fn call<E: std::error::Error>(
        &self,
        rpc: Rpc,
        timeout: Duration,
    ) -> Result<Reply, RPCError<NodeId, Member, E>> {
        let env = Envelope {
            group: self.net.group.clone(),
            from: self.net.me.clone(),
            rpc,
        };
        let raw = self
            .net
            .transport
            .call(&self.name, encode(&env), timeout)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        serde_json::from_slice(&raw).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, Member, E> {
        RPCError::Network(NetworkError::new(&Unexpected(format!(
            "unexpected reply from {}",
            self.name
        ))))
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.call(Rpc::Append(rpc), option.hard_ttl()).await? {
            Reply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(Rpc::Snapshot(rpc), option.hard_ttl()).await? {
            Reply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self.call(Rpc::Vote(rpc), option.hard_ttl()).await? {
            Reply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }
}

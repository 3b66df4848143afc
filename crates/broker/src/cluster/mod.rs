//! The broker's side of a cluster: its definitions as one replicated state
//! machine. No sockets here: the server runs the Raft group and the
//! inter-node link, and hands the broker a [`Replicator`].
//!
//! How a definitions change travels (Khepri's model, RabbitMQ 4):
//! 1. The node that receives it checks it against its own view, as on a
//!    single node, for RabbitMQ's errors and texts.
//! 2. It proposes the change ([`Replicator::propose`]) and waits: the change
//!    is committed on a majority of the nodes and applied on this one before
//!    the caller hears `ok` (a declare-ok, an HTTP 2xx, a CLI exit 0).
//! 3. Every node applies committed changes in log order through
//!    [`machine::DefinitionsMachine`]: it checks the change again against
//!    the replicated state (deterministically, so two nodes that raced get
//!    the same verdict everywhere) and applies it to the running broker
//!    ([`live`]). The proposer's caller applies nothing itself.
//!
//! With no majority, a change is refused after a bounded wait, and nothing
//! else stops: reads, publishing and consuming on local queues go on.
//!
//! Replicated now: vhosts, users, permissions, topic permissions, policies,
//! operator policies, runtime and global parameters, limits. Exchanges,
//! queues and bindings are refused on a cluster until queue records with
//! their owner node and forwarding between nodes land (issue 21's next
//! step): a queue that lived on one node while others accepted its
//! messages silently would lose them.

pub mod live;
pub mod machine;

use serde::{Deserialize, Serialize};

use crate::admin::AdminError;
use crate::definitions::Change;

/// What a node's broker calls to replicate a change.
pub trait Replicator: Send + Sync + std::fmt::Debug + 'static {
    /// Proposes `change`; returns once it is committed on a majority and
    /// applied on this node, with the state machine's verdict.
    fn propose(&self, change: &Change) -> Result<(), ReplicationError>;
    /// Waits until this node has applied every change the cluster
    /// committed before the call, so that a decision made here next sees
    /// them (a vhost just added through another node exists here).
    fn sync(&self) -> Result<(), ReplicationError>;
}

/// Why a replicated change was not made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicationError {
    /// The replicated state refused it (a concurrent change on another node
    /// got there first): the error is the one the caller reports.
    #[error("{0}")]
    Refused(AdminError),
    /// Certainly not made: no majority could be reached in time.
    #[error("{0}")]
    Unavailable(String),
    /// Handed to the cluster, but not confirmed in time: it may or may not
    /// take effect.
    #[error("{0}")]
    Unknown(String),
}

/// How a change was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Recorded {
    /// In this node's own journal: the caller applies it.
    Journaled,
    /// Committed by the cluster and already applied on this node by the
    /// replicated state machine: the caller must not apply it again.
    Replicated,
}

impl Recorded {
    pub fn is_replicated(self) -> bool {
        self == Recorded::Replicated
    }
}

/// One entry of the definitions log, as proposed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    /// The node that proposed it (for the log and audit; not for apply).
    pub node: String,
    pub change: Change,
}

/// The state machine's answer to one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    Applied,
    Refused(AdminError),
}

impl From<ReplicationError> for AdminError {
    fn from(e: ReplicationError) -> AdminError {
        match e {
            ReplicationError::Refused(a) => a,
            ReplicationError::Unavailable(m) | ReplicationError::Unknown(m) => {
                AdminError::Unavailable { message: m }
            }
        }
    }
}

/// Why exchanges, queues and bindings are refused on a cluster for now.
pub const TOPOLOGY_NOT_REPLICATED: &str =
    "exchanges, queues and bindings can't be declared or deleted on a cluster yet: this \
     version of Warren replicates users, vhosts, permissions, policies and parameters only";

/// Whether a change is one the cluster replicates yet (see the module
/// docs).
pub fn replicated(change: &Change) -> bool {
    !matches!(
        change,
        Change::DeclareExchange(_)
            | Change::DeleteExchange { .. }
            | Change::DeclareQueue(_)
            | Change::DeleteQueue { .. }
            | Change::Bind(_)
            | Change::Unbind(_)
    )
}

#[cfg(test)]
mod tests;

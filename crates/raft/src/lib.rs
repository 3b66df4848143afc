//! Warren's consensus: Raft groups on [openraft] (pinned to one exact
//! version), behind Warren's own types so that another engine could
//! replace it without touching the broker. No other crate names an
//! openraft type.
//!
//! - A [`Group`] is one replicated state machine: the cluster's definitions
//!   are one; each quorum queue will be one. A group applies commands
//!   through Warren's [`StateMachine`] trait, deterministically, on every
//!   member.
//! - Storage ([`log_store`], [`state_machine`]): the log and vote in the
//!   group's directory, every append fsynced before it is acknowledged, the
//!   snapshot replaced atomically.
//! - Messages go through a [`Transport`] the server supplies (the
//!   inter-node link); [`Groups`] routes what arrives to its group.
//! - A proposal on a node that does not lead is forwarded to the leader.
//!   Its outcome is exact when it can be: [`ProposeError::NoQuorum`] means
//!   certainly not applied, [`ProposeError::Indeterminate`] means the
//!   leader got it but did not answer in time.

mod group;
mod log_store;
mod network;
mod state_machine;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

pub use group::{Group, GroupConfig, ProposeError, Role, Status, Timing};
pub use network::{BoxFuture, Transport, TransportError};
pub use state_machine::StateMachine;
pub use types::node_id;

/// Every group on this node, by name: where the transport hands incoming
/// Raft messages.
#[derive(Clone, Default)]
pub struct Groups {
    groups: Arc<RwLock<HashMap<String, Group>>>,
}

impl Groups {
    pub fn insert(&self, group: Group) {
        if let Ok(mut g) = self.groups.write() {
            g.insert(group.name().to_string(), group);
        }
    }

    pub fn remove(&self, name: &str) -> Option<Group> {
        self.groups.write().ok()?.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Group> {
        self.groups.read().ok()?.get(name).cloned()
    }

    /// A message from another node's transport; the reply goes back to it.
    /// `from` is the sender as the link authenticated it: a message that
    /// claims another sender is refused.
    pub async fn handle(&self, from: &str, payload: Bytes) -> Result<Bytes, String> {
        let env: network::Envelope =
            serde_json::from_slice(&payload).map_err(|e| format!("malformed raft message: {e}"))?;
        if env.from != from {
            return Err(format!(
                "a raft message from {from} claims to come from {}",
                env.from
            ));
        }
        let group = self
            .get(&env.group)
            .ok_or_else(|| format!("no raft group {} on this node", env.group))?;
        let reply = group.handle(env).await?;
        Ok(network::encode(&reply))
    }
}

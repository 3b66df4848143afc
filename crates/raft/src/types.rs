//! The type configuration Warren gives openraft, and node identities.
//!
//! A node's identity is its name (`warren@host`); openraft wants a small
//! copyable id, so every node derives the same `u64` from a name
//! ([`node_id`]) without coordination. The name travels in the membership
//! ([`Member`]); the address at which a node reaches a member never does:
//! it comes from that node's own configuration (the transport's business).

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A member of a group as the membership records it: its name only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

openraft::declare_raft_types!(
    /// Commands and responses are a state machine's own text (JSON for the
    /// definitions); the log stores them as given.
    pub(crate) TypeConfig:
        D = String,
        R = String,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type NodeId = u64;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;

/// The id openraft knows a node by: the first 8 bytes of SHA-256 of its
/// name. Two names colliding would need 2^32 nodes.
pub fn node_id(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

pub(crate) fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

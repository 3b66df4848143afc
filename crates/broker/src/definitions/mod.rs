//! Durable definitions: vhosts, users, permissions, durable exchanges,
//! durable queues and the bindings between durable ends.
//!
//! On disk (in the data directory):
//! - `definitions.json`: a snapshot, replaced atomically (write a temporary
//!   file, fsync it, rename it over the old one, fsync the directory), so a
//!   crash leaves either the old or the new snapshot.
//! - `definitions.log`: changes since the snapshot, one per line:
//!   `<crc32 of the JSON, 8 hex digits> <JSON>\n`, fsynced before the change
//!   takes effect and is acknowledged (see [`journal`]).
//!
//! At startup the snapshot is loaded, the log replayed, a new snapshot
//! written and the log emptied; while running, the log is compacted into a
//! new snapshot once it outgrows it. [`state`] holds the definitions in
//! memory, keyed, so applying a change costs a map operation, not a scan.

pub mod journal;
pub mod state;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use warren_protocol::{Decoder, FieldTable};

pub use journal::{load, DefinitionsLog};
pub use state::DefinitionsState;

/// Bumped when the snapshot's shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserDef {
    pub name: String,
    /// Empty: no password (the user can't log in with PLAIN).
    pub password_hash: String,
    /// RabbitMQ's hashing module name; empty means SHA-256.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hashing_algorithm: String,
    pub tags: Vec<String>,
    /// `max-connections`, `max-channels` (RabbitMQ's user limits).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub limits: serde_json::Map<String, serde_json::Value>,
}

/// A vhost and its metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VhostDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicPermissionDef {
    pub vhost: String,
    pub user: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// A policy (or an operator policy) as RabbitMQ's definitions hold it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    /// "queues", "exchanges" or "all".
    pub apply_to: String,
    pub definition: serde_json::Value,
    pub priority: i64,
    #[serde(default)]
    pub operator: bool,
}

/// A runtime parameter (vhost-scoped, per component).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ParameterDef {
    pub vhost: String,
    pub component: String,
    pub name: String,
    pub value: serde_json::Value,
}

/// A global runtime parameter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GlobalParameterDef {
    pub name: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PermissionDef {
    pub vhost: String,
    pub user: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    /// AMQP-encoded field table, base64: exact, types included.
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    pub vhost: String,
    pub name: String,
    /// Names the queue's storage directory; a queue deleted and declared
    /// again gets a new id, so old messages can't leak into it.
    pub id: u64,
    pub auto_delete: bool,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct BindingDef {
    pub vhost: String,
    pub source: String,
    pub destination: String,
    /// "queue" or "exchange"
    pub destination_kind: String,
    pub routing_key: String,
    pub arguments: String,
}

/// One change, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    AddVhost {
        name: String,
    },
    /// Creates or updates a vhost with its metadata.
    PutVhost(VhostDef),
    DeleteVhost {
        name: String,
    },
    PutUser(UserDef),
    DeleteUser {
        name: String,
    },
    SetPermissions(PermissionDef),
    ClearPermissions {
        vhost: String,
        user: String,
    },
    SetTopicPermissions(TopicPermissionDef),
    /// One exchange's, or (`exchange: None`) all of them.
    ClearTopicPermissions {
        vhost: String,
        user: String,
        exchange: Option<String>,
    },
    SetPolicy(PolicyDef),
    ClearPolicy {
        vhost: String,
        name: String,
        #[serde(default)]
        operator: bool,
    },
    SetParameter(ParameterDef),
    ClearParameter {
        vhost: String,
        component: String,
        name: String,
    },
    SetGlobalParameter(GlobalParameterDef),
    ClearGlobalParameter {
        name: String,
    },
    DeclareExchange(ExchangeDef),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    DeclareQueue(QueueDef),
    DeleteQueue {
        vhost: String,
        name: String,
    },
    Bind(BindingDef),
    Unbind(BindingDef),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    /// The log that continues this snapshot: a log file whose header names
    /// an older id is already contained in the snapshot and is ignored.
    #[serde(default)]
    pub log_id: u64,
    pub next_queue_id: u64,
    pub vhosts: Vec<String>,
    pub users: Vec<UserDef>,
    pub permissions: Vec<PermissionDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    /// Metadata of the vhosts in `vhosts` (absent in older snapshots).
    #[serde(default)]
    pub vhost_meta: Vec<VhostDef>,
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionDef>,
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
    #[serde(default)]
    pub parameters: Vec<ParameterDef>,
    #[serde(default)]
    pub global_parameters: Vec<GlobalParameterDef>,
}

pub fn encode_table(t: &FieldTable) -> String {
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

pub fn decode_table(s: &str) -> FieldTable {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|raw| Decoder::new(Bytes::from(raw)).get_table().ok())
        .unwrap_or_default()
}

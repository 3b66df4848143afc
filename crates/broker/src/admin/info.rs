//! What listings return: one typed row per object, serialised with
//! rabbitmqctl's column names. The CLI picks and formats columns; the
//! management API maps them onto RabbitMQ's HTTP shapes.

use serde::Serialize;
use serde_json::Value;

use super::json::table_to_json;
use crate::auth::User;
use crate::connections::{ChannelStats, ConnectionEntry};
use crate::exchange::Exchange;
use crate::queue::{ConsumerSummary, Queue};
use crate::routing::Binding;
use crate::vhost::VirtualHost;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserInfo {
    /// rabbitmqctl's column is `user`; the HTTP API says `name`.
    pub user: String,
    pub tags: Vec<String>,
    pub password_hash: String,
    pub hashing_algorithm: String,
}

impl UserInfo {
    pub fn of(u: &User) -> UserInfo {
        UserInfo {
            user: u.name.clone(),
            tags: u.tags.clone(),
            password_hash: u.password_hash.clone(),
            hashing_algorithm: u.hashing.rabbit_name().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VhostInfo {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub default_queue_type: Option<String>,
    pub tracing: bool,
}

impl VhostInfo {
    pub fn of(v: &VirtualHost) -> VhostInfo {
        let m = v.meta();
        VhostInfo {
            name: v.name.clone(),
            description: m.description,
            tags: m.tags,
            default_queue_type: m.default_queue_type,
            tracing: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PermissionInfo {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicPermissionInfo {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueInfo {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Value,
    pub messages: u64,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
    pub message_bytes_ready: u64,
    pub consumers: u32,
    pub memory: u64,
    pub state: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether the queue's messages live on more than one node: Warren's
    /// own field, false for every queue until replication exists (a
    /// quorum queue says so in `warrenctl list_queues type`).
    pub replicated: bool,
    /// The owning connection's pid, for exclusive queues.
    pub owner_pid: Option<String>,
    /// The policy and operator policy in force, and their merged keys.
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    pub effective_policy_definition: Value,
}

impl QueueInfo {
    pub fn of(q: &Queue, owner_pid: Option<String>) -> QueueInfo {
        let s = q.stats();
        let applied = q.applied_policies();
        QueueInfo {
            name: q.name.to_string(),
            vhost: q.vhost.clone(),
            durable: q.options.durable,
            auto_delete: q.options.auto_delete,
            exclusive: q.options.exclusive,
            arguments: table_to_json(&q.options.arguments),
            messages: s.ready + s.unacked,
            messages_ready: s.ready,
            messages_unacknowledged: s.unacked,
            message_bytes_ready: s.ready_bytes,
            consumers: s.consumers,
            memory: q.memory(),
            state: "running",
            kind: q.kind().as_str(),
            replicated: q.kind().is_replicated(),
            owner_pid,
            policy: applied.policy_name().map(str::to_string),
            operator_policy: applied.operator_policy_name().map(str::to_string),
            effective_policy_definition: Value::Object(applied.effective_definition()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExchangeInfo {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Value,
    pub policy: Option<String>,
}

impl ExchangeInfo {
    pub fn of(x: &Exchange) -> ExchangeInfo {
        ExchangeInfo {
            name: x.name.to_string(),
            vhost: x.vhost.clone(),
            kind: x.kind.as_str(),
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: table_to_json(&x.arguments),
            policy: x.applied_policies().policy_name().map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BindingInfo {
    pub vhost: String,
    pub source_name: String,
    pub source_kind: &'static str,
    pub destination_name: String,
    pub destination_kind: &'static str,
    pub routing_key: String,
    pub arguments: Value,
}

impl BindingInfo {
    pub fn of(vhost: &str, source: &str, b: &Binding) -> BindingInfo {
        BindingInfo {
            vhost: vhost.to_string(),
            source_name: source.to_string(),
            source_kind: "exchange",
            destination_name: b.destination.name().to_string(),
            destination_kind: b.destination.kind_str(),
            routing_key: b.routing_key.to_string(),
            arguments: table_to_json(&b.arguments),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionInfo {
    pub pid: String,
    pub name: String,
    pub user: String,
    pub vhost: String,
    pub peer_host: String,
    pub peer_port: u16,
    pub host: String,
    pub port: u16,
    pub state: &'static str,
    pub channels: u32,
    pub protocol: &'static str,
    pub ssl: bool,
    pub auth_mechanism: String,
    pub client_properties: Value,
    pub connected_at: u64,
    pub frame_max: u32,
    pub channel_max: u16,
    /// The negotiated heartbeat, seconds.
    pub timeout: u16,
    pub recv_oct: u64,
    pub recv_cnt: u64,
    pub send_oct: u64,
    pub send_cnt: u64,
}

impl ConnectionInfo {
    pub fn of(c: &ConnectionEntry) -> ConnectionInfo {
        let m = &c.meta;
        let t = c.stats.traffic();
        ConnectionInfo {
            pid: c.pid.clone(),
            name: c.name.clone(),
            user: m.user.clone(),
            vhost: m.vhost.clone(),
            peer_host: m.peer.ip().to_string(),
            peer_port: m.peer.port(),
            host: m.local.ip().to_string(),
            port: m.local.port(),
            state: "running",
            channels: c.channels().len() as u32,
            protocol: m.protocol,
            ssl: false,
            auth_mechanism: m.auth_mechanism.clone(),
            client_properties: table_to_json(&m.client_properties),
            connected_at: c.connected_at,
            frame_max: m.frame_max,
            channel_max: m.channel_max,
            timeout: m.heartbeat,
            recv_oct: t.recv_oct,
            recv_cnt: t.recv_cnt,
            send_oct: t.send_oct,
            send_cnt: t.send_cnt,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelInfo {
    pub pid: String,
    pub name: String,
    /// The connection's pid.
    pub connection: String,
    pub connection_name: String,
    pub number: u16,
    pub user: String,
    pub vhost: String,
    pub consumer_count: u32,
    pub messages_unacknowledged: u32,
    pub prefetch_count: u32,
    pub global_prefetch_count: u32,
    pub confirm: bool,
    pub transactional: bool,
    pub state: &'static str,
}

impl ChannelInfo {
    pub fn of(c: &ConnectionEntry, ch: &ChannelStats) -> ChannelInfo {
        let st = ch.state();
        ChannelInfo {
            pid: c.channel_pid(ch.number),
            name: c.channel_name(ch.number),
            connection: c.pid.clone(),
            connection_name: c.name.clone(),
            number: ch.number,
            user: c.meta.user.clone(),
            vhost: c.meta.vhost.clone(),
            consumer_count: st.consumers,
            messages_unacknowledged: st.unacked,
            prefetch_count: st.prefetch,
            global_prefetch_count: st.global_prefetch,
            confirm: st.confirm,
            transactional: st.transactional,
            state: "running",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsumerInfo {
    pub vhost: String,
    pub queue_name: String,
    pub channel_pid: String,
    pub connection_name: String,
    pub channel_number: u16,
    pub consumer_tag: String,
    pub ack_required: bool,
    pub prefetch_count: u32,
    pub active: bool,
    pub exclusive: bool,
    pub arguments: Value,
}

impl ConsumerInfo {
    pub fn of(q: &Queue, c: &ConsumerSummary, conn: Option<&ConnectionEntry>) -> ConsumerInfo {
        let mut arguments = serde_json::Map::new();
        if c.priority != 0 {
            arguments.insert("x-priority".into(), c.priority.into());
        }
        ConsumerInfo {
            vhost: q.vhost.clone(),
            queue_name: q.name.to_string(),
            channel_pid: conn.map(|e| e.channel_pid(c.channel)).unwrap_or_default(),
            connection_name: conn.map(|e| e.name.clone()).unwrap_or_default(),
            channel_number: c.channel,
            consumer_tag: c.tag.to_string(),
            ack_required: c.ack_required,
            prefetch_count: c.prefetch,
            active: c.active,
            exclusive: c.exclusive,
            arguments: Value::Object(arguments),
        }
    }
}

/// The broker's state at a glance (`status`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusInfo {
    pub product: &'static str,
    pub version: &'static str,
    pub node: String,
    pub os_pid: u32,
    pub memory_used: u64,
    pub memory_high_watermark: u64,
    pub total_memory: u64,
    pub disk_free: u64,
    pub disk_free_limit: u64,
    pub alarms: Vec<&'static str>,
    pub connections: usize,
    pub queues: usize,
    pub vhosts: usize,
}

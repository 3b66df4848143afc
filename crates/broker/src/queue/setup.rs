//! What a queue is made from and what it reports: its setup, options and
//! limits, the messages it holds, and its listings.

use std::sync::Arc;
use std::time::Instant;

use warren_protocol::{FieldTable, ShortStr};

use crate::message::Message;
use crate::stats::{GaugeRate, Rates};
use crate::store::index::{DiskRef, QueueIndex, Recovered};
use crate::store::StorageHandle;

/// A message handed back to a queue: its position, the message, and its
/// index entry if it has one.
pub type Returned = (u64, Arc<Message>, Option<DiskRef>);

/// Everything a queue is made from.
#[derive(Debug)]
pub struct QueueSetup {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<u64>,
    pub limits: QueueLimits,
    pub storage: Option<StorageHandle>,
    /// The indexes (one per priority lane that has one) and the next
    /// sequence number of a queue recovered from disk.
    pub recovered: Option<RecoveredQueue>,
}

impl QueueSetup {
    /// A plain queue that keeps nothing on disk and belongs to no vhost
    /// (tools and tests).
    pub fn in_memory(name: &str, limits: QueueLimits) -> QueueSetup {
        QueueSetup {
            name: ShortStr::from(name),
            vhost: "/".into(),
            options: QueueOptions {
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: FieldTable::new(),
            },
            owner: None,
            limits,
            storage: None,
            recovered: None,
        }
    }
}

/// A queue's disk state as recovery found it.
#[derive(Debug, Default)]
pub struct RecoveredQueue {
    /// Lane, its index, and what the index holds.
    pub lanes: Vec<(usize, QueueIndex, Recovered)>,
    pub next_seq: u64,
}

impl RecoveredQueue {
    /// Opens the indexes of a queue with `lanes` priority lanes, those that
    /// were ever written. A lane whose index
    /// cannot be opened is reported and left out.
    pub fn open(handle: &StorageHandle, lanes: usize) -> (RecoveredQueue, Vec<std::io::Error>) {
        let mut out = RecoveredQueue::default();
        let mut errors = Vec::new();
        for lane in 0..lanes {
            let dir = super::lane_dir(&handle.dir, lane);
            // Never written: nothing to recover, and the index is made on
            // first use (no directory created and fsynced per queue here:
            // 30,000 of them took 5 s).
            if !dir.is_dir() {
                continue;
            }
            match QueueIndex::open(&dir, handle.store.clone(), handle.store.committer().clone()) {
                Ok((index, rec)) => {
                    out.next_seq = out.next_seq.max(rec.next_seq);
                    out.lanes.push((lane, index, rec));
                }
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// Messages found.
    pub fn live(&self) -> u64 {
        self.lanes.iter().map(|(_, _, r)| r.live).sum()
    }
}

/// Properties fixed at declaration; a redeclare must match them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// Behaviour selected by `x-` arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueLimits {
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-message-ttl`, milliseconds.
    pub message_ttl: Option<u64>,
    /// `x-expires`: delete the queue after this long unused, milliseconds.
    pub expires: Option<u64>,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    /// `x-single-active-consumer`: only the oldest consumer gets messages.
    pub single_active_consumer: bool,
    /// `x-max-priority`: lanes 0 to this (fixed at declaration).
    pub max_priority: Option<u8>,
    /// `x-delivery-limit` (quorum queues): a message returned more times
    /// than this is dead-lettered (reason `delivery_limit`) or dropped.
    pub delivery_limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
}

/// A queue's type, as `x-queue-type` declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Classic,
    /// Served by the classic implementation on one node, with quorum
    /// queues' declaration rules, delivery counting and delivery limit;
    /// not replicated (listings say so) until replicated quorum queues
    /// exist.
    Quorum,
}

impl QueueKind {
    /// RabbitMQ's name (`type` in listings).
    pub fn as_str(&self) -> &'static str {
        match self {
            QueueKind::Classic => "classic",
            QueueKind::Quorum => "quorum",
        }
    }

    /// Whether its messages live on more than one node (none do yet).
    pub fn is_replicated(&self) -> bool {
        false
    }
}

/// Why a message was dead-lettered (the `reason` in `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
    /// Returned more times than the queue's delivery limit.
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the queue; requeued messages go back to their place.
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// When the message expires (queue TTL or its own expiration).
    pub expires_at: Option<Instant>,
    /// Its index entry, for persistent messages of durable queues and for
    /// messages that were paged out.
    pub disk: Option<DiskRef>,
}

/// What the publisher is promised about a persistent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A confirm or a tx.commit-ok will vouch for the message: if it
    /// cannot be written it is refused ([`PublishOutcome::Failed`]), so
    /// the publisher hears of it and nothing unwritten is confirmed.
    Required,
    /// Nobody will be told: if the write fails the message is kept in
    /// memory (delivered while the broker runs) rather than dropped.
    BestEffort,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// `needs_sync`: the message was written for durability; a confirm
    /// must wait for the group commit. `congested`: consumers can't take
    /// messages as fast as they arrive because their connections can't
    /// write them fast enough; the publisher should pause (credit flow,
    /// as RabbitMQ's) rather than let the queue spill to disk.
    Enqueued { needs_sync: bool, congested: bool },
    /// Refused by `x-overflow: reject-publish`; confirms get a nack.
    Rejected,
    /// The message had to be written for durability and the write failed
    /// (only with [`Durability::Required`]): not enqueued; a confirm gets
    /// a nack, a transaction fails.
    Failed,
}

/// A queue's sampled rates.
#[derive(Debug, Default)]
pub struct QueueRates {
    pub messages: Rates,
    pub ready: GaugeRate,
    pub unacked: GaugeRate,
    pub total: GaugeRate,
}

/// One consumer of a queue, for listings.
#[derive(Debug, Clone)]
pub struct ConsumerSummary {
    pub tag: ShortStr,
    pub channel: u16,
    pub connection_id: u64,
    pub ack_required: bool,
    pub exclusive: bool,
    pub priority: i32,
    pub prefetch: u32,
    /// Gets messages now (single active consumer: only the first).
    pub active: bool,
}

/// Counts shown by queue.declare-ok and `warrenctl list_queues`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u32,
    pub ready_bytes: u64,
    pub unacked_bytes: u64,
}

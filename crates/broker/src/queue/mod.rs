//! A classic queue: ready messages in order, the consumers attached to it,
//! and round-robin dispatch within each consumer's credit.
//!
//! All state sits behind one mutex per queue. Publishers enqueue and
//! dispatch under it from their own connection task; acks dispatch again
//! from the consumer's task. There is no task per queue and no global lock.
//!
//! Messages leave a queue early through TTL (`x-message-ttl`, the
//! `expiration` property), length limits (`x-max-length[-bytes]`) and
//! rejection; with `x-dead-letter-exchange` set they are then republished
//! there with an `x-death` history, after the queue's lock is released.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use warren_protocol::{FieldTable, ShortStr};

mod deadletter;
mod paging;
#[cfg(test)]
mod tests;

use crate::consumer::{ConnectionEvent, Consumer, Delivery};
use crate::error::{AmqpError, Result};
use crate::message::Message;
use crate::stats::{GaugeRate, QueueCounters, Rates};
use crate::store::index::{Cursor, DiskRef, QueueIndex, Recovered};
use crate::store::MessageStore;
use crate::vhost::VirtualHost;

/// Ready messages kept in memory per queue; beyond this (or
/// [`WINDOW_BYTES`]) new messages wait on disk and are read back ahead of
/// consumers, so a backlog costs disk, not RAM.
pub const WINDOW_COUNT: usize = 8192;
pub const WINDOW_BYTES: u64 = 8 * 1024 * 1024;
/// Read back from disk when fewer than this many are in memory.
const PAGE_IN_BELOW: usize = WINDOW_COUNT / 2;

/// A message handed back to a queue: its position, the message, and its
/// index entry if it has one.
pub type Returned = (u64, Arc<Message>, Option<DiskRef>);

/// A queue's disk side: its index, and the part of the queue (the tail)
/// that is only on disk.
#[derive(Debug)]
pub struct QueueStorage {
    index: QueueIndex,
    tail_count: u64,
    tail_bytes: u64,
    /// Where the tail starts in the index.
    cursor: Cursor,
}

impl QueueStorage {
    pub fn recovered(index: QueueIndex, rec: &Recovered) -> Self {
        QueueStorage {
            index,
            tail_count: rec.live,
            tail_bytes: rec.bytes,
            cursor: rec.cursor,
        }
    }
}

/// Everything a queue is made from.
#[derive(Debug)]
pub struct QueueSetup {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<u64>,
    pub limits: QueueLimits,
    pub vhost_ref: Weak<VirtualHost>,
    pub storage: Option<StorageHandle>,
    /// Index and next sequence number of a queue recovered from disk.
    pub recovered: Option<(QueueStorage, u64)>,
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
            vhost_ref: Weak::new(),
            storage: None,
            recovered: None,
        }
    }
}

/// How a queue reaches the message store, and where its index goes.
#[derive(Debug, Clone)]
pub struct StorageHandle {
    pub store: Arc<MessageStore>,
    /// The index directory for this queue (created on first use).
    pub dir: std::path::PathBuf,
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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
}

/// Why a message was dead-lettered (the `reason` in `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
}

impl DeathReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
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

#[derive(Debug)]
struct QueueState {
    ready: VecDeque<QueuedMessage>,
    ready_bytes: u64,
    consumers: Vec<Consumer>,
    /// Index of the consumer that gets the next message.
    next_consumer: usize,
    unacked: u64,
    /// Body bytes of the unacknowledged messages.
    unacked_bytes: u64,
    next_seq: u64,
    /// Auto-delete queues go only once they have had a consumer.
    had_consumer: bool,
    /// Messages removed under the lock, dead-lettered after it is released.
    dead: Vec<(Arc<Message>, DeathReason)>,
    /// For `x-expires`: the last time the queue was used.
    last_used: Instant,
    /// Index and on-disk tail; created on first need.
    storage: Option<QueueStorage>,
    /// Message statistics, counted under this lock.
    counters: QueueCounters,
}

impl QueueState {
    fn tail_count(&self) -> u64 {
        self.storage.as_ref().map_or(0, |s| s.tail_count)
    }

    fn tail_bytes(&self) -> u64 {
        self.storage.as_ref().map_or(0, |s| s.tail_bytes)
    }

    /// Ready messages, in memory and on disk.
    fn ready_len(&self) -> u64 {
        self.ready.len() as u64 + self.tail_count()
    }

    /// Removes an index entry for good.
    fn forget(&mut self, disk: Option<DiskRef>) {
        if let (Some(d), Some(s)) = (disk, self.storage.as_mut()) {
            s.index.ack(d);
        }
    }
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<u64>,
    pub limits: QueueLimits,
    vhost_ref: Weak<VirtualHost>,
    /// `None` when the broker runs without a data directory.
    storage: Option<StorageHandle>,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Set once any message with a TTL arrives, so the sweeper can skip
    /// queues that can't have expired messages.
    has_ttl: AtomicBool,
    /// Publishers were told to pause; `drained` wakes them.
    congested: AtomicBool,
    pub drained: tokio::sync::Notify,
    /// Message rates and the rates of change of its counts, as sampled.
    pub rates: QueueRates,
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

pub use crate::message::parse_expiration;

impl Queue {
    pub fn new(setup: QueueSetup) -> Self {
        let QueueSetup {
            name,
            vhost,
            options,
            owner,
            limits,
            vhost_ref,
            storage,
            recovered,
        } = setup;
        let has_ttl = limits.message_ttl.is_some();
        let (storage_state, next_seq) = match recovered {
            Some((s, n)) => (Some(s), n),
            None => (None, 0),
        };
        Queue {
            name,
            vhost,
            options,
            owner,
            limits,
            vhost_ref,
            storage,
            state: Mutex::new(QueueState {
                ready: VecDeque::new(),
                ready_bytes: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                unacked_bytes: 0,
                next_seq,
                had_consumer: false,
                dead: Vec::new(),
                last_used: Instant::now(),
                storage: storage_state,
                counters: QueueCounters::default(),
            }),
            deleted: AtomicBool::new(false),
            has_ttl: AtomicBool::new(has_ttl),
            congested: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            rates: QueueRates::default(),
        }
    }

    /// Whether publishers should still wait for consumers to catch up.
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> QueueStats {
        let st = self.state.lock();
        QueueStats {
            ready: st.ready_len(),
            unacked: st.unacked,
            consumers: st.consumers.len() as u32,
            ready_bytes: st.ready_bytes + st.tail_bytes(),
            unacked_bytes: st.unacked_bytes,
        }
    }

    /// The message counters (publish, deliver, get, ack, redeliver).
    pub fn counters(&self) -> QueueCounters {
        self.state.lock().counters
    }

    /// The consumers as listings show them, in registration order.
    pub fn consumer_infos(&self) -> Vec<ConsumerSummary> {
        let st = self.state.lock();
        st.consumers
            .iter()
            .enumerate()
            .map(|(i, c)| ConsumerSummary {
                tag: c.tag.clone(),
                channel: c.channel,
                connection_id: c.connection_id,
                ack_required: !c.no_ack,
                exclusive: c.exclusive,
                priority: c.priority,
                prefetch: c.flow.prefetch,
                active: !self.limits.single_active_consumer || i == 0,
            })
            .collect()
    }

    /// Bytes of message bodies this queue holds in memory (ready ones).
    pub fn memory(&self) -> u64 {
        let st = self.state.lock();
        // The queue itself, plus bodies and a per-message overhead
        // (entry, Arc, header).
        let base = (std::mem::size_of::<Queue>() + std::mem::size_of::<QueueState>()) as u64;
        base + st.ready_bytes + st.ready.len() as u64 * 128
    }

    /// RabbitMQ's description of a queue in error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// Marks the queue used now (declare, get, consume), for `x-expires`.
    pub fn touch(&self) {
        self.state.lock().last_used = Instant::now();
    }

    /// True when an `x-expires` queue has been unused long enough.
    /// Whether the sweeper has anything to check here: expiring
    /// messages, or an idle-queue expiry (`x-expires`).
    pub fn needs_sweep(&self) -> bool {
        self.limits.expires.is_some() || self.has_ttl.load(Ordering::Relaxed)
    }

    pub fn is_expired_unused(&self, now: Instant) -> bool {
        let Some(ms) = self.limits.expires else {
            return false;
        };
        let st = self.state.lock();
        st.consumers.is_empty()
            && now.saturating_duration_since(st.last_used).as_millis() >= u128::from(ms)
    }

    /// Releases the lock, then dead-letters what the locked section removed.
    fn finish(self: &Arc<Self>, mut st: MutexGuard<'_, QueueState>) {
        if st.dead.is_empty() {
            return;
        }
        let dead = std::mem::take(&mut st.dead);
        drop(st);
        self.dead_letter(dead);
    }

    fn expiry_for(&self, message: &Message, now: Instant) -> Option<Instant> {
        let per_message = message.expiration_ms;
        let ttl = match (self.limits.message_ttl, per_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(now + std::time::Duration::from_millis(ttl))
    }

    /// Enqueues and pushes to consumers. Messages routed to a deleted queue
    /// (a race with queue.delete) are dropped, as RabbitMQ drops them.
    pub fn publish(
        self: &Arc<Self>,
        message: Arc<Message>,
        durability: Durability,
    ) -> PublishOutcome {
        let mut st = self.state.lock();
        if self.is_deleted() {
            return PublishOutcome::Enqueued {
                needs_sync: false,
                congested: false,
            };
        }
        let size = message.size() as u64;
        if self.over_limit(&st, size) {
            match self.limits.overflow {
                Overflow::RejectPublish => return PublishOutcome::Rejected,
                Overflow::DropHead => {
                    while self.over_limit(&st, size) {
                        self.page_in(&mut st, true);
                        match st.ready.pop_front() {
                            Some(m) => {
                                st.ready_bytes -= m.message.size() as u64;
                                st.forget(m.disk);
                                st.dead.push((m.message, DeathReason::MaxLen));
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        // x-max-length 0 keeps nothing, even after dropping every message.
        if self.limits.max_length == Some(0) {
            let outcome = match self.limits.overflow {
                Overflow::RejectPublish => PublishOutcome::Rejected,
                Overflow::DropHead => {
                    st.dead.push((message, DeathReason::MaxLen));
                    PublishOutcome::Enqueued {
                        needs_sync: false,
                        congested: false,
                    }
                }
            };
            self.finish(st);
            return outcome;
        }
        // Reading the clock costs; only TTL'd messages need it.
        let now = (self.has_ttl.load(Ordering::Relaxed)
            || self.limits.message_ttl.is_some()
            || message.expiration_ms.is_some())
        .then(Instant::now);
        let expires_at = now.and_then(|n| self.expiry_for(&message, n));
        if expires_at.is_some() {
            self.has_ttl.store(true, Ordering::Relaxed);
        }
        let persist = self.options.durable && message.is_persistent();
        let to_tail = st.tail_count() > 0
            || st.ready.len() >= WINDOW_COUNT
            || st.ready_bytes + size > WINDOW_BYTES;
        let seq = st.next_seq;
        let disk = if persist || to_tail {
            self.write_disk(&mut st, seq, &message, !persist)
        } else {
            None
        };
        let write_failed = (persist || to_tail) && self.storage.is_some() && disk.is_none();
        if write_failed && persist && durability == Durability::Required {
            // Nothing was enqueued: the sequence number is not used.
            self.finish(st);
            return PublishOutcome::Failed;
        }
        st.next_seq += 1;
        st.counters.publish += 1;
        let needs_sync = persist && disk.is_some();
        match (to_tail, disk, st.storage.as_mut()) {
            (true, Some(d), Some(s)) => {
                // Beyond the window: the message lives on disk only.
                if s.tail_count == 0 {
                    s.cursor = Cursor {
                        segment: d.pos.segment,
                        entry: d.pos.entry,
                    };
                }
                s.tail_count += 1;
                s.tail_bytes += u64::from(d.loc.len);
            }
            _ => {
                st.ready_bytes += size;
                st.ready.push_back(QueuedMessage {
                    seq,
                    message,
                    redelivered: false,
                    expires_at,
                    disk,
                });
            }
        }
        self.dispatch_at(&mut st, now);
        if let Some(now) = now {
            // A TTL of 0 means "deliver now or never", as in RabbitMQ.
            self.expire_locked(&mut st, now);
        }
        let congested = st.ready.len() >= WINDOW_COUNT
            && st
                .consumers
                .iter()
                .any(|c| c.flow.transit_blocked.load(Ordering::Relaxed));
        if congested {
            self.congested.store(true, Ordering::Release);
        }
        self.finish(st);
        PublishOutcome::Enqueued {
            needs_sync,
            congested,
        }
    }

    fn over_limit(&self, st: &QueueState, incoming: u64) -> bool {
        let len = st.ready_len();
        let bytes = st.ready_bytes + st.tail_bytes();
        self.limits
            .max_length
            .is_some_and(|max| len >= max && len > 0)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| bytes + incoming > max && len > 0)
    }

    /// Removes expired messages from the head (RabbitMQ expires only at
    /// the head too: a long-lived message shields later short-lived ones).
    fn expire_locked(&self, st: &mut QueueState, now: Instant) {
        self.expire_head(st, |t| t <= now)
    }

    fn expire_head(&self, st: &mut QueueState, expired: impl Fn(Instant) -> bool) {
        loop {
            if st.ready.is_empty() {
                self.page_in(st, false);
            }
            if !st
                .ready
                .front()
                .is_some_and(|m| m.expires_at.is_some_and(&expired))
            {
                return;
            }
            if let Some(m) = st.ready.pop_front() {
                st.ready_bytes -= m.message.size() as u64;
                st.forget(m.disk);
                st.dead.push((m.message, DeathReason::Expired));
            }
        }
    }

    /// Called periodically: expires messages nobody is consuming.
    pub fn expire(self: &Arc<Self>, now: Instant) {
        if !self.has_ttl.load(Ordering::Relaxed) {
            return;
        }
        let mut st = self.state.lock();
        self.expire_locked(&mut st, now);
        self.finish(st);
    }

    /// Pushes ready messages to consumers that have credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
        self.finish(st);
    }

    /// The consumer that should get the next message: the highest
    /// `x-priority` with credit, round-robin among equals.
    fn pick_consumer(&self, st: &QueueState) -> Option<usize> {
        let n = st.consumers.len();
        if self.limits.single_active_consumer {
            let c = st.consumers.first()?;
            return c.flow.has_credit(c.no_ack).then_some(0);
        }
        let start = st.next_consumer % n;
        let mut best: Option<(usize, i32)> = None;
        for i in (0..n).map(|i| (start + i) % n) {
            let c = &st.consumers[i];
            if best.is_some_and(|(_, p)| p >= c.priority) || !c.flow.has_credit(c.no_ack) {
                continue;
            }
            best = Some((i, c.priority));
        }
        best.map(|(i, _)| i)
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let now = self.has_ttl.load(Ordering::Relaxed).then(Instant::now);
        self.dispatch_at(st, now)
    }

    /// Dispatches, treating messages that expire exactly at `now` as still
    /// deliverable (a TTL-0 message goes to a waiting consumer). `now` is
    /// `None` when no message in the queue can expire.
    fn dispatch_at(self: &Arc<Self>, st: &mut QueueState, now: Option<Instant>) {
        while st.ready_len() > 0 && !st.consumers.is_empty() {
            self.page_in(st, false);
            if let Some(now) = now {
                self.expire_head(st, |t| t < now);
            }
            let Some(idx) = self.pick_consumer(st) else {
                return;
            };
            let Some(qm) = st.ready.pop_front() else {
                return;
            };
            st.ready_bytes -= qm.message.size() as u64;
            if st.ready.len() <= WINDOW_COUNT / 2 && self.congested.load(Ordering::Relaxed) {
                self.congested.store(false, Ordering::Release);
                self.drained.notify_waiters();
            }
            let consumer = &st.consumers[idx];
            let no_ack = consumer.no_ack;
            consumer.flow.on_dispatch(no_ack);
            let QueuedMessage {
                seq,
                message,
                redelivered,
                expires_at,
                disk,
            } = qm;
            let size = message.size() as u64;
            // The message moves into the delivery (no reference count
            // touched); a failed send hands it back.
            let sent = consumer.sink.send(ConnectionEvent::Deliver(Delivery {
                channel: consumer.channel,
                consumer: consumer.key,
                message,
                redelivered,
                seq,
                disk,
            }));
            if let Err(tokio::sync::mpsc::error::SendError(ConnectionEvent::Deliver(d))) = sent {
                // The connection is gone but hasn't unregistered yet: put
                // the message back and forget the consumer.
                if !no_ack {
                    consumer.flow.on_settled(1);
                }
                st.ready_bytes += d.message.size() as u64;
                st.ready.push_front(QueuedMessage {
                    seq,
                    message: d.message,
                    redelivered,
                    expires_at,
                    disk,
                });
                st.consumers.remove(idx);
                continue;
            }
            if redelivered {
                st.counters.redeliver += 1;
            }
            if no_ack {
                st.counters.deliver_no_ack += 1;
                // Settled on sending: the entry can go.
                st.forget(disk);
            } else {
                st.counters.deliver += 1;
                st.unacked += 1;
                st.unacked_bytes += size;
                if let (Some(d), Some(s)) = (disk, st.storage.as_mut()) {
                    s.index.delivered(d.pos);
                }
            }
            st.next_consumer = idx + 1;
        }
    }

    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<()> {
        let mut st = self.state.lock();
        if self.is_deleted() {
            return Err(AmqpError::not_found(format!(
                "no queue '{}' in vhost '{}'",
                self.name, self.vhost
            )));
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return Err(AmqpError::access_refused(format!(
                "{} in exclusive use",
                self.describe()
            )));
        }
        st.had_consumer = true;
        st.last_used = Instant::now();
        st.consumers.push(consumer);
        self.dispatch_locked(&mut st);
        self.finish(st);
        Ok(())
    }

    /// Removes one consumer. Returns true when an auto-delete queue has
    /// just lost its last consumer and should be deleted.
    pub fn remove_consumer(
        self: &Arc<Self>,
        connection_id: u64,
        channel: u16,
        tag: &ShortStr,
    ) -> bool {
        let mut st = self.state.lock();
        if let Some(i) = st
            .consumers
            .iter()
            .position(|c| c.connection_id == connection_id && c.channel == channel && c.tag == *tag)
        {
            let c = st.consumers.remove(i);
            c.flow.cancelled.store(true, Ordering::Relaxed);
            st.last_used = Instant::now();
            // With a single active consumer, the next one takes over.
            if i == 0 && self.limits.single_active_consumer {
                self.dispatch_locked(&mut st);
            }
        }
        let gone = self.options.auto_delete && st.had_consumer && st.consumers.is_empty();
        self.finish(st);
        gone
    }

    /// basic.get: the next ready message and how many remain after it.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        st.last_used = Instant::now();
        self.page_in(&mut st, false);
        self.expire_locked(&mut st, Instant::now());
        let got = st.ready.pop_front().map(|qm| {
            st.ready_bytes -= qm.message.size() as u64;
            if qm.redelivered {
                st.counters.redeliver += 1;
            }
            if no_ack {
                st.counters.get_no_ack += 1;
                st.forget(qm.disk);
            } else {
                st.counters.get += 1;
                st.unacked += 1;
                st.unacked_bytes += qm.message.size() as u64;
                if let (Some(d), Some(s)) = (qm.disk, st.storage.as_mut()) {
                    s.index.delivered(d.pos);
                }
            }
            let remaining = u32::try_from(st.ready_len()).unwrap_or(u32::MAX);
            (qm, remaining)
        });
        if got.is_none() {
            st.counters.get_empty += 1;
        }
        self.finish(st);
        got
    }

    /// Delivered messages were acked: `disks` are their index entries
    /// (`None` for messages that had none), `bytes` their body sizes.
    pub fn settle(self: &Arc<Self>, disks: &[Option<DiskRef>], bytes: u64) {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(disks.len() as u64);
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        st.counters.ack += disks.len() as u64;
        for d in disks {
            st.forget(*d);
        }
        // Acks free prefetch credit: messages may now flow.
        self.dispatch_locked(&mut st);
        self.finish(st);
    }

    /// Delivered messages rejected without requeue: settled, and
    /// dead-lettered if the queue has a dead-letter exchange.
    pub fn discard(self: &Arc<Self>, messages: Vec<(Arc<Message>, Option<DiskRef>)>) {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(messages.len() as u64);
        let bytes: u64 = messages.iter().map(|(m, _)| m.size() as u64).sum();
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        for (m, d) in messages {
            st.forget(d);
            st.dead.push((m, DeathReason::Rejected));
        }
        self.dispatch_locked(&mut st);
        self.finish(st);
    }

    /// Puts delivered messages back in their original places, marked
    /// redelivered, and dispatches them again.
    pub fn requeue(self: &Arc<Self>, items: Vec<Returned>) {
        self.put_back(items, true)
    }

    /// Puts back messages that were sent to a connection but never reached
    /// the client (its consumer or channel went away first). `counted`
    /// says whether they were counted as unacked (ack-mode deliveries).
    pub fn put_back(self: &Arc<Self>, mut items: Vec<Returned>, counted: bool) {
        let mut st = self.state.lock();
        if counted {
            st.unacked = st.unacked.saturating_sub(items.len() as u64);
            let bytes: u64 = items.iter().map(|(_, m, _)| m.size() as u64).sum();
            st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        }
        if self.is_deleted() {
            return;
        }
        items.sort_unstable_by_key(|(seq, _, _)| *seq);
        let now = Instant::now();
        // Usually every requeued message is older than every ready one:
        // push them on the front, newest first.
        for (seq, message, disk) in items.into_iter().rev() {
            st.ready_bytes += message.size() as u64;
            let qm = QueuedMessage {
                seq,
                expires_at: self.expiry_for(&message, now),
                message,
                redelivered: true,
                disk,
            };
            match st.ready.front() {
                Some(f) if f.seq < seq => {
                    let at = st.ready.partition_point(|m| m.seq < seq);
                    st.ready.insert(at, qm);
                }
                _ => st.ready.push_front(qm),
            }
        }
        self.dispatch_locked(&mut st);
        self.finish(st);
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready_len();
        let drained: Vec<_> = st.ready.drain(..).map(|m| m.disk).collect();
        for d in drained {
            st.forget(d);
        }
        st.ready_bytes = 0;
        if let Some(s) = st.storage.as_mut() {
            while s.tail_count > 0 {
                let batch = s.index.read(&mut s.cursor, 4096);
                if batch.is_empty() {
                    break;
                }
                for e in batch {
                    s.index.ack(e.disk);
                }
                s.tail_count = s.tail_count.saturating_sub(4096);
            }
            s.tail_count = 0;
            s.tail_bytes = 0;
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Marks the queue deleted and takes its consumers (to be told) and its
    /// ready message count.
    pub(crate) fn mark_deleted(&self) -> (Vec<Consumer>, u32) {
        let mut st = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        self.congested.store(false, Ordering::Release);
        self.drained.notify_waiters();
        let n = u32::try_from(st.ready_len()).unwrap_or(u32::MAX);
        st.ready.clear();
        st.ready_bytes = 0;
        if let Some(s) = st.storage.take() {
            s.index.destroy();
        }
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.flow.cancelled.store(true, Ordering::Relaxed);
        }
        (consumers, n)
    }
}

//! A classic queue: ready messages in priority lanes, the consumers
//! attached to it, and round-robin dispatch within each consumer's credit.
//!
//! All state sits behind one mutex per queue. Publishers enqueue and
//! dispatch under it from their own connection task; acks dispatch again
//! from the consumer's task. There is no task per queue and no global lock.
//!
//! Messages leave a queue early through TTL (`x-message-ttl`, the
//! `expiration` property), length limits (`x-max-length[-bytes]`) and
//! rejection; with a dead-letter exchange set they are then republished
//! there with an `x-death` history, after the queue's lock is released.
//! Limits come from the queue's arguments and its policies; a policy
//! change replaces them at runtime ([`Queue::set_limits`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use warren_protocol::ShortStr;

mod deadletter;
mod dispatch;
mod paging;
#[cfg(test)]
mod priority_tests;
mod ready;
mod returns;
mod setup;
#[cfg(test)]
mod tests;

pub use deadletter::DeadLetters;
pub(crate) use deadletter::{is_cycle, DeadBatch};
pub(crate) use ready::lane_dir;
pub use ready::{MAX_LANES, WINDOW_BYTES, WINDOW_COUNT};
pub use setup::*;

use crate::message::Message;
use crate::policy::{Applied, Target};
use crate::session::Consumer;
use crate::stats::QueueCounters;
use crate::store::index::DiskRef;
use crate::store::StorageHandle;
use ready::Ready;

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    /// The limits in force: the arguments', merged with the policies'.
    limits: QueueLimits,
    /// The policy and operator policy in force.
    applied: Applied,
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
    /// Message statistics, counted under this lock.
    counters: QueueCounters,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<u64>,
    /// The limits the queue's arguments set (policies add to them).
    arg_limits: QueueLimits,
    /// `None` when the broker runs without a data directory.
    storage: Option<StorageHandle>,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    /// Set once any message with a TTL arrives, so the sweeper can skip
    /// queues that can't have expired messages.
    has_ttl: AtomicBool,
    /// An `x-expires` (argument or policy) is in force: mirrors
    /// `limits.expires`, so the sweeper needn't lock every queue.
    has_expires: AtomicBool,
    /// Publishers were told to pause; `drained` wakes them.
    congested: AtomicBool,
    pub drained: tokio::sync::Notify,
    /// Message rates and the rates of change of its counts, as sampled.
    pub rates: QueueRates,
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
            storage,
            recovered,
        } = setup;
        let has_ttl = limits.message_ttl.is_some();
        let limits_expire = limits.expires.is_some();
        let mut ready = Ready::new(usize::from(limits.max_priority.unwrap_or(0)) + 1);
        let mut next_seq = 0;
        if let Some(rec) = recovered {
            next_seq = rec.next_seq;
            for (lane, index, found) in rec.lanes {
                if lane < ready.lane_count() {
                    ready.attach(lane, index, &found);
                }
            }
        }
        Queue {
            name,
            vhost,
            options,
            owner,
            arg_limits: limits.clone(),
            storage,
            state: Mutex::new(QueueState {
                ready,
                limits,
                applied: Applied::default(),
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                unacked_bytes: 0,
                next_seq,
                had_consumer: false,
                dead: Vec::new(),
                last_used: Instant::now(),
                counters: QueueCounters::default(),
            }),
            deleted: AtomicBool::new(false),
            has_ttl: AtomicBool::new(has_ttl),
            has_expires: AtomicBool::new(limits_expire),
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
            ready: st.ready.len(),
            unacked: st.unacked,
            consumers: st.consumers.len() as u32,
            ready_bytes: st.ready.bytes(),
            unacked_bytes: st.unacked_bytes,
        }
    }

    /// The message counters (publish, deliver, get, ack, redeliver).
    pub fn counters(&self) -> QueueCounters {
        self.state.lock().counters
    }

    /// The limits the queue's arguments set.
    pub fn argument_limits(&self) -> &QueueLimits {
        &self.arg_limits
    }

    /// The limits in force (arguments and policies).
    pub fn limits(&self) -> QueueLimits {
        self.state.lock().limits.clone()
    }

    /// Bytes of message bodies this queue holds in memory (ready ones).
    pub fn memory(&self) -> u64 {
        let st = self.state.lock();
        // The queue itself, plus bodies and a per-message overhead
        // (entry, Arc, header).
        let base = (std::mem::size_of::<Queue>() + std::mem::size_of::<QueueState>()) as u64;
        base + st.ready.mem_bytes() + st.ready.mem_len() as u64 * 128
    }

    /// RabbitMQ's description of a queue in error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// Marks the queue used now (declare, get, consume), for `x-expires`.
    pub fn touch(&self) {
        self.state.lock().last_used = Instant::now();
    }

    /// Whether the sweeper has anything to check here: expiring
    /// messages, or an idle-queue expiry (`x-expires`).
    pub fn needs_sweep(&self) -> bool {
        self.has_ttl.load(Ordering::Relaxed) || self.has_expires.load(Ordering::Relaxed)
    }

    /// True when an `x-expires` queue has been unused long enough.
    pub fn is_expired_unused(&self, now: Instant) -> bool {
        let st = self.state.lock();
        let Some(ms) = st.limits.expires else {
            return false;
        };
        st.consumers.is_empty()
            && now.saturating_duration_since(st.last_used).as_millis() >= u128::from(ms)
    }

    /// Releases the lock and hands back what the locked section removed
    /// for the dead-letter exchange (without one, the removed are dropped).
    fn finish(&self, mut st: MutexGuard<'_, QueueState>) -> DeadLetters {
        if st.dead.is_empty() {
            return DeadLetters::none();
        }
        let dead = std::mem::take(&mut st.dead);
        let target = st
            .limits
            .dead_letter_exchange
            .clone()
            .map(|exchange| deadletter::Target {
                exchange,
                routing_key: st.limits.dead_letter_routing_key.clone(),
            });
        drop(st);
        match target {
            Some(target) => self.dead_letters(&target, dead),
            None => DeadLetters::none(),
        }
    }

    fn expiry_for(&self, limits: &QueueLimits, message: &Message, now: Instant) -> Option<Instant> {
        let per_message = message.expiration_ms;
        let ttl = match (limits.message_ttl, per_message) {
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
    ) -> (PublishOutcome, DeadLetters) {
        let mut st = self.state.lock();
        if self.is_deleted() {
            let outcome = PublishOutcome::Enqueued {
                needs_sync: false,
                congested: false,
            };
            return (outcome, DeadLetters::none());
        }
        let size = message.size() as u64;
        if self.over_limit(&st, 1, size) {
            match st.limits.overflow {
                Overflow::RejectPublish => return (PublishOutcome::Rejected, DeadLetters::none()),
                Overflow::DropHead => self.drop_head_while(&mut st, 1, size),
            }
        }
        // x-max-length 0 keeps nothing, even after dropping every message.
        if st.limits.max_length == Some(0) {
            let outcome = match st.limits.overflow {
                Overflow::RejectPublish => PublishOutcome::Rejected,
                Overflow::DropHead => {
                    st.dead.push((message, DeathReason::MaxLen));
                    PublishOutcome::Enqueued {
                        needs_sync: false,
                        congested: false,
                    }
                }
            };
            return (outcome, self.finish(st));
        }
        // Reading the clock costs; only TTL'd messages need it.
        let now = (self.has_ttl.load(Ordering::Relaxed)
            || st.limits.message_ttl.is_some()
            || message.expiration_ms.is_some())
        .then(Instant::now);
        let expires_at = now.and_then(|n| self.expiry_for(&st.limits, &message, n));
        if expires_at.is_some() {
            self.has_ttl.store(true, Ordering::Relaxed);
        }
        let lane = st.ready.lane_for(message.priority);
        let persist = self.options.durable && message.is_persistent();
        let to_tail = st.ready.goes_to_tail(lane, size);
        let seq = st.next_seq;
        let disk = if persist || to_tail {
            self.write_disk(&mut st, lane, seq, &message, !persist)
        } else {
            None
        };
        let write_failed = (persist || to_tail) && self.storage.is_some() && disk.is_none();
        if write_failed && persist && durability == Durability::Required {
            // Nothing was enqueued: the sequence number is not used.
            return (PublishOutcome::Failed, self.finish(st));
        }
        st.next_seq += 1;
        st.counters.publish += 1;
        let needs_sync = persist && disk.is_some();
        match (to_tail, disk) {
            // Beyond the window: the message lives on disk only.
            (true, Some(d)) => st.ready.push_tail(lane, d),
            _ if st.ready.lane(lane).tail_count() > 0 => {
                // The lane has a tail but this message could not be
                // written: keep it in memory, in order, rather than drop it.
                st.ready.insert(
                    lane,
                    QueuedMessage {
                        seq,
                        message,
                        redelivered: false,
                        expires_at,
                        disk,
                    },
                );
            }
            _ => st.ready.push_back(
                lane,
                QueuedMessage {
                    seq,
                    message,
                    redelivered: false,
                    expires_at,
                    disk,
                },
            ),
        }
        self.dispatch_at(&mut st, now);
        if let Some(now) = now {
            // A TTL of 0 means "deliver now or never", as in RabbitMQ.
            self.expire_locked(&mut st, now);
        }
        let congested = st.ready.mem_len() >= WINDOW_COUNT
            && st
                .consumers
                .iter()
                .any(|c| c.flow.transit_blocked.load(Ordering::Relaxed));
        if congested {
            self.congested.store(true, Ordering::Release);
        }
        let outcome = PublishOutcome::Enqueued {
            needs_sync,
            congested,
        };
        (outcome, self.finish(st))
    }

    /// Whether `incoming` more messages of `incoming_bytes` would break a
    /// length limit (an empty queue always takes one).
    fn over_limit(&self, st: &QueueState, incoming: u64, incoming_bytes: u64) -> bool {
        let len = st.ready.len();
        let bytes = st.ready.bytes();
        st.limits
            .max_length
            .is_some_and(|max| len + incoming > max && len > 0)
            || st
                .limits
                .max_length_bytes
                .is_some_and(|max| bytes + incoming_bytes > max && len > 0)
    }

    /// `x-overflow: drop-head`: drops from the head (the highest priority
    /// first, as RabbitMQ's priority queue) until `incoming` more messages of `incoming_bytes`
    /// fit; the dropped are dead-lettered as `maxlen`.
    fn drop_head_while(&self, st: &mut QueueState, incoming: u64, incoming_bytes: u64) {
        while self.over_limit(st, incoming, incoming_bytes) {
            match self.take_head(st) {
                Some((_, m)) => {
                    st.ready.forget(m.disk);
                    st.dead.push((m.message, DeathReason::MaxLen));
                }
                None => break,
            }
        }
    }

    /// Takes the next message: the oldest of the highest non-empty lane,
    /// reading that lane's disk tail back as needed.
    fn take_head(&self, st: &mut QueueState) -> Option<(usize, QueuedMessage)> {
        loop {
            let lane = st.ready.head()?;
            // Keeps the lane's read-ahead topped up (reads when empty).
            self.page_in(st, lane, false);
            if let Some(m) = st.ready.pop_front(lane) {
                return Some((lane, m));
            }
            // Nothing readable came back; page_in shrank the tail, so the
            // loop ends.
        }
    }

    /// Removes expired messages from the head (RabbitMQ expires only at
    /// the head too: a long-lived message shields later short-lived ones;
    /// in a priority queue the head is the highest non-empty lane's).
    fn expire_locked(&self, st: &mut QueueState, now: Instant) {
        self.expire_head(st, |t| t <= now)
    }

    fn expire_head(&self, st: &mut QueueState, expired: impl Fn(Instant) -> bool) {
        loop {
            let Some(lane) = st.ready.head() else {
                return;
            };
            if st.ready.lane(lane).mem.is_empty() {
                self.page_in(st, lane, false);
            }
            if !st
                .ready
                .lane(lane)
                .mem
                .front()
                .is_some_and(|m| m.expires_at.is_some_and(&expired))
            {
                if st.ready.lane(lane).mem.is_empty() && st.ready.head() != Some(lane) {
                    // The tail proved unreadable: look at the next lane.
                    continue;
                }
                return;
            }
            if let Some(m) = st.ready.pop_front(lane) {
                st.ready.forget(m.disk);
                st.dead.push((m.message, DeathReason::Expired));
            }
        }
    }

    /// Called periodically: expires messages nobody is consuming.
    pub fn expire(&self, now: Instant) -> DeadLetters {
        if !self.has_ttl.load(Ordering::Relaxed) {
            return DeadLetters::none();
        }
        let mut st = self.state.lock();
        self.expire_locked(&mut st, now);
        self.finish(st)
    }

    /// basic.get: the next ready message and how many remain after it.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> (Option<(QueuedMessage, u32)>, DeadLetters) {
        let mut st = self.state.lock();
        st.last_used = Instant::now();
        self.expire_locked(&mut st, Instant::now());
        let got = self.take_head(&mut st).map(|(_, qm)| {
            if qm.redelivered {
                st.counters.redeliver += 1;
            }
            if no_ack {
                st.counters.get_no_ack += 1;
                st.ready.forget(qm.disk);
            } else {
                st.counters.get += 1;
                st.unacked += 1;
                st.unacked_bytes += qm.message.size() as u64;
                st.ready.delivered(qm.disk);
            }
            let remaining = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
            (qm, remaining)
        });
        if got.is_none() {
            st.counters.get_empty += 1;
        }
        (got, self.finish(st))
    }

    /// Delivered messages were acked: `disks` are their index entries
    /// (`None` for messages that had none), `bytes` their body sizes.
    pub fn settle(self: &Arc<Self>, disks: &[Option<DiskRef>], bytes: u64) -> DeadLetters {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(disks.len() as u64);
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        st.counters.ack += disks.len() as u64;
        for d in disks {
            st.ready.forget(*d);
        }
        // Acks free prefetch credit: messages may now flow.
        self.dispatch_locked(&mut st);
        self.finish(st)
    }

    /// Delivered messages rejected without requeue: settled, and
    /// dead-lettered if the queue has a dead-letter exchange.
    pub fn discard(
        self: &Arc<Self>,
        messages: Vec<(Arc<Message>, Option<DiskRef>)>,
    ) -> DeadLetters {
        let mut st = self.state.lock();
        Self::unacked_died(&mut st, messages, DeathReason::Rejected);
        self.dispatch_locked(&mut st);
        self.finish(st)
    }

    /// Delivered (unacked) messages that die rather than come back.
    fn unacked_died(
        st: &mut QueueState,
        messages: Vec<(Arc<Message>, Option<DiskRef>)>,
        reason: DeathReason,
    ) {
        st.unacked = st.unacked.saturating_sub(messages.len() as u64);
        let bytes: u64 = messages.iter().map(|(m, _)| m.size() as u64).sum();
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        for (m, d) in messages {
            st.ready.forget(d);
            st.dead.push((m, reason));
        }
    }

    /// Puts delivered messages back in their original places, marked
    /// redelivered, and dispatches them again: a consumer's requeue, or
    /// its channel closing with them unacked. A quorum queue counts the
    /// return (`returns.rs`).
    pub fn requeue(self: &Arc<Self>, items: Vec<Returned>) -> DeadLetters {
        if self.kind() == QueueKind::Quorum {
            return self.return_counted(items);
        }
        self.put_back(items, true)
    }

    /// Puts back messages that were sent to a connection but never reached
    /// the client (its consumer or channel went away first). `counted`
    /// says whether they were counted as unacked (ack-mode deliveries).
    /// Each goes back to its place by `seq` in its priority's lane.
    pub fn put_back(self: &Arc<Self>, items: Vec<Returned>, counted: bool) -> DeadLetters {
        let mut st = self.state.lock();
        if counted {
            st.unacked = st.unacked.saturating_sub(items.len() as u64);
            let bytes: u64 = items.iter().map(|(_, m, _)| m.size() as u64).sum();
            st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        }
        if self.is_deleted() {
            return DeadLetters::none();
        }
        self.reinsert(&mut st, items);
        self.dispatch_locked(&mut st);
        self.finish(st)
    }

    /// Returns messages to their places, marked redelivered.
    fn reinsert(&self, st: &mut QueueState, mut items: Vec<Returned>) {
        items.sort_unstable_by_key(|(seq, _, _)| *seq);
        let now = Instant::now();
        // Usually every requeued message is older than every ready one:
        // newest first, each lands on its lane's front.
        for (seq, message, disk) in items.into_iter().rev() {
            let lane = st.ready.lane_for(message.priority);
            let qm = QueuedMessage {
                seq,
                expires_at: self.expiry_for(&st.limits, &message, now),
                message,
                redelivered: true,
                disk,
            };
            st.ready.insert(lane, qm);
        }
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.purge();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// What policies match as: a quorum queue (served by the classic
    /// implementation) still matches `apply-to: quorum_queues`.
    pub fn policy_target(&self) -> Target {
        Target::Queue {
            quorum: self.kind() == QueueKind::Quorum,
        }
    }

    /// The queue's type, as declared (`x-queue-type`).
    pub fn kind(&self) -> QueueKind {
        match self
            .options
            .arguments
            .get("x-queue-type")
            .and_then(|v| v.as_bytes())
        {
            Some(b"quorum") => QueueKind::Quorum,
            _ => QueueKind::Classic,
        }
    }

    /// The policy and operator policy in force.
    pub fn applied_policies(&self) -> Applied {
        self.state.lock().applied.clone()
    }

    /// Puts policies in force: the limits become the arguments' merged
    /// with theirs, at once.
    pub fn apply_policies(self: &Arc<Self>, applied: Applied) -> DeadLetters {
        let limits = applied.queue_limits(&self.arg_limits, &self.options.arguments);
        self.state.lock().applied = applied;
        self.set_limits(limits)
    }

    /// Replaces the limits in force (a policy changed) and applies them
    /// at once: a lower length limit drops (or dead-letters) the excess
    /// from the head (drop-head only), a new TTL applies to messages arriving from now on
    /// and to those read back from disk, as RabbitMQ's.
    pub fn set_limits(self: &Arc<Self>, limits: QueueLimits) -> DeadLetters {
        let mut st = self.state.lock();
        if st.limits == limits {
            return DeadLetters::none();
        }
        if limits.message_ttl.is_some() {
            self.has_ttl.store(true, Ordering::Relaxed);
        }
        self.has_expires
            .store(limits.expires.is_some(), Ordering::Relaxed);
        if limits.expires != st.limits.expires {
            // A new expiry counts from now, as RabbitMQ restarts its timer.
            st.last_used = Instant::now();
        }
        st.limits = limits;
        // As RabbitMQ's `init_max_length`: with drop-head the excess goes
        // at once; with reject-publish the queue keeps it and refuses more.
        if st.limits.overflow == Overflow::DropHead && self.over_limit(&st, 0, 0) {
            self.drop_head_while(&mut st, 0, 0);
        }
        self.dispatch_locked(&mut st);
        self.finish(st)
    }

    /// Changes only the expiry in force (`x-expires`, ms), counting from
    /// now: an MQTT 5 DISCONNECT's new session expiry. Not kept across a
    /// restart (the declared arguments apply again then), and replaced
    /// when policies are applied again.
    pub fn set_expires(self: &Arc<Self>, ms: Option<u64>) -> DeadLetters {
        let mut limits = self.state.lock().limits.clone();
        limits.expires = ms;
        self.set_limits(limits)
    }

    /// Marks the queue deleted and takes its consumers (to be told) and its
    /// ready message count.
    pub(crate) fn mark_deleted(&self) -> (Vec<Consumer>, u32) {
        let mut st = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        self.congested.store(false, Ordering::Release);
        self.drained.notify_waiters();
        let n = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        let lanes = st.ready.lane_count();
        std::mem::replace(&mut st.ready, Ready::new(lanes)).destroy();
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.flow.cancelled.store(true, Ordering::Relaxed);
        }
        (consumers, n)
    }
}

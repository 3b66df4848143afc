//! A client session, whatever the protocol: an AMQP channel is one, an
//! MQTT connection is one. It owns what the delivery contract needs:
//!
//! - [`Consumers`]: the connection's consumers by key (tag, queue, credit),
//!   with retire and give-back for deliveries that arrive after a cancel
//!   (one registry per connection, shared by its sessions);
//! - [`Session`]: per session, its consumers (tag → key), delivery tags,
//!   the unacknowledged deliveries ([`UnackedList`]), the session-wide
//!   prefetch ([`ChannelFlow`]), and settlement: ack, reject/discard
//!   (dead-lettering), requeue, recover;
//! - [`credit`]: the lock-free credit a queue checks before it delivers;
//! - [`events`]: what queues and the committer send to a connection,
//!   naming consumers by key;
//! - [`PublishChecks`]: what every front-end checks before a message
//!   enters `VirtualHost::publish` (write permission cached per epoch,
//!   topic permission, internal exchange, `user_id`, `expiration`);
//! - [`Deferred`]: replies that wait for the group commit (publisher
//!   confirms, tx.commit-ok, MQTT's PUBACK), in order.
//!
//! A front-end maps its protocol onto these calls (basic.ack or PUBACK →
//! [`Session::ack`]) and turns [`Delivered`] into its frames; it keeps no
//! delivery bookkeeping of its own.

mod checks;
mod confirms;
mod consumers;
pub mod credit;
pub mod events;
mod unacked;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ahash::AHashMap;
use warren_protocol::ShortStr;

pub use checks::PublishChecks;
pub use confirms::Deferred;
pub use consumers::{ConsumerEntry, Consumers};
pub use credit::{ChannelFlow, Consumer, ConsumerFlow, MAX_IN_TRANSIT};
pub use events::{ConnectionEvent, Delivery, EventReceiver, EventSender};
pub use unacked::{Unacked, UnackedList};

use crate::queue::{Queue, QueuedMessage};
use crate::vhost::VirtualHost;

/// A delivery as the client will see it (borrowing the consumer's tag
/// from the registry: no reference count is touched per delivery).
#[derive(Debug)]
pub struct Delivered<'a> {
    /// The session's delivery tag (AMQP's; MQTT maps packet ids onto it).
    pub tag: u64,
    /// The consumer it is for.
    pub consumer_tag: &'a ShortStr,
    /// Sent without acknowledgement (settled already).
    pub no_ack: bool,
}

/// One session's consumers, delivery tags and unacknowledged deliveries.
#[derive(Debug)]
pub struct Session {
    /// Its consumers: tag → key in the connection's [`Consumers`].
    consumers: AHashMap<ShortStr, u64>,
    unacked: UnackedList,
    next_tag: u64,
    flow: Arc<ChannelFlow>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            consumers: AHashMap::new(),
            unacked: UnackedList::default(),
            next_tag: 1,
            flow: Arc::new(ChannelFlow::default()),
        }
    }
}

impl Session {
    /// The session-wide credit (AMQP's basic.qos global), shared by its
    /// consumers' flows.
    pub fn flow(&self) -> &Arc<ChannelFlow> {
        &self.flow
    }

    pub fn consumer_key(&self, tag: &ShortStr) -> Option<u64> {
        self.consumers.get(tag).copied()
    }

    pub fn has_consumer(&self, tag: &ShortStr) -> bool {
        self.consumers.contains_key(tag)
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn consumer_tags(&self) -> Vec<ShortStr> {
        self.consumers.keys().cloned().collect()
    }

    /// Records a consumer registered in the connection's registry.
    pub fn add_consumer(&mut self, tag: ShortStr, key: u64) {
        self.consumers.insert(tag, key);
    }

    pub fn remove_consumer(&mut self, tag: &ShortStr) -> Option<u64> {
        self.consumers.remove(tag)
    }

    /// Outstanding deliveries.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Whether the oldest outstanding delivery is older than `timeout`.
    pub fn unacked_overdue(
        &mut self,
        now: std::time::Instant,
        timeout: std::time::Duration,
    ) -> bool {
        self.unacked.overdue(now, timeout)
    }

    /// Takes a delivery pushed by a queue for one of this session's
    /// consumers: its tag, recorded as unacknowledged unless sent without
    /// ack. `None` when it can't be delivered (its consumer was cancelled,
    /// or `open` is false because the session is closing): it has then
    /// gone back to its queue, in place.
    pub fn deliver<'c>(
        &mut self,
        consumers: &'c mut Consumers,
        vhost: &VirtualHost,
        d: Delivery,
        open: bool,
    ) -> Option<(Delivered<'c>, Delivery)> {
        let e = consumers.handled(d.consumer)?;
        if !open || e.retired {
            e.give_back(d, vhost);
            return None;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        if !e.no_ack {
            if let Some(q) = &e.queue {
                self.unacked.push(Unacked {
                    tag,
                    queue: q.clone(),
                    seq: d.seq,
                    message: d.message.clone(),
                    flow: Some(e.flow.clone()),
                    disk: d.disk,
                });
            }
        }
        let delivered = Delivered {
            tag,
            consumer_tag: &e.tag,
            no_ack: e.no_ack,
        };
        Some((delivered, d))
    }

    /// A message taken by a get (no consumer): its tag, recorded as
    /// unacknowledged unless taken without ack.
    pub fn got(&mut self, q: Arc<Queue>, m: &QueuedMessage, no_ack: bool) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        if !no_ack {
            self.unacked.push(Unacked {
                tag,
                queue: q,
                seq: m.seq,
                message: m.message.clone(),
                flow: None,
                disk: m.disk,
            });
        }
        tag
    }

    /// Takes the deliveries an ack or reject names (`multiple`: every
    /// one up to `tag`); `None` for an unknown tag.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        self.unacked.take(tag, multiple)
    }

    /// Takes every outstanding delivery.
    pub fn take_all(&mut self) -> Vec<Unacked> {
        self.unacked.take_all()
    }

    /// Puts taken deliveries back as outstanding (a transaction that
    /// could not commit).
    pub fn restore(&mut self, back: Vec<Unacked>) {
        self.unacked.restore(back)
    }

    /// Acknowledged: settled in their queues; credit comes back.
    pub fn ack(&self, consumers: &Consumers, vhost: &VirtualHost, items: Vec<Unacked>) {
        release(&items);
        for (q, group) in group_by_queue(items) {
            let disks: Vec<_> = group.iter().map(|u| u.disk).collect();
            let bytes = group.iter().map(|u| u.message.size() as u64).sum();
            vhost.dead_letter(q.settle(&disks, bytes));
        }
        self.kick_if_global(consumers, vhost);
    }

    /// Rejected without requeue: settled, and dead-lettered where the
    /// queue says so.
    pub fn discard(&self, consumers: &Consumers, vhost: &VirtualHost, items: Vec<Unacked>) {
        release(&items);
        for (q, group) in group_by_queue(items) {
            vhost.dead_letter(q.discard(group.into_iter().map(|u| (u.message, u.disk)).collect()));
        }
        self.kick_if_global(consumers, vhost);
    }

    /// Back to their queues, in place, marked redelivered.
    pub fn requeue(&self, consumers: &Consumers, vhost: &VirtualHost, items: Vec<Unacked>) {
        release(&items);
        for (q, group) in group_by_queue(items) {
            let back = group
                .into_iter()
                .map(|u| (u.seq, u.message, u.disk))
                .collect();
            vhost.dead_letter(q.requeue(back));
        }
        self.kick_if_global(consumers, vhost);
    }

    /// With a session-wide prefetch, credit freed by one queue's ack may
    /// let another queue deliver.
    /// Only when a queue stopped for want of a place in the window (not
    /// on every ack: that would be a dispatch per queue per ack).
    fn kick_if_global(&self, consumers: &Consumers, vhost: &VirtualHost) {
        if self.flow.prefetch.load(Ordering::Relaxed) != 0 && self.flow.take_blocked() {
            self.kick_queues(consumers, vhost);
        }
    }

    /// Frees a place taken with [`ChannelFlow::try_take`] (a delivery
    /// that came from no queue was acknowledged).
    pub fn free_place(&self, consumers: &Consumers, vhost: &VirtualHost) {
        self.flow.free(1);
        self.kick_if_global(consumers, vhost);
    }

    /// Asks every queue this session consumes from to dispatch.
    pub fn kick_queues(&self, consumers: &Consumers, vhost: &VirtualHost) {
        for key in self.consumers.values() {
            if let Some(q) = consumers.get(*key).and_then(|e| e.queue.as_ref()) {
                vhost.dead_letter(q.dispatch());
            }
        }
    }
}

/// Their consumers' credit comes back.
fn release(items: &[Unacked]) {
    for u in items {
        if let Some(f) = &u.flow {
            f.on_settled(1);
        }
    }
}

fn group_by_queue(items: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<Unacked>)> {
    let mut groups: Vec<(Arc<Queue>, Vec<Unacked>)> = Vec::new();
    for u in items {
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, g)) => g.push(u),
            None => groups.push((u.queue.clone(), vec![u])),
        }
    }
    groups
}

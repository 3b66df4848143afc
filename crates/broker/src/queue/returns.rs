//! Quorum queues count the returns of each message, as RabbitMQ's do: a
//! message that comes back (basic.reject or basic.nack with requeue, or
//! its channel closed while it was unacked) carries the count in its
//! `x-delivery-count` header on every redelivery, and one returned more
//! times than the queue's delivery limit (`x-delivery-limit`, or a
//! policy's `delivery-limit`) is dead-lettered with reason
//! `delivery_limit`, or dropped without a dead-letter exchange.
//!
//! The count travels in the message itself: nothing is added to a
//! delivery on its way out or to the sessions, and the properties are
//! rewritten only on a return, only for quorum queues. The copy on disk
//! keeps the properties it was published with, so a restart (or a
//! message read back after paging out) counts again from there; the
//! replicated quorum queues of issue 22 keep the count in their log.

use std::sync::{Arc, OnceLock};

use warren_protocol::FieldValue;

use super::{DeadLetters, DeathReason, Queue, Returned};
use crate::message::Message;

/// The header RabbitMQ's quorum queues set on a redelivery.
pub(crate) const DELIVERY_COUNT: &str = "x-delivery-count";

/// How many times `m` was returned so far (0 for a first delivery).
pub(crate) fn delivery_count(m: &Message) -> u64 {
    m.headers
        .as_deref()
        .and_then(|h| h.get(DELIVERY_COUNT))
        .and_then(FieldValue::as_i64)
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// `m` with `x-delivery-count: count`; the body and the place in the
/// message store are shared, not copied.
pub(crate) fn with_delivery_count(m: &Message, count: u64) -> Message {
    let mut props = m.properties();
    let mut headers = props.headers.take().unwrap_or_default();
    headers.insert(
        DELIVERY_COUNT,
        FieldValue::I64(i64::try_from(count).unwrap_or(i64::MAX)),
    );
    props.headers = Some(headers);
    let mut raw = bytes::BytesMut::new();
    props.encode(&mut raw);
    let mut out = Message::new(
        m.exchange.clone(),
        m.routing_key.clone(),
        props,
        raw.freeze(),
        m.body.clone(),
    );
    // Keeps the priority a priority queue capped and the store record.
    out.priority = m.priority;
    out.location = match m.location.get() {
        Some(l) => OnceLock::from(*l),
        None => OnceLock::new(),
    };
    out
}

impl Queue {
    /// A quorum queue's requeue: each message counted, and those over the
    /// delivery limit dead.
    pub(super) fn return_counted(self: &Arc<Self>, items: Vec<Returned>) -> DeadLetters {
        let limit = self.state.lock().limits.delivery_limit;
        let mut back = Vec::with_capacity(items.len());
        let mut over = Vec::new();
        // Rewritten outside the queue's lock.
        for (seq, message, disk) in items {
            let count = delivery_count(&message).saturating_add(1);
            let message = Arc::new(with_delivery_count(&message, count));
            if limit.is_some_and(|l| count > l) {
                over.push((message, disk));
            } else {
                back.push((seq, message, disk));
            }
        }
        let mut st = self.state.lock();
        let bytes: u64 = back.iter().map(|(_, m, _)| m.size() as u64).sum();
        st.unacked = st.unacked.saturating_sub(back.len() as u64);
        st.unacked_bytes = st.unacked_bytes.saturating_sub(bytes);
        if self.is_deleted() {
            return DeadLetters::none();
        }
        Self::unacked_died(&mut st, over, DeathReason::DeliveryLimit);
        self.reinsert(&mut st, back);
        self.dispatch_locked(&mut st);
        self.finish(st)
    }
}

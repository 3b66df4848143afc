//! Dead-lettering: messages a queue removes (rejected, expired, over
//! its length limit) republished to its dead-letter exchange with an
//! `x-death` history, as RabbitMQ does.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use warren_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::{DeathReason, Queue};
use crate::message::Message;

/// Where a queue's dead letters go, as its limits said when they died.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) exchange: ShortStr,
    pub(super) routing_key: Option<ShortStr>,
}

/// Messages a queue removed (rejected, expired, over its length limit)
/// while it has a dead-letter exchange, already rewritten with their
/// `x-death` history. A queue never routes them itself: it hands them
/// back to its caller, who passes them to
/// [`VirtualHost::dead_letter`](crate::VirtualHost::dead_letter).
/// Empty (no allocation) when nothing died, the common case.
#[must_use = "dead letters are lost unless passed to VirtualHost::dead_letter"]
#[derive(Debug, Default)]
pub struct DeadLetters(Option<Box<DeadBatch>>);

#[derive(Debug)]
pub(crate) struct DeadBatch {
    /// The dead-letter exchange.
    pub(crate) exchange: ShortStr,
    pub(crate) items: Vec<(Arc<Message>, DeathReason)>,
}

impl DeadLetters {
    /// Nothing died.
    pub fn none() -> Self {
        DeadLetters(None)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many messages died.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.items.len())
    }

    /// The batch, for the vhost to route.
    pub(crate) fn into_batch(self) -> Option<Box<DeadBatch>> {
        self.0
    }
}

/// The cycle guard (RabbitMQ's rule): a message that already died in
/// `target` with no rejection on the way is dropped instead of going
/// round forever. `reason` is why it died last.
pub(crate) fn is_cycle(message: &Message, reason: DeathReason, target: &ShortStr) -> bool {
    reason != DeathReason::Rejected && died_in(message, target) && !was_rejected(message)
}

impl Queue {
    /// Rewrites removed messages for the dead-letter exchange (with an
    /// updated `x-death` history), outside the queue's lock.
    pub(super) fn dead_letters(
        &self,
        target: &Target,
        dead: Vec<(Arc<Message>, DeathReason)>,
    ) -> DeadLetters {
        let items = dead
            .into_iter()
            .map(|(m, reason)| (Arc::new(self.dead_lettered(&m, reason, target)), reason))
            .collect();
        DeadLetters(Some(Box::new(DeadBatch {
            exchange: target.exchange.clone(),
            items,
        })))
    }

    fn dead_lettered(&self, m: &Message, reason: DeathReason, target: &Target) -> Message {
        let mut props: BasicProperties = m.properties();
        let mut headers = props.headers.take().unwrap_or_default();
        let original_expiration = props.expiration.take();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut deaths: Vec<FieldValue> = match headers.get("x-death") {
            Some(FieldValue::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let same = |t: &FieldTable| {
            t.get("queue").and_then(|v| v.as_bytes()) == Some(self.name.as_bytes())
                && t.get("reason").and_then(|v| v.as_bytes()) == Some(reason.as_str().as_bytes())
        };
        let existing = deaths
            .iter()
            .position(|d| matches!(d, FieldValue::Table(t) if same(t)));
        let entry = match existing.map(|i| deaths.remove(i)) {
            Some(FieldValue::Table(mut t)) => {
                let count = t.get("count").and_then(|v| v.as_i64()).unwrap_or(0);
                t.insert("count", FieldValue::I64(count + 1));
                t.insert("time", FieldValue::Timestamp(now));
                t
            }
            _ => {
                let s = |b: &[u8]| FieldValue::LongStr(Bytes::copy_from_slice(b));
                let mut t = FieldTable::new();
                t.insert("count", FieldValue::I64(1));
                t.insert("reason", s(reason.as_str().as_bytes()));
                t.insert("queue", s(self.name.as_bytes()));
                t.insert("time", FieldValue::Timestamp(now));
                t.insert("exchange", s(m.exchange.as_bytes()));
                t.insert(
                    "routing-keys",
                    FieldValue::Array(vec![s(m.routing_key.as_bytes())]),
                );
                if let Some(e) = &original_expiration {
                    t.insert("original-expiration", s(e.as_bytes()));
                }
                t
            }
        };
        deaths.insert(0, FieldValue::Table(entry));
        if headers.get("x-first-death-reason").is_none() {
            let s = |b: &[u8]| FieldValue::LongStr(Bytes::copy_from_slice(b));
            headers.insert("x-first-death-reason", s(reason.as_str().as_bytes()));
            headers.insert("x-first-death-queue", s(self.name.as_bytes()));
            headers.insert("x-first-death-exchange", s(m.exchange.as_bytes()));
        }
        headers.insert("x-death", FieldValue::Array(deaths));
        props.headers = Some(headers);
        let mut raw = bytes::BytesMut::new();
        props.encode(&mut raw);
        Message::new(
            target.exchange.clone(),
            target
                .routing_key
                .clone()
                .unwrap_or_else(|| m.routing_key.clone()),
            props,
            raw.freeze(),
            m.body.clone(),
        )
    }
}

fn deaths(m: &Message) -> impl Iterator<Item = &FieldTable> {
    let arr: &[FieldValue] = match m.headers.as_deref().and_then(|h| h.get("x-death")) {
        Some(FieldValue::Array(a)) => a,
        _ => &[],
    };
    arr.iter().filter_map(|v| match v {
        FieldValue::Table(t) => Some(t),
        _ => None,
    })
}

fn died_in(m: &Message, queue: &ShortStr) -> bool {
    deaths(m).any(|t| t.get("queue").and_then(|v| v.as_bytes()) == Some(queue.as_bytes()))
}

fn was_rejected(m: &Message) -> bool {
    deaths(m).any(|t| t.get("reason").and_then(|v| v.as_bytes()) == Some(b"rejected"))
}

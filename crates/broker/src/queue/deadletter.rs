//! Dead-lettering: messages a queue removes (rejected, expired, over
//! its length limit) republished to its dead-letter exchange with an
//! `x-death` history, as RabbitMQ does.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use warren_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::{DeathReason, Durability, Queue};
use crate::message::Message;

/// Where a queue's dead letters go, as its limits said when they died.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) exchange: ShortStr,
    pub(super) routing_key: Option<ShortStr>,
}

impl Queue {
    /// Republishes removed messages to the dead-letter exchange with an
    /// updated `x-death` history.
    pub(super) fn dead_letter(
        self: &Arc<Self>,
        target: &Target,
        dead: Vec<(Arc<Message>, DeathReason)>,
    ) {
        let dlx = &target.exchange;
        let Some(vhost) = self.vhost_ref.upgrade() else {
            return;
        };
        // A missing dead-letter exchange drops the messages, as RabbitMQ.
        let Ok(exchange) = vhost.exchange(dlx) else {
            return;
        };
        let mut targets = Vec::new();
        for (message, reason) in dead {
            let dl = Arc::new(self.dead_lettered(&message, reason, target));
            targets.clear();
            if vhost
                .hold_delayed(&exchange, &dl, Durability::BestEffort)
                .is_some()
            {
                continue;
            }
            vhost.route(&exchange, &dl, &mut targets);
            for q in targets.drain(..) {
                // Cycle guard (RabbitMQ's rule): a message that already died
                // in the target queue, with no rejection on the way, is
                // dropped instead of going round forever.
                if reason != DeathReason::Rejected && died_in(&dl, &q.name) && !was_rejected(&dl) {
                    continue;
                }
                // Nobody is told of a dead-lettered message: if it can't be
                // written it stays in memory rather than vanish.
                q.publish(dl.clone(), Durability::BestEffort);
            }
        }
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

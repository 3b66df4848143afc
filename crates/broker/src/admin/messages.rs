//! Messages handled by an operator rather than a client: publishing from
//! the management UI, getting (peeking at) a queue's head, purging, and
//! moving a queue's messages to another queue (the dead-letter replay
//! people ask RabbitMQ for).
//!
//! Each takes the same paths as AMQP: routing through the vhost,
//! `Queue::publish`, `Queue::get`, and the group commit, with AMQP's
//! exclusivity rule (taking from another connection's exclusive queue is
//! refused with 405 RESOURCE_LOCKED; putting into one is allowed, as
//! basic.publish). Nothing is reported done before it is on disk: a
//! publish returns once the commit covering it is durable (as RabbitMQ's
//! HTTP publish waits for its confirm); a get that removes messages, a
//! purge and a move return once the ack marks of what they removed are
//! synced (the commit of a [`Committer::issue_with_marks`] ticket); and a
//! move acknowledges a message in the source only once its copy in the
//! destination is durable, so a crash in between leaves a message in both
//! queues, never in neither.
//!
//! [`Committer::issue_with_marks`]: crate::store::Committer::issue_with_marks

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_protocol::{BasicProperties, ShortStr};

use super::{Admin, AdminError, AdminResult};
use crate::message::Message;
use crate::queue::{Durability, Queue, QueuedMessage};
use crate::stats::Metric;
use crate::store::Ticket;
use crate::vhost::{Origin, RouteCache, Routed, VirtualHost};

/// What `get` does with the messages it takes, RabbitMQ's `ackmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMode {
    /// Put back, marked redelivered (`ack_requeue_true`, `reject_requeue_true`).
    Requeue,
    /// Removed (`ack_requeue_false`).
    Ack,
    /// Removed and dead-lettered where configured (`reject_requeue_false`).
    Reject,
}

impl GetMode {
    /// Parses RabbitMQ's `ackmode` values.
    pub fn parse(ackmode: &str) -> Option<GetMode> {
        match ackmode {
            "ack_requeue_true" | "reject_requeue_true" => Some(GetMode::Requeue),
            "ack_requeue_false" => Some(GetMode::Ack),
            "reject_requeue_false" => Some(GetMode::Reject),
            _ => None,
        }
    }
}

/// One message `get` returned.
#[derive(Debug, Clone)]
pub struct GotMessage {
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// Ready messages left after this one was taken.
    pub message_count: u32,
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// The most messages one `move_messages` call takes per commit.
const MOVE_BATCH: usize = 1000;

/// A get stops taking messages once their bodies reach this many bytes
/// (it always takes one): the answer holds them all, and JSON (base64,
/// escapes) makes them bigger still.
pub const GET_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The connection an operator acts as: none (connection ids start at 1),
/// so another connection's exclusive queue is locked to it, as to any
/// AMQP client but its owner.
const NO_CONNECTION: u64 = 0;

impl Admin {
    fn queue_arc(&self, vhost: &VirtualHost, name: &str) -> AdminResult<Arc<Queue>> {
        vhost
            .queue(&ShortStr::from(name))
            .map_err(|_| AdminError::NoSuchQueue {
                vhost: vhost.name.clone(),
                name: name.to_string(),
            })
    }

    /// A queue messages are taken from (get, move's source, purge): as
    /// basic.get and queue.purge, refused with 405 RESOURCE_LOCKED when it
    /// is another connection's exclusive queue.
    fn queue_to_take_from(&self, vhost: &VirtualHost, name: &str) -> AdminResult<Arc<Queue>> {
        let q = self.queue_arc(vhost, name)?;
        vhost.check_exclusive(&q, NO_CONNECTION)?;
        Ok(q)
    }

    /// Publishes one message as basic.publish to `exchange` would, and
    /// returns once it is durable. `Ok(true)` if it reached a queue.
    pub async fn publish(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        body: Bytes,
    ) -> AdminResult<bool> {
        let v = self.vhost(vhost)?;
        let x = v.exchange(&ShortStr::from(exchange))?;
        if let Err(e) = crate::session::PublishChecks::exchange(&x) {
            return Err(AdminError::Refused {
                code: e.code,
                text: e.text,
            });
        }
        if routing_key.len() > ShortStr::MAX_LEN {
            return Err(AdminError::invalid("routing_key is longer than 255 bytes"));
        }
        let routing_key = ShortStr::from(routing_key);
        let mut raw = BytesMut::new();
        properties.encode(&mut raw);
        let message = Arc::new(Message::new(
            x.name.clone(),
            routing_key,
            properties,
            raw.freeze(),
            body,
        ));
        let out = v.publish(
            &x,
            &message,
            Origin::Client,
            Durability::Required,
            &mut RouteCache::default(),
        );
        let routed = out.is_routed();
        x.counters.add(Metric::PublishIn, 1);
        // Counted as RabbitMQ counts its internal channel: a publish with
        // a confirm.
        self.broker.count_direct(vhost, Metric::Publish, 1);
        self.broker.count_direct(vhost, Metric::Confirm, 1);
        // A held message goes out when it fires.
        if out.routed == Routed::Queues {
            x.counters.add(Metric::PublishOut, 1);
        } else {
            self.broker.count_direct(vhost, Metric::DropUnroutable, 1);
        }
        if out.failed {
            return Err(storage_failed());
        }
        wait_durable(&v, v.issue_ticket()).await?;
        if out.rejected {
            // A queue refused it (`x-overflow: reject-publish`): RabbitMQ's
            // internal channel gets a nack, and the API says so.
            return Err(AdminError::invalid(
                "rejected Unable to publish message. Check queue limits.",
            ));
        }
        Ok(routed)
    }

    /// Takes up to `count` messages from the head of a queue (fewer once
    /// [`GET_MAX_BYTES`] of bodies are taken) and then requeues,
    /// acknowledges or rejects them as `mode` says.
    pub async fn get_messages(
        &self,
        vhost: &str,
        queue: &str,
        count: usize,
        mode: GetMode,
    ) -> AdminResult<Vec<GotMessage>> {
        let v = self.vhost(vhost)?;
        let q = self.queue_to_take_from(&v, queue)?;
        let mut taken: Vec<QueuedMessage> = Vec::new();
        let mut out = Vec::new();
        // Taking for good is a get without ack (RabbitMQ counts it so);
        // the others are gets to be settled after.
        let auto_ack = mode == GetMode::Ack;
        let mut bytes = 0u64;
        while taken.len() < count && bytes < GET_MAX_BYTES {
            let (got, dead) = q.get(auto_ack);
            v.dead_letter(dead);
            let Some((qm, remaining)) = got else {
                self.broker.count_direct(vhost, Metric::GetEmpty, 1);
                break;
            };
            let counted = if auto_ack {
                Metric::GetNoAck
            } else {
                Metric::Get
            };
            self.broker.count_direct(vhost, counted, 1);
            if qm.redelivered {
                self.broker.count_direct(vhost, Metric::Redeliver, 1);
            }
            out.push(GotMessage {
                exchange: qm.message.exchange.to_string(),
                routing_key: qm.message.routing_key.to_string(),
                redelivered: qm.redelivered,
                message_count: remaining,
                properties: qm.message.properties(),
                body: qm.message.body.clone(),
            });
            bytes += qm.message.body.len() as u64;
            taken.push(qm);
        }
        match mode {
            GetMode::Requeue => {
                v.dead_letter(q.requeue(returned(taken)));
            }
            GetMode::Ack => {
                // Taken with auto-ack: their ack marks must be on disk
                // before we answer, so that a message reported gone stays
                // gone after a crash.
                wait_durable(&v, self.marks_ticket(&v)).await?;
            }
            GetMode::Reject => {
                v.dead_letter(q.discard(taken.into_iter().map(|m| (m.message, m.disk)).collect()));
                // The dead letters' copies and the ack marks alike.
                wait_durable(&v, self.marks_ticket(&v)).await?;
            }
        }
        Ok(out)
    }

    /// Moves every message ready in `source` now to `destination` (same
    /// vhost), in order, keeping their properties and bodies; returns how
    /// many moved. Each batch is durable in the destination before it is
    /// acknowledged in the source. Stops early (keeping the rest in the
    /// source) if the destination refuses a message (its length limit).
    pub async fn move_messages(
        &self,
        vhost: &str,
        source: &str,
        destination: &str,
    ) -> AdminResult<u64> {
        let v = self.vhost(vhost)?;
        let src = self.queue_to_take_from(&v, source)?;
        // Putting messages in is a publish, which AMQP allows into any
        // queue, exclusive or not.
        let dst = self.queue_arc(&v, destination)?;
        if Arc::ptr_eq(&src, &dst) {
            return Err(AdminError::invalid(
                "the destination queue must differ from the source",
            ));
        }
        // Only what is there now: messages published meanwhile stay.
        let mut left = src.stats().ready;
        let mut moved = 0u64;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(MOVE_BATCH);
            let mut batch = Vec::with_capacity(want);
            while batch.len() < want {
                let (got, dead) = src.get(false);
                v.dead_letter(dead);
                match got {
                    Some((qm, _)) => batch.push(qm),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            left = left.saturating_sub(batch.len() as u64);
            let mut accepted = batch.len();
            for (i, qm) in batch.iter().enumerate() {
                let out = v.enqueue(&dst, &qm.message, Durability::Required);
                if out.rejected || out.failed {
                    accepted = i;
                    break;
                }
            }
            let durable = wait_durable(&v, v.issue_ticket()).await;
            let rest = batch.split_off(accepted);
            if durable.is_err() {
                // Not known to be in the destination: everything stays in
                // the source (the destination may then hold copies).
                batch.extend(rest);
                v.dead_letter(src.requeue(returned(batch)));
                return durable.map(|_| moved);
            }
            let disks: Vec<_> = batch.iter().map(|m| m.disk).collect();
            v.dead_letter(src.settle(&disks, body_bytes(&batch)));
            moved += batch.len() as u64;
            if !rest.is_empty() {
                v.dead_letter(src.requeue(returned(rest)));
                break;
            }
        }
        // The acks in the source are durable too before we say done (the
        // marks files are synced with this commit, not on their period).
        wait_durable(&v, self.marks_ticket(&v)).await?;
        Ok(moved)
    }

    /// Drops a queue's ready messages and returns how many, once their
    /// removal is durable (a purge reported done stays done after a
    /// crash).
    pub async fn purge_durably(&self, vhost: &str, name: &str) -> AdminResult<u32> {
        let v = self.vhost(vhost)?;
        let n = self.queue_to_take_from(&v, name)?.purge();
        wait_durable(&v, self.marks_ticket(&v)).await?;
        Ok(n)
    }

    /// A commit ticket that covers the ack marks written so far as well
    /// as every durable write (ack marks are otherwise synced only every
    /// 200 ms: nobody waits for them on the AMQP path).
    pub(super) fn marks_ticket(&self, v: &VirtualHost) -> Ticket {
        match self.broker.persistence() {
            Some(p) => p.committer.issue_with_marks(),
            None => v.issue_ticket(),
        }
    }
}

/// Taken messages as handed back to their queue.
fn returned(taken: Vec<QueuedMessage>) -> Vec<crate::queue::Returned> {
    taken
        .into_iter()
        .map(|m| (m.seq, m.message, m.disk))
        .collect()
}

fn body_bytes(messages: &[QueuedMessage]) -> u64 {
    messages.iter().map(|m| m.message.size() as u64).sum()
}

fn storage_failed() -> AdminError {
    AdminError::Storage {
        message: "the message store could not write the message".into(),
    }
}

/// Waits until the group commit covering `ticket` is done; an error if
/// that commit failed.
async fn wait_durable(v: &VirtualHost, ticket: Ticket) -> AdminResult<()> {
    if ticket == 0 {
        return Ok(());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    v.notify_commit(ticket, Once(parking_lot::Mutex::new(Some(tx))));
    if rx.await.is_err() {
        return Err(storage_failed());
    }
    if v.ticket_failed(ticket) {
        return Err(storage_failed());
    }
    Ok(())
}

/// As [`wait_durable`], for a caller on a blocking thread (the control
/// socket's requests run there).
pub(super) fn wait_durable_blocking(v: &VirtualHost, ticket: Ticket) -> AdminResult<()> {
    if ticket == 0 {
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    v.notify_commit(ticket, OnceBlocking(parking_lot::Mutex::new(Some(tx))));
    if rx.recv().is_err() || v.ticket_failed(ticket) {
        return Err(storage_failed());
    }
    Ok(())
}

/// Hears of one commit, for a blocking waiter.
struct OnceBlocking(parking_lot::Mutex<Option<std::sync::mpsc::SyncSender<Ticket>>>);

impl crate::store::CommitSink for OnceBlocking {
    fn committed(&self, ticket: Ticket) -> bool {
        self.0
            .lock()
            .take()
            .is_some_and(|tx| tx.send(ticket).is_ok())
    }
}

/// Hears of one commit.
struct Once(parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<Ticket>>>);

impl crate::store::CommitSink for Once {
    fn committed(&self, ticket: Ticket) -> bool {
        self.0
            .lock()
            .take()
            .is_some_and(|tx| tx.send(ticket).is_ok())
    }
}

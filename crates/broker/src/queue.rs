//! A classic queue: ready messages in order, the consumers attached to it,
//! and round-robin dispatch within each consumer's credit.
//!
//! All state sits behind one mutex per queue. Publishers enqueue and
//! dispatch under it from their own connection task; acks dispatch again
//! from the consumer's task. There is no task per queue and no global lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use warren_protocol::{FieldTable, ShortStr};

use crate::consumer::{ConnectionEvent, Consumer, Delivery};
use crate::error::{AmqpError, Result};
use crate::message::Message;

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
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
}

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the queue; requeued messages go back to their place.
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    Enqueued,
    /// Refused by `x-overflow: reject-publish`; confirms get a nack.
    Rejected,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<QueuedMessage>,
    ready_bytes: u64,
    consumers: Vec<Consumer>,
    /// Index of the consumer that gets the next message.
    next_consumer: usize,
    unacked: u64,
    next_seq: u64,
    /// Auto-delete queues go only once they have had a consumer.
    had_consumer: bool,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub options: QueueOptions,
    /// The connection an exclusive queue belongs to.
    pub owner: Option<u64>,
    pub limits: QueueLimits,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
}

/// Counts shown by queue.declare-ok and `warrenctl list_queues`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u32,
    pub ready_bytes: u64,
}

impl Queue {
    pub fn new(
        name: ShortStr,
        vhost: String,
        options: QueueOptions,
        owner: Option<u64>,
        limits: QueueLimits,
    ) -> Self {
        Queue {
            name,
            vhost,
            options,
            owner,
            limits,
            state: Mutex::new(QueueState::default()),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> QueueStats {
        let st = self.state.lock();
        QueueStats {
            ready: st.ready.len() as u64,
            unacked: st.unacked,
            consumers: st.consumers.len() as u32,
            ready_bytes: st.ready_bytes,
        }
    }

    /// RabbitMQ's description of a queue in error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// Enqueues and pushes to consumers. Messages routed to a deleted queue
    /// (a race with queue.delete) are dropped, as RabbitMQ drops them.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> PublishOutcome {
        let mut st = self.state.lock();
        if self.is_deleted() {
            return PublishOutcome::Enqueued;
        }
        let size = message.size() as u64;
        if self.over_limit(&st, size) {
            match self.limits.overflow {
                Overflow::RejectPublish => return PublishOutcome::Rejected,
                Overflow::DropHead => {
                    while self.over_limit(&st, size) {
                        match st.ready.pop_front() {
                            Some(m) => st.ready_bytes -= m.message.size() as u64,
                            None => break,
                        }
                    }
                }
            }
        }
        // x-max-length 0 keeps nothing, even after dropping every message.
        if self.limits.max_length == Some(0) {
            return match self.limits.overflow {
                Overflow::RejectPublish => PublishOutcome::Rejected,
                Overflow::DropHead => PublishOutcome::Enqueued,
            };
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready_bytes += size;
        st.ready.push_back(QueuedMessage {
            seq,
            message,
            redelivered: false,
        });
        self.dispatch_locked(&mut st);
        PublishOutcome::Enqueued
    }

    fn over_limit(&self, st: &QueueState, incoming: u64) -> bool {
        let len = st.ready.len() as u64;
        self.limits
            .max_length
            .is_some_and(|max| len >= max && len > 0)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| st.ready_bytes + incoming > max && len > 0)
    }

    /// Pushes ready messages to consumers that have credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            let n = st.consumers.len();
            let start = st.next_consumer % n;
            let Some(idx) = (0..n)
                .map(|i| (start + i) % n)
                .find(|&i| st.consumers[i].flow.has_credit(st.consumers[i].no_ack))
            else {
                return;
            };
            let Some(qm) = st.ready.pop_front() else {
                return;
            };
            st.ready_bytes -= qm.message.size() as u64;
            let consumer = &st.consumers[idx];
            consumer.flow.on_dispatch(consumer.no_ack);
            let delivery = Delivery {
                channel: consumer.channel,
                consumer_tag: consumer.tag.clone(),
                message: qm.message.clone(),
                redelivered: qm.redelivered,
                queue: Some(self.clone()),
                seq: qm.seq,
                no_ack: consumer.no_ack,
                flow: consumer.flow.clone(),
            };
            if consumer
                .sink
                .send(ConnectionEvent::Deliver(delivery))
                .is_err()
            {
                // The connection is gone but hasn't unregistered yet: put
                // the message back and forget the consumer.
                consumer.flow.on_settled(1);
                st.ready_bytes += qm.message.size() as u64;
                st.ready.push_front(qm);
                st.consumers.remove(idx);
                continue;
            }
            if !consumer.no_ack {
                st.unacked += 1;
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
        st.consumers.push(consumer);
        self.dispatch_locked(&mut st);
        Ok(())
    }

    /// Removes one consumer. Returns true when an auto-delete queue has
    /// just lost its last consumer and should be deleted.
    pub fn remove_consumer(&self, connection_id: u64, channel: u16, tag: &ShortStr) -> bool {
        let mut st = self.state.lock();
        if let Some(i) = st
            .consumers
            .iter()
            .position(|c| c.connection_id == connection_id && c.channel == channel && c.tag == *tag)
        {
            let c = st.consumers.remove(i);
            c.flow.cancelled.store(true, Ordering::Relaxed);
        }
        self.options.auto_delete && st.had_consumer && st.consumers.is_empty()
    }

    pub fn has_consumer(&self, connection_id: u64, channel: u16, tag: &ShortStr) -> bool {
        self.state
            .lock()
            .consumers
            .iter()
            .any(|c| c.connection_id == connection_id && c.channel == channel && c.tag == *tag)
    }

    /// basic.get: the next ready message and how many remain after it.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        let qm = st.ready.pop_front()?;
        st.ready_bytes -= qm.message.size() as u64;
        if !no_ack {
            st.unacked += 1;
        }
        let remaining = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        Some((qm, remaining))
    }

    /// `n` delivered messages were acked (or rejected without requeue).
    pub fn settle(self: &Arc<Self>, n: u64) {
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(n);
        // Acks free prefetch credit: messages may now flow.
        self.dispatch_locked(&mut st);
    }

    /// Puts delivered messages back in their original places, marked
    /// redelivered, and dispatches them again.
    pub fn requeue(self: &Arc<Self>, items: Vec<(u64, Arc<Message>)>) {
        self.put_back(items, true)
    }

    /// Puts back messages that were sent to a connection but never reached
    /// the client (its consumer or channel went away first). `counted`
    /// says whether they were counted as unacked (ack-mode deliveries).
    pub fn put_back(self: &Arc<Self>, mut items: Vec<(u64, Arc<Message>)>, counted: bool) {
        let mut st = self.state.lock();
        if counted {
            st.unacked = st.unacked.saturating_sub(items.len() as u64);
        }
        if self.is_deleted() {
            return;
        }
        items.sort_unstable_by_key(|(seq, _)| *seq);
        // Usually every requeued message is older than every ready one:
        // push them on the front, newest first.
        for (seq, message) in items.into_iter().rev() {
            st.ready_bytes += message.size() as u64;
            let qm = QueuedMessage {
                seq,
                message,
                redelivered: true,
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
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.len();
        st.ready.clear();
        st.ready_bytes = 0;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Marks the queue deleted and takes its consumers (to be told) and its
    /// ready message count.
    pub(crate) fn mark_deleted(&self) -> (Vec<Consumer>, u32) {
        let mut st = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        let n = u32::try_from(st.ready.len()).unwrap_or(u32::MAX);
        st.ready.clear();
        st.ready_bytes = 0;
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.flow.cancelled.store(true, Ordering::Relaxed);
        }
        (consumers, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::{ChannelFlow, ConsumerFlow, EventReceiver};
    use bytes::Bytes;
    use warren_protocol::BasicProperties;

    fn queue(limits: QueueLimits) -> Arc<Queue> {
        Arc::new(Queue::new(
            "q".into(),
            "/".into(),
            QueueOptions {
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: FieldTable::new(),
            },
            None,
            limits,
        ))
    }

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: BasicProperties::default(),
            raw_properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from_static(body.as_bytes()),
        })
    }

    fn consumer(tag: &str, prefetch: u32) -> (Consumer, EventReceiver) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let c = Consumer {
            tag: tag.into(),
            channel: 1,
            connection_id: 1,
            no_ack: false,
            exclusive: false,
            flow: Arc::new(ConsumerFlow::new(
                prefetch,
                Arc::new(ChannelFlow::default()),
            )),
            sink: tx,
        };
        (c, rx)
    }

    fn drain(rx: &mut EventReceiver) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(ConnectionEvent::Deliver(d)) = rx.try_recv() {
            out.push(d);
        }
        out
    }

    #[test]
    fn round_robin_and_prefetch() {
        let q = queue(QueueLimits::default());
        let (a, mut ra) = consumer("a", 1);
        let (b, mut rb) = consumer("b", 0);
        q.add_consumer(a).unwrap();
        q.add_consumer(b).unwrap();
        for _ in 0..5 {
            q.publish(msg("m"));
        }
        // a has prefetch 1: one message, b takes the rest.
        assert_eq!(drain(&mut ra).len(), 1);
        assert_eq!(drain(&mut rb).len(), 4);
        assert_eq!(q.stats().unacked, 5);
    }

    #[test]
    fn requeued_messages_keep_their_place() {
        let q = queue(QueueLimits::default());
        for b in ["1", "2", "3", "4"] {
            q.publish(msg(b));
        }
        let (m1, _) = q.get(false).unwrap();
        let (m2, _) = q.get(false).unwrap();
        q.requeue(vec![(m2.seq, m2.message), (m1.seq, m1.message)]);
        let order: Vec<_> = std::iter::from_fn(|| q.get(true))
            .map(|(m, _)| (m.message.body.clone(), m.redelivered))
            .collect();
        assert_eq!(
            order,
            vec![
                (Bytes::from_static(b"1"), true),
                (Bytes::from_static(b"2"), true),
                (Bytes::from_static(b"3"), false),
                (Bytes::from_static(b"4"), false)
            ]
        );
    }

    #[test]
    fn max_length_drop_head_and_reject_publish() {
        let q = queue(QueueLimits {
            max_length: Some(2),
            ..Default::default()
        });
        for b in ["1", "2", "3"] {
            q.publish(msg(b));
        }
        assert_eq!(
            q.get(true).unwrap().0.message.body,
            Bytes::from_static(b"2")
        );
        let q = queue(QueueLimits {
            max_length: Some(1),
            overflow: Overflow::RejectPublish,
            ..Default::default()
        });
        assert_eq!(q.publish(msg("1")), PublishOutcome::Enqueued);
        assert_eq!(q.publish(msg("2")), PublishOutcome::Rejected);
    }

    #[test]
    fn exclusive_consumer_locks_out_others() {
        let q = queue(QueueLimits::default());
        let (mut a, _ra) = consumer("a", 0);
        a.exclusive = true;
        q.add_consumer(a).unwrap();
        let (b, _rb) = consumer("b", 0);
        assert_eq!(q.add_consumer(b).unwrap_err().code, 403);
    }
}

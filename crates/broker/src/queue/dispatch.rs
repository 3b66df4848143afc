//! A queue's consumers: registration, the choice of the next consumer
//! (consumer priorities, round-robin, single active consumer) and pushing
//! ready messages to them within their credit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{ConsumerSummary, DeadLetters, Queue, QueueState, QueuedMessage};
use crate::error::{AmqpError, Result};
use crate::session::{ConnectionEvent, Consumer, Delivery};

impl Queue {
    /// The consumers as listings show them, in registration order.
    pub fn consumer_infos(&self) -> Vec<ConsumerSummary> {
        let st = self.state.lock();
        st.consumers
            .iter()
            .enumerate()
            .map(|(i, c)| ConsumerSummary {
                tag: c.tag.clone(),
                channel: c.session,
                connection_id: c.connection_id,
                ack_required: !c.no_ack,
                exclusive: c.exclusive,
                priority: c.priority,
                prefetch: c.flow.prefetch,
                active: !self.single_active_consumer() || i == 0,
            })
            .collect()
    }

    /// `x-single-active-consumer` (an argument only, never a policy).
    pub(super) fn single_active_consumer(&self) -> bool {
        self.arg_limits.single_active_consumer
    }

    /// basic.get is refused on a quorum queue with a single active
    /// consumer, as RabbitMQ refuses it (a classic one allows it).
    pub fn check_get(&self) -> Result<()> {
        if self.single_active_consumer()
            && self.policy_target() == (crate::policy::Target::Queue { quorum: true })
        {
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain access to locked {}. basic.get operations are not supported by quorum queues with single active consumer",
                self.describe()
            )));
        }
        Ok(())
    }

    /// Pushes ready messages to consumers that have credit.
    pub fn dispatch(self: &Arc<Self>) -> DeadLetters {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
        self.finish(st)
    }

    /// The consumer that should get the next message: the highest
    /// `x-priority` with credit, round-robin among equals.
    fn pick_consumer(&self, st: &QueueState) -> Option<usize> {
        let n = st.consumers.len();
        if self.single_active_consumer() {
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

    pub(super) fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let now = self.has_ttl.load(Ordering::Relaxed).then(Instant::now);
        self.dispatch_at(st, now)
    }

    /// Dispatches, treating messages that expire exactly at `now` as still
    /// deliverable (a TTL-0 message goes to a waiting consumer). `now` is
    /// `None` when no message in the queue can expire.
    pub(super) fn dispatch_at(self: &Arc<Self>, st: &mut QueueState, now: Option<Instant>) {
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            if let Some(now) = now {
                self.expire_head(st, |t| t < now);
            }
            let Some(idx) = self.pick_consumer(st) else {
                return;
            };
            let Some((lane, qm)) = self.take_head(st) else {
                return;
            };
            if st.ready.mem_len() <= super::WINDOW_COUNT / 2
                && self.congested.load(Ordering::Relaxed)
            {
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
                consumer: consumer.key,
                message,
                redelivered,
                seq,
                disk,
                expires_at,
            }));
            if let Err(tokio::sync::mpsc::error::SendError(ConnectionEvent::Deliver(d))) = sent {
                // The connection is gone but hasn't unregistered yet: put
                // the message back and forget the consumer.
                if !no_ack {
                    consumer.flow.on_settled(1);
                }
                st.ready.insert(
                    lane,
                    QueuedMessage {
                        seq,
                        message: d.message,
                        redelivered,
                        expires_at,
                        disk,
                    },
                );
                st.consumers.remove(idx);
                continue;
            }
            if redelivered {
                st.counters.redeliver += 1;
            }
            if no_ack {
                st.counters.deliver_no_ack += 1;
                // Settled on sending: the entry can go.
                st.ready.forget(disk);
            } else {
                st.counters.deliver += 1;
                st.unacked += 1;
                st.unacked_bytes += size;
                st.ready.delivered(disk);
            }
            st.next_consumer = idx + 1;
        }
    }

    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<DeadLetters> {
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
        Ok(self.finish(st))
    }

    /// Removes one consumer. Returns true when an auto-delete queue has
    /// just lost its last consumer and should be deleted.
    pub fn remove_consumer(self: &Arc<Self>, connection_id: u64, key: u64) -> (bool, DeadLetters) {
        let mut st = self.state.lock();
        if let Some(i) = st
            .consumers
            .iter()
            .position(|c| c.connection_id == connection_id && c.key == key)
        {
            let c = st.consumers.remove(i);
            c.flow.cancelled.store(true, Ordering::Relaxed);
            st.last_used = Instant::now();
            // With a single active consumer, the next one takes over.
            if i == 0 && self.single_active_consumer() {
                self.dispatch_locked(&mut st);
            }
        }
        let gone = self.options.auto_delete && st.had_consumer && st.consumers.is_empty();
        (gone, self.finish(st))
    }
}

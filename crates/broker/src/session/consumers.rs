//! A connection's consumers, by key. Deliveries name their consumer by
//! key; this registry holds what a delivery needs (channel, tag, queue,
//! credit counters), so none of it travels (or is reference-counted) per
//! message.
//!
//! A cancelled consumer is *retired*, not removed, while deliveries sent
//! to it before the cancel are still in flight: those go back to their
//! queue, in place. It is dropped once nothing is in transit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{ConsumerFlow, Delivery};
use crate::{Queue, VirtualHost};
use ahash::AHashMap;
use warren_protocol::ShortStr;

#[derive(Debug)]
pub struct ConsumerEntry {
    /// The session it belongs to: an AMQP channel number (0 for MQTT).
    pub session: u16,
    pub tag: ShortStr,
    /// `None` for the direct reply-to pseudo-consumer.
    pub queue: Option<Arc<Queue>>,
    pub flow: Arc<ConsumerFlow>,
    pub no_ack: bool,
    pub retired: bool,
    /// Deliveries handled since the flow was last told.
    written: u32,
}

impl ConsumerEntry {
    /// Hands an undeliverable message back to its queue, in place. The
    /// delivery must already be counted with [`Consumers::handled`].
    pub fn give_back(&self, d: Delivery, vhost: &VirtualHost) {
        if !self.no_ack {
            self.flow.on_settled(1);
        }
        if let Some(q) = &self.queue {
            vhost.dead_letter(q.put_back(vec![(d.seq, d.message, d.disk)], !self.no_ack));
        }
    }
}

#[derive(Debug, Default)]
pub struct Consumers {
    entries: AHashMap<u64, ConsumerEntry>,
    next_key: u64,
    /// Keys with `written > 0`.
    touched: Vec<u64>,
}

impl Consumers {
    pub fn add(
        &mut self,
        session: u16,
        tag: ShortStr,
        queue: Option<Arc<Queue>>,
        flow: Arc<ConsumerFlow>,
        no_ack: bool,
    ) -> u64 {
        self.next_key += 1;
        self.entries.insert(
            self.next_key,
            ConsumerEntry {
                session,
                tag,
                queue,
                flow,
                no_ack,
                retired: false,
                written: 0,
            },
        );
        self.next_key
    }

    /// The key the next `add` will return (queues need it before the
    /// consumer is registered here).
    pub fn next_key(&self) -> u64 {
        self.next_key + 1
    }

    pub fn get(&self, key: u64) -> Option<&ConsumerEntry> {
        self.entries.get(&key)
    }

    /// Marks a delivery as handled (written, or returned to its queue).
    pub fn handled(&mut self, key: u64) -> Option<&ConsumerEntry> {
        let e = self.entries.get_mut(&key)?;
        if e.written == 0 {
            self.touched.push(key);
        }
        e.written += 1;
        Some(e)
    }

    /// Stops deliveries to a consumer; in-flight ones will go back.
    pub fn retire(&mut self, key: u64) {
        if let Some(e) = self.entries.get_mut(&key) {
            e.retired = true;
            e.flow.cancelled.store(true, Ordering::Relaxed);
        }
        self.collect(key);
    }

    pub fn live_keys(&self) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.retired)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Puts a delivery that can't reach its consumer back in its queue.
    pub fn return_delivery(&mut self, d: Delivery, vhost: &VirtualHost) {
        if let Some(e) = self.handled(d.consumer) {
            e.give_back(d, vhost);
        }
    }

    /// After a batch of deliveries: tells each consumer's flow how many it
    /// handled, wakes queues waiting for that credit, and drops retired
    /// consumers with nothing left in flight.
    pub fn flush(&mut self, vhost: &VirtualHost) {
        for key in std::mem::take(&mut self.touched) {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let n = std::mem::take(&mut e.written);
            if n > 0 && e.flow.written(n) && !e.retired {
                if let Some(q) = &e.queue {
                    vhost.dead_letter(q.dispatch());
                }
            }
            self.collect(key);
        }
    }

    fn collect(&mut self, key: u64) {
        let done = self.entries.get(&key).is_some_and(|e| {
            e.retired && e.written == 0 && e.flow.in_transit.load(Ordering::SeqCst) == 0
        });
        if done {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The registry with real queues, driven the way the connection drives
    //! it: events handled in batches, consumers cancelled while deliveries
    //! are in flight. No delivery may find its consumer forgotten (it would
    //! be dropped), and every message ends up ready, with the client, or
    //! acked: never lost, never twice.

    use std::collections::BTreeSet;

    use crate::queue::{Durability, QueueLimits, QueueSetup};
    use crate::session::{ChannelFlow, ConnectionEvent, Consumer, ConsumerFlow, EventReceiver};
    use crate::Message;
    use bytes::Bytes;
    use proptest::prelude::*;
    use warren_protocol::BasicProperties;

    use super::*;

    fn queue() -> Arc<Queue> {
        Arc::new(Queue::new(QueueSetup::in_memory(
            "q",
            QueueLimits::default(),
        )))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Publish(u8),
        Consume(u32),
        /// Handle up to n events (one loop turn), then flush.
        Handle(u8),
        Cancel(prop::sample::Index),
        /// The client acks everything it holds for one consumer.
        Ack(prop::sample::Index),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u8..30).prop_map(Op::Publish),
            1 => prop::sample::select(vec![0u32, 1, 5]).prop_map(Op::Consume),
            4 => (1u8..40).prop_map(Op::Handle),
            1 => any::<prop::sample::Index>().prop_map(Op::Cancel),
            2 => any::<prop::sample::Index>().prop_map(Op::Ack),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn no_delivery_is_lost_across_cancels(ops in proptest::collection::vec(op(), 1..100)) {
            let q = queue();
            // Its queue has no dead-letter exchange: the vhost only takes
            // what the calls hand back.
            let vhost = crate::VirtualHost::new("/");
            let (tx, mut rx): (_, EventReceiver) = tokio::sync::mpsc::unbounded_channel();
            let mut reg = Consumers::default();
            let channel_flow = Arc::new(ChannelFlow::default());
            // key -> (tag, live, what the client holds unacked)
            let mut consumers: Vec<(u64, ShortStr, bool, Vec<u64>)> = Vec::new();
            let mut published = 0u64;
            let mut acked: BTreeSet<u64> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Publish(n) => {
                        for _ in 0..n {
                            let m = Arc::new(Message::new(
                                "".into(),
                                "q".into(),
                                BasicProperties::default(),
                                Bytes::new(),
                                Bytes::from(published.to_be_bytes().to_vec()),
                            ));
                            let (_, dead) = q.publish(m, Durability::BestEffort);
                            vhost.dead_letter(dead);
                            published += 1;
                        }
                    }
                    Op::Consume(prefetch) => {
                        let tag = ShortStr::from(format!("c{}", consumers.len()));
                        let flow = Arc::new(ConsumerFlow::new(prefetch, channel_flow.clone()));
                        let key = reg.next_key();
                        let dead = q.add_consumer(Consumer {
                            tag: tag.clone(),
                            session: 1,
                            key,
                            connection_id: 1,
                            no_ack: false,
                            exclusive: false,
                            priority: 0,
                            flow: flow.clone(),
                            sink: tx.clone(),
                        })
                        .unwrap();
                        vhost.dead_letter(dead);
                        prop_assert_eq!(reg.add(1, tag.clone(), Some(q.clone()), flow, false), key);
                        consumers.push((key, tag, true, Vec::new()));
                    }
                    Op::Handle(n) => {
                        for _ in 0..n {
                            let Ok(ConnectionEvent::Deliver(d)) = rx.try_recv() else { break };
                            let Some(e) = reg.handled(d.consumer) else {
                                prop_assert!(false, "a delivery found its consumer forgotten: lost");
                                unreachable!();
                            };
                            let id = u64::from_be_bytes(d.message.body[..8].try_into().unwrap());
                            prop_assert_eq!(id, d.seq);
                            if e.retired {
                                e.give_back(d, &vhost);
                            } else if let Some(c) = consumers.iter_mut().find(|c| c.0 == d.consumer) {
                                c.3.push(d.seq);
                            }
                        }
                        reg.flush(&vhost);
                    }
                    Op::Cancel(i) => {
                        if consumers.is_empty() { continue; }
                        let k = i.index(consumers.len());
                        let (key, _, live, _) = &mut consumers[k];
                        if !*live { continue; }
                        // As the channel does: stop the queue, then retire.
                        let (_, dead) = q.remove_consumer(1, *key);
                        vhost.dead_letter(dead);
                        reg.retire(*key);
                        *live = false;
                    }
                    Op::Ack(i) => {
                        if consumers.is_empty() { continue; }
                        let k = i.index(consumers.len());
                        let held = std::mem::take(&mut consumers[k].3);
                        if held.is_empty() { continue; }
                        if let Some(e) = reg.get(consumers[k].0) {
                            e.flow.on_settled(held.len() as u32);
                        }
                        vhost.dead_letter(q.settle(&vec![None; held.len()], 8 * held.len() as u64));
                        acked.extend(held);
                    }
                }
                let stats = q.stats();
                let held: u64 = consumers.iter().map(|c| c.3.len() as u64).sum();
                // In the event queue or written to the client: all unacked.
                prop_assert_eq!(stats.ready + stats.unacked + acked.len() as u64, published);
                prop_assert!(held <= stats.unacked);
            }
        }
    }
}

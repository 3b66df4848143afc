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

use ahash::AHashMap;
use warren_broker::consumer::{ConsumerFlow, Delivery};
use warren_broker::Queue;
use warren_protocol::ShortStr;

#[derive(Debug)]
pub struct ConsumerEntry {
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
    pub fn give_back(&self, d: Delivery) {
        if !self.no_ack {
            self.flow.on_settled(1);
        }
        if let Some(q) = &self.queue {
            q.put_back(vec![(d.seq, d.message, d.disk)], !self.no_ack);
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
        tag: ShortStr,
        queue: Option<Arc<Queue>>,
        flow: Arc<ConsumerFlow>,
        no_ack: bool,
    ) -> u64 {
        self.next_key += 1;
        self.entries.insert(
            self.next_key,
            ConsumerEntry {
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
    pub fn return_delivery(&mut self, d: Delivery) {
        if let Some(e) = self.handled(d.consumer) {
            e.give_back(d);
        }
    }

    /// After a batch of deliveries: tells each consumer's flow how many it
    /// handled, wakes queues waiting for that credit, and drops retired
    /// consumers with nothing left in flight.
    pub fn flush(&mut self) {
        for key in std::mem::take(&mut self.touched) {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            let n = std::mem::take(&mut e.written);
            if n > 0 && e.flow.written(n) && !e.retired {
                if let Some(q) = &e.queue {
                    q.dispatch();
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

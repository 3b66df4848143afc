//! Consumers as a queue sees them, and their credit.
//!
//! Flow control is credit-based and lock-free: a queue delivers to a
//! consumer only while it has prefetch credit (unacked below the limits)
//! and transit credit (deliveries not yet written into the connection's
//! output buffer below [`MAX_IN_TRANSIT`]). When either credit comes back,
//! the connection asks the queue to dispatch again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use warren_protocol::ShortStr;

use super::events::EventSender;

/// Deliveries a queue may hand to a connection that it has not yet
/// written out. Bounds memory per consumer when a client reads slowly.
pub const MAX_IN_TRANSIT: u32 = 2_000;

/// Prefetch shared by all consumers of a channel (basic.qos global=true),
/// and the channel.flow switch.
#[derive(Debug, Default)]
pub struct ChannelFlow {
    pub(crate) prefetch: AtomicU32,
    pub(crate) unacked: AtomicU32,
    /// channel.flow(active=false) stops deliveries on the channel.
    pub(crate) paused: AtomicBool,
}

impl ChannelFlow {
    /// basic.qos global=true: the limit for the whole session (0: none).
    pub fn set_prefetch(&self, n: u32) {
        self.prefetch.store(n, Ordering::Relaxed);
    }
}

/// Credit counters for one consumer, shared by its queue and connection.
#[derive(Debug, Default)]
pub struct ConsumerFlow {
    /// Per-consumer prefetch (basic.qos global=false); 0 = unlimited.
    pub prefetch: u32,
    pub unacked: AtomicU32,
    pub in_transit: AtomicU32,
    /// The queue skipped this consumer for lack of transit credit.
    pub transit_blocked: AtomicBool,
    pub channel: Arc<ChannelFlow>,
    /// Set once the consumer is cancelled; the queue skips it.
    pub cancelled: AtomicBool,
}

impl ConsumerFlow {
    pub fn new(prefetch: u32, channel: Arc<ChannelFlow>) -> Self {
        ConsumerFlow {
            prefetch,
            channel,
            ..Default::default()
        }
    }

    /// Whether the consumer can take one more message now.
    pub fn has_credit(&self, no_ack: bool) -> bool {
        if self.channel.paused.load(Ordering::Relaxed) {
            return false;
        }
        if self.in_transit.load(Ordering::SeqCst) >= MAX_IN_TRANSIT {
            self.transit_blocked.store(true, Ordering::SeqCst);
            // The connection may have drained past the threshold before it
            // could see the flag: then nobody would wake the queue, so look
            // again now that the flag is visible.
            if self.in_transit.load(Ordering::SeqCst) >= MAX_IN_TRANSIT / 2 {
                return false;
            }
        }
        if no_ack {
            // Prefetch limits apply to acknowledged deliveries only.
            return true;
        }
        let p = self.prefetch;
        if p != 0 && self.unacked.load(Ordering::Relaxed) >= p {
            return false;
        }
        let g = self.channel.prefetch.load(Ordering::Relaxed);
        g == 0 || self.channel.unacked.load(Ordering::Relaxed) < g
    }

    /// Accounts for one message handed to the connection.
    pub fn on_dispatch(&self, no_ack: bool) {
        self.in_transit.fetch_add(1, Ordering::Relaxed);
        if !no_ack {
            self.unacked.fetch_add(1, Ordering::Relaxed);
            self.channel.unacked.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The connection wrote `n` deliveries out (counted per batch, so the
    /// shared counter moves once per batch, not per message); returns true
    /// when the queue stopped for lack of transit credit and enough has
    /// come back (half the window) to make dispatching again worthwhile.
    /// The hysteresis lets one dispatch move a thousand messages, not one.
    pub fn written(&self, n: u32) -> bool {
        let before = self.in_transit.fetch_sub(n, Ordering::SeqCst);
        debug_assert!(before >= n, "more deliveries handled than sent");
        let left = before.saturating_sub(n);
        left <= MAX_IN_TRANSIT / 2
            && self.transit_blocked.load(Ordering::SeqCst)
            && self.transit_blocked.swap(false, Ordering::SeqCst)
    }

    /// `n` deliveries were acked, rejected or requeued.
    pub fn on_settled(&self, n: u32) {
        // Saturating: a consumer's counters may have been reset by recover.
        let _ = self
            .unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        let _ = self
            .channel
            .unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// A consumer registered on a queue.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub tag: ShortStr,
    /// The client session it belongs to, for listings only (an AMQP
    /// channel number; 0 for MQTT). Deliveries never carry it.
    pub session: u16,
    /// Names the consumer in deliveries (unique within its connection).
    pub key: u64,
    pub connection_id: u64,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`: higher-priority consumers with credit go first.
    pub priority: i32,
    pub flow: Arc<ConsumerFlow>,
    pub sink: EventSender,
}

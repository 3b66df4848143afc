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
    /// A queue found the session's window full and stopped: whoever frees
    /// a place must ask the session's queues to dispatch again. (Set
    /// before the queue looks at `unacked` once more, cleared after a
    /// place is freed, both SeqCst: one of the two always sees the other.)
    pub(crate) window_blocked: AtomicBool,
}

impl ChannelFlow {
    /// basic.qos global=true: the limit for the whole session (0: none).
    pub fn set_prefetch(&self, n: u32) {
        self.prefetch.store(n, Ordering::Relaxed);
    }

    /// Whether the session-wide window has room for one more
    /// acknowledged delivery.
    fn has_room(&self) -> bool {
        let g = self.prefetch.load(Ordering::Relaxed);
        if g == 0 || self.unacked.load(Ordering::SeqCst) < g {
            return true;
        }
        self.window_blocked.store(true, Ordering::SeqCst);
        // A place may have been freed before the flag was visible.
        self.unacked.load(Ordering::SeqCst) < g
    }

    /// Takes a place in the window for a delivery that comes from no
    /// queue (an MQTT retained message); false when the window is full.
    pub fn try_take(&self) -> bool {
        let g = self.prefetch.load(Ordering::Relaxed);
        self.unacked
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                (g == 0 || v < g).then_some(v + 1)
            })
            .is_ok()
    }

    /// Takes a place whether or not the window has room: a delivery about
    /// to be settled in its queue that still holds its place (MQTT QoS 2
    /// between PUBREC and PUBCOMP).
    pub fn hold(&self) {
        self.unacked.fetch_add(1, Ordering::SeqCst);
    }

    /// Frees `n` places.
    pub fn free(&self, n: u32) {
        let _ = self
            .unacked
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Whether a queue stopped for want of a place since the last call
    /// (after places were freed: the caller then asks the queues to
    /// dispatch again).
    pub(crate) fn take_blocked(&self) -> bool {
        self.window_blocked.load(Ordering::SeqCst)
            && self.window_blocked.swap(false, Ordering::SeqCst)
    }

    /// The window (0: none).
    pub fn window(&self) -> u32 {
        self.prefetch.load(Ordering::Relaxed)
    }

    /// Places taken in the window.
    pub fn in_window(&self) -> u32 {
        self.unacked.load(Ordering::Relaxed)
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
        self.channel.has_room()
    }

    /// Accounts for one message handed to the connection.
    pub fn on_dispatch(&self, no_ack: bool) {
        self.in_transit.fetch_add(1, Ordering::Relaxed);
        if !no_ack {
            self.unacked.fetch_add(1, Ordering::Relaxed);
            self.channel.unacked.fetch_add(1, Ordering::SeqCst);
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

    /// `n` deliveries were acked, rejected or requeued. (The session's
    /// window flag is left for the session to clear: see
    /// `Session::kick_if_global`.)
    pub fn on_settled(&self, n: u32) {
        // Saturating: a consumer's counters may have been reset by recover.
        let _ = self
            .unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        self.channel.free(n);
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

//! Message statistics: counters gathered on the message path without a
//! lock or an allocation per message, and rates computed from them by a
//! sampler every few seconds (`sample`).
//!
//! Where the counting happens:
//! - queues count in plain fields under the queue's lock, which the
//!   operation holds anyway (`QueueCounters`);
//! - channels count in atomics only their connection's task writes
//!   (`Counters::bump` is a relaxed load and store, no locked add);
//! - exchanges count publishes in shared relaxed atomics;
//! - the broker-wide figures are the sum of the live channels' and the
//!   closed channels' (folded in when a channel closes).
//!
//! Rates are per second over the last sample interval, as RabbitMQ's
//! `*_details.rate`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// The message statistics RabbitMQ's management API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Publish,
    PublishIn,
    PublishOut,
    Confirm,
    ReturnUnroutable,
    DropUnroutable,
    Deliver,
    DeliverNoAck,
    Get,
    GetNoAck,
    GetEmpty,
    Ack,
    Redeliver,
}

impl Metric {
    pub const ALL: [Metric; 13] = [
        Metric::Publish,
        Metric::PublishIn,
        Metric::PublishOut,
        Metric::Confirm,
        Metric::ReturnUnroutable,
        Metric::DropUnroutable,
        Metric::Deliver,
        Metric::DeliverNoAck,
        Metric::Get,
        Metric::GetNoAck,
        Metric::GetEmpty,
        Metric::Ack,
        Metric::Redeliver,
    ];

    /// RabbitMQ's field name.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Publish => "publish",
            Metric::PublishIn => "publish_in",
            Metric::PublishOut => "publish_out",
            Metric::Confirm => "confirm",
            Metric::ReturnUnroutable => "return_unroutable",
            Metric::DropUnroutable => "drop_unroutable",
            Metric::Deliver => "deliver",
            Metric::DeliverNoAck => "deliver_no_ack",
            Metric::Get => "get",
            Metric::GetNoAck => "get_no_ack",
            Metric::GetEmpty => "get_empty",
            Metric::Ack => "ack",
            Metric::Redeliver => "redeliver",
        }
    }

    /// Its position in counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

const N: usize = Metric::ALL.len();

/// A set of message counters.
#[derive(Debug, Default)]
pub struct Counters {
    values: [AtomicU64; N],
}

impl Counters {
    /// Adds one, for counters with a single writer (a connection's task):
    /// a plain load and store, no locked instruction.
    #[inline]
    pub fn bump(&self, m: Metric) {
        self.bump_by(m, 1);
    }

    #[inline]
    pub fn bump_by(&self, m: Metric, n: u64) {
        let c = &self.values[m.index()];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds one from any thread (shared counters: exchanges).
    #[inline]
    pub fn add(&self, m: Metric, n: u64) {
        self.values[m.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, m: Metric) -> u64 {
        self.values[m.index()].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for m in Metric::ALL {
            s.values[m.index()] = self.get(m);
        }
        s
    }

    /// Folds `s` in (a closed channel's totals into the broker's).
    pub fn absorb(&self, s: &Snapshot) {
        for m in Metric::ALL {
            self.add(m, s.get(m));
        }
    }
}

/// Counter values at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    values: [u64; N],
}

impl Snapshot {
    pub fn get(&self, m: Metric) -> u64 {
        self.values[m.index()]
    }

    pub fn set(&mut self, m: Metric, v: u64) {
        self.values[m.index()] = v;
    }

    pub fn plus(mut self, o: &Snapshot) -> Snapshot {
        for i in 0..N {
            self.values[i] = self.values[i].wrapping_add(o.values[i]);
        }
        self
    }
}

/// Rates derived from successive snapshots of one object's counters.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<RateState>,
}

#[derive(Debug, Default)]
struct RateState {
    last: Option<(Instant, Snapshot)>,
    rates: [f64; N],
}

impl Rates {
    /// Records a new sample and recomputes the rates.
    pub fn sample(&self, now: Instant, current: Snapshot) {
        let mut st = self.inner.lock();
        if let Some((at, prev)) = st.last {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                for i in 0..N {
                    st.rates[i] = current.values[i].saturating_sub(prev.values[i]) as f64 / secs;
                }
            }
        }
        st.last = Some((now, current));
    }

    pub fn rate(&self, m: Metric) -> f64 {
        self.inner.lock().rates[m.index()]
    }

    /// All the rates at once (one lock).
    pub fn all(&self) -> [f64; N] {
        self.inner.lock().rates
    }
}

/// A gauge's rate of change (queued messages, bytes on a socket).
#[derive(Debug, Default)]
pub struct GaugeRate {
    inner: Mutex<(Option<(Instant, u64)>, f64)>,
}

impl GaugeRate {
    pub fn sample(&self, now: Instant, value: u64) {
        let mut g = self.inner.lock();
        if let Some((at, prev)) = g.0 {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                g.1 = (value as f64 - prev as f64) / secs;
            }
        }
        g.0 = Some((now, value));
    }

    pub fn rate(&self) -> f64 {
        self.inner.lock().1
    }
}

/// How many connections and channels opened and closed (RabbitMQ's
/// "churn"), counted where they register.
#[derive(Debug, Default)]
pub struct Churn {
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub channels_opened: AtomicU64,
    pub channels_closed: AtomicU64,
}

/// Queue churn of one vhost: declares, creations, deletions.
#[derive(Debug, Default)]
pub struct QueueChurn {
    pub declared: AtomicU64,
    pub created: AtomicU64,
    pub deleted: AtomicU64,
}

impl QueueChurn {
    pub fn add(&self, other: &QueueChurn) {
        for (a, b) in [
            (&self.declared, &other.declared),
            (&self.created, &other.created),
            (&self.deleted, &other.deleted),
        ] {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A queue's counters: plain fields, counted under the queue's lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounters {
    pub publish: u64,
    pub deliver: u64,
    pub deliver_no_ack: u64,
    pub get: u64,
    pub get_no_ack: u64,
    pub get_empty: u64,
    pub ack: u64,
    pub redeliver: u64,
}

impl QueueCounters {
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        s.set(Metric::Publish, self.publish);
        s.set(Metric::Deliver, self.deliver);
        s.set(Metric::DeliverNoAck, self.deliver_no_ack);
        s.set(Metric::Get, self.get);
        s.set(Metric::GetNoAck, self.get_no_ack);
        s.set(Metric::GetEmpty, self.get_empty);
        s.set(Metric::Ack, self.ack);
        s.set(Metric::Redeliver, self.redeliver);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_follow_counter_deltas() {
        let c = Counters::default();
        let r = Rates::default();
        let t0 = Instant::now();
        r.sample(t0, c.snapshot());
        for _ in 0..50 {
            c.bump(Metric::Publish);
        }
        c.add(Metric::Ack, 10);
        r.sample(t0 + Duration::from_secs(5), c.snapshot());
        assert_eq!(r.rate(Metric::Publish), 10.0);
        assert_eq!(r.rate(Metric::Ack), 2.0);
        assert_eq!(r.rate(Metric::Get), 0.0);
        let g = GaugeRate::default();
        g.sample(t0, 100);
        g.sample(t0 + Duration::from_secs(2), 40);
        assert_eq!(g.rate(), -30.0);
    }
}

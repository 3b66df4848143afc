//! The statistics sampler: every few seconds (the server's timer calls
//! [`sample`]) it reads every counter once and turns the deltas into
//! rates, and caches the totals listings and the overview show. Nothing
//! on the message path waits for it; it takes each queue's lock once per
//! sample.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::connections::ConnectionEntry;
use crate::stats::{Counters, GaugeRate, QueueChurn, Rates, Snapshot};

/// Totals the overview shows, as of the last sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub channels: u64,
    pub consumers: u64,
    pub queues: u64,
    pub exchanges: u64,
    pub messages: u64,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
}

/// Broker-wide statistics.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Counters of channels that closed.
    pub retired: Counters,
    /// Held while a closing channel's counters move from the live set to
    /// `retired`, and while the sampler sums them, so no sample sees them
    /// twice or not at all (which would show as a spike in the rates).
    handover: Mutex<()>,
    pub rates: Rates,
    pub totals: Mutex<Totals>,
    pub messages: GaugeRate,
    pub ready: GaugeRate,
    pub unacked: GaugeRate,
    /// Queue churn of deleted vhosts.
    pub retired_queue_churn: QueueChurn,
    /// Rates of the churn counters, in [`ChurnCounts::NAMES`] order.
    pub churn_rates: [GaugeRate; 7],
}

/// Connections, channels and queues opened and closed since start, in
/// RabbitMQ's `churn_rates` terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChurnCounts(pub [u64; 7]);

impl ChurnCounts {
    pub const NAMES: [&'static str; 7] = [
        "connection_created",
        "connection_closed",
        "channel_created",
        "channel_closed",
        "queue_declared",
        "queue_created",
        "queue_deleted",
    ];
}

impl Broker {
    /// The broker's message counters now: closed channels' plus live ones'.
    pub fn message_counts(&self) -> Snapshot {
        let _g = self.stats.handover.lock();
        let mut s = self.stats.retired.snapshot();
        for c in self.connections.list() {
            for ch in c.channels() {
                s = s.plus(&ch.counters.snapshot());
            }
        }
        s
    }

    /// A vhost's message counters now.
    pub fn vhost_message_counts(&self, vhost: &str) -> Snapshot {
        let _g = self.stats.handover.lock();
        let mut s = self
            .vhost(vhost)
            .map(|v| v.retired.snapshot())
            .unwrap_or_default();
        for c in self
            .connections
            .list()
            .iter()
            .filter(|c| c.meta.vhost == vhost)
        {
            for ch in c.channels() {
                s = s.plus(&ch.counters.snapshot());
            }
        }
        s
    }

    /// The churn counters now.
    pub fn churn(&self) -> ChurnCounts {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.connections.churn;
        let q = QueueChurn::default();
        q.add(&self.stats.retired_queue_churn);
        for v in self.vhosts() {
            q.add(&v.queue_churn);
        }
        ChurnCounts([
            c.connections_opened.load(Relaxed),
            c.connections_closed.load(Relaxed),
            c.channels_opened.load(Relaxed),
            c.channels_closed.load(Relaxed),
            q.declared.load(Relaxed),
            q.created.load(Relaxed),
            q.deleted.load(Relaxed),
        ])
    }

    /// A closed channel's counters join its vhost's and the broker's.
    pub fn retire_channel(&self, conn: &ConnectionEntry, number: u16) {
        let _g = self.stats.handover.lock();
        if let Some(ch) = conn.remove_channel(number) {
            self.absorb(&conn.meta.vhost, &ch.counters);
        }
    }

    /// A closing connection's channels' counters join the totals.
    pub fn retire_channels(&self, conn: &ConnectionEntry) {
        let _g = self.stats.handover.lock();
        for ch in conn.take_channels() {
            self.absorb(&conn.meta.vhost, &ch.counters);
        }
    }

    /// Counts operations done outside any channel (the management API's
    /// publish and get), as RabbitMQ counts its internal channel's.
    pub fn count_direct(&self, vhost: &str, m: crate::stats::Metric, n: u64) {
        let _g = self.stats.handover.lock();
        self.stats.retired.add(m, n);
        if let Some(v) = self.vhost(vhost) {
            v.retired.add(m, n);
        }
    }

    fn absorb(&self, vhost: &str, counters: &Counters) {
        let s = counters.snapshot();
        self.stats.retired.absorb(&s);
        if let Some(v) = self.vhost(vhost) {
            v.retired.absorb(&s);
        }
    }
}

/// Takes one sample of everything.
pub fn sample(broker: &Broker) {
    let now = Instant::now();
    let mut totals = Totals::default();
    let handover = broker.stats.handover.lock();
    let mut global = broker.stats.retired.snapshot();
    let mut per_vhost: HashMap<String, Snapshot> = HashMap::new();
    for c in broker.connections.list() {
        totals.connections += 1;
        let t = c.stats.traffic();
        c.stats.recv_rate.sample(now, t.recv_oct);
        c.stats.send_rate.sample(now, t.send_oct);
        for ch in c.channels() {
            totals.channels += 1;
            let s = ch.counters.snapshot();
            ch.rates.sample(now, s);
            global = global.plus(&s);
            let v = per_vhost.entry(c.meta.vhost.clone()).or_default();
            *v = v.plus(&s);
        }
    }
    let vhost_totals: Vec<_> = broker
        .vhosts()
        .into_iter()
        .map(|v| {
            let live = per_vhost.remove(&v.name).unwrap_or_default();
            let all = live.plus(&v.retired.snapshot());
            (v, all)
        })
        .collect();
    drop(handover);
    broker.stats.rates.sample(now, global);
    for (v, counts) in vhost_totals {
        v.rates.sample(now, counts);
        for q in v.queues_unordered() {
            let st = q.stats();
            q.rates.messages.sample(now, q.counters().snapshot());
            q.rates.ready.sample(now, st.ready);
            q.rates.unacked.sample(now, st.unacked);
            q.rates.total.sample(now, st.ready + st.unacked);
            totals.queues += 1;
            totals.consumers += u64::from(st.consumers);
            totals.messages_ready += st.ready;
            totals.messages_unacknowledged += st.unacked;
        }
        for x in v.exchanges() {
            totals.exchanges += 1;
            x.rates.sample(now, x.counters.snapshot());
        }
    }
    totals.messages = totals.messages_ready + totals.messages_unacknowledged;
    broker.stats.messages.sample(now, totals.messages);
    broker.stats.ready.sample(now, totals.messages_ready);
    broker
        .stats
        .unacked
        .sample(now, totals.messages_unacknowledged);
    *broker.stats.totals.lock() = totals;
    let churn = broker.churn();
    for (r, v) in broker.stats.churn_rates.iter().zip(churn.0) {
        r.sample(now, v);
    }
}

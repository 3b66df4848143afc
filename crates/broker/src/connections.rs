//! The broker's registry of client connections: who is connected, where,
//! with how many channels and what traffic, so connections can be listed
//! and closed from outside their task (the CLI, the management API, a
//! deleted user or vhost).
//!
//! A front-end registers a connection once it is open and unregisters it
//! when it ends. Counters are atomics the connection task bumps per
//! syscall or per channel change, never per message under a lock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};
use warren_protocol::constants::reply;
use warren_protocol::FieldTable;

use crate::error::AmqpError;
use crate::session::{ConnectionEvent, EventSender};
use crate::stats::{Churn, Counters, GaugeRate, Rates};

/// The configured node name (the server sets it once at startup).
static NODE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the node name [`node_name`] returns; only the first call counts.
pub fn set_node_name(name: String) {
    let _ = NODE_NAME.set(name);
}

/// The node name in pids and listings, as RabbitMQ's `rabbit@host`: the
/// configured one, else `warren@<hostname>`.
pub fn node_name() -> String {
    if let Some(name) = NODE_NAME.get() {
        return name.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "warren@{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// Live counters of one channel, for listings.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Message statistics; only the channel's connection task writes them.
    pub counters: Counters,
    pub rates: Rates,
    pub number: u16,
    consumers: AtomicU32,
    unacked: AtomicU32,
    /// basic.qos prefetch for new consumers (global=false).
    prefetch: AtomicU32,
    /// basic.qos global=true.
    global_prefetch: AtomicU32,
    confirm: AtomicBool,
    transactional: AtomicBool,
}

/// One channel's state as listings show it (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelState {
    pub consumers: u32,
    pub unacked: u32,
    pub prefetch: u32,
    pub global_prefetch: u32,
    pub confirm: bool,
    pub transactional: bool,
}

impl ChannelStats {
    pub fn new(number: u16) -> Arc<ChannelStats> {
        Arc::new(ChannelStats {
            number,
            ..Default::default()
        })
    }

    /// The channel's owner publishes its state for listings (relaxed
    /// stores; readers see each value on its own).
    pub fn set_consumers(&self, n: u32) {
        self.consumers.store(n, Relaxed);
    }

    pub fn set_unacked(&self, n: u32) {
        self.unacked.store(n, Relaxed);
    }

    pub fn set_prefetch(&self, n: u32) {
        self.prefetch.store(n, Relaxed);
    }

    pub fn set_global_prefetch(&self, n: u32) {
        self.global_prefetch.store(n, Relaxed);
    }

    pub fn set_confirm(&self) {
        self.confirm.store(true, Relaxed);
    }

    pub fn set_transactional(&self) {
        self.transactional.store(true, Relaxed);
    }

    pub fn state(&self) -> ChannelState {
        ChannelState {
            consumers: self.consumers.load(Relaxed),
            unacked: self.unacked.load(Relaxed),
            prefetch: self.prefetch.load(Relaxed),
            global_prefetch: self.global_prefetch.load(Relaxed),
            confirm: self.confirm.load(Relaxed),
            transactional: self.transactional.load(Relaxed),
        }
    }
}

/// Live counters of one connection: bytes and socket reads/writes, and
/// their rates (kept by the sampler).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    recv_oct: AtomicU64,
    recv_cnt: AtomicU64,
    send_oct: AtomicU64,
    send_cnt: AtomicU64,
    pub(crate) recv_rate: GaugeRate,
    pub(crate) send_rate: GaugeRate,
}

/// A connection's traffic so far (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub recv_oct: u64,
    pub recv_cnt: u64,
    pub send_oct: u64,
    pub send_cnt: u64,
}

impl ConnectionStats {
    /// One read of `bytes` from the client.
    pub fn received(&self, bytes: usize) {
        self.recv_oct.fetch_add(bytes as u64, Relaxed);
        self.recv_cnt.fetch_add(1, Relaxed);
    }

    /// One write of `bytes` to the client.
    pub fn sent(&self, bytes: usize) {
        self.send_oct.fetch_add(bytes as u64, Relaxed);
        self.send_cnt.fetch_add(1, Relaxed);
    }

    pub fn traffic(&self) -> Traffic {
        Traffic {
            recv_oct: self.recv_oct.load(Relaxed),
            recv_cnt: self.recv_cnt.load(Relaxed),
            send_oct: self.send_oct.load(Relaxed),
            send_cnt: self.send_cnt.load(Relaxed),
        }
    }

    /// Bytes per second received, over the last sample.
    pub fn recv_rate(&self) -> f64 {
        self.recv_rate.rate()
    }

    /// Bytes per second sent, over the last sample.
    pub fn send_rate(&self) -> f64 {
        self.send_rate.rate()
    }
}

/// What is known of a connection once it is open.
#[derive(Debug, Clone)]
pub struct ConnectionMeta {
    pub user: String,
    pub vhost: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub client_properties: FieldTable,
    pub auth_mechanism: String,
    pub protocol: &'static str,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
}

/// One registered connection.
#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: u64,
    /// RabbitMQ's form: `127.0.0.1:53854 -> 127.0.0.1:5672`.
    pub name: String,
    /// A pid-like identifier, as rabbitmqctl's `pid` column.
    pub pid: String,
    pub meta: ConnectionMeta,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    pub stats: ConnectionStats,
    channels: Mutex<Vec<Arc<ChannelStats>>>,
    sink: EventSender,
    churn: Arc<Churn>,
}

impl ConnectionEntry {
    /// The connection's open channels.
    pub fn channels(&self) -> Vec<Arc<ChannelStats>> {
        self.channels.lock().clone()
    }

    pub fn add_channel(&self, c: Arc<ChannelStats>) {
        self.channels.lock().push(c);
        self.churn.channels_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes a channel; returns it (its counters go to the broker's
    /// totals).
    pub fn remove_channel(&self, number: u16) -> Option<Arc<ChannelStats>> {
        let mut chans = self.channels.lock();
        let i = chans.iter().position(|c| c.number == number)?;
        self.churn.channels_closed.fetch_add(1, Ordering::Relaxed);
        Some(chans.swap_remove(i))
    }

    /// Removes every channel (the connection is closing).
    pub fn take_channels(&self) -> Vec<Arc<ChannelStats>> {
        let chans = std::mem::take(&mut *self.channels.lock());
        self.churn
            .channels_closed
            .fetch_add(chans.len() as u64, Ordering::Relaxed);
        chans
    }

    /// The pid of one of this connection's channels.
    pub fn channel_pid(&self, number: u16) -> String {
        channel_pid(&self.pid, number)
    }

    /// A channel's name as RabbitMQ lists it: `<connection name> (N)`.
    pub fn channel_name(&self, number: u16) -> String {
        format!("{} ({number})", self.name)
    }

    /// Asks the connection to close with 320 CONNECTION_FORCED and `why`.
    pub fn force_close(&self, why: &str) -> bool {
        self.sink
            .send(ConnectionEvent::Close(AmqpError::new(
                reply::CONNECTION_FORCED,
                why,
            )))
            .is_ok()
    }
}

/// `<warren@host.CONN.CHANNEL>`: a channel's pid from its connection's.
pub fn channel_pid(connection_pid: &str, number: u16) -> String {
    let base = connection_pid.trim_end_matches(".0>");
    format!("{base}.{number}>")
}

/// Every open connection of the broker.
#[derive(Debug, Default)]
pub struct ConnectionRegistry {
    map: RwLock<AHashMap<u64, Arc<ConnectionEntry>>>,
    next_id: AtomicU64,
    node: Mutex<Option<String>>,
    /// Connections and channels opened and closed.
    pub churn: Arc<Churn>,
}

impl ConnectionRegistry {
    /// A fresh connection id (also for connections that never open).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn node(&self) -> String {
        self.node.lock().get_or_insert_with(node_name).clone()
    }

    /// Registers an open connection; events (close requests) go to `sink`.
    pub fn register(
        &self,
        id: u64,
        meta: ConnectionMeta,
        sink: EventSender,
    ) -> Arc<ConnectionEntry> {
        let entry = Arc::new(ConnectionEntry {
            id,
            name: format!("{} -> {}", meta.peer, meta.local),
            pid: format!("<{}.{id}.0>", self.node()),
            meta,
            connected_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            stats: ConnectionStats::default(),
            channels: Mutex::new(Vec::new()),
            sink,
            churn: self.churn.clone(),
        });
        self.churn
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        self.map.write().insert(id, entry.clone());
        entry
    }

    pub fn unregister(&self, id: u64) {
        if self.map.write().remove(&id).is_some() {
            self.churn
                .connections_closed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every connection, oldest first.
    pub fn list(&self) -> Vec<Arc<ConnectionEntry>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.map.read().get(&id).cloned()
    }

    /// The connection with this name or pid.
    pub fn find(&self, name_or_pid: &str) -> Option<Arc<ConnectionEntry>> {
        self.map
            .read()
            .values()
            .find(|c| c.name == name_or_pid || c.pid == name_or_pid)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Force-closes every connection `pick` selects; returns how many.
    pub fn close_where(&self, pick: impl Fn(&ConnectionEntry) -> bool, why: &str) -> usize {
        self.list()
            .into_iter()
            .filter(|c| pick(c))
            .filter(|c| c.force_close(why))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_find_and_close() {
        let r = ConnectionRegistry::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let id = r.next_id();
        let meta = ConnectionMeta {
            user: "u".into(),
            vhost: "/".into(),
            peer: "127.0.0.1:4000".parse().unwrap(),
            local: "127.0.0.1:5672".parse().unwrap(),
            client_properties: FieldTable::new(),
            auth_mechanism: "PLAIN".into(),
            protocol: "AMQP 0-9-1",
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
        };
        let e = r.register(id, meta, tx);
        assert_eq!(e.name, "127.0.0.1:4000 -> 127.0.0.1:5672");
        assert!(e.pid.ends_with(&format!(".{id}.0>")));
        assert_eq!(e.channel_pid(3), e.pid.replace(".0>", ".3>"));
        assert!(r.find(&e.pid).is_some() && r.find(&e.name).is_some());
        assert_eq!(r.close_where(|c| c.meta.user == "u", "bye"), 1);
        match rx.try_recv() {
            Ok(ConnectionEvent::Close(err)) => {
                assert_eq!(err.reply_text(), "CONNECTION_FORCED - bye")
            }
            other => panic!("{other:?}"),
        }
        r.unregister(id);
        assert!(r.is_empty());
    }
}

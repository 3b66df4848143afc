//! Retained messages: the last retained PUBLISH per topic, per vhost.
//! Payloads live on disk only, in an append-only log per vhost
//! (`<data dir>/mqtt/retained-<vhost hex>.log`); memory holds an index
//! (topic → where its record is, its QoS and expiry deadline).
//!
//! **Format.** A record is `len: u32, crc32: u32, [deadline: u64,]
//! packet` where the packet is the PUBLISH in MQTT 5 form (properties
//! kept, topic alias dropped) and bit 31 of `len` says an expiry deadline
//! (Unix ms, from MQTT 5's message expiry interval) precedes it; the CRC
//! covers both. An empty payload deletes the topic's message, as in the
//! protocol. (`record.rs`: records; `disk.rs`: the index scan, the writer
//! thread.)
//!
//! **Bounds.** Live records (topic, properties and payload) may take
//! `mqtt_retained_max_bytes` in all (all vhosts together, default 64 MiB)
//! and at most [`TOPICS_MAX`] topics per vhost. A retain past either
//! bound is refused: an MQTT 5 QoS 1/2 PUBLISH gets PUBACK/PUBREC 0x97
//! (quota exceeded) and is not routed either; a QoS 0 one, and any MQTT
//! 3.1.1 one (which has no way to say no), is routed but not retained,
//! and a warning is logged. Replacing a topic's message by one no larger,
//! and deleting, are always accepted. Memory: the index, about 100 bytes
//! plus the topic per retained topic; a read holds one batch
//! ([`batches`]: at most [`READ_BATCH`] records or [`READ_BATCH_BYTES`]).
//!
//! **Threads.** No file I/O happens on a runtime worker. One dedicated
//! thread (`disk.rs`'s writer) loads every vhost's log at broker start
//! (reading record headers only: a payload is read when it is sent, and
//! its CRC checked then), appends retains, fsyncs them in groups, and
//! compacts a log (copy of the live records to a temporary file, fsync,
//! rename) once it holds more than twice what is live plus 1 MiB.
//! Payloads are read on tokio's blocking pool ([`RetainedStore::read`]).
//!
//! **Durability.** [`RetainedStore::stored`] returns once the record is
//! fsynced (the PUBACK waits for it), so an acknowledged retain survives
//! SIGKILL. A retain whose write or fsync failed is cut off the log and
//! refused, and the log is rewritten from the index before the next
//! append. [`RetainedStore::retain`] queues without waiting (a will: a
//! failure is logged). Retains wait while their log is compacted (a copy
//! of at most the bytes bound).
//!
//! **Sending them.** A subscriber's retained messages are found with
//! [`RetainedStore::matching`] (index entries only, expired ones dropped;
//! it waits for the vhost's log to be loaded), then read batch by batch
//! ([`batches`], [`RetainedStore::read`]), each with the expiry interval
//! it has left. A record found damaged when read is dropped (logged) and
//! its topic forgotten. Loading stops at a torn tail and cuts it off.
//! The caller decides the pace: it may read the next batch only when its
//! in-flight window has room (today `session/subscribe.rs` reads and
//! queues every batch of a SUBSCRIBE at once, which the bytes bound and
//! [`TOPICS_MAX`] bound).

mod disk;
mod record;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use warren_protocol::mqtt::Publish;

pub(crate) use disk::Writer;
pub(crate) use record::vhost_of;

/// Retained topics one vhost may hold.
pub(crate) const TOPICS_MAX: usize = 100_000;
/// Records read (and held) at once for a subscriber, at most.
pub(crate) const READ_BATCH: usize = 256;
/// Bytes of records read at once for a subscriber, at most (one record
/// larger than this is read alone).
pub(crate) const READ_BATCH_BYTES: u64 = 4 << 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a retain was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RetainError {
    /// Over the bytes or topics bound (MQTT 5's 0x97).
    Quota(String),
    /// The log could not be written or loaded.
    Io(String),
}

impl std::fmt::Display for RetainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetainError::Quota(why) | RetainError::Io(why) => f.write_str(why),
        }
    }
}

/// One retained message in the index: its record's place in the log.
#[derive(Debug)]
pub(crate) struct RetainedEntry {
    pub(crate) topic: String,
    pub(crate) qos: u8,
    /// Expiry deadline, Unix ms.
    deadline: Option<u64>,
    /// The log holding the record (an old one stays open for readers
    /// while a compaction replaces it).
    file: Arc<File>,
    offset: u64,
    /// The whole record, header included.
    len: u64,
}

impl RetainedEntry {
    fn expired(&self, now: u64) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

/// Bytes of live records, all stores together, and the bound.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicU64,
    max: u64,
}

impl Budget {
    pub(crate) fn new(max: u64) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            max,
        })
    }

    fn add(&self, n: u64) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: u64) {
        // Never below zero, even if accounting went wrong somewhere.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }

    fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct RetainedStore {
    vhost: String,
    path: PathBuf,
    state: Mutex<State>,
    /// Set once the log is loaded (or failed to load).
    ready: watch::Sender<bool>,
    writer: Arc<Writer>,
}

#[derive(Debug, Default)]
struct State {
    index: BTreeMap<String, Arc<RetainedEntry>>,
    /// The log appended to (`None` until loaded, or if it failed to).
    file: Option<Arc<File>>,
    /// Why the log is unusable (it failed to load).
    failed: Option<String>,
    /// A write or fsync failed: rewrite the log before appending again.
    poisoned: bool,
    /// Bytes in the log, and bytes of its live records.
    log_bytes: u64,
    live_bytes: u64,
}

impl State {
    /// Forgets `topic` (if `only` is given, only while that entry is it).
    fn remove(&mut self, topic: &str, only: Option<&Arc<RetainedEntry>>, budget: &Budget) {
        let current = self.index.get(topic);
        if only.is_some_and(|o| !current.is_some_and(|c| Arc::ptr_eq(c, o))) {
            return;
        }
        if let Some(old) = self.index.remove(topic) {
            self.live_bytes = self.live_bytes.saturating_sub(old.len);
            budget.sub(old.len);
        }
    }
}

/// A retain on its way to the disk.
pub(crate) struct Retaining(oneshot::Receiver<Result<(), RetainError>>);

impl Retaining {
    /// Once the record is fsynced (or refused).
    pub(crate) async fn done(self) -> Result<(), RetainError> {
        self.0
            .await
            .unwrap_or_else(|_| Err(RetainError::Io("the retained store stopped".into())))
    }
}

impl RetainedStore {
    /// A vhost's store under `dir`; its log is loaded by the writer
    /// thread (no file I/O here).
    pub(crate) fn open(dir: &Path, vhost: &str, writer: &Arc<Writer>) -> Arc<RetainedStore> {
        let store = Arc::new(RetainedStore {
            vhost: vhost.to_string(),
            path: dir.join(record::file_name(vhost)),
            state: Mutex::new(State::default()),
            ready: watch::channel(false).0,
            writer: writer.clone(),
        });
        writer.load(&store);
        store
    }

    /// Waits until the log is loaded.
    async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Queues `p` to be retained for its topic (an empty payload forgets
    /// the topic); the answer comes once it is fsynced, or refused.
    pub(crate) fn retain(self: &Arc<Self>, p: Publish) -> Result<Retaining, RetainError> {
        let r = record::Record::new(p, now_ms());
        let (tx, rx) = oneshot::channel();
        self.writer.retain(self, r, Some(tx))?;
        Ok(Retaining(rx))
    }

    /// Retains `p` and returns once that is on disk (an error leaves the
    /// store as it was).
    pub(crate) async fn stored(self: &Arc<Self>, p: Publish) -> Result<(), RetainError> {
        self.retain(p)?.done().await
    }

    /// The index entries whose topic `filter` matches, in topic order;
    /// expired ones are dropped on the way. Waits for the log to load.
    /// At most [`TOPICS_MAX`] entries, and no payload: read them with
    /// [`batches`] and [`RetainedStore::read`].
    pub(crate) async fn matching(&self, filter: &str) -> Vec<Arc<RetainedEntry>> {
        self.ready().await;
        let now = now_ms();
        let mut g = self.state.lock();
        let mut expired = Vec::new();
        let mut out = Vec::new();
        for (t, e) in &g.index {
            if !super::topic::matches(filter, t) {
                continue;
            }
            if e.expired(now) {
                expired.push(e.clone());
            } else {
                out.push(e.clone());
            }
        }
        for e in expired {
            g.remove(&e.topic, Some(&e), &self.writer.budget);
        }
        out
    }

    /// The messages of `entries` (one batch of [`batches`]), read from
    /// the log on the blocking pool, each with the expiry interval it has
    /// left; damaged or meanwhile expired ones are left out.
    pub(crate) async fn read(self: &Arc<Self>, entries: &[Arc<RetainedEntry>]) -> Vec<Publish> {
        let entries = entries.to_vec();
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let mut out = Vec::with_capacity(entries.len());
            for e in &entries {
                match record::read(e, now) {
                    Ok(Some(p)) => out.push(p),
                    Ok(None) => {}
                    Err(why) => {
                        tracing::warn!(
                            "{}: retained message for '{}' dropped: {why}",
                            me.path.display(),
                            e.topic
                        );
                        me.state.lock().remove(&e.topic, Some(e), &me.writer.budget);
                    }
                }
            }
            out
        })
        .await
        .unwrap_or_default()
    }

    /// Bytes of live records in this vhost's log.
    #[cfg(test)]
    fn live_bytes(&self) -> u64 {
        self.state.lock().live_bytes
    }
}

/// `entries` in batches of at most [`READ_BATCH`] records and
/// [`READ_BATCH_BYTES`] (a larger record alone).
pub(crate) fn batches(
    entries: &[Arc<RetainedEntry>],
) -> impl Iterator<Item = &[Arc<RetainedEntry>]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len() && n < READ_BATCH {
            bytes += rest[n].len;
            if n > 0 && bytes > READ_BATCH_BYTES {
                break;
            }
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

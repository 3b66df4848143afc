//! The delayed-message exchange (`x-delayed-message`, RabbitMQ's
//! `rabbitmq_delayed_message_exchange` plugin, built in as LavinMQ does):
//! a message published with an `x-delay` header (milliseconds, > 0) is
//! held until it is due, then routed as the exchange's `x-delayed-type`
//! routes.
//!
//! Held messages cost disk, not RAM: with a data directory, beyond the
//! first 8,192 (or 8 MiB) held in memory, a held message's body is in the
//! vhost's message store and its entry in the exchange's own index
//! (stamped with its due time), and memory keeps only a small heap entry
//! (due, sequence, disk reference: about 100 bytes). A persistent
//! message held by a durable exchange survives a restart; a confirm for it
//! waits for the group commit that has it on disk. When it fires, its
//! index entry is removed only once the commit that has its copies in the
//! target queues is done, so a crash in between delivers it again rather
//! than lose it (at least once).
//!
//! One scheduler ([`wake`], `Broker::fire_delayed`) routes what is due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use parking_lot::Mutex;
use warren_protocol::FieldValue;

use crate::message::Message;
use crate::store::index::{now_ms, DiskRef, QueueIndex};
use crate::store::StorageHandle;
use crate::store::Ticket;

/// Wakes the delay scheduler: a message was held that may be due before
/// the scheduler's next wake-up.
pub static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Notifies the scheduler.
pub fn wake() {
    WAKE.notify_one();
}

/// The most a message may be delayed, as the plugin (Erlang's timer
/// limit, 2^32 - 1 ms); a larger or non-positive `x-delay` routes at once.
pub const MAX_DELAY_MS: u64 = (1 << 32) - 1;

/// A message's `x-delay` in milliseconds, when it asks to be held.
pub fn delay_of(message: &Message) -> Option<u64> {
    let v = message.headers.as_deref()?.get("x-delay")?;
    let ms = match v {
        FieldValue::LongStr(b) => std::str::from_utf8(b).ok()?.trim().parse::<i64>().ok()?,
        FieldValue::F32(f) => *f as i64,
        FieldValue::F64(f) => *f as i64,
        other => other.as_i64()?,
    };
    (ms > 0 && ms as u64 <= MAX_DELAY_MS).then_some(ms as u64)
}

/// Held messages kept in memory as well (so firing them reads nothing
/// back); beyond this many or [`MEMORY_BYTES`], held messages are on disk
/// only and cost a small heap entry each.
const MEMORY_COUNT: u64 = 8192;
const MEMORY_BYTES: u64 = 8 * 1024 * 1024;

/// Where a held message is.
#[derive(Debug)]
enum Body {
    /// In memory only: transient within the memory budget, or no data
    /// directory (or a write failed and nobody is told).
    Memory(Arc<Message>),
    /// On disk, and in memory while the budget allows.
    Disk(DiskRef, Option<Arc<Message>>),
}

#[derive(Debug)]
struct Held {
    due_ms: u64,
    seq: u64,
    body: Body,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due_ms, self.seq).cmp(&(other.due_ms, other.seq))
    }
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<Held>>,
    next_seq: u64,
    index: Option<QueueIndex>,
    /// Fired entries, removed once the commit `Ticket` (which has their
    /// copies in the queues) is done.
    fired: Vec<(Ticket, DiskRef)>,
    bytes: u64,
    /// Held messages whose bodies are in memory, and their bytes.
    mem_count: u64,
    mem_bytes: u64,
}

impl State {
    /// A held message with its body in memory leaves.
    fn release(&mut self, m: &Message) {
        let size = m.size() as u64;
        self.bytes = self.bytes.saturating_sub(size);
        self.mem_count = self.mem_count.saturating_sub(1);
        self.mem_bytes = self.mem_bytes.saturating_sub(size);
    }
}

/// What holding a message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held; `needs_sync`: a confirm must wait for the group commit.
    Held { needs_sync: bool },
    /// It had to be written for durability and the write failed.
    Failed,
}

/// A delayed exchange's held messages.
#[derive(Debug)]
pub struct DelayStore {
    state: Mutex<State>,
    storage: Option<StorageHandle>,
    /// Persistent messages survive a restart (a durable exchange).
    durable: bool,
}

impl DelayStore {
    /// A store at `storage` (none: memory only), with what an earlier run
    /// left there.
    pub fn open(storage: Option<StorageHandle>, durable: bool) -> DelayStore {
        let mut state = State::default();
        if let Some(h) = &storage {
            match QueueIndex::open(&h.dir, h.store.clone(), h.store.committer().clone()) {
                Ok((mut index, rec)) => {
                    state.next_seq = rec.next_seq;
                    let mut cursor = rec.cursor;
                    loop {
                        let batch = index.read(&mut cursor, 4096);
                        if batch.is_empty() {
                            break;
                        }
                        for e in batch {
                            state.bytes += u64::from(e.disk.loc.len);
                            state.heap.push(Reverse(Held {
                                due_ms: e.enqueued_ms,
                                seq: e.seq,
                                body: Body::Disk(e.disk, None),
                            }));
                        }
                    }
                    if !state.heap.is_empty() {
                        tracing::info!(
                            "{}: {} delayed message(s) recovered",
                            h.dir.display(),
                            state.heap.len()
                        );
                    }
                    state.index = Some(index);
                }
                Err(e) => {
                    tracing::error!("cannot open delayed messages at {}: {e}", h.dir.display())
                }
            }
        }
        DelayStore {
            state: Mutex::new(state),
            storage,
            durable,
        }
    }

    /// Holds `message` for `delay_ms`. `required`: a confirm or a
    /// transaction vouches for it, so a failed durable write refuses it.
    pub fn hold(&self, message: Arc<Message>, delay_ms: u64, required: bool) -> HoldOutcome {
        let due_ms = now_ms().saturating_add(delay_ms);
        let persist = self.durable && message.is_persistent();
        let size = message.size() as u64;
        let mut st = self.state.lock();
        let in_memory = st.mem_count < MEMORY_COUNT && st.mem_bytes + size <= MEMORY_BYTES;
        let seq = st.next_seq;
        // Written when it must survive a restart, or when memory is full.
        let disk = if persist || !in_memory {
            self.write(&mut st, seq, &message, !persist, due_ms)
        } else {
            None
        };
        if disk.is_none() && persist && required && self.storage.is_some() {
            return HoldOutcome::Failed;
        }
        st.next_seq += 1;
        let keep = in_memory || disk.is_none();
        // Counted as it will be taken off: a body in memory by its size,
        // one only on disk by its stored length.
        st.bytes += match (keep, disk) {
            (false, Some(d)) => u64::from(d.loc.len),
            _ => size,
        };
        if keep {
            st.mem_count += 1;
            st.mem_bytes += size;
        }
        let body = match disk {
            Some(d) => Body::Disk(d, keep.then_some(message)),
            None => Body::Memory(message),
        };
        let earliest = st.heap.peek().is_none_or(|Reverse(h)| due_ms < h.due_ms);
        st.heap.push(Reverse(Held { due_ms, seq, body }));
        drop(st);
        if earliest {
            wake();
        }
        HoldOutcome::Held {
            needs_sync: persist && disk.is_some(),
        }
    }

    fn write(
        &self,
        st: &mut State,
        seq: u64,
        message: &Arc<Message>,
        transient: bool,
        due_ms: u64,
    ) -> Option<DiskRef> {
        let h = self.storage.as_ref()?;
        let index = st.index.as_mut()?;
        let loc = (*message
            .location
            .get_or_init(|| match h.store.append(message) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!("cannot write a delayed message to the store: {e}");
                    None
                }
            }))?;
        match index.append_at(seq, loc, transient, due_ms) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!("cannot hold a delayed message on disk: {e}");
                None
            }
        }
    }

    /// Takes the messages due at `now_ms` (oldest due first), read back
    /// from disk, with their index entries (to [`settle`](Self::settle)
    /// once their copies are durable in the queues).
    pub fn take_due(&self, now_ms: u64, max: usize) -> Vec<(Arc<Message>, Option<DiskRef>)> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        while out.len() < max && st.heap.peek().is_some_and(|Reverse(h)| h.due_ms <= now_ms) {
            let Some(Reverse(h)) = st.heap.pop() else {
                break;
            };
            match h.body {
                Body::Memory(m) => {
                    st.release(&m);
                    out.push((m, None));
                }
                Body::Disk(d, Some(m)) => {
                    st.release(&m);
                    out.push((m, Some(d)));
                }
                Body::Disk(d, None) => {
                    st.bytes = st.bytes.saturating_sub(u64::from(d.loc.len));
                    let read = st.index.as_ref().and_then(|i| i.store().read(d.loc));
                    match read {
                        Some(m) => {
                            let _ = m.location.set(Some(d.loc));
                            out.push((Arc::new(m), Some(d)));
                        }
                        None => {
                            tracing::warn!("a delayed message could not be read back; dropped");
                            if let Some(i) = st.index.as_mut() {
                                i.ack(d);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Fired entries whose copies `ticket` makes durable: removed once it
    /// is committed.
    pub fn fired(&self, ticket: Ticket, disks: impl IntoIterator<Item = DiskRef>) {
        let mut st = self.state.lock();
        for d in disks {
            st.fired.push((ticket, d));
        }
    }

    /// Removes the fired entries whose commit is done; true if some wait.
    /// An entry whose commit failed stays in the index (its copies in the
    /// queues may not be on disk): a restart fires it again.
    pub fn settle(&self, committed: Ticket) -> bool {
        let committer = self.storage.as_ref().map(|h| h.store.committer().clone());
        let mut st = self.state.lock();
        let State { fired, index, .. } = &mut *st;
        fired.retain(|(t, d)| {
            if *t > committed {
                return true;
            }
            let failed = committer.as_ref().is_some_and(|c| c.ticket_failed(*t));
            if let (false, Some(i)) = (failed, index.as_mut()) {
                i.ack(*d);
            }
            false
        });
        !fired.is_empty()
    }

    /// When the next message is due.
    pub fn next_due(&self) -> Option<u64> {
        self.state.lock().heap.peek().map(|Reverse(h)| h.due_ms)
    }

    /// Messages held, and their bytes.
    pub fn held(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.heap.len() as u64, st.bytes)
    }

    /// The exchange was deleted: its held messages go with it.
    pub fn destroy(&self) {
        let mut st = self.state.lock();
        st.heap.clear();
        st.fired.clear();
        st.bytes = 0;
        st.mem_count = 0;
        st.mem_bytes = 0;
        if let Some(index) = st.index.take() {
            index.destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use warren_protocol::{BasicProperties, FieldTable, FieldValue};

    use super::*;
    use crate::store::{Committer, MessageStore};

    fn message(i: u64, persistent: bool) -> Arc<Message> {
        let mut headers = FieldTable::new();
        headers.insert("x-delay", FieldValue::I64(1000));
        let props = BasicProperties {
            headers: Some(headers),
            delivery_mode: persistent.then_some(2),
            ..Default::default()
        };
        let mut raw = bytes::BytesMut::new();
        props.encode(&mut raw);
        Arc::new(Message::new(
            "dx".into(),
            "k".into(),
            props,
            raw.freeze(),
            Bytes::from(format!("{i}-{}", "y".repeat((i % 700) as usize))),
        ))
    }

    /// 10,000 held messages overflow the memory budget: the rest wait on
    /// disk only; all come back, in due order (then publish order), with
    /// their bodies; the persistent ones survive a reopen, the transient
    /// ones don't, and fired entries are gone once settled.
    #[test]
    fn held_messages_beyond_memory_come_back_in_due_order() {
        let dir = std::env::temp_dir().join(format!("warren-delayed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let committer = Arc::new(Committer::default());
        let store = Arc::new(MessageStore::open(&dir.join("msgs"), committer.clone()).unwrap());
        let handle = || StorageHandle {
            store: store.clone(),
            dir: dir.join("delayed"),
        };
        let due_of = |i: u64| 60_000 - (i % 7) * 1000;
        let body_of = |i: u64| String::from_utf8_lossy(&message(i, false).body).into_owned();
        // All of them, read back at once (memory, memory and disk, disk
        // only), in due order.
        let now = DelayStore::open(
            Some(StorageHandle {
                store: store.clone(),
                dir: dir.join("other"),
            }),
            true,
        );
        for i in 0..10_000 {
            now.hold(message(i, i % 3 == 0), due_of(i), false);
        }
        let mut all: Vec<(u64, u64)> = (0..10_000).map(|i| (due_of(i), i)).collect();
        all.sort();
        let got: Vec<String> = now
            .take_due(u64::MAX, usize::MAX)
            .iter()
            .map(|(m, _)| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        assert!(got == all.iter().map(|(_, i)| body_of(*i)).collect::<Vec<_>>());
        assert_eq!(delay_of(&message(0, false)), Some(1000));
        let d = DelayStore::open(Some(handle()), true);
        let n = 10_000u64;
        for i in 0..n {
            let outcome = d.hold(message(i, i % 3 == 0), due_of(i), true);
            assert_eq!(
                outcome,
                HoldOutcome::Held {
                    needs_sync: i % 3 == 0
                }
            );
        }
        assert_eq!(d.held().0, n);
        assert!(d.state.lock().mem_count <= MEMORY_COUNT);
        committer.sync_once().unwrap();
        // A restart: only the persistent ones are back.
        drop(d);
        let d = DelayStore::open(Some(handle()), true);
        assert_eq!(d.held().0, n.div_ceil(3));
        let mut want: Vec<(u64, u64)> = (0..n)
            .filter(|i| i % 3 == 0)
            .map(|i| (due_of(i), i))
            .collect();
        want.sort();
        let due = d.take_due(u64::MAX, usize::MAX);
        let got: Vec<String> = due
            .iter()
            .map(|(m, _)| String::from_utf8_lossy(&m.body).into_owned())
            .collect();
        let expect: Vec<String> = want
            .iter()
            .map(|(_, i)| String::from_utf8_lossy(&message(*i, true).body).into_owned())
            .collect();
        assert!(got == expect, "order or bodies differ");
        d.fired(0, due.into_iter().filter_map(|(_, disk)| disk));
        assert!(!d.settle(0));
        committer.sync_once().unwrap();
        drop(d);
        let d = DelayStore::open(Some(handle()), true);
        assert_eq!(d.held().0, 0, "fired and settled: not held again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

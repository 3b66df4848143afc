//! The retained store's file work, all of it on one dedicated thread
//! (never a runtime worker): loading a log's index from its record
//! headers, group-committed appends, compaction. (Reads of a record are
//! done on tokio's blocking pool by the store.) Writes and fsyncs pass
//! the broker's fault injection (`store::faults`), as the store's do.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;
use warren_broker::store::faults::{self, FileOp};

use super::record::{parse_head, read_checked, Parsed, Record, HAS_DEADLINE, RECORD_MAX};
use super::{now_ms, Budget, RetainError, RetainedEntry, RetainedStore, TOPICS_MAX};

/// A log is compacted once it is larger than twice its live records
/// plus this.
const COMPACT_SLACK: u64 = 1 << 20;
/// Retains gathered into one fsync, at most (count, bytes).
const GROUP_MAX: usize = 1024;
const GROUP_BYTES: usize = 16 << 20;
/// Bytes of a record read first when loading (enough for most topics;
/// more is read only for a long topic).
const HEAD_READ: usize = 512;

/// This file work must not run on a tokio runtime thread (checked in
/// debug builds, which the tests run).
fn off_runtime() {
    debug_assert!(
        tokio::runtime::Handle::try_current().is_err(),
        "retained store file work on a runtime thread"
    );
}

/// Loads `s`'s index from its log's record headers (payloads are
/// skipped, and their CRC checked when read). A torn tail is cut off.
fn load(s: &RetainedStore, budget: &Budget) -> std::io::Result<()> {
    off_runtime();
    let dir = s.path.parent();
    let new_dir = dir.is_some_and(|d| !d.exists());
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
    }
    let new_file = !s.path.exists();
    let file = Arc::new(
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&s.path)?,
    );
    // A new log's name must be durable before its first record counts.
    if new_file {
        if let Some(d) = dir {
            File::open(d)?.sync_all()?;
            if new_dir {
                if let Some(up) = d.parent() {
                    File::open(up)?.sync_all()?;
                }
            }
        }
    }
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(16 << 10, &*file);
    let mut index = std::collections::BTreeMap::new();
    let now = now_ms();
    let mut at = 0u64;
    let mut head = [0u8; 8];
    let mut prefix = Vec::new();
    while at + 8 <= size {
        r.read_exact(&mut head)?;
        let field = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = (field & !HAS_DEADLINE) as usize;
        if len > RECORD_MAX || at + 8 + len as u64 > size {
            break;
        }
        prefix.clear();
        prefix.resize(len.min(HEAD_READ), 0);
        r.read_exact(&mut prefix)?;
        let parsed = loop {
            match parse_head(field, len, &prefix) {
                Parsed::Need(n) => {
                    let got = prefix.len();
                    prefix.resize(n, 0);
                    r.read_exact(&mut prefix[got..])?;
                }
                other => break other,
            }
        };
        r.seek_relative((len - prefix.len()) as i64)?;
        let offset = at;
        at += 8 + len as u64;
        match parsed {
            Parsed::Head(h) if h.empty || h.deadline.is_some_and(|d| d <= now) => {
                index.remove(&h.topic);
            }
            Parsed::Head(h) => {
                let e = RetainedEntry {
                    topic: h.topic.clone(),
                    qos: h.qos,
                    deadline: h.deadline,
                    file: file.clone(),
                    offset,
                    len: 8 + len as u64,
                };
                index.insert(h.topic, Arc::new(e));
            }
            Parsed::Need(_) | Parsed::Bad(_) => {
                let why = match parsed {
                    Parsed::Bad(why) => why,
                    _ => "short",
                };
                tracing::warn!(
                    "{}: damaged record at byte {offset} skipped ({why})",
                    s.path.display()
                );
            }
        }
    }
    drop(r);
    if at < size {
        tracing::warn!(
            "{}: torn tail at byte {at} cut off ({} bytes)",
            s.path.display(),
            size - at
        );
        file.set_len(at)?;
        file.sync_all()?;
    }
    let live: u64 = index.values().map(|e: &Arc<RetainedEntry>| e.len).sum();
    budget.add(live);
    if budget.used() > budget.max {
        tracing::warn!(
            "retained messages take {} bytes, over the bound of {}: new ones are refused",
            budget.used(),
            budget.max
        );
    }
    tracing::info!(
        "vhost '{}': {} retained messages ({live} bytes) loaded",
        s.vhost,
        index.len()
    );
    let mut st = s.state.lock();
    st.index = index;
    st.file = Some(file);
    st.log_bytes = at;
    st.live_bytes = live;
    Ok(())
}

/// Rewrites `s`'s log with its live records only (to a temporary file,
/// fsynced, renamed over the log, the directory fsynced).
fn compact(s: &RetainedStore, budget: &Budget) -> std::io::Result<()> {
    off_runtime();
    let entries: Vec<Arc<RetainedEntry>> = s.state.lock().index.values().cloned().collect();
    let tmp = s.path.with_extension("tmp");
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&tmp)?;
    f.set_len(0)?;
    let new = Arc::new(f);
    let mut w = BufWriter::with_capacity(1 << 20, &*new);
    let mut moved = Vec::with_capacity(entries.len());
    let mut lost = Vec::new();
    let mut off = 0u64;
    for e in entries {
        match read_checked(&e) {
            Ok((field, body)) => {
                w.write_all(&field.to_be_bytes())?;
                w.write_all(&crc32fast::hash(&body).to_be_bytes())?;
                w.write_all(&body)?;
                moved.push((e, off));
                off += 8 + body.len() as u64;
            }
            Err(why) => {
                tracing::warn!(
                    "{}: retained message for '{}' dropped: {why}",
                    s.path.display(),
                    e.topic
                );
                lost.push(e);
            }
        }
    }
    faults::check(&tmp, FileOp::Write)?;
    w.flush()?;
    drop(w);
    faults::check(&tmp, FileOp::Sync)?;
    new.sync_all()?;
    std::fs::rename(&tmp, &s.path)?;
    if let Some(dir) = s.path.parent() {
        File::open(dir)?.sync_all()?;
    }
    let mut st = s.state.lock();
    for (e, offset) in moved {
        if st.index.get(&e.topic).is_some_and(|c| Arc::ptr_eq(c, &e)) {
            let moved = RetainedEntry {
                topic: e.topic.clone(),
                qos: e.qos,
                deadline: e.deadline,
                file: new.clone(),
                offset,
                len: e.len,
            };
            st.index.insert(e.topic.clone(), Arc::new(moved));
        }
    }
    for e in lost {
        st.remove(&e.topic, Some(&e), budget);
    }
    st.file = Some(new);
    st.log_bytes = off;
    st.poisoned = false;
    Ok(())
}

type Reply = Option<oneshot::Sender<Result<(), RetainError>>>;

fn answer(reply: Reply, topic: &str, r: Result<(), RetainError>) {
    let r = match reply {
        Some(tx) => match tx.send(r) {
            Ok(()) => return,
            Err(r) => r,
        },
        None => r,
    };
    if let Err(e) = &r {
        // Nobody waits (a will): say it here.
        tracing::warn!("retained message for '{topic}' not kept: {e}");
    }
}

enum Job {
    Load(Arc<RetainedStore>),
    Retain(Arc<RetainedStore>, Record, Reply),
}

/// The thread that does every retained store's file work.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    pub(super) budget: Arc<Budget>,
}

impl Writer {
    /// Starts the thread; live records of all stores are bounded by
    /// `max_bytes`.
    pub(crate) fn start(max_bytes: u64) -> Arc<Writer> {
        let (tx, rx) = mpsc::channel();
        let budget = Budget::new(max_bytes);
        let b = budget.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("mqtt-retained".into())
            .spawn(move || run(&rx, &b))
        {
            // Every job is then refused (its receiver is gone).
            tracing::error!("cannot start the retained messages' thread: {e}");
        }
        Arc::new(Writer { tx, budget })
    }

    pub(super) fn load(&self, s: &Arc<RetainedStore>) {
        if self.tx.send(Job::Load(s.clone())).is_err() {
            s.state.lock().failed = Some("the retained store's thread is not running".into());
            s.ready.send_replace(true);
        }
    }

    pub(super) fn retain(
        &self,
        s: &Arc<RetainedStore>,
        r: Record,
        reply: Reply,
    ) -> Result<(), RetainError> {
        self.tx
            .send(Job::Retain(s.clone(), r, reply))
            .map_err(|_| RetainError::Io("the retained store's thread is not running".into()))
    }
}

fn run(rx: &mpsc::Receiver<Job>, budget: &Budget) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut bytes = 0;
        while jobs.len() < GROUP_MAX && bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    if let Job::Retain(_, r, _) = &j {
                        bytes += r.bytes.len();
                    }
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let mut groups: Vec<Group> = Vec::new();
        // Bytes the groups staged so far add (every store counts against
        // the one bound).
        let mut staged = 0i64;
        for job in jobs {
            match job {
                Job::Load(s) => {
                    if let Err(e) = load(&s, budget) {
                        tracing::error!("{}: cannot load: {e}", s.path.display());
                        s.state.lock().failed =
                            Some(format!("cannot load {}: {e}", s.path.display()));
                    }
                    s.ready.send_replace(true);
                    maybe_compact(&s, budget);
                }
                Job::Retain(s, r, reply) => {
                    let i = match groups.iter().position(|g| Arc::ptr_eq(&g.store, &s)) {
                        Some(i) => i,
                        None => {
                            groups.push(Group::new(s));
                            groups.len() - 1
                        }
                    };
                    groups[i].stage(r, reply, budget, &mut staged);
                }
            }
        }
        for g in groups {
            let s = g.store.clone();
            g.commit(budget);
            maybe_compact(&s, budget);
        }
    }
}

fn maybe_compact(s: &RetainedStore, budget: &Budget) {
    let due = {
        let st = s.state.lock();
        st.file.is_some() && (st.poisoned || st.log_bytes > 2 * st.live_bytes + COMPACT_SLACK)
    };
    if due {
        if let Err(e) = compact(s, budget) {
            tracing::warn!("{}: compaction failed: {e}", s.path.display());
        }
    }
}

/// One store's retains gathered for one fsync.
struct Group {
    store: Arc<RetainedStore>,
    buf: Vec<u8>,
    /// (record without its bytes, offset in `buf`, length, reply).
    items: Vec<(Record, u64, u64, Reply)>,
    /// Topic → its live record size once this group is written.
    sizes: HashMap<String, u64>,
    new_topics: i64,
}

impl Group {
    fn new(store: Arc<RetainedStore>) -> Group {
        Group {
            store,
            buf: Vec::new(),
            items: Vec::new(),
            sizes: HashMap::new(),
            new_topics: 0,
        }
    }

    /// Checks `r` against the bounds (counting what this group already
    /// holds) and adds it, or refuses it.
    fn stage(&mut self, mut r: Record, reply: Reply, budget: &Budget, staged: &mut i64) {
        let st = self.store.state.lock();
        if let Some(why) = &st.failed {
            let why = RetainError::Io(why.clone());
            drop(st);
            return answer(reply, &r.topic, Err(why));
        }
        let old = match self.sizes.get(&r.topic) {
            Some(&s) => s,
            None => st.index.get(&r.topic).map_or(0, |e| e.len),
        };
        let new = if r.empty { 0 } else { r.bytes.len() as u64 };
        let topics = st.index.len() as i64 + self.new_topics;
        drop(st);
        if r.empty && old == 0 {
            // Nothing retained to forget.
            return answer(reply, &r.topic, Ok(()));
        }
        if !r.empty && old == 0 && topics >= TOPICS_MAX as i64 {
            let why = format!(
                "vhost '{}' has {TOPICS_MAX} retained topics, the most it may hold",
                self.store.vhost
            );
            return answer(reply, &r.topic, Err(RetainError::Quota(why)));
        }
        let after = (budget.used() as i64 + *staged + new as i64 - old as i64).max(0) as u64;
        if new > old && after > budget.max {
            let why = format!(
                "retained messages would take {after} bytes, over the bound of {} \
                 (mqtt_retained_max_bytes)",
                budget.max
            );
            return answer(reply, &r.topic, Err(RetainError::Quota(why)));
        }
        *staged += new as i64 - old as i64;
        self.new_topics += i64::from(old == 0 && new > 0) - i64::from(old > 0 && new == 0);
        self.sizes.insert(r.topic.clone(), new);
        let offset = self.buf.len() as u64;
        let len = r.bytes.len() as u64;
        self.buf.append(&mut r.bytes);
        self.items.push((r, offset, len, reply));
    }

    /// Appends the group, fsyncs it, then updates the index and answers.
    fn commit(self, budget: &Budget) {
        if self.items.is_empty() {
            return;
        }
        off_runtime();
        let s = &self.store;
        let poisoned = s.state.lock().poisoned;
        if poisoned {
            if let Err(e) = compact(s, budget) {
                tracing::error!("{}: cannot rewrite the log: {e}", s.path.display());
            }
        }
        let (file, base, poisoned) = {
            let st = s.state.lock();
            (st.file.clone(), st.log_bytes, st.poisoned)
        };
        let written = match file {
            Some(f) if !poisoned => match faults::check(&s.path, FileOp::Write)
                .and_then(|_| (&*f).write_all(&self.buf))
                .and_then(|_| faults::check(&s.path, FileOp::Sync))
                .and_then(|_| f.sync_data())
            {
                Ok(()) => Ok(f),
                Err(e) => {
                    // Cut the failed append off; the log is rewritten
                    // from the index before the next one.
                    let _ = f.set_len(base);
                    s.state.lock().poisoned = true;
                    Err(format!("cannot write {}: {e}", s.path.display()))
                }
            },
            _ => Err(format!("{} cannot be written", s.path.display())),
        };
        let f = match written {
            Ok(f) => f,
            Err(why) => {
                tracing::error!("{why}");
                for (r, _, _, reply) in self.items {
                    answer(reply, &r.topic, Err(RetainError::Io(why.clone())));
                }
                return;
            }
        };
        let mut st = s.state.lock();
        for (r, offset, len, _) in &self.items {
            if r.empty {
                st.remove(&r.topic, None, budget);
                continue;
            }
            let e = RetainedEntry {
                topic: r.topic.clone(),
                qos: r.qos,
                deadline: r.deadline,
                file: f.clone(),
                offset: base + offset,
                len: *len,
            };
            if let Some(old) = st.index.insert(r.topic.clone(), Arc::new(e)) {
                st.live_bytes = st.live_bytes.saturating_sub(old.len);
                budget.sub(old.len);
            }
            st.live_bytes += len;
            budget.add(*len);
        }
        st.log_bytes = base + self.buf.len() as u64;
        drop(st);
        for (r, _, _, reply) in self.items {
            answer(reply, &r.topic, Ok(()));
        }
    }
}

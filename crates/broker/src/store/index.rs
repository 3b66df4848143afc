//! A queue's index: the queue's messages in order, as references into the
//! message store, plus delivery and ack marks.
//!
//! Files in the queue's directory:
//! - `<id:010>.idx`: entries of [`ENTRY_SIZE`] bytes:
//!   `u64 seq | u32 segment | u32 offset | u32 length | u16 flags |
//!   u16 reserved | u64 enqueued-at (ms since the epoch) | u32 CRC-32 of
//!   the first 36 bytes`. At most [`SEGMENT_ENTRIES`] per file.
//! - `<id:010>.acks`: marks for that file's entries, [`MARK_SIZE`] bytes:
//!   `u32 entry number | u8 kind (1 delivered, 2 acked) | 3 reserved |
//!   u32 CRC-32 of the first 8 bytes`.
//!
//! Only small per-file bitmaps live in memory, so a queue of ten million
//! messages costs a few megabytes, not gigabytes.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::commit::{Committer, DirtyFile};
use super::files::{create_dir_durable, read_all, write_atomic, SyncFile};
use super::msgstore::{Location, MessageStore};

pub const ENTRY_SIZE: usize = 40;
pub const MARK_SIZE: usize = 12;
pub const SEGMENT_ENTRIES: u32 = 65_536;

const FLAG_TRANSIENT: u16 = 1;
const MARK_DELIVERED: u8 = 1;
const MARK_ACKED: u8 = 2;

/// An entry's place: index file id and entry number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPos {
    pub segment: u32,
    pub entry: u32,
}

/// A message's on-disk identity within one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskRef {
    pub pos: IndexPos,
    pub loc: Location,
    /// The priority lane whose index holds the entry (0 for plain queues).
    pub lane: u8,
}

/// An entry read back from the index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub disk: DiskRef,
    pub seq: u64,
    pub enqueued_ms: u64,
    pub delivered: bool,
}

#[derive(Debug)]
struct Segment {
    id: u32,
    file: Arc<DirtyFile>,
    marks: Option<Arc<DirtyFile>>,
    count: u32,
    /// Entries acked (or transient leftovers after a restart).
    acked: Vec<u64>,
    acked_count: u32,
    delivered: Vec<u64>,
}

fn bit(v: &[u64], i: u32) -> bool {
    v.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(v: &mut Vec<u64>, i: u32) -> bool {
    let w = (i / 64) as usize;
    if v.len() <= w {
        v.resize(w + 1, 0);
    }
    let was = v[w] & (1 << (i % 64)) != 0;
    v[w] |= 1 << (i % 64);
    !was
}

/// Where the next read of not-yet-loaded entries starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub segment: u32,
    pub entry: u32,
}

#[derive(Debug)]
pub struct QueueIndex {
    dir: PathBuf,
    store: Arc<MessageStore>,
    committer: Arc<Committer>,
    segments: VecDeque<Segment>,
    /// Message-store segment → this queue's live references to it.
    refs: HashMap<u32, u64>,
    /// The priority lane this index serves, stamped on its [`DiskRef`]s.
    lane: u8,
    /// After a crash, entries recovered (sequence below this) are read back
    /// as delivered: a delivery mark may not have reached the disk before
    /// the crash, and "redelivered" must not be false for a message a
    /// client may have seen (AMQP allows saying it too often, not too
    /// rarely).
    maybe_delivered_below: u64,
}

/// What recovery found in an index.
#[derive(Debug, Default)]
pub struct Recovered {
    pub live: u64,
    pub bytes: u64,
    pub next_seq: u64,
    /// Where reading the recovered messages starts.
    pub cursor: Cursor,
}

fn entry_bytes(seq: u64, loc: Location, flags: u16, ts: u64) -> [u8; ENTRY_SIZE] {
    let mut e = [0u8; ENTRY_SIZE];
    e[0..8].copy_from_slice(&seq.to_be_bytes());
    e[8..12].copy_from_slice(&loc.segment.to_be_bytes());
    e[12..16].copy_from_slice(&loc.offset.to_be_bytes());
    e[16..20].copy_from_slice(&loc.len.to_be_bytes());
    e[20..22].copy_from_slice(&flags.to_be_bytes());
    e[24..32].copy_from_slice(&ts.to_be_bytes());
    let crc = crc32fast::hash(&e[..36]);
    e[36..40].copy_from_slice(&crc.to_be_bytes());
    e
}

struct Parsed {
    seq: u64,
    loc: Location,
    flags: u16,
    ts: u64,
}

fn parse_entry(e: &[u8]) -> Option<Parsed> {
    let u32_at = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&e[i..i + 8]);
        u64::from_be_bytes(b)
    };
    if e.len() < ENTRY_SIZE || crc32fast::hash(&e[..36]) != u32_at(36) {
        return None;
    }
    Some(Parsed {
        seq: u64_at(0),
        loc: Location {
            segment: u32_at(8),
            offset: u32_at(12),
            len: u32_at(16),
        },
        flags: u16::from_be_bytes([e[20], e[21]]),
        ts: u64_at(24),
    })
}

fn mark_bytes(entry: u32, kind: u8) -> [u8; MARK_SIZE] {
    let mut m = [0u8; MARK_SIZE];
    m[0..4].copy_from_slice(&entry.to_be_bytes());
    m[4] = kind;
    let crc = crc32fast::hash(&m[..8]);
    m[8..12].copy_from_slice(&crc.to_be_bytes());
    m
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl QueueIndex {
    fn idx_path(dir: &Path, id: u32) -> PathBuf {
        dir.join(format!("{id:010}.idx"))
    }

    fn marks_path(dir: &Path, id: u32) -> PathBuf {
        dir.join(format!("{id:010}.acks"))
    }

    /// Opens (recovering) the index in `dir`. Transient entries left from
    /// before a restart count as gone; references to the message store are
    /// re-registered for every live entry.
    pub fn open(
        dir: &Path,
        store: Arc<MessageStore>,
        committer: Arc<Committer>,
    ) -> io::Result<(QueueIndex, Recovered)> {
        create_dir_durable(dir)?;
        let mut ids: Vec<u32> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".idx"))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        ids.sort_unstable();
        let mut idx = QueueIndex {
            dir: dir.to_path_buf(),
            store,
            committer,
            segments: VecDeque::new(),
            refs: HashMap::new(),
            lane: 0,
            maybe_delivered_below: 0,
        };
        let mut rec = Recovered::default();
        let mut cursor_set = false;
        for id in ids {
            let path = Self::idx_path(dir, id);
            let raw = read_all(&path)?;
            let parsed: Vec<Option<Parsed>> = raw.chunks(ENTRY_SIZE).map(parse_entry).collect();
            // Entries after the last good one are a torn tail (a crash
            // mid-append) and are cut off; a bad entry before a good one
            // is damage, skipped on its own: what follows it is kept.
            let count = parsed
                .iter()
                .rposition(Option::is_some)
                .map_or(0, |i| i + 1) as u32;
            if (count as usize) < parsed.len() {
                warn!(
                    "{}: torn or corrupt tail of {} byte(s) after entry {count}; truncating there",
                    path.display(),
                    raw.len() - count as usize * ENTRY_SIZE
                );
            }
            let mut acked = Vec::new();
            let mut delivered = Vec::new();
            let entries: Vec<Option<Parsed>> = parsed.into_iter().take(count as usize).collect();
            for (n, e) in entries.iter().enumerate() {
                if e.is_none() {
                    warn!(
                        "{}: entry {n} is corrupt (checksum); skipping it and keeping the rest",
                        path.display()
                    );
                    set_bit(&mut acked, n as u32);
                }
            }
            let marks_path = Self::marks_path(dir, id);
            let marks_raw = read_all(&marks_path)?;
            let mut marks_len = 0u64;
            let mut bad_marks = 0;
            for (k, m) in marks_raw.chunks(MARK_SIZE).enumerate() {
                // An entry number past the file's capacity can only be
                // damage that kept its checksum: skipped, so a bad mark
                // can't make the bitmaps grow.
                let ok = m.len() == MARK_SIZE
                    && crc32fast::hash(&m[..8]) == u32::from_be_bytes([m[8], m[9], m[10], m[11]])
                    && u32::from_be_bytes([m[0], m[1], m[2], m[3]]) < SEGMENT_ENTRIES;
                if !ok {
                    bad_marks += 1;
                    continue;
                }
                marks_len = ((k + 1) * MARK_SIZE) as u64;
                let n = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
                match m[4] {
                    MARK_ACKED => {
                        set_bit(&mut acked, n);
                    }
                    MARK_DELIVERED => {
                        set_bit(&mut delivered, n);
                    }
                    _ => {}
                }
            }
            if bad_marks > 0 {
                // A lost ack means a redelivery, never a loss.
                warn!(
                    "{}: {bad_marks} torn or corrupt mark(s) skipped",
                    marks_path.display()
                );
            }
            let mut acked_count = 0;
            for (n, e) in entries.iter().enumerate() {
                let n = n as u32;
                let Some(e) = e else {
                    acked_count += 1;
                    continue;
                };
                rec.next_seq = rec.next_seq.max(e.seq + 1);
                if e.flags & FLAG_TRANSIENT != 0 {
                    set_bit(&mut acked, n);
                }
                if bit(&acked, n) {
                    acked_count += 1;
                    continue;
                }
                rec.live += 1;
                rec.bytes += u64::from(e.loc.len);
                *idx.refs.entry(e.loc.segment).or_default() += 1;
                idx.store.add_ref(e.loc.segment);
                if !cursor_set {
                    rec.cursor = Cursor {
                        segment: id,
                        entry: n,
                    };
                    cursor_set = true;
                }
            }
            if count > 0 && acked_count == count {
                // Fully acked: nothing to keep.
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(Self::marks_path(dir, id));
                continue;
            }
            let file = DirtyFile::new(Arc::new(SyncFile::open(
                &path,
                u64::from(count) * ENTRY_SIZE as u64,
            )?));
            let marks = if marks_len > 0 {
                Some(DirtyFile::new(Arc::new(SyncFile::open(
                    &Self::marks_path(dir, id),
                    marks_len,
                )?)))
            } else {
                None
            };
            idx.segments.push_back(Segment {
                id,
                file,
                marks,
                count,
                acked,
                acked_count,
                delivered,
            });
        }
        if !cursor_set {
            rec.cursor = Cursor {
                segment: idx.segments.back().map_or(0, |s| s.id + 1),
                entry: 0,
            };
        }
        if idx.store.unclean_start() {
            idx.maybe_delivered_below = rec.next_seq;
        }
        Ok((idx, rec))
    }

    fn segment_mut(&mut self, id: u32) -> Option<&mut Segment> {
        let i = self.segments.binary_search_by_key(&id, |s| s.id).ok()?;
        self.segments.get_mut(i)
    }

    /// Appends an entry for a message already in the message store.
    pub fn append(&mut self, seq: u64, loc: Location, transient: bool) -> io::Result<DiskRef> {
        self.append_at(seq, loc, transient, now_ms())
    }

    /// Appends an entry stamped `ms` instead of now (the delayed exchange
    /// stamps when a message is due; recovery hands it back as
    /// `enqueued_ms`).
    pub fn append_at(
        &mut self,
        seq: u64,
        loc: Location,
        transient: bool,
        ms: u64,
    ) -> io::Result<DiskRef> {
        let r = self.append_entry(seq, loc, transient, ms);
        if let Err(e) = &r {
            self.committer.report_failure(e);
        }
        r
    }

    fn append_entry(
        &mut self,
        seq: u64,
        loc: Location,
        transient: bool,
        ms: u64,
    ) -> io::Result<DiskRef> {
        // A file whose fsync failed takes no more entries: start another.
        let need_new = self
            .segments
            .back()
            .is_none_or(|s| s.count >= SEGMENT_ENTRIES || s.file.file.is_poisoned());
        if need_new {
            let id = self.segments.back().map_or(0, |s| s.id + 1);
            let file = DirtyFile::new(Arc::new(SyncFile::open(&Self::idx_path(&self.dir, id), 0)?));
            self.segments.push_back(Segment {
                id,
                file,
                marks: None,
                count: 0,
                acked: Vec::new(),
                acked_count: 0,
                delivered: Vec::new(),
            });
        }
        let flags = if transient { FLAG_TRANSIENT } else { 0 };
        let bytes = entry_bytes(seq, loc, flags, ms);
        let committer = self.committer.clone();
        let seg = self
            .segments
            .back_mut()
            .ok_or_else(|| io::Error::other("index has no segment"))?;
        seg.file.file.append(&bytes)?;
        committer.mark_dirty(&seg.file);
        let pos = IndexPos {
            segment: seg.id,
            entry: seg.count,
        };
        seg.count += 1;
        *self.refs.entry(loc.segment).or_default() += 1;
        self.store.add_ref(loc.segment);
        Ok(DiskRef {
            pos,
            loc,
            lane: self.lane,
        })
    }

    fn write_mark(&mut self, pos: IndexPos, kind: u8) -> io::Result<()> {
        // Two marks per message (delivered, acked): the path is built only
        // when the marks file has to be opened or rewritten.
        let Ok(i) = self.segments.binary_search_by_key(&pos.segment, |s| s.id) else {
            return Ok(());
        };
        let (dir, committer) = (&self.dir, &self.committer);
        let Some(seg) = self.segments.get_mut(i) else {
            return Ok(());
        };
        if seg.marks.as_ref().is_some_and(|m| m.file.is_poisoned()) {
            // The bitmaps in memory are the truth: write them out afresh
            // (atomically) instead of trusting a file whose fsync failed.
            // Until that succeeds the poisoned file stays in place (never
            // reopened empty, which would forget the acks it holds).
            let path = Self::marks_path(dir, seg.id);
            let mut all = Vec::new();
            for n in 0..seg.count {
                if bit(&seg.delivered, n) {
                    all.extend_from_slice(&mark_bytes(n, MARK_DELIVERED));
                }
                if bit(&seg.acked, n) {
                    all.extend_from_slice(&mark_bytes(n, MARK_ACKED));
                }
            }
            write_atomic(&path, &all)?;
            seg.marks = Some(DirtyFile::new(Arc::new(SyncFile::open(
                &path,
                all.len() as u64,
            )?)));
            // The new mark is already among the bits rewritten.
            return Ok(());
        }
        let m = match &mut seg.marks {
            Some(m) => m,
            marks @ None => {
                let path = Self::marks_path(dir, seg.id);
                marks.insert(DirtyFile::new(Arc::new(SyncFile::open(&path, 0)?)))
            }
        };
        m.file.append(&mark_bytes(pos.entry, kind))?;
        committer.mark_lazy(m);
        Ok(())
    }

    /// Records a delivery, so a restart marks the message redelivered.
    pub fn delivered(&mut self, pos: IndexPos) {
        let first = self
            .segment_mut(pos.segment)
            .is_some_and(|s| set_bit(&mut s.delivered, pos.entry));
        if first {
            if let Err(e) = self.write_mark(pos, MARK_DELIVERED) {
                warn!("cannot record delivery in {}: {e}", self.dir.display());
            }
        }
    }

    /// Removes an entry for good (ack, reject, expiry, purge).
    pub fn ack(&mut self, disk: DiskRef) {
        let fresh = self
            .segment_mut(disk.pos.segment)
            .is_some_and(|s| set_bit(&mut s.acked, disk.pos.entry));
        if !fresh {
            return;
        }
        if let Err(e) = self.write_mark(disk.pos, MARK_ACKED) {
            warn!("cannot record ack in {}: {e}", self.dir.display());
        }
        if let Some(s) = self.segment_mut(disk.pos.segment) {
            s.acked_count += 1;
        }
        self.release(disk.loc.segment);
        self.drop_finished_segments();
    }

    fn release(&mut self, msg_segment: u32) {
        if let Some(n) = self.refs.get_mut(&msg_segment) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(&msg_segment);
            }
        }
        self.store.release(msg_segment);
    }

    /// Deletes index files whose entries are all acked, except the one
    /// being appended to.
    fn drop_finished_segments(&mut self) {
        let last = self.segments.back().map(|s| s.id);
        self.segments.retain(|s| {
            let done = s.count > 0 && s.acked_count >= s.count && Some(s.id) != last;
            if done {
                let _ = std::fs::remove_file(&s.file.file.path);
                if let Some(m) = &s.marks {
                    let _ = std::fs::remove_file(&m.file.path);
                }
            }
            !done
        });
    }

    /// Reads up to `max` live entries from `cursor`, advancing it.
    pub fn read(&mut self, cursor: &mut Cursor, max: usize) -> Vec<IndexEntry> {
        let lane = self.lane;
        let maybe_delivered_below = self.maybe_delivered_below;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(i) = self.segments.iter().position(|s| s.id >= cursor.segment) else {
                break;
            };
            let seg = &self.segments[i];
            if seg.id != cursor.segment {
                *cursor = Cursor {
                    segment: seg.id,
                    entry: 0,
                };
            }
            if cursor.entry >= seg.count {
                if i + 1 == self.segments.len() {
                    break;
                }
                *cursor = Cursor {
                    segment: seg.id + 1,
                    entry: 0,
                };
                continue;
            }
            let n = ((seg.count - cursor.entry) as usize)
                .min(max - out.len())
                .min(4096);
            let mut raw = vec![0u8; n * ENTRY_SIZE];
            if let Err(e) = seg
                .file
                .file
                .read_at(u64::from(cursor.entry) * ENTRY_SIZE as u64, &mut raw)
            {
                warn!("cannot read {}: {e}", seg.file.file.path.display());
                break;
            }
            for (k, chunk) in raw.chunks(ENTRY_SIZE).enumerate() {
                let entry = cursor.entry + k as u32;
                if bit(&seg.acked, entry) {
                    continue;
                }
                if let Some(p) = parse_entry(chunk) {
                    out.push(IndexEntry {
                        disk: DiskRef {
                            pos: IndexPos {
                                segment: seg.id,
                                entry,
                            },
                            loc: p.loc,
                            lane,
                        },
                        seq: p.seq,
                        enqueued_ms: p.ts,
                        delivered: bit(&seg.delivered, entry) || p.seq < maybe_delivered_below,
                    });
                }
            }
            cursor.entry += n as u32;
        }
        out
    }

    /// Serves priority lane `lane`: its entries' [`DiskRef`]s say so.
    pub fn set_lane(&mut self, lane: u8) {
        self.lane = lane;
    }

    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }

    /// Deletes the whole index (queue deleted), releasing its references.
    pub fn destroy(mut self) {
        for (seg, n) in std::mem::take(&mut self.refs) {
            for _ in 0..n {
                self.store.release(seg);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests;

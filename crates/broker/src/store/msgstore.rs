//! The shared, append-only message store of a vhost.
//!
//! Record: `u32 payload length | u32 CRC-32 of payload | payload`, payload
//! `u8 flags | u8 len, exchange | u8 len, routing key | u32 len, raw
//! properties | u32 len, body`. Segments are `msgs/<id:010>.seg`, rolled at
//! [`SEGMENT_MAX`]; after a restart writing starts in a fresh segment, so a
//! torn tail in an old one is never appended to (and a corrupt record is
//! caught by its checksum when read).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tracing::{info, warn};
use warren_protocol::{BasicProperties, Decoder, ShortStr};

use super::commit::{Committer, DirtyFile};
use super::files::{create_dir_durable, SyncFile};
use crate::message::Message;

pub const SEGMENT_MAX: u64 = 64 * 1024 * 1024;
/// A current segment this large that nothing references any more is
/// rolled over and deleted, so a drained queue leaves little on disk.
const ROLL_WHEN_EMPTY: u64 = 4 * 1024 * 1024;
const RECORD_HEADER: usize = 8;

/// Where a message record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug)]
struct Segment {
    file: Arc<DirtyFile>,
    /// Index entries (all queues) that still reference this segment.
    refs: u64,
}

#[derive(Debug)]
struct State {
    current: u32,
    segments: HashMap<u32, Segment>,
}

#[derive(Debug)]
pub struct MessageStore {
    dir: PathBuf,
    committer: Arc<Committer>,
    segment_max: u64,
    state: Mutex<State>,
    /// The broker did not stop cleanly last time: messages recovered now
    /// may have been delivered without the mark reaching the disk.
    unclean_start: std::sync::atomic::AtomicBool,
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

impl MessageStore {
    /// Opens the store. Existing segments are kept for reading (the queue
    /// indexes say what they still hold); writing starts in a new one.
    pub fn open(dir: &Path, committer: Arc<Committer>) -> io::Result<MessageStore> {
        Self::open_with(dir, committer, SEGMENT_MAX)
    }

    /// As `open`, with a chosen segment size (tests use small ones).
    pub fn open_with(
        dir: &Path,
        committer: Arc<Committer>,
        segment_max: u64,
    ) -> io::Result<MessageStore> {
        create_dir_durable(dir)?;
        let mut segments = HashMap::new();
        let mut max = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let len = entry.metadata()?.len();
            let file = DirtyFile::new(Arc::new(SyncFile::open(&entry.path(), len)?));
            segments.insert(id, Segment { file, refs: 0 });
            max = max.max(id);
        }
        let current = max + 1;
        let file = DirtyFile::new(Arc::new(SyncFile::open(&segment_path(dir, current), 0)?));
        segments.insert(current, Segment { file, refs: 0 });
        Ok(MessageStore {
            dir: dir.to_path_buf(),
            committer,
            segment_max,
            state: Mutex::new(State { current, segments }),
            unclean_start: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks this start as following a crash (see `unclean_start`).
    pub fn set_unclean_start(&self, unclean: bool) {
        self.unclean_start
            .store(unclean, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this start follows a crash.
    pub fn unclean_start(&self) -> bool {
        self.unclean_start
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn committer(&self) -> &Arc<Committer> {
        &self.committer
    }

    /// Appends a message record (buffered; made durable by the committer).
    pub fn append(&self, m: &Message) -> io::Result<Location> {
        let mut payload = BytesMut::with_capacity(
            12 + m.exchange.len() + m.routing_key.len() + m.raw_properties.len() + m.body.len(),
        );
        payload.put_u8(u8::from(m.is_persistent()));
        payload.put_u8(m.exchange.len() as u8);
        payload.put_slice(m.exchange.as_bytes());
        payload.put_u8(m.routing_key.len() as u8);
        payload.put_slice(m.routing_key.as_bytes());
        payload.put_u32(m.raw_properties.len() as u32);
        payload.put_slice(&m.raw_properties);
        payload.put_u32(m.body.len() as u32);
        let mut record = BytesMut::with_capacity(RECORD_HEADER + payload.len() + m.body.len());
        record.put_u32((payload.len() + m.body.len()) as u32);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&payload);
        crc.update(&m.body);
        record.put_u32(crc.finalize());
        record.put_slice(&payload);
        record.put_slice(&m.body);

        let mut st = self.state.lock();
        let mut seg = st
            .segments
            .get(&st.current)
            .map(|s| s.file.clone())
            .ok_or_else(|| io::Error::other("message store has no current segment"))?;
        // A segment whose fsync failed is not written to again.
        if seg.file.is_poisoned()
            || (seg.file.len() + record.len() as u64 > self.segment_max && !seg.file.is_empty())
        {
            seg = self
                .roll_locked(&mut st)
                .inspect_err(|e| self.committer.report_failure(e))?;
        }
        let offset = seg
            .file
            .append(&record)
            .inspect_err(|e| self.committer.report_failure(e))?;
        let loc = Location {
            segment: st.current,
            offset: offset as u32,
            len: record.len() as u32,
        };
        drop(st);
        self.committer.mark_dirty(&seg);
        Ok(loc)
    }

    /// Reads a message back; `None` (logged) if the record is corrupt.
    pub fn read(&self, loc: Location) -> Option<Message> {
        let file = self
            .state
            .lock()
            .segments
            .get(&loc.segment)
            .map(|s| s.file.clone())?;
        let mut raw = vec![0u8; loc.len as usize];
        if let Err(e) = file.file.read_at(u64::from(loc.offset), &mut raw) {
            warn!("cannot read message at {loc:?}: {e}");
            return None;
        }
        let msg = decode_record(Bytes::from(raw));
        if msg.is_none() {
            warn!(
                "corrupt message record at {loc:?} in {}; skipping it",
                file.file.path.display()
            );
        }
        msg
    }

    pub fn add_ref(&self, segment: u32) {
        if let Some(s) = self.state.lock().segments.get_mut(&segment) {
            s.refs += 1;
        }
    }

    /// Drops a reference; deletes the segment when it was the last one
    /// (and writing has moved on from it).
    pub fn release(&self, segment: u32) {
        let mut st = self.state.lock();
        let Some(s) = st.segments.get_mut(&segment) else {
            return;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs != 0 {
            return;
        }
        let len = s.file.file.len();
        if segment != st.current {
            Self::remove_locked(&self.dir, &mut st, segment);
        } else if len >= ROLL_WHEN_EMPTY.min(self.segment_max) {
            if let Err(e) = self.roll_locked(&mut st) {
                warn!("cannot roll message store segment: {e}");
            }
        }
    }

    /// Starts a new current segment; deletes the old one if unreferenced.
    fn roll_locked(&self, st: &mut State) -> io::Result<Arc<DirtyFile>> {
        let next = st.current + 1;
        let file = DirtyFile::new(Arc::new(SyncFile::open(&segment_path(&self.dir, next), 0)?));
        st.segments.insert(
            next,
            Segment {
                file: file.clone(),
                refs: 0,
            },
        );
        let old = st.current;
        st.current = next;
        if st.segments.get(&old).is_some_and(|s| s.refs == 0) {
            Self::remove_locked(&self.dir, st, old);
        }
        Ok(file)
    }

    fn remove_locked(dir: &Path, st: &mut State, segment: u32) {
        st.segments.remove(&segment);
        let path = segment_path(dir, segment);
        if let Err(e) = std::fs::remove_file(&path) {
            warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// After recovery: deletes segments no index references.
    pub fn remove_unreferenced(&self) {
        let mut st = self.state.lock();
        let doomed: Vec<u32> = st
            .segments
            .iter()
            .filter(|(id, s)| s.refs == 0 && **id != st.current)
            .map(|(id, _)| *id)
            .collect();
        if !doomed.is_empty() {
            info!(
                "message store {}: removing {} unreferenced segment(s)",
                self.dir.display(),
                doomed.len()
            );
        }
        for id in doomed {
            Self::remove_locked(&self.dir, &mut st, id);
        }
    }
}

fn decode_record(mut raw: Bytes) -> Option<Message> {
    if raw.len() < RECORD_HEADER {
        return None;
    }
    let len = raw.get_u32() as usize;
    let crc = raw.get_u32();
    if raw.len() != len || crc32fast::hash(&raw) != crc {
        return None;
    }
    let _flags = raw.get_u8();
    let ex_len = *raw.first()? as usize;
    raw.advance(1);
    if raw.len() < ex_len {
        return None;
    }
    let exchange = ShortStr::new(raw.split_to(ex_len));
    let rk_len = *raw.first()? as usize;
    raw.advance(1);
    if raw.len() < rk_len {
        return None;
    }
    let routing_key = ShortStr::new(raw.split_to(rk_len));
    if raw.len() < 4 {
        return None;
    }
    let plen = raw.get_u32() as usize;
    if raw.len() < plen {
        return None;
    }
    let raw_properties = raw.split_to(plen);
    if raw.len() < 4 {
        return None;
    }
    let blen = raw.get_u32() as usize;
    if raw.len() != blen {
        return None;
    }
    let properties = BasicProperties::decode(&mut Decoder::new(raw_properties.clone())).ok()?;
    Some(Message::new(
        exchange,
        routing_key,
        properties,
        raw_properties,
        raw,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::QueueIndex;
    use warren_protocol::BasicProperties;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn msg(i: u32) -> Message {
        Message::new(
            "".into(),
            "q".into(),
            BasicProperties {
                delivery_mode: Some(2),
                ..Default::default()
            },
            Bytes::from_static(&[0x10, 0x00, 2]),
            Bytes::from(format!("body-{i:05}").repeat(20)),
        )
    }

    fn files(dir: &Path, ext: &str) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn records_round_trip_and_segments_go_when_acked() {
        let dir = tmp("cycle");
        let committer = Arc::new(Committer::default());
        let store =
            Arc::new(MessageStore::open_with(&dir.join("msgs"), committer.clone(), 4096).unwrap());
        let (mut index, _) =
            QueueIndex::open(&dir.join("q"), store.clone(), committer.clone()).unwrap();
        let mut refs = Vec::new();
        for i in 0..200 {
            let loc = store.append(&msg(i)).unwrap();
            refs.push(index.append(u64::from(i), loc, false).unwrap());
        }
        assert!(
            files(&dir.join("msgs"), ".seg") > 10,
            "small segments roll over"
        );
        let back = store.read(refs[123].loc).unwrap();
        assert_eq!(back.body, msg(123).body);
        assert!(back.is_persistent());
        for r in refs {
            index.ack(r);
        }
        // Only the (rolled, empty) current segment is left.
        assert_eq!(files(&dir.join("msgs"), ".seg"), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_sees_live_entries_and_marks() {
        let dir = tmp("recover");
        let committer = Arc::new(Committer::default());
        {
            let store = Arc::new(MessageStore::open(&dir.join("msgs"), committer.clone()).unwrap());
            let (mut index, _) =
                QueueIndex::open(&dir.join("q"), store.clone(), committer.clone()).unwrap();
            let mut refs = Vec::new();
            for i in 0..10 {
                let loc = store.append(&msg(i)).unwrap();
                refs.push(index.append(u64::from(i), loc, i == 9).unwrap());
            }
            index.ack(refs[0]);
            index.delivered(refs[1].pos);
            committer.sync_once().unwrap();
        }
        let store = Arc::new(MessageStore::open(&dir.join("msgs"), committer.clone()).unwrap());
        let (mut index, rec) = QueueIndex::open(&dir.join("q"), store.clone(), committer).unwrap();
        // 10 written, 1 acked, 1 transient (gone after a restart).
        assert_eq!(rec.live, 8);
        assert_eq!(rec.next_seq, 10);
        let mut cursor = rec.cursor;
        let entries = index.read(&mut cursor, 100);
        assert_eq!(entries.len(), 8);
        assert_eq!(entries[0].seq, 1);
        assert!(entries[0].delivered);
        assert!(!entries[1].delivered);
        assert_eq!(store.read(entries[0].disk.loc).unwrap().body, msg(1).body);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

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
    state: Mutex<State>,
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

impl MessageStore {
    /// Opens the store. Existing segments are kept for reading (the queue
    /// indexes say what they still hold); writing starts in a new one.
    pub fn open(dir: &Path, committer: Arc<Committer>) -> io::Result<MessageStore> {
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
            state: Mutex::new(State { current, segments }),
        })
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
        if seg.file.len() + record.len() as u64 > SEGMENT_MAX && !seg.file.is_empty() {
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
            seg = file;
            // The old segment may already be unreferenced.
            if st.segments.get(&old).is_some_and(|s| s.refs == 0) {
                Self::remove_locked(&self.dir, &mut st, old);
            }
        }
        let offset = seg.file.append(&record)?;
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
        if s.refs == 0 && segment != st.current {
            Self::remove_locked(&self.dir, &mut st, segment);
        }
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

    /// Segments on disk (for tests and diagnostics).
    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
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

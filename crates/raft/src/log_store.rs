//! A group's Raft log and vote on disk (openraft's `RaftLogStorage`).
//!
//! Files in the group's directory:
//! - `raft.log`: entries, each `u32 length (LE) | u32 crc32 of the body |
//!   body` where the body is the entry as JSON. Appended and fsynced
//!   before openraft is told the entries are durable (a vote for, or an
//!   acknowledgement of, an entry never precedes its fsync).
//! - `raft.meta`: the vote, the committed log id and the last purged log
//!   id, as JSON, replaced atomically (temporary file, fsync, rename, fsync
//!   of the directory).
//!
//! At open the log is read back; a torn or corrupt record ends it and the
//! file is cut there (only a tail that was never acknowledged can be torn,
//! since every append is fsynced before it counts). Entries are kept in
//! memory as well (a group's log is short: it is purged behind each
//! snapshot), so reads never touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "raft.log";
const META_FILE: &str = "raft.meta";
/// An entry larger than this is refused (a definitions change is a few KiB).
pub(crate) const MAX_ENTRY: usize = 64 << 20;
const HEADER: usize = 8;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// Byte length of the valid log.
    end: u64,
    /// index -> (entry, offset of its record)
    entries: BTreeMap<u64, (Entry, u64)>,
    meta: Meta,
    /// Bytes of the log file that hold purged entries.
    purged_bytes: u64,
}

impl LogStore {
    /// The committed index recorded on disk (what this node had applied,
    /// or could apply, before it stopped).
    pub(crate) async fn committed_index(&self) -> Option<u64> {
        self.inner.lock().await.meta.committed.map(|c| c.index)
    }

    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let meta = read_meta(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut raw = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut raw)?;
        let (records, valid) = parse_records(&raw);
        if valid < raw.len() {
            tracing::warn!(
                "raft log {}: {} bytes after offset {valid} are torn or corrupt and were cut off",
                path.display(),
                raw.len() - valid
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let purged_index = meta.last_purged.map(|l| l.index);
        let mut entries = BTreeMap::new();
        let mut purged_bytes = 0;
        for (offset, body) in records {
            let entry: Entry = match serde_json::from_slice(body) {
                Ok(e) => e,
                Err(e) => {
                    // A record whose checksum holds but whose JSON doesn't
                    // parse was written by a different build: stop here
                    // rather than guess.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("raft log {} at offset {offset}: {e}", path.display()),
                    ));
                }
            };
            if purged_index.is_some_and(|p| entry.log_id.index <= p) {
                purged_bytes = offset + (HEADER + body.len()) as u64;
                continue;
            }
            // A later record with an index already seen replaces it and
            // everything after (a truncation that was cut short).
            let index = entry.log_id.index;
            let stale: Vec<u64> = entries.range(index..).map(|(k, _)| *k).collect();
            for k in stale {
                entries.remove(&k);
            }
            entries.insert(index, (entry, offset));
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                end: valid as u64,
                entries,
                meta,
                purged_bytes,
            })),
        })
    }
}

/// Splits `raw` into records: (offset, body) and the length of the valid
/// prefix.
fn parse_records(raw: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while raw.len() - at >= HEADER {
        let len = u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize;
        let crc = u32::from_le_bytes([raw[at + 4], raw[at + 5], raw[at + 6], raw[at + 7]]);
        if len > MAX_ENTRY || raw.len() - at - HEADER < len {
            break;
        }
        let body = &raw[at + HEADER..at + HEADER + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        out.push((at as u64, body));
        at += HEADER + len;
    }
    (out, at)
}

fn encode_record(out: &mut Vec<u8>, entry: &Entry) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    serde_json::to_writer(&mut *out, entry).map_err(crate::types::io_error)?;
    let len = out.len() - start - HEADER;
    if len > MAX_ENTRY {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a raft entry of {len} bytes is larger than the limit of {MAX_ENTRY}"),
        ));
    }
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn read_meta(dir: &Path) -> io::Result<Meta> {
    match fs::read(dir.join(META_FILE)) {
        Ok(raw) => serde_json::from_slice(&raw).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(META_FILE).display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Meta::default()),
        Err(e) => Err(e),
    }
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

impl Inner {
    fn save_meta(&self) -> io::Result<()> {
        let raw = serde_json::to_vec(&self.meta).map_err(crate::types::io_error)?;
        write_atomic(&self.dir, META_FILE, &raw)
    }

    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in &entries {
            offsets.push(self.end + buf.len() as u64);
            encode_record(&mut buf, e)?;
        }
        let written = (|| {
            let mut w = BufWriter::new(&self.file);
            w.write_all(&buf)?;
            w.flush()?;
            drop(w);
            self.file.sync_data()
        })();
        if let Err(e) = written {
            // Leave no half-written tail behind a failed append.
            let _ = self.file.set_len(self.end);
            return Err(e);
        }
        self.end += buf.len() as u64;
        for (e, offset) in entries.into_iter().zip(offsets) {
            let index = e.log_id.index;
            self.entries.insert(index, (e, offset));
        }
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some((_, offset)) = self.entries.range(index..).next().map(|(_, v)| v.clone()) else {
            return Ok(());
        };
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        self.end = offset;
        let gone: Vec<u64> = self.entries.range(index..).map(|(k, _)| *k).collect();
        for k in gone {
            self.entries.remove(&k);
        }
        Ok(())
    }

    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // The purge point is durable first: a crash after it leaves records
        // that open() skips.
        self.meta.last_purged = Some(log_id);
        self.save_meta()?;
        let gone: Vec<u64> = self
            .entries
            .range(..=log_id.index)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.entries.remove(&k);
        }
        self.purged_bytes = self
            .entries
            .values()
            .next()
            .map(|(_, o)| *o)
            .unwrap_or(self.end);
        if self.purged_bytes > 1 << 20 && self.purged_bytes * 2 > self.end {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the live entries to a new log file that replaces the old one.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(self.entries.len());
        for (k, (e, _)) in &self.entries {
            offsets.push((*k, buf.len() as u64));
            encode_record(&mut buf, e)?;
        }
        write_atomic(&self.dir, LOG_FILE, &buf)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.end = buf.len() as u64;
        self.purged_bytes = 0;
        for (k, o) in offsets {
            if let Some(v) = self.entries.get_mut(&k) {
                v.1 = o;
            }
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.inner.lock().await;
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock().await;
        let last = inner.entries.values().next_back().map(|(e, _)| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.meta.last_purged,
            last_log_id: last.or(inner.meta.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner.meta.vote = Some(*vote);
        inner
            .save_meta()
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.inner.lock().await.meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        if inner.meta.committed == committed {
            return Ok(());
        }
        inner.meta.committed = committed;
        inner
            .save_meta()
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().await.meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut inner = self.inner.lock().await;
        match inner.append(entries) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner
            .truncate(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner
            .purge(log_id)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes parse without panicking, and the valid prefix is
        /// exactly the records that were whole and checksummed.
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (records, valid) = parse_records(&raw);
            prop_assert!(valid <= raw.len());
            let total: usize = records.iter().map(|(_, b)| b.len() + HEADER).sum();
            prop_assert_eq!(total, valid);
        }
    }
}

//! A group's state machine (openraft's `RaftStateMachine`) over Warren's
//! own [`StateMachine`] trait, and its snapshot on disk.
//!
//! The snapshot file `raft.snapshot` holds `u32 meta length (LE) | meta as
//! JSON | the state machine's snapshot text`, replaced atomically. At open
//! the state machine is restored from it; openraft then re-applies the
//! committed entries after it from the log (the committed log id is kept
//! in `raft.meta`), so what a node applied survives a restart without the
//! state machine writing anything itself.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::Mutex;

use crate::log_store::write_atomic;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const SNAPSHOT_FILE: &str = "raft.snapshot";

/// What a replicated group applies. Implementations must be deterministic:
/// the same commands in the same order give the same state and the same
/// responses on every node.
pub trait StateMachine: Send + 'static {
    /// Applies one committed command (log index `index`); the returned text
    /// goes back to whoever proposed it.
    fn apply(&mut self, index: u64, command: &str) -> String;
    /// The whole state, as text.
    fn snapshot(&self) -> String;
    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, snapshot: &str) -> Result<(), String>;
}

#[derive(Clone)]
pub(crate) struct SmStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    sm: Box<dyn StateMachine>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The last snapshot built or installed: meta and data.
    current: Option<(SnapshotMeta, Vec<u8>)>,
    built: u64,
}

impl SmStore {
    pub(crate) fn open(dir: &Path, mut sm: Box<dyn StateMachine>) -> std::io::Result<SmStore> {
        let mut current = None;
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(raw) => {
                let (meta, data) = decode_snapshot(&raw).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a snapshot", dir.join(SNAPSHOT_FILE).display()),
                    )
                })?;
                let text = std::str::from_utf8(&data).map_err(crate::types::io_error)?;
                sm.restore(text).map_err(crate::types::io_error)?;
                last_applied = meta.last_log_id;
                membership = meta.last_membership.clone();
                current = Some((meta, data));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(SmStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                sm,
                last_applied,
                membership,
                current,
                built: 0,
            })),
        })
    }
}

fn encode_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let meta = serde_json::to_vec(meta).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + meta.len() + data.len());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(data);
    out
}

fn decode_snapshot(raw: &[u8]) -> Option<(SnapshotMeta, Vec<u8>)> {
    let len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    let meta = serde_json::from_slice(raw.get(4..4 + len)?).ok()?;
    Some((meta, raw.get(4 + len..)?.to_vec()))
}

impl RaftSnapshotBuilder<TypeConfig> for SmStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let mut inner = self.inner.lock().await;
        let data = inner.sm.snapshot().into_bytes();
        inner.built += 1;
        let snapshot_id = match inner.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.built),
            None => format!("--{}", inner.built),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id,
        };
        write_atomic(&inner.dir, SNAPSHOT_FILE, &encode_snapshot(&meta, &data))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for SmStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock().await;
        let mut out = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(String::new()),
                EntryPayload::Normal(command) => {
                    let index = entry.log_id.index;
                    out.push(inner.sm.apply(index, &command));
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(String::new());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut inner = self.inner.lock().await;
        let text = std::str::from_utf8(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        inner.sm.restore(text).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), &crate::types::io_error(e))
        })?;
        write_atomic(&inner.dir, SNAPSHOT_FILE, &encode_snapshot(meta, &data))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let inner = self.inner.lock().await;
        Ok(inner.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

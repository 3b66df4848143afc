//! A queue's disk side: writing messages and index entries, and reading
//! the on-disk tail back into memory ahead of consumers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{Queue, QueueState, QueueStorage, QueuedMessage, PAGE_IN_BELOW, WINDOW_COUNT};
use crate::message::Message;
use crate::store::index::{DiskRef, QueueIndex};
use crate::store::Location;

impl Queue {
    /// Writes the message (once across queues) and an index entry.
    pub(super) fn write_disk(
        &self,
        st: &mut QueueState,
        seq: u64,
        message: &Arc<Message>,
        transient: bool,
    ) -> Option<DiskRef> {
        let handle = self.storage.as_ref()?;
        if st.storage.is_none() {
            match QueueIndex::open(
                &handle.dir,
                handle.store.clone(),
                handle.store.committer().clone(),
            ) {
                Ok((index, rec)) => st.storage = Some(QueueStorage::recovered(index, &rec)),
                Err(e) => {
                    tracing::error!("cannot open the index of {}: {e}", self.describe());
                    return None;
                }
            }
        }
        let loc: Location =
            (*message
                .location
                .get_or_init(|| match handle.store.append(message) {
                    Ok(loc) => Some(loc),
                    Err(e) => {
                        tracing::error!("cannot write a message to the store: {e}");
                        None
                    }
                }))?;
        let s = st.storage.as_mut()?;
        match s.index.append(seq, loc, transient) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!("cannot append to the index of {}: {e}", self.describe());
                None
            }
        }
    }

    /// Reads the on-disk tail back into memory, ahead of consumers.
    /// `force` reads even when the window is comfortably full.
    pub(super) fn page_in(&self, st: &mut QueueState, force: bool) {
        let Some(s) = st.storage.as_mut() else {
            return;
        };
        if s.tail_count == 0 || (!force && st.ready.len() >= PAGE_IN_BELOW) {
            return;
        }
        let want = WINDOW_COUNT.saturating_sub(st.ready.len()).max(1);
        let entries = s.index.read(&mut s.cursor, want);
        if entries.is_empty() {
            tracing::warn!(
                "{}: {} message(s) expected on disk could not be read",
                self.describe(),
                s.tail_count
            );
            s.tail_count = 0;
            s.tail_bytes = 0;
            return;
        }
        let now_ms = crate::store::index::now_ms();
        let now = Instant::now();
        for e in entries {
            s.tail_count = s.tail_count.saturating_sub(1);
            s.tail_bytes = s.tail_bytes.saturating_sub(u64::from(e.disk.loc.len));
            let Some(m) = s.index.store().read(e.disk.loc) else {
                s.index.ack(e.disk);
                continue;
            };
            let _ = m.location.set(Some(e.disk.loc));
            let message = Arc::new(m);
            // Expiry counts from when the message was enqueued.
            let age = std::time::Duration::from_millis(now_ms.saturating_sub(e.enqueued_ms));
            let expires_at = self
                .expiry_for(&message, now)
                .map(|t| t.checked_sub(age).unwrap_or(now));
            if expires_at.is_some() {
                self.has_ttl.store(true, Ordering::Relaxed);
            }
            st.ready_bytes += message.size() as u64;
            st.ready.push_back(QueuedMessage {
                seq: e.seq,
                message,
                redelivered: e.delivered,
                expires_at,
                disk: Some(e.disk),
            });
        }
    }
}

//! A queue's disk side: writing messages and index entries, and reading
//! a lane's on-disk tail back into memory ahead of consumers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::{lane_dir, Queue, QueueState, QueuedMessage};
use crate::message::Message;
use crate::store::index::{DiskRef, QueueIndex};
use crate::store::Location;

impl Queue {
    /// Opens a lane's index on first need. Lane 0's directory holds the
    /// others, so it is opened first (deleting the queue removes it last).
    fn open_lane(&self, st: &mut QueueState, lane: usize) -> Option<()> {
        let handle = self.storage.as_ref()?;
        for l in [0, lane] {
            if st.ready.lane(l).index.is_some() {
                continue;
            }
            match QueueIndex::open(
                &lane_dir(&handle.dir, l),
                handle.store.clone(),
                handle.store.committer().clone(),
            ) {
                Ok((index, rec)) => st.ready.attach(l, index, &rec),
                Err(e) => {
                    tracing::error!("cannot open the index of {}: {e}", self.describe());
                    return None;
                }
            }
        }
        Some(())
    }

    /// Writes the message (once across queues) and an index entry in its
    /// lane's index.
    pub(super) fn write_disk(
        &self,
        st: &mut QueueState,
        lane: usize,
        seq: u64,
        message: &Arc<Message>,
        transient: bool,
    ) -> Option<DiskRef> {
        let handle = self.storage.as_ref()?;
        self.open_lane(st, lane)?;
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
        let index = st.ready.index_mut(lane)?;
        match index.append(seq, loc, transient) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!("cannot append to the index of {}: {e}", self.describe());
                None
            }
        }
    }

    /// Reads a lane's on-disk tail back into memory, ahead of consumers:
    /// when it runs below half the window (or is empty).
    pub(super) fn page_in(&self, st: &mut QueueState, lane: usize, force: bool) {
        let Some(want) = st.ready.page_in_want(lane, force) else {
            return;
        };
        let entries = st.ready.read_tail(lane, want);
        if entries.is_empty() {
            let lost = st.ready.lose_tail(lane);
            tracing::warn!(
                "{}: {lost} message(s) expected on disk could not be read",
                self.describe(),
            );
            return;
        }
        let now_ms = crate::store::index::now_ms();
        let now = Instant::now();
        for e in entries {
            let read = st
                .ready
                .index_mut(lane)
                .and_then(|index| index.store().read(e.disk.loc));
            let Some(m) = read else {
                st.ready.drop_tail(lane, e.disk.loc.len);
                st.ready.forget(Some(e.disk));
                continue;
            };
            let _ = m.location.set(Some(e.disk.loc));
            let message = Arc::new(m);
            // Expiry counts from when the message was enqueued.
            let age = std::time::Duration::from_millis(now_ms.saturating_sub(e.enqueued_ms));
            let expires_at = self
                .expiry_for(&st.limits, &message, now)
                .map(|t| t.checked_sub(age).unwrap_or(now));
            if expires_at.is_some() {
                self.has_ttl.store(true, Ordering::Relaxed);
            }
            st.ready.admit(
                lane,
                QueuedMessage {
                    seq: e.seq,
                    message,
                    redelivered: e.delivered,
                    expires_at,
                    disk: Some(e.disk),
                },
                e.disk.loc.len,
            );
        }
    }
}

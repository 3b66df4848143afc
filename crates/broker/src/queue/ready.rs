//! A queue's ready messages, held in lanes: one per priority, as
//! RabbitMQ's priority queue keeps one backing queue per priority (a plain
//! queue has a single lane).
//!
//! Messages leave from the highest non-empty lane, oldest first within a
//! lane. Each lane keeps its head in memory and, once the queue's window
//! (all lanes together) is full, its tail on disk in its own index, so a
//! priority queue with a backlog on disk still delivers its highest
//! priority first (a lane behind a full window still reads a little back).
//!
//! Invariants (checked by the model test below and `debug_assert`s):
//! - `len`, `bytes`, `mem_len`, `mem_bytes` equal the sums over lanes;
//! - bit `p` of `nonempty` is set exactly when lane `p` holds a message;
//! - within a lane, memory holds the oldest messages, in `seq` order, and
//!   every message on disk is newer than every one in memory.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::QueuedMessage;
use crate::store::index::{Cursor, DiskRef, IndexEntry, QueueIndex, Recovered};

/// Ready messages a queue keeps in memory (all lanes together); beyond
/// this (or [`WINDOW_BYTES`]) new messages wait on disk and are read back
/// ahead of consumers, so a backlog costs disk, not RAM.
pub const WINDOW_COUNT: usize = 8192;
pub const WINDOW_BYTES: u64 = 8 * 1024 * 1024;
/// A lane reads its tail back when fewer than this many are in memory.
pub(super) const PAGE_IN_BELOW: usize = WINDOW_COUNT / 2;
/// A lane with a tail may read this many back even when the window is
/// full (so a high priority behind a full window still flows); memory is
/// bounded by `WINDOW_COUNT + MIN_LANE_READ * lanes`.
pub(super) const MIN_LANE_READ: usize = 64;
/// The most lanes a queue has (`x-max-priority` 255).
pub const MAX_LANES: usize = 256;

/// Where lane `lane` of the queue whose index lives in `dir` keeps its
/// index: lane 0 in `dir` itself (so plain queues are laid out as before),
/// the others in `dir/p<lane>`.
pub(crate) fn lane_dir(dir: &Path, lane: usize) -> PathBuf {
    if lane == 0 {
        dir.to_path_buf()
    } else {
        dir.join(format!("p{lane}"))
    }
}

/// One priority's messages.
#[derive(Debug, Default)]
pub(super) struct Lane {
    /// The oldest messages, in `seq` order.
    pub(super) mem: VecDeque<QueuedMessage>,
    pub(super) mem_bytes: u64,
    /// The lane's index, opened on first need.
    pub(super) index: Option<QueueIndex>,
    /// Messages only on disk (the newest), and where they start.
    tail_count: u64,
    tail_bytes: u64,
    cursor: Cursor,
}

impl Lane {
    fn len(&self) -> u64 {
        self.mem.len() as u64 + self.tail_count
    }

    pub(super) fn tail_count(&self) -> u64 {
        self.tail_count
    }
}

/// All lanes of a queue, with their totals.
#[derive(Debug)]
pub(super) struct Ready {
    lanes: Box<[Lane]>,
    /// Bit `p` set: lane `p` has a message (in memory or on disk).
    nonempty: [u64; MAX_LANES / 64],
    len: u64,
    bytes: u64,
    mem_len: usize,
    mem_bytes: u64,
}

impl Ready {
    pub(super) fn new(lanes: usize) -> Ready {
        let n = lanes.clamp(1, MAX_LANES);
        Ready {
            lanes: (0..n).map(|_| Lane::default()).collect(),
            nonempty: [0; MAX_LANES / 64],
            len: 0,
            bytes: 0,
            mem_len: 0,
            mem_bytes: 0,
        }
    }

    pub(super) fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// The lane of a message with this `priority` property: capped at the
    /// queue's maximum, as RabbitMQ does.
    pub(super) fn lane_for(&self, priority: u8) -> usize {
        usize::from(priority).min(self.lanes.len() - 1)
    }

    /// Ready messages, in memory and on disk.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn mem_len(&self) -> usize {
        self.mem_len
    }

    pub(super) fn mem_bytes(&self) -> u64 {
        self.mem_bytes
    }

    pub(super) fn lane(&self, lane: usize) -> &Lane {
        &self.lanes[lane]
    }

    /// The highest lane that has a message.
    pub(super) fn head(&self) -> Option<usize> {
        self.nonempty
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }

    fn mark(&mut self, lane: usize) {
        let bit = 1u64 << (lane % 64);
        if self.lanes[lane].len() > 0 {
            self.nonempty[lane / 64] |= bit;
        } else {
            self.nonempty[lane / 64] &= !bit;
        }
    }

    /// Counts a message of `size` bytes just put in `lane`'s memory.
    fn counted_in_memory(&mut self, lane: usize, size: u64) {
        self.lanes[lane].mem_bytes += size;
        self.len += 1;
        self.bytes += size;
        self.mem_len += 1;
        self.mem_bytes += size;
        self.mark(lane);
    }

    /// Appends to a lane's memory (the lane has no disk tail).
    pub(super) fn push_back(&mut self, lane: usize, qm: QueuedMessage) {
        debug_assert_eq!(self.lanes[lane].tail_count, 0);
        let size = qm.message.size() as u64;
        let l = &mut self.lanes[lane];
        l.mem.push_back(qm);
        self.counted_in_memory(lane, size);
    }

    /// Appends a message that lives on disk only (`disk` came from this
    /// lane's index).
    pub(super) fn push_tail(&mut self, lane: usize, disk: DiskRef) {
        debug_assert_eq!(usize::from(disk.lane), lane);
        let l = &mut self.lanes[lane];
        if l.tail_count == 0 {
            l.cursor = Cursor {
                segment: disk.pos.segment,
                entry: disk.pos.entry,
            };
        }
        l.tail_count += 1;
        l.tail_bytes += u64::from(disk.loc.len);
        self.len += 1;
        self.bytes += u64::from(disk.loc.len);
        self.mark(lane);
    }

    /// Whether a new message of `size` bytes for `lane` must wait on disk:
    /// the lane already has a tail, or the queue's window is full.
    pub(super) fn goes_to_tail(&self, lane: usize, size: u64) -> bool {
        self.lanes[lane].tail_count > 0
            || self.mem_len >= WINDOW_COUNT
            || self.mem_bytes + size > WINDOW_BYTES
    }

    /// How many of a lane's tail entries to read back now: `None` when it
    /// has no tail or enough in memory (`force`: read even so).
    pub(super) fn page_in_want(&self, lane: usize, force: bool) -> Option<usize> {
        let l = &self.lanes[lane];
        if l.tail_count == 0 {
            return None;
        }
        let in_memory = l.mem.len();
        let room = WINDOW_COUNT.saturating_sub(self.mem_len);
        let wanted = in_memory < PAGE_IN_BELOW && (room > 0 || in_memory < MIN_LANE_READ);
        (force || wanted).then(|| room.max(MIN_LANE_READ))
    }

    /// Takes the oldest in-memory message of a lane.
    pub(super) fn pop_front(&mut self, lane: usize) -> Option<QueuedMessage> {
        let l = &mut self.lanes[lane];
        let qm = l.mem.pop_front()?;
        let size = qm.message.size() as u64;
        l.mem_bytes -= size;
        self.len -= 1;
        self.bytes -= size;
        self.mem_len -= 1;
        self.mem_bytes -= size;
        self.mark(lane);
        Some(qm)
    }

    /// Puts a message back in its place in its lane, by `seq` (requeued
    /// messages are older than anything on disk).
    pub(super) fn insert(&mut self, lane: usize, qm: QueuedMessage) {
        let size = qm.message.size() as u64;
        let l = &mut self.lanes[lane];
        match l.mem.front() {
            Some(f) if f.seq < qm.seq => {
                let at = l.mem.partition_point(|m| m.seq < qm.seq);
                l.mem.insert(at, qm);
            }
            _ => l.mem.push_front(qm),
        }
        self.counted_in_memory(lane, size);
    }

    /// Attaches an opened index to a lane, with the messages recovery
    /// found in it (all on disk, not yet read).
    pub(super) fn attach(&mut self, lane: usize, mut index: QueueIndex, rec: &Recovered) {
        index.set_lane(lane as u8);
        let l = &mut self.lanes[lane];
        debug_assert!(l.index.is_none() && l.tail_count == 0);
        l.index = Some(index);
        l.tail_count = rec.live;
        l.tail_bytes = rec.bytes;
        l.cursor = rec.cursor;
        self.len += rec.live;
        self.bytes += rec.bytes;
        self.mark(lane);
    }

    /// The index of a lane, if open.
    pub(super) fn index_mut(&mut self, lane: usize) -> Option<&mut QueueIndex> {
        self.lanes.get_mut(lane)?.index.as_mut()
    }

    /// Reads up to `max` entries of a lane's disk tail (its counts change
    /// as they are then [`admit`](Self::admit)ted or [`drop_tail`](Self::drop_tail)ped).
    pub(super) fn read_tail(&mut self, lane: usize, max: usize) -> Vec<IndexEntry> {
        let l = &mut self.lanes[lane];
        match l.index.as_mut() {
            Some(index) if l.tail_count > 0 => index.read(&mut l.cursor, max),
            _ => Vec::new(),
        }
    }

    /// A tail entry read back into memory as `qm`.
    pub(super) fn admit(&mut self, lane: usize, qm: QueuedMessage, disk_len: u32) {
        self.drop_tail(lane, disk_len);
        let size = qm.message.size() as u64;
        let l = &mut self.lanes[lane];
        l.mem.push_back(qm);
        self.counted_in_memory(lane, size);
    }

    /// A tail entry leaves (read back, or unreadable).
    pub(super) fn drop_tail(&mut self, lane: usize, disk_len: u32) {
        let l = &mut self.lanes[lane];
        if l.tail_count == 0 {
            return;
        }
        l.tail_count -= 1;
        let b = u64::from(disk_len).min(l.tail_bytes);
        l.tail_bytes -= b;
        self.len -= 1;
        self.bytes -= b;
        self.mark(lane);
    }

    /// The whole tail of a lane could not be read: it is gone.
    pub(super) fn lose_tail(&mut self, lane: usize) -> u64 {
        let l = &mut self.lanes[lane];
        let n = l.tail_count;
        self.len -= n;
        self.bytes -= l.tail_bytes;
        l.tail_count = 0;
        l.tail_bytes = 0;
        self.mark(lane);
        n
    }

    /// Removes an index entry for good (ack, expiry, drop).
    pub(super) fn forget(&mut self, disk: Option<DiskRef>) {
        if let Some(d) = disk {
            if let Some(index) = self.index_mut(usize::from(d.lane)) {
                index.ack(d);
            }
        }
    }

    /// Records a delivery on disk (a restart marks it redelivered).
    pub(super) fn delivered(&mut self, disk: Option<DiskRef>) {
        if let Some(d) = disk {
            if let Some(index) = self.index_mut(usize::from(d.lane)) {
                index.delivered(d.pos);
            }
        }
    }

    /// Drops every ready message, in memory and on disk; returns how many.
    pub(super) fn purge(&mut self) -> u64 {
        let n = self.len;
        for lane in 0..self.lanes.len() {
            let l = &mut self.lanes[lane];
            let disks: Vec<DiskRef> = l.mem.drain(..).filter_map(|m| m.disk).collect();
            l.mem_bytes = 0;
            if let Some(index) = l.index.as_mut() {
                for d in disks {
                    index.ack(d);
                }
                while l.tail_count > 0 {
                    let batch = index.read(&mut l.cursor, 4096);
                    if batch.is_empty() {
                        break;
                    }
                    l.tail_count = l.tail_count.saturating_sub(batch.len() as u64);
                    for e in batch {
                        index.ack(e.disk);
                    }
                }
            }
            l.tail_count = 0;
            l.tail_bytes = 0;
        }
        self.nonempty = [0; MAX_LANES / 64];
        self.len = 0;
        self.bytes = 0;
        self.mem_len = 0;
        self.mem_bytes = 0;
        n
    }

    /// Deletes every lane's index from disk (the queue is deleted). The
    /// other lanes' directories sit inside lane 0's, so they go first.
    pub(super) fn destroy(self) {
        let mut lanes = Vec::from(self.lanes);
        let first = if lanes.is_empty() {
            None
        } else {
            Some(lanes.remove(0))
        };
        for l in lanes {
            if let Some(index) = l.index {
                index.destroy();
            }
        }
        if let Some(index) = first.and_then(|l| l.index) {
            index.destroy();
        }
    }

    /// Checks the totals against the lanes (tests and debug builds).
    #[cfg(test)]
    pub(super) fn check(&self) {
        let len: u64 = self.lanes.iter().map(Lane::len).sum();
        let mem_len: usize = self.lanes.iter().map(|l| l.mem.len()).sum();
        let mem_bytes: u64 = self.lanes.iter().map(|l| l.mem_bytes).sum();
        let tail_bytes: u64 = self.lanes.iter().map(|l| l.tail_bytes).sum();
        assert_eq!(self.len, len);
        assert_eq!(self.mem_len, mem_len);
        assert_eq!(self.mem_bytes, mem_bytes);
        assert_eq!(self.bytes, mem_bytes + tail_bytes);
        for (i, l) in self.lanes.iter().enumerate() {
            let actual: u64 = l.mem.iter().map(|m| m.message.size() as u64).sum();
            assert_eq!(l.mem_bytes, actual);
            assert_eq!(self.nonempty[i / 64] >> (i % 64) & 1 == 1, l.len() > 0);
            assert!(l
                .mem
                .iter()
                .zip(l.mem.iter().skip(1))
                .all(|(a, b)| a.seq < b.seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use bytes::Bytes;
    use proptest::prelude::*;
    use warren_protocol::BasicProperties;

    use super::*;
    use crate::message::Message;

    fn qm(seq: u64, size: usize) -> QueuedMessage {
        QueuedMessage {
            seq,
            message: Arc::new(Message::new(
                "".into(),
                "q".into(),
                BasicProperties::default(),
                Bytes::new(),
                Bytes::from(vec![b'x'; size]),
            )),
            redelivered: false,
            expires_at: None,
            disk: None,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, usize),
        Pop,
        /// Requeue the k-th taken message.
        Requeue(usize),
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), 0usize..300).prop_map(|(p, s)| Op::Push(p, s)),
            3 => Just(Op::Pop),
            2 => any::<usize>().prop_map(Op::Requeue),
            1 => Just(Op::Purge),
        ]
    }

    #[test]
    fn head_finds_the_highest_lane() {
        let mut r = Ready::new(256);
        assert_eq!(r.head(), None);
        for p in [0usize, 63, 64, 200, 255] {
            r.push_back(p, qm(p as u64, 1));
            assert_eq!(r.head(), Some(p));
        }
        assert_eq!(r.lane_for(255), 255);
        assert_eq!(Ready::new(6).lane_for(200), 5);
    }

    proptest! {
        /// Lanes against a model: a map from (priority, seq) to size;
        /// the next message is the highest priority's smallest seq.
        #[test]
        fn lanes_match_the_model(lanes in 1usize..12, ops in proptest::collection::vec(op(), 1..200)) {
            let mut r = Ready::new(lanes);
            let mut model: BTreeMap<(std::cmp::Reverse<usize>, u64), usize> = BTreeMap::new();
            let mut taken: Vec<(usize, QueuedMessage)> = Vec::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Push(p, size) => {
                        let lane = r.lane_for(p);
                        prop_assert_eq!(lane, usize::from(p).min(lanes - 1));
                        r.push_back(lane, qm(seq, size));
                        model.insert((std::cmp::Reverse(lane), seq), size);
                        seq += 1;
                    }
                    Op::Pop => {
                        let expect = model.keys().next().copied();
                        let got = r.head().and_then(|h| r.pop_front(h).map(|m| (h, m)));
                        prop_assert_eq!(got.as_ref().map(|(h, m)| (std::cmp::Reverse(*h), m.seq)), expect);
                        if let Some((h, m)) = got {
                            model.remove(&(std::cmp::Reverse(h), m.seq));
                            taken.push((h, m));
                        }
                    }
                    Op::Requeue(k) => {
                        if !taken.is_empty() {
                            let (h, m) = taken.swap_remove(k % taken.len());
                            model.insert((std::cmp::Reverse(h), m.seq), m.message.size());
                            r.insert(h, m);
                        }
                    }
                    Op::Purge => {
                        prop_assert_eq!(r.purge(), model.len() as u64);
                        model.clear();
                    }
                }
                r.check();
                prop_assert_eq!(r.len(), model.len() as u64);
                prop_assert_eq!(r.bytes(), model.values().map(|s| *s as u64).sum::<u64>());
                prop_assert_eq!(r.is_empty(), model.is_empty());
            }
        }
    }
}

//! A channel's delivered-but-unacknowledged messages, by delivery tag.
//!
//! Tags grow by one per delivery, so entries are kept in tag order in a
//! deque: acks in order pop from the front in O(1); an ack out of order
//! leaves a tombstone that is swept when it reaches the front.

use std::collections::VecDeque;
use std::sync::Arc;

use warren_broker::consumer::ConsumerFlow;
use warren_broker::store::index::DiskRef;
use warren_broker::{Message, Queue};

#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub seq: u64,
    pub message: Arc<Message>,
    /// The consumer's credit counters; `None` for basic.get.
    pub flow: Option<Arc<ConsumerFlow>>,
    /// Its queue-index entry, acked on disk with it.
    pub disk: Option<DiskRef>,
}

#[derive(Debug, Default)]
pub struct UnackedList {
    /// (tag, entry); a settled entry stays as a tombstone until it reaches
    /// the front, so tags stay sorted and binary search always works.
    entries: VecDeque<(u64, Option<Unacked>)>,
    live: usize,
}

impl UnackedList {
    /// Adds an entry; tags must be pushed in increasing order.
    pub fn push(&mut self, u: Unacked) {
        debug_assert!(self.entries.back().is_none_or(|(t, _)| *t < u.tag));
        self.entries.push_back((u.tag, Some(u)));
        self.live += 1;
    }

    fn sweep(&mut self) {
        while matches!(self.entries.front(), Some((_, None))) {
            self.entries.pop_front();
        }
    }

    /// Removes the entry with `tag` (and with `multiple`, every earlier
    /// one). `None` if `tag` is not outstanding: RabbitMQ's 406.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        if multiple && tag == 0 {
            return Some(self.take_all());
        }
        let at = self.entries.partition_point(|(t, _)| *t < tag);
        match self.entries.get(at) {
            Some((t, Some(_))) if *t == tag => {}
            _ => return None,
        }
        let out: Vec<Unacked> = if multiple {
            self.entries.drain(..=at).filter_map(|(_, e)| e).collect()
        } else {
            self.entries[at].1.take().into_iter().collect()
        };
        self.live -= out.len();
        self.sweep();
        Some(out)
    }

    pub fn take_all(&mut self) -> Vec<Unacked> {
        let out: Vec<Unacked> = self.entries.drain(..).filter_map(|(_, e)| e).collect();
        self.live = 0;
        out
    }

    /// Puts entries back (a rolled-back transaction's acks), in tag order.
    pub fn restore(&mut self, mut items: Vec<Unacked>) {
        if items.is_empty() {
            return;
        }
        let mut all = self.take_all();
        all.append(&mut items);
        all.sort_by_key(|u| u.tag);
        self.live = all.len();
        self.entries = all.into_iter().map(|u| (u.tag, Some(u))).collect();
    }
}

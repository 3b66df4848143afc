//! A channel's delivered-but-unacknowledged messages, by delivery tag.
//!
//! Tags grow by one per delivery, so entries are kept in tag order in a
//! deque: acks in order pop from the front in O(1); an ack out of order
//! leaves a tombstone that is swept when it reaches the front.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ConsumerFlow;
use crate::store::index::DiskRef;
use crate::{Message, Queue};

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
    /// The oldest outstanding tag when last looked at, and since when:
    /// the consumer timeout costs a look per check, nothing per message.
    oldest_seen: Option<(u64, std::time::Instant)>,
}

impl UnackedList {
    /// Outstanding entries.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether the oldest outstanding delivery has been outstanding for at
    /// least `timeout` (RabbitMQ's `consumer_timeout`). Called
    /// periodically; a delivery counts from the first check that saw it,
    /// so it times out between `timeout` and `timeout` + one interval.
    pub fn overdue(&mut self, now: std::time::Instant, timeout: std::time::Duration) -> bool {
        let Some((front, _)) = self.entries.front() else {
            self.oldest_seen = None;
            return false;
        };
        match self.oldest_seen {
            Some((tag, since)) if tag == *front => now.saturating_duration_since(since) >= timeout,
            _ => {
                self.oldest_seen = Some((*front, now));
                false
            }
        }
    }

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

#[cfg(test)]
mod tests {
    //! `UnackedList` against a `BTreeSet` of outstanding tags.

    use std::collections::BTreeSet;

    #[test]
    fn overdue_counts_from_the_first_check_that_saw_the_oldest() {
        use std::time::{Duration, Instant};
        let q = Arc::new(Queue::new(crate::queue::QueueSetup::in_memory(
            "q",
            Default::default(),
        )));
        let mut l = UnackedList::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert!(!l.overdue(t0, s));
        l.push(entry(&q, 1));
        l.push(entry(&q, 2));
        assert!(!l.overdue(t0, s), "first seen now");
        assert!(!l.overdue(t0 + s / 2, s));
        assert!(l.overdue(t0 + s, s), "tag 1 outstanding for the timeout");
        l.take(1, false);
        assert!(!l.overdue(t0 + s, s), "tag 2 is first seen now");
        assert!(l.overdue(t0 + 2 * s, s));
        l.take(2, false);
        assert!(!l.overdue(t0 + 3 * s, s));
    }

    use crate::queue::{QueueLimits, QueueSetup};
    use bytes::Bytes;
    use proptest::prelude::*;
    use warren_protocol::BasicProperties;

    use super::*;

    fn queue() -> Arc<Queue> {
        Arc::new(Queue::new(QueueSetup::in_memory(
            "q",
            QueueLimits::default(),
        )))
    }

    fn entry(q: &Arc<Queue>, tag: u64) -> Unacked {
        Unacked {
            tag,
            queue: q.clone(),
            seq: tag,
            message: Arc::new(Message::new(
                "".into(),
                "q".into(),
                BasicProperties::default(),
                Bytes::new(),
                Bytes::from(tag.to_be_bytes().to_vec()),
            )),
            flow: None,
            disk: None,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u64),
        /// Take the n-th outstanding tag (or an unknown one).
        Take(prop::sample::Index, bool, bool),
        TakeAll,
        /// Take the n-th outstanding tag and put it back (tx rollback).
        Rollback(prop::sample::Index),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..4).prop_map(Op::Push),
            4 => (any::<prop::sample::Index>(), any::<bool>(), any::<bool>())
                .prop_map(|(i, m, known)| Op::Take(i, m, known)),
            1 => Just(Op::TakeAll),
            1 => any::<prop::sample::Index>().prop_map(Op::Rollback),
        ]
    }

    fn tags(v: &[Unacked]) -> Vec<u64> {
        v.iter().map(|u| u.tag).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_a_set_of_outstanding_tags(ops in proptest::collection::vec(op(), 1..200)) {
            let q = queue();
            let mut list = UnackedList::default();
            let mut model: BTreeSet<u64> = BTreeSet::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Push(gap) => {
                        list.push(entry(&q, next));
                        model.insert(next);
                        next += gap;
                    }
                    Op::Take(i, multiple, known) => {
                        let out: Vec<u64> = model.iter().copied().collect();
                        let tag = if known && !out.is_empty() {
                            out[i.index(out.len())]
                        } else {
                            // Not outstanding: past the end, or a settled one.
                            next + i.index(3) as u64
                        };
                        let got = list.take(tag, multiple);
                        if model.contains(&tag) {
                            let want: Vec<u64> = if multiple {
                                model.range(..=tag).copied().collect()
                            } else {
                                vec![tag]
                            };
                            for t in &want {
                                model.remove(t);
                            }
                            let got = got.expect("an outstanding tag");
                            prop_assert_eq!(tags(&got), want);
                            for u in &got {
                                prop_assert_eq!(&u.message.body[..], &u.tag.to_be_bytes()[..]);
                            }
                        } else {
                            prop_assert!(got.is_none(), "tag {} is not outstanding", tag);
                        }
                    }
                    Op::TakeAll => {
                        let got = list.take_all();
                        prop_assert_eq!(tags(&got), model.iter().copied().collect::<Vec<_>>());
                        model.clear();
                    }
                    Op::Rollback(i) => {
                        let out: Vec<u64> = model.iter().copied().collect();
                        if !out.is_empty() {
                            let tag = out[i.index(out.len())];
                            let got = list.take(tag, false).expect("outstanding");
                            list.restore(got);
                        }
                    }
                }
                // multiple=true with tag 0 takes everything: checks the rest.
                prop_assert_eq!(list.live, model.len());
            }
            let rest = list.take(0, true).expect("multiple with tag 0");
            prop_assert_eq!(tags(&rest), model.into_iter().collect::<Vec<_>>());
        }
    }
}

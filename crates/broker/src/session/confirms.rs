//! Replies that wait for the group commit: AMQP's publisher confirms and
//! tx.commit-ok, MQTT's PUBACK and PUBREC. Each waits behind a commit
//! ticket, and they leave in the order they were made: a reply's ticket is
//! raised to the one before it, so tickets never decrease along the queue.

use std::collections::VecDeque;

use crate::store::Ticket;

/// A session's replies waiting for commits; `R` is the protocol's reply.
#[derive(Debug)]
pub struct Deferred<R> {
    queue: VecDeque<(Ticket, R)>,
}

impl<R> Default for Deferred<R> {
    fn default() -> Self {
        Deferred {
            queue: VecDeque::new(),
        }
    }
}

impl<R> Deferred<R> {
    /// Queues `reply` to go once `ticket` (0: nothing to wait for) and
    /// every reply before it can go. Returns the ticket it waits for.
    pub fn push(&mut self, ticket: Ticket, reply: R) -> Ticket {
        let ticket = self.queue.back().map_or(ticket, |(t, _)| ticket.max(*t));
        self.queue.push_back((ticket, reply));
        ticket
    }

    /// The highest ticket a reply waits for, if any.
    pub fn awaited(&self) -> Option<Ticket> {
        self.queue.back().map(|(t, _)| *t)
    }

    /// The next reply whose ticket is within `committed`, with its ticket
    /// (the caller checks whether that commit failed).
    pub fn pop_ready(&mut self, committed: Ticket) -> Option<(Ticket, R)> {
        if self.queue.front().is_some_and(|(t, _)| *t <= committed) {
            self.queue.pop_front()
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn clear(&mut self) {
        self.queue.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_leave_in_order_behind_their_tickets() {
        let mut d = Deferred::default();
        assert_eq!(d.push(0, 'a'), 0);
        assert_eq!(d.push(5, 'b'), 5);
        // Nothing to wait for, but behind 'b': it waits for 5 too.
        assert_eq!(d.push(0, 'c'), 5);
        assert_eq!(d.push(7, 'd'), 7);
        assert_eq!(d.awaited(), Some(7));
        assert_eq!(d.pop_ready(0), Some((0, 'a')));
        assert_eq!(d.pop_ready(4), None);
        assert_eq!(d.pop_ready(6), Some((5, 'b')));
        assert_eq!(d.pop_ready(6), Some((5, 'c')));
        assert_eq!(d.pop_ready(6), None);
        assert_eq!(d.pop_ready(7), Some((7, 'd')));
        assert!(d.is_empty());
    }
}

//! The vhost's side of delayed exchanges: holding a published message
//! whose `x-delay` asks for it, and routing held messages once due.

use std::sync::Arc;

use super::VirtualHost;
use crate::delayed::{delay_of, DelayStore, HoldOutcome};
use crate::exchange::{Exchange, ExchangeKind};
use crate::message::Message;
use crate::queue::Durability;

/// Held messages routed per exchange per pass (the rest wait a pass).
const FIRE_BATCH: usize = 1024;

impl VirtualHost {
    /// Gives a new delayed exchange its store of held messages (with what
    /// a previous run left, for a recovered durable one).
    pub(crate) fn attach_delay_store(&self, ex: &Exchange) {
        if ex.kind != ExchangeKind::DelayedMessage || ex.delay_store().is_some() {
            return;
        }
        let handle = self
            .storage
            .as_ref()
            .map(|s| s.delayed_handle(&ex.name.as_str(), ex.durable));
        ex.attach_delay_store(DelayStore::open(handle, ex.durable));
    }

    /// Holds `message` if `exchange` is a delayed exchange and the message
    /// has a positive `x-delay`; `None` when it should be routed now.
    pub fn hold_delayed(
        &self,
        exchange: &Exchange,
        message: &Arc<Message>,
        durability: Durability,
    ) -> Option<HoldOutcome> {
        let store = exchange.delay_store()?;
        let ms = delay_of(message)?;
        Some(store.hold(message.clone(), ms, durability == Durability::Required))
    }

    /// Routes the held messages due at `now_ms` (a batch per exchange);
    /// returns when to look again: when the next one is due, at once if
    /// due ones are left, soon while fired ones wait for their commit.
    pub fn fire_delayed(&self, now_ms: u64) -> Option<u64> {
        let committed = self
            .storage
            .as_ref()
            .map_or(u64::MAX, |s| s.persistence.committer.committed());
        let delayed: Vec<Arc<Exchange>> = self
            .exchanges
            .read()
            .values()
            .filter(|x| x.delay_store().is_some())
            .cloned()
            .collect();
        let mut next: Option<u64> = None;
        let mut cache = super::RouteCache::default();
        for ex in delayed {
            let Some(store) = ex.delay_store() else {
                continue;
            };
            let mut waiting = store.settle(committed);
            let due = store.take_due(now_ms, FIRE_BATCH);
            if !due.is_empty() {
                let mut needs_sync = false;
                let mut disks = Vec::new();
                for (message, disk) in due {
                    let out = self.publish(
                        &ex,
                        &message,
                        super::Origin::Fired,
                        Durability::BestEffort,
                        &mut cache,
                    );
                    if out.is_routed() {
                        ex.counters.bump(crate::stats::Metric::PublishOut);
                    }
                    needs_sync |= out.needs_sync;
                    disks.extend(disk);
                }
                let ticket = if needs_sync { self.issue_ticket() } else { 0 };
                store.fired(ticket, disks);
                waiting = true;
            }
            let at = if waiting {
                Some(now_ms)
            } else {
                store.next_due()
            };
            next = match (next, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }
}

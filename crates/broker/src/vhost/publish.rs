//! The one publish pipeline: every message that enters a queue by
//! routing (an AMQP or MQTT publish, the HTTP API's publish, a delayed
//! message coming due, a dead letter) goes through
//! [`VirtualHost::publish`]. It holds a delayed exchange's messages,
//! routes, enqueues, folds the queues' answers into one [`Published`],
//! and dead-letters what the queues hand back, without recursion.
//!
//! What stays with the caller: permission and property checks (they
//! depend on who publishes), confirms and their tickets, statistics
//! (counted per read batch on the AMQP hot path), `mandatory` returns
//! and direct reply-to (a connection-level route).

use std::sync::Arc;

use ahash::AHashMap;
use warren_protocol::ShortStr;

use super::VirtualHost;
use crate::delayed::HoldOutcome;
use crate::exchange::Exchange;
use crate::message::Message;
use crate::queue::{is_cycle, DeadLetters, DeathReason, Durability, PublishOutcome, Queue};

/// Default-exchange routes a [`RouteCache`] keeps (then it starts over).
const DEFAULT_ROUTES_MAX: usize = 256;

/// Where a message comes from, which decides what may happen to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's publish: a delayed exchange may hold it.
    Client,
    /// A held message now due: routed, never held again.
    Fired,
    /// A dead letter, dead for `reason`: may be held; a queue it already
    /// died in without a rejection on the way is skipped (the cycle guard).
    DeadLetter(DeathReason),
}

/// Whether a message found somewhere to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routed {
    /// No queue: dropped, or returned to a `mandatory` publisher.
    #[default]
    Unroutable,
    /// Enqueued in at least one queue (or refused by one: see `rejected`).
    Queues,
    /// Held by a delayed exchange, to be routed when due (never returned).
    Held,
}

/// What became of one published message.
#[must_use]
#[derive(Debug, Default)]
pub struct Published {
    pub routed: Routed,
    /// A queue refused it (`x-overflow: reject-publish`): a confirm is a nack.
    pub rejected: bool,
    /// A write it needed for durability failed ([`Durability::Required`]
    /// only): a confirm is a nack, a transaction fails.
    pub failed: bool,
    /// It was written for durability: a confirm waits for the group
    /// commit (a ticket from [`VirtualHost::issue_ticket`]).
    pub needs_sync: bool,
    /// A queue whose consumers can't keep up asks the publisher to pause
    /// until it drains (credit flow).
    pub congested: Option<Arc<Queue>>,
}

impl Published {
    /// Reached a queue or a delayed exchange.
    pub fn is_routed(&self) -> bool {
        self.routed != Routed::Unroutable
    }

    /// Folds in one queue's answer.
    fn enqueued(&mut self, q: &Arc<Queue>, outcome: PublishOutcome) {
        match outcome {
            PublishOutcome::Rejected => self.rejected = true,
            PublishOutcome::Failed => self.failed = true,
            PublishOutcome::Enqueued {
                needs_sync,
                congested,
            } => {
                self.needs_sync |= needs_sync;
                if congested {
                    self.congested = Some(q.clone());
                }
            }
        }
    }
}

/// A publisher's routing scratch: its default-exchange routes (a queue by
/// name without the vhost's map lock) and a reusable buffer of queues.
/// One per AMQP channel or MQTT connection; a fresh one for one-off
/// publishes.
#[derive(Debug, Default)]
pub struct RouteCache {
    default_routes: AHashMap<ShortStr, Arc<Queue>>,
    buf: Vec<Arc<Queue>>,
}

impl RouteCache {
    /// The queue named `name`, without touching its reference count
    /// when cached (the hot path of default-exchange publishing).
    fn default_route(&mut self, vhost: &VirtualHost, name: &ShortStr) -> Option<&Arc<Queue>> {
        let fresh = self
            .default_routes
            .get(name)
            .is_some_and(|q| !q.is_deleted());
        if !fresh {
            let q = vhost.queue(name).ok()?;
            if self.default_routes.len() >= DEFAULT_ROUTES_MAX {
                self.default_routes.clear();
            }
            self.default_routes.insert(name.clone(), q);
        }
        self.default_routes.get(name)
    }
}

impl VirtualHost {
    /// Publishes `message` to `exchange`: held if a delayed exchange asks
    /// for it, else routed and enqueued in every queue it reaches. What
    /// the queues dead-letter on the way is dead-lettered before this
    /// returns.
    pub fn publish(
        &self,
        exchange: &Arc<Exchange>,
        message: &Arc<Message>,
        origin: Origin,
        durability: Durability,
        cache: &mut RouteCache,
    ) -> Published {
        let mut dead = Vec::new();
        let out = self.publish_into(exchange, message, origin, durability, cache, &mut dead);
        self.dead_letter_all(dead);
        out
    }

    /// Enqueues in one given queue, as routing there would (a move
    /// between queues); dead-letters what the queue hands back.
    pub fn enqueue(
        &self,
        q: &Arc<Queue>,
        message: &Arc<Message>,
        durability: Durability,
    ) -> Published {
        let (outcome, dead) = q.publish(message.clone(), durability);
        let mut out = Published {
            routed: Routed::Queues,
            ..Published::default()
        };
        out.enqueued(q, outcome);
        self.dead_letter(dead);
        out
    }

    /// Routes what a queue handed back to its dead-letter exchange (a
    /// missing exchange drops them, as RabbitMQ's). Nobody is told of a
    /// dead letter: if it can't be written it stays in memory rather
    /// than vanish ([`Durability::BestEffort`]).
    pub fn dead_letter(&self, dead: DeadLetters) {
        if let Some(batch) = dead.into_batch() {
            self.dead_letter_all(vec![*batch]);
        }
    }

    /// A worklist, not recursion: dead letters that die again in their
    /// target queue join the list. It ends because of the cycle guard.
    fn dead_letter_all(&self, mut work: Vec<crate::queue::DeadBatch>) {
        if work.is_empty() {
            return;
        }
        let mut cache = RouteCache::default();
        while let Some(batch) = work.pop() {
            let Ok(exchange) = self.exchange(&batch.exchange) else {
                continue;
            };
            for (message, reason) in &batch.items {
                let _ = self.publish_into(
                    &exchange,
                    message,
                    Origin::DeadLetter(*reason),
                    Durability::BestEffort,
                    &mut cache,
                    &mut work,
                );
            }
        }
    }

    fn publish_into(
        &self,
        exchange: &Arc<Exchange>,
        message: &Arc<Message>,
        origin: Origin,
        durability: Durability,
        cache: &mut RouteCache,
        dead: &mut Vec<crate::queue::DeadBatch>,
    ) -> Published {
        let mut out = Published::default();
        let mut enqueue = |out: &mut Published, q: &Arc<Queue>| {
            if let Origin::DeadLetter(reason) = origin {
                if is_cycle(message, reason, &q.name) {
                    return;
                }
            }
            let (outcome, died) = q.publish(message.clone(), durability);
            out.enqueued(q, outcome);
            dead.extend(died.into_batch().map(|b| *b));
        };
        if exchange.is_default() {
            // The default exchange routes by queue name: from the
            // publisher's cache, not the vhost's shared map.
            if let Some(q) = cache.default_route(self, &message.routing_key) {
                out.routed = Routed::Queues;
                enqueue(&mut out, q);
            }
            return out;
        }
        if origin != Origin::Fired {
            if let Some(held) = self.hold_delayed(exchange, message, durability) {
                out.routed = Routed::Held;
                match held {
                    HoldOutcome::Held { needs_sync } => out.needs_sync = needs_sync,
                    HoldOutcome::Failed => out.failed = true,
                }
                return out;
            }
        }
        let mut queues = std::mem::take(&mut cache.buf);
        self.route(exchange, message, &mut queues);
        if !queues.is_empty() {
            out.routed = Routed::Queues;
        }
        for q in queues.drain(..) {
            enqueue(&mut out, &q);
        }
        cache.buf = queues;
        out
    }
}

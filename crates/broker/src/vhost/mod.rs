//! A virtual host: its exchanges and queues, and the operations on them
//! with RabbitMQ's checks, reply codes and error texts.
//!
//! - [`topology`]: declare, delete, bind, unbind (journaled before they
//!   take effect, under the vhost's definitions lock);
//! - [`args`]: argument validation and RabbitMQ's error texts;
//! - [`recover`]: rebuilding durable state at startup;
//! - here: lookups, routing, housekeeping.

mod args;
mod recover;
mod topology;

use args::rs;

use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};
use warren_protocol::{FieldTable, ShortStr};

use crate::consumer::ConnectionEvent;
use crate::definitions::{self, BindingDef, Change, ExchangeDef};
use crate::error::{AmqpError, Result};
use crate::exchange::{Exchange, ExchangeKind};
use crate::message::Message;
use crate::persistence::VhostStorage;
use crate::queue::Queue;
use crate::routing::{Binding, Destination};

/// Exchanges every vhost has, as RabbitMQ creates them.
const PREDECLARED: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    pub name: ShortStr,
    pub kind: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    /// Empty asks the server to name the queue.
    pub name: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredQueue {
    pub message_count: u32,
    pub consumer_count: u32,
}

#[derive(Debug)]
pub struct VirtualHost {
    pub name: String,
    /// Handed to queues so they can dead-letter through this vhost.
    self_ref: std::sync::Weak<VirtualHost>,
    /// Where durable definitions and messages go; `None` runs in memory.
    storage: Option<VhostStorage>,
    exchanges: RwLock<AHashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<AHashMap<ShortStr, Arc<Queue>>>,
    /// Held across decide, journal and apply of every topology change, so
    /// journal order is the order changes took effect. Never taken on the
    /// message path.
    ddl: Mutex<()>,
}

impl VirtualHost {
    /// A vhost that keeps nothing on disk (unit tests, tools).
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Self::with_storage(name.into(), None)
    }

    pub fn with_storage(name: String, storage: Option<VhostStorage>) -> Arc<Self> {
        let mut exchanges = AHashMap::new();
        for (x, kind, internal) in PREDECLARED {
            let ex = Exchange::new(
                ShortStr::from(*x),
                name.clone(),
                *kind,
                true,
                false,
                *internal,
                FieldTable::new(),
            );
            exchanges.insert(ShortStr::from(*x), Arc::new(ex));
        }
        Arc::new_cyclic(|self_ref| VirtualHost {
            name,
            self_ref: self_ref.clone(),
            storage,
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(AHashMap::new()),
            ddl: Mutex::new(()),
        })
    }

    /// Journals a change (fsynced); a failure is a 541 for the client,
    /// and the change must then not be applied.
    fn record(&self, change: Change) -> Result<()> {
        let Some(s) = &self.storage else {
            return Ok(());
        };
        s.persistence.defs.record(&change).map_err(|e| {
            tracing::error!(
                "cannot journal a definition change in vhost '{}': {e}",
                self.name
            );
            AmqpError::internal(format!("failed to persist the change: {e}"))
        })
    }

    /// A commit ticket covering every durable write made so far (0 when
    /// nothing is stored).
    pub fn issue_ticket(&self) -> crate::store::Ticket {
        self.storage
            .as_ref()
            .map_or(0, |s| s.persistence.committer.issue())
    }

    /// Sends `Committed` to `sink` once `ticket` is durable.
    pub fn notify_commit(&self, ticket: crate::store::Ticket, sink: crate::consumer::EventSender) {
        match &self.storage {
            Some(s) => s.persistence.committer.notify(ticket, sink),
            None => {
                let _ = sink.send(ConnectionEvent::Committed(ticket));
            }
        }
    }

    pub fn committed(&self) -> crate::store::Ticket {
        self.storage
            .as_ref()
            .map_or(u64::MAX, |s| s.persistence.committer.committed())
    }

    /// Whether the commit covering `ticket` failed (its data is not known
    /// to be on disk: nack, don't confirm).
    pub fn ticket_failed(&self, ticket: crate::store::Ticket) -> bool {
        self.storage
            .as_ref()
            .is_some_and(|s| s.persistence.committer.ticket_failed(ticket))
    }

    fn exchange_def(&self, ex: &Exchange) -> ExchangeDef {
        ExchangeDef {
            vhost: self.name.clone(),
            name: ex.name.to_string(),
            kind: ex.kind.as_str().to_string(),
            auto_delete: ex.auto_delete,
            internal: ex.internal,
            arguments: definitions::encode_table(&ex.arguments),
        }
    }

    fn binding_def(&self, source: &Exchange, b: &Binding) -> BindingDef {
        BindingDef {
            vhost: self.name.clone(),
            source: source.name.to_string(),
            destination: b.destination.name().to_string(),
            destination_kind: b.destination.kind_str().to_string(),
            routing_key: b.routing_key.to_string(),
            arguments: definitions::encode_table(&b.arguments),
        }
    }

    /// Bindings persist when both ends do (RabbitMQ's rule).
    fn binding_is_durable(source: &Exchange, b: &Binding) -> bool {
        source.durable
            && match &b.destination {
                Destination::Queue(q) => q.options.durable,
                Destination::Exchange(x) => x.durable,
            }
    }

    pub fn exchange(&self, name: &ShortStr) -> Result<Arc<Exchange>> {
        self.exchanges
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| AmqpError::not_found(format!("no {}", rs("exchange", name, &self.name))))
    }

    pub fn queue(&self, name: &ShortStr) -> Result<Arc<Queue>> {
        self.queues
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| AmqpError::not_found(format!("no {}", rs("queue", name, &self.name))))
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut v: Vec<_> = self.queues.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        let mut v: Vec<_> = self.exchanges.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The 405 RabbitMQ gives for another connection's exclusive queue.
    pub fn check_exclusive(&self, queue: &Queue, connection_id: u64) -> Result<()> {
        match queue.owner {
            Some(owner) if owner != connection_id => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked {}. It could be originally declared \
                 on another connection or the exclusive property value does not match that of \
                 the original declaration.",
                queue.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// Periodic housekeeping: expires messages past their TTL and deletes
    /// queues unused for longer than their `x-expires`.
    pub fn sweep(&self, now: std::time::Instant) {
        for q in self.queues() {
            q.expire(now);
            if q.is_expired_unused(now) {
                if let Err(e) = self.remove_queue(&q) {
                    tracing::error!("cannot expire {}: {e}", q.describe());
                }
            }
        }
    }

    /// Deletes the exclusive queues of a connection that closed.
    pub fn remove_connection_queues(&self, connection_id: u64) {
        let owned: Vec<_> = self
            .queues
            .read()
            .values()
            .filter(|q| q.owner == Some(connection_id))
            .cloned()
            .collect();
        for q in owned {
            // Exclusive queues are never durable: nothing to journal.
            let _ = self.remove_queue(&q);
        }
    }

    /// Every queue `message` reaches from `exchange`: follows exchange to
    /// exchange bindings (once each, so cycles end) and alternate
    /// exchanges, and lists each queue once.
    pub fn route(&self, exchange: &Arc<Exchange>, message: &Message, out: &mut Vec<Arc<Queue>>) {
        if exchange.is_default() {
            if let Some(q) = self.queues.read().get(&message.routing_key) {
                out.push(q.clone());
            }
            return;
        }
        let mut visited: Vec<*const Exchange> = Vec::new();
        let mut pending = vec![exchange.clone()];
        let mut dests = Vec::new();
        while let Some(ex) = pending.pop() {
            if visited.contains(&Arc::as_ptr(&ex)) {
                continue;
            }
            visited.push(Arc::as_ptr(&ex));
            dests.clear();
            ex.route(message, &mut dests);
            let mut routed = false;
            for d in dests.drain(..) {
                match d {
                    Destination::Queue(q) => {
                        routed = true;
                        if !out.iter().any(|x| Arc::ptr_eq(x, &q)) {
                            out.push(q);
                        }
                    }
                    Destination::Exchange(e) => {
                        routed = true;
                        pending.push(e);
                    }
                }
            }
            if !routed {
                if let Some(ae) = &ex.alternate_exchange {
                    if let Ok(ae) = self.exchange(ae) {
                        pending.push(ae);
                    }
                }
            }
        }
    }

    /// All bindings, including the default exchange's implicit ones, as
    /// (source, destination kind, destination, key, arguments).
    pub fn bindings(&self) -> Vec<(ShortStr, &'static str, ShortStr, ShortStr, FieldTable)> {
        let mut out = Vec::new();
        for q in self.queues() {
            out.push((
                ShortStr::default(),
                "queue",
                q.name.clone(),
                q.name.clone(),
                FieldTable::new(),
            ));
        }
        for ex in self.exchanges() {
            for b in ex.bindings() {
                out.push((
                    ex.name.clone(),
                    b.destination.kind_str(),
                    b.destination.name().clone(),
                    b.routing_key,
                    b.arguments,
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

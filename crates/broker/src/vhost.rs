//! A virtual host: its exchanges and queues, and the operations on them
//! with RabbitMQ's checks, reply codes and error texts.

use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::consumer::ConnectionEvent;
use crate::definitions::{self, BindingDef, Change, ExchangeDef, QueueDef};
use crate::error::{AmqpError, Result};
use crate::exchange::{Exchange, ExchangeKind};
use crate::message::Message;
use crate::names;
use crate::persistence::VhostStorage;
use crate::queue::{Overflow, Queue, QueueLimits, QueueOptions};
use crate::queue::{QueueSetup, QueueStorage};
use crate::routing::{Binding, Destination};
use crate::store::QueueIndex;

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

/// Queue arguments RabbitMQ compares when a queue is redeclared.
const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
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
}

fn rs(kind: &str, name: &ShortStr, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

fn check_name(kind: &str, name: &ShortStr) -> Result<()> {
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "{kind} name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    Ok(())
}

/// RabbitMQ's names for field types, used in equivalence errors.
fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::Bytes(_) => "binary",
    }
}

fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => f.to_string(),
        FieldValue::F64(f) => f.to_string(),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// RabbitMQ's wording for differing arguments: plain values when both
/// sides have one, typed descriptions when one side has none.
fn arg_mismatch(
    key: &str,
    what: &str,
    received: Option<&FieldValue>,
    current: Option<&FieldValue>,
) -> AmqpError {
    let text = match (received, current) {
        (Some(r), Some(c)) => format!(
            "inequivalent arg '{key}' for {what}: received '{}' but current is '{}'",
            value_text(r),
            value_text(c)
        ),
        _ => format!(
            "inequivalent arg '{key}' for {what}: received {} but current is {}",
            describe_arg(received),
            describe_arg(current)
        ),
    };
    AmqpError::precondition_failed(text)
}

fn describe_arg(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
    }
}

/// Argument values equal as RabbitMQ compares them (integers by value).
fn arg_equal(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x == y,
        },
        _ => false,
    }
}

fn inequivalent(field: &str, what: &str, received: &str, current: &str) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{field}' for {what}: received '{received}' but current is '{current}'"
    ))
}

/// Validates the `x-` queue arguments RabbitMQ validates and derives the
/// limits Warren enforces.
fn queue_limits(
    args: &FieldTable,
    what: &str,
    durable: bool,
    exclusive: bool,
) -> Result<QueueLimits> {
    let invalid = |key: &str, why: String| {
        AmqpError::precondition_failed(format!("invalid arg '{key}' for {what}: {why}"))
    };
    let int_arg = |key: &str, min: i64| -> Result<Option<i64>> {
        match args.get(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                None => Err(invalid(
                    key,
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                )),
                Some(i) if i < min => Err(invalid(
                    key,
                    if min > 0 {
                        format!("{{value_zero,{i}}}")
                    } else {
                        format!("{{value_negative,{i}}}")
                    },
                )),
                Some(i) => Ok(Some(i)),
            },
        }
    };
    let message_ttl = int_arg("x-message-ttl", 0)?.map(|v| v as u64);
    let expires = int_arg("x-expires", 1)?.map(|v| v as u64);
    int_arg("x-max-priority", 0)?;
    let max_length = int_arg("x-max-length", 0)?.map(|v| v as u64);
    let max_length_bytes = int_arg("x-max-length-bytes", 0)?.map(|v| v as u64);
    let overflow = match args.get("x-overflow") {
        None => Overflow::DropHead,
        Some(v) => match v.as_bytes() {
            Some(b"drop-head") => Overflow::DropHead,
            Some(b"reject-publish") | Some(b"reject-publish-dlx") => Overflow::RejectPublish,
            Some(other) => {
                return Err(invalid(
                    "x-overflow",
                    format!(
                        "{{unacceptable_value,<<\"{}\">>}}",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
            None => {
                return Err(invalid(
                    "x-overflow",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ))
            }
        },
    };
    if let Some(v) = args.get("x-queue-type") {
        match v.as_bytes() {
            Some(b"classic") => {}
            // Quorum queues are served by the classic implementation; keep
            // RabbitMQ's declaration rules so programs behave the same.
            Some(b"quorum") => {
                if !durable || exclusive {
                    return Err(invalid(
                        "x-queue-type",
                        "quorum queues must be durable and not exclusive".into(),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "x-queue-type",
                    format!("{{unacceptable_value,{}}}", value_text(v)),
                ))
            }
        }
    }
    let text_arg = |key: &str| -> Result<Option<ShortStr>> {
        match args.get(key) {
            None => Ok(None),
            Some(v) => match v.as_bytes() {
                Some(b) => Ok(Some(ShortStr::new(bytes::Bytes::copy_from_slice(b)))),
                None => Err(invalid(
                    key,
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                )),
            },
        }
    };
    let dead_letter_exchange = text_arg("x-dead-letter-exchange")?;
    let dead_letter_routing_key = text_arg("x-dead-letter-routing-key")?;
    if dead_letter_routing_key.is_some() && dead_letter_exchange.is_none() {
        return Err(invalid(
            "x-dead-letter-routing-key",
            "Key x-dead-letter-exchange should be present".into(),
        ));
    }
    let single_active_consumer = match args.get("x-single-active-consumer") {
        None => false,
        Some(FieldValue::Bool(b)) => *b,
        Some(v) => {
            return Err(invalid(
                "x-single-active-consumer",
                format!("{{unacceptable_type,{}}}", type_name(v)),
            ))
        }
    };
    Ok(QueueLimits {
        max_length,
        max_length_bytes,
        overflow,
        message_ttl,
        expires,
        dead_letter_exchange,
        dead_letter_routing_key,
        single_active_consumer,
    })
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
        })
    }

    fn record(&self, change: Change) {
        if let Some(s) = &self.storage {
            s.persistence.defs.record(&change);
        }
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

    pub fn declare_exchange(&self, d: &ExchangeSpec) -> Result<Arc<Exchange>> {
        if d.passive {
            if d.name.is_empty() {
                return Err(default_exchange_refused());
            }
            return self.exchange(&d.name);
        }
        // RabbitMQ 3.10 closed the connection (503) here; current releases
        // close only the channel with 406, which is kinder to channel pools.
        let kind = ExchangeKind::parse(d.kind.as_bytes()).ok_or_else(|| {
            AmqpError::precondition_failed(format!("unknown exchange type '{}'", d.kind))
        })?;
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        let what = rs("exchange", &d.name, &self.name);
        let existing = self.exchanges.read().get(&d.name).cloned();
        let ex = match existing {
            Some(ex) => ex,
            None => {
                check_name("exchange", &d.name)?;
                let mut map = self.exchanges.write();
                let mut created = false;
                let ex = map
                    .entry(d.name.clone())
                    .or_insert_with(|| {
                        created = true;
                        Arc::new(Exchange::new(
                            d.name.clone(),
                            self.name.clone(),
                            kind,
                            d.durable,
                            d.auto_delete,
                            d.internal,
                            d.arguments.clone(),
                        ))
                    })
                    .clone();
                drop(map);
                if created && ex.durable {
                    self.record(Change::DeclareExchange(self.exchange_def(&ex)));
                }
                ex
            }
        };
        if ex.kind != kind {
            return Err(inequivalent("type", &what, kind.as_str(), ex.kind.as_str()));
        }
        for (field, have, want) in [
            ("durable", ex.durable, d.durable),
            ("auto_delete", ex.auto_delete, d.auto_delete),
            ("internal", ex.internal, d.internal),
        ] {
            if have != want {
                return Err(inequivalent(
                    field,
                    &what,
                    &want.to_string(),
                    &have.to_string(),
                ));
            }
        }
        let key = "alternate-exchange";
        if !arg_equal(ex.arguments.get(key), d.arguments.get(key)) {
            return Err(arg_mismatch(
                key,
                &what,
                d.arguments.get(key),
                ex.arguments.get(key),
            ));
        }
        Ok(ex)
    }

    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> Result<()> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system {} not allowed",
                rs("exchange", name, &self.name)
            )));
        }
        let Some(ex) = self.exchanges.read().get(name).cloned() else {
            return Ok(());
        };
        if if_unused && ex.has_bindings() {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                ex.describe()
            )));
        }
        self.remove_exchange(&ex);
        Ok(())
    }

    fn remove_exchange(&self, ex: &Arc<Exchange>) {
        {
            let mut map = self.exchanges.write();
            match map.get(&ex.name) {
                Some(current) if Arc::ptr_eq(current, ex) => {
                    map.remove(&ex.name);
                }
                _ => return,
            }
        }
        ex.mark_deleted();
        if ex.durable {
            // Its bindings go with it in the definitions too.
            self.record(Change::DeleteExchange {
                vhost: self.name.clone(),
                name: ex.name.to_string(),
            });
        }
        // Bindings where this exchange is the destination go with it.
        let dest = Destination::Exchange(ex.clone());
        for source in self.exchanges() {
            source.unbind_destination(&dest);
            self.maybe_auto_delete(&source);
        }
    }

    /// Auto-delete exchanges go when their last binding (as source) goes.
    fn maybe_auto_delete(&self, ex: &Arc<Exchange>) {
        if ex.auto_delete && !ex.has_bindings() && !ex.is_deleted() {
            self.remove_exchange(ex);
        }
    }

    /// Declares (or checks) a queue. Returns the queue and its counts.
    pub fn declare_queue(
        &self,
        d: &QueueSpec,
        connection_id: u64,
    ) -> Result<(Arc<Queue>, DeclaredQueue)> {
        let counts = |q: &Queue| {
            let s = q.stats();
            DeclaredQueue {
                message_count: u32::try_from(s.ready).unwrap_or(u32::MAX),
                consumer_count: s.consumers,
            }
        };
        if d.passive {
            let q = self.queue(&d.name)?;
            self.check_exclusive(&q, connection_id)?;
            let c = counts(&q);
            return Ok((q, c));
        }
        let name = if d.name.is_empty() {
            ShortStr::from(names::queue_name())
        } else {
            check_name("queue", &d.name)?;
            d.name.clone()
        };
        // Exclusive queues are never durable, as in RabbitMQ.
        let durable = d.durable && !d.exclusive;
        let what = rs("queue", &name, &self.name);
        if let Some(q) = self.queues.read().get(&name).cloned() {
            self.check_equivalence(&q, d, durable, connection_id, &what)?;
            q.touch();
            let c = counts(&q);
            return Ok((q, c));
        }
        let limits = queue_limits(&d.arguments, &what, durable, d.exclusive)?;
        let (storage_id, handle) = match &self.storage {
            Some(s) => {
                let id = s.persistence.next_queue_id();
                (id, Some(s.queue_handle(id, durable)))
            }
            None => (0, None),
        };
        let mut map = self.queues.write();
        if let Some(q) = map.get(&name).cloned() {
            drop(map);
            self.check_equivalence(&q, d, durable, connection_id, &what)?;
            let c = counts(&q);
            return Ok((q, c));
        }
        let q = Arc::new(Queue::new(QueueSetup {
            name: name.clone(),
            vhost: self.name.clone(),
            options: QueueOptions {
                durable,
                exclusive: d.exclusive,
                auto_delete: d.auto_delete,
                arguments: d.arguments.clone(),
            },
            owner: d.exclusive.then_some(connection_id),
            limits,
            vhost_ref: self.self_ref.clone(),
            storage: handle,
            recovered: None,
        }));
        map.insert(name, q.clone());
        drop(map);
        if durable {
            self.record(Change::DeclareQueue(QueueDef {
                vhost: self.name.clone(),
                name: q.name.to_string(),
                id: storage_id,
                auto_delete: q.options.auto_delete,
                arguments: definitions::encode_table(&q.options.arguments),
            }));
        }
        Ok((
            q,
            DeclaredQueue {
                message_count: 0,
                consumer_count: 0,
            },
        ))
    }

    fn check_equivalence(
        &self,
        q: &Queue,
        d: &QueueSpec,
        durable: bool,
        connection_id: u64,
        what: &str,
    ) -> Result<()> {
        // Strict: a non-exclusive redeclare of an exclusive queue fails too.
        let owner = d.exclusive.then_some(connection_id);
        if q.owner != owner {
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked {}. It could be originally declared \
                 on another connection or the exclusive property value does not match that of \
                 the original declaration.",
                q.describe()
            )));
        }
        if q.options.durable != durable {
            return Err(inequivalent(
                "durable",
                what,
                &durable.to_string(),
                &q.options.durable.to_string(),
            ));
        }
        if q.options.auto_delete != d.auto_delete {
            return Err(inequivalent(
                "auto_delete",
                what,
                &d.auto_delete.to_string(),
                &q.options.auto_delete.to_string(),
            ));
        }
        for key in EQUIVALENCE_ARGS {
            let have = q.options.arguments.get(key);
            let want = d.arguments.get(key);
            if !arg_equal(have, want) {
                return Err(arg_mismatch(key, what, want, have));
            }
        }
        Ok(())
    }

    /// queue.delete. A missing queue is not an error (delete-ok with 0).
    pub fn delete_queue(
        &self,
        name: &ShortStr,
        if_unused: bool,
        if_empty: bool,
        connection_id: u64,
    ) -> Result<u32> {
        let Some(q) = self.queues.read().get(name).cloned() else {
            return Ok(0);
        };
        self.check_exclusive(&q, connection_id)?;
        let stats = q.stats();
        if if_unused && stats.consumers > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                q.describe()
            )));
        }
        if if_empty && stats.ready > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "{} not empty",
                q.describe()
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Removes a queue: unbinds it, tells its consumers, drops its
    /// messages. Returns how many ready messages it had.
    pub fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut map = self.queues.write();
            match map.get(&q.name) {
                Some(current) if Arc::ptr_eq(current, q) => {
                    map.remove(&q.name);
                }
                _ => return 0,
            }
        }
        let (consumers, count) = q.mark_deleted();
        if q.options.durable {
            self.record(Change::DeleteQueue {
                vhost: self.name.clone(),
                name: q.name.to_string(),
            });
        }
        for c in consumers {
            let _ = c.sink.send(ConnectionEvent::ConsumerCancelled {
                channel: c.channel,
                consumer_tag: c.tag.clone(),
            });
        }
        let dest = Destination::Queue(q.clone());
        for ex in self.exchanges() {
            if !ex.unbind_destination(&dest).is_empty() {
                self.maybe_auto_delete(&ex);
            }
        }
        count
    }

    /// Periodic housekeeping: expires messages past their TTL and deletes
    /// queues unused for longer than their `x-expires`.
    pub fn sweep(&self, now: std::time::Instant) {
        for q in self.queues() {
            q.expire(now);
            if q.is_expired_unused(now) {
                self.remove_queue(&q);
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
            self.remove_queue(&q);
        }
    }

    fn binding_target(
        &self,
        dest: &ShortStr,
        is_queue: bool,
        connection_id: u64,
    ) -> Result<Destination> {
        if is_queue {
            let q = self.queue(dest)?;
            self.check_exclusive(&q, connection_id)?;
            Ok(Destination::Queue(q))
        } else {
            if dest.is_empty() {
                return Err(default_exchange_refused());
            }
            Ok(Destination::Exchange(self.exchange(dest)?))
        }
    }

    /// queue.bind / exchange.bind.
    pub fn bind(
        &self,
        source: &ShortStr,
        dest: &ShortStr,
        dest_is_queue: bool,
        routing_key: ShortStr,
        arguments: FieldTable,
        connection_id: u64,
    ) -> Result<()> {
        if source.is_empty() {
            return Err(default_exchange_refused());
        }
        let ex = self.exchange(source)?;
        let destination = self.binding_target(dest, dest_is_queue, connection_id)?;
        let binding = Binding {
            destination,
            routing_key,
            arguments,
        };
        if ex.bind(binding.clone())? && Self::binding_is_durable(&ex, &binding) {
            self.record(Change::Bind(self.binding_def(&ex, &binding)));
        }
        Ok(())
    }

    /// queue.unbind / exchange.unbind. A missing binding is not an error.
    pub fn unbind(
        &self,
        source: &ShortStr,
        dest: &ShortStr,
        dest_is_queue: bool,
        routing_key: ShortStr,
        arguments: FieldTable,
        connection_id: u64,
    ) -> Result<()> {
        if source.is_empty() {
            return Err(default_exchange_refused());
        }
        // RabbitMQ answers unbind-ok when the exchange or the destination
        // doesn't exist: there is nothing left to unbind.
        let Ok(ex) = self.exchange(source) else {
            return Ok(());
        };
        let destination = match self.binding_target(dest, dest_is_queue, connection_id) {
            Ok(d) => d,
            Err(e) if e.code == warren_protocol::constants::reply::NOT_FOUND => return Ok(()),
            Err(e) => return Err(e),
        };
        let binding = Binding {
            destination,
            routing_key,
            arguments,
        };
        if ex.unbind(&binding) {
            if Self::binding_is_durable(&ex, &binding) {
                self.record(Change::Unbind(self.binding_def(&ex, &binding)));
            }
            self.maybe_auto_delete(&ex);
        }
        Ok(())
    }

    /// Rebuilds durable exchanges, queues (with their messages) and
    /// bindings from the definitions, then drops message-store segments
    /// nothing references any more.
    pub fn recover(&self, snap: &definitions::Snapshot) {
        let Some(storage) = &self.storage else {
            return;
        };
        for x in snap.exchanges.iter().filter(|x| x.vhost == self.name) {
            let Some(kind) = ExchangeKind::parse(x.kind.as_bytes()) else {
                tracing::warn!(
                    "skipping exchange '{}' of unknown type '{}'",
                    x.name,
                    x.kind
                );
                continue;
            };
            let ex = Exchange::new(
                ShortStr::from(x.name.as_str()),
                self.name.clone(),
                kind,
                true,
                x.auto_delete,
                x.internal,
                definitions::decode_table(&x.arguments),
            );
            self.exchanges.write().insert(ex.name.clone(), Arc::new(ex));
        }
        let mut recovered_messages = 0u64;
        for qd in snap.queues.iter().filter(|q| q.vhost == self.name) {
            let name = ShortStr::from(qd.name.as_str());
            let arguments = definitions::decode_table(&qd.arguments);
            let what = rs("queue", &name, &self.name);
            let limits = queue_limits(&arguments, &what, true, false).unwrap_or_default();
            let handle = storage.queue_handle(qd.id, true);
            let recovered = match QueueIndex::open(
                &handle.dir,
                storage.store.clone(),
                storage.persistence.committer.clone(),
            ) {
                Ok((index, rec)) => {
                    recovered_messages += rec.live;
                    let next = rec.next_seq;
                    Some((QueueStorage::recovered(index, &rec), next))
                }
                Err(e) => {
                    tracing::error!("cannot recover the messages of {what}: {e}");
                    None
                }
            };
            let q = Queue::new(QueueSetup {
                name: name.clone(),
                vhost: self.name.clone(),
                options: QueueOptions {
                    durable: true,
                    exclusive: false,
                    auto_delete: qd.auto_delete,
                    arguments,
                },
                owner: None,
                limits,
                vhost_ref: self.self_ref.clone(),
                storage: Some(handle),
                recovered,
            });
            self.queues.write().insert(name, Arc::new(q));
        }
        for b in snap.bindings.iter().filter(|b| b.vhost == self.name) {
            let source = ShortStr::from(b.source.as_str());
            let dest = ShortStr::from(b.destination.as_str());
            let is_queue = b.destination_kind == "queue";
            let (Ok(ex), Ok(destination)) = (
                self.exchange(&source),
                self.binding_target(&dest, is_queue, 0),
            ) else {
                continue;
            };
            let _ = ex.bind(Binding {
                destination,
                routing_key: ShortStr::from(b.routing_key.as_str()),
                arguments: definitions::decode_table(&b.arguments),
            });
        }
        storage.store.remove_unreferenced();
        tracing::info!(
            "vhost '{}': recovered {} exchange(s), {} queue(s), {} message(s)",
            self.name,
            snap.exchanges
                .iter()
                .filter(|x| x.vhost == self.name)
                .count(),
            snap.queues.iter().filter(|q| q.vhost == self.name).count(),
            recovered_messages
        );
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

//! Exchanges and their binding indexes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use ahash::AHashMap;
use parking_lot::RwLock;
use warren_protocol::{FieldTable, ShortStr};

use crate::delayed::DelayStore;
use crate::error::{AmqpError, Result};
use crate::message::Message;
use crate::policy::Applied;
use crate::routing::hash::{self, HashOn};
use crate::routing::headers::{self, MatchKind};
use crate::routing::topic::TopicIndex;
use crate::routing::{Binding, Destination};
use crate::stats::{Counters, Rates};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-consistent-hash` (the plugin, built in).
    ConsistentHash,
    /// `x-delayed-message` (the plugin, built in): routes as its
    /// `x-delayed-type` once a message's `x-delay` has passed.
    DelayedMessage,
}

impl ExchangeKind {
    pub fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"direct" => Some(ExchangeKind::Direct),
            b"fanout" => Some(ExchangeKind::Fanout),
            b"topic" => Some(ExchangeKind::Topic),
            b"headers" => Some(ExchangeKind::Headers),
            b"x-consistent-hash" => Some(ExchangeKind::ConsistentHash),
            b"x-delayed-message" => Some(ExchangeKind::DelayedMessage),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::DelayedMessage => "x-delayed-message",
        }
    }
}

#[derive(Debug)]
enum Index {
    Direct(AHashMap<ShortStr, Vec<Binding>>),
    /// Fanout routes to every binding: the `all` list is the index.
    Fanout,
    Topic(TopicIndex),
    Headers(Vec<(MatchKind, Binding)>),
    /// Bindings with their weights, and what is hashed.
    Hash(HashOn, Vec<(u64, Binding)>),
}

#[derive(Debug)]
struct Bindings {
    /// Every binding in creation order, for listing and duplicate checks.
    all: Vec<Binding>,
    index: Index,
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub vhost: String,
    pub kind: ExchangeKind,
    /// How it routes: its kind, or a delayed exchange's `x-delayed-type`.
    pub route_kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The `alternate-exchange` argument.
    alternate_exchange_arg: Option<ShortStr>,
    /// The policy in force and the alternate exchange it leads to (the
    /// argument wins over the policy).
    applied: RwLock<(Applied, Option<ShortStr>)>,
    bindings: RwLock<Bindings>,
    /// A delayed exchange's held messages.
    delay: OnceLock<DelayStore>,
    deleted: AtomicBool,
    /// publish_in / publish_out.
    pub counters: Counters,
    pub rates: Rates,
}

impl Exchange {
    pub fn new(
        name: ShortStr,
        vhost: String,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let route_kind = match kind {
            ExchangeKind::DelayedMessage => {
                delayed_type(&arguments).unwrap_or(ExchangeKind::Direct)
            }
            k => k,
        };
        let index = match route_kind {
            ExchangeKind::Direct | ExchangeKind::DelayedMessage => Index::Direct(AHashMap::new()),
            ExchangeKind::Fanout => Index::Fanout,
            ExchangeKind::Topic => Index::Topic(TopicIndex::default()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
            ExchangeKind::ConsistentHash => Index::Hash(
                HashOn::from_arguments(&arguments).unwrap_or(HashOn::RoutingKey),
                Vec::new(),
            ),
        };
        let alternate_exchange = arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_bytes())
            .map(|b| ShortStr::new(bytes::Bytes::copy_from_slice(b)));
        Exchange {
            name,
            vhost,
            kind,
            route_kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate_exchange_arg: alternate_exchange.clone(),
            applied: RwLock::new((Applied::default(), alternate_exchange)),
            bindings: RwLock::new(Bindings {
                all: Vec::new(),
                index,
            }),
            delay: OnceLock::new(),
            deleted: AtomicBool::new(false),
            counters: Counters::default(),
            rates: Rates::default(),
        }
    }

    /// Where unroutable messages go: the `alternate-exchange` argument,
    /// else the policy's.
    pub fn alternate_exchange(&self) -> Option<ShortStr> {
        self.applied.read().1.clone()
    }

    /// Puts a policy in force.
    pub fn apply_policies(&self, applied: Applied) {
        let ae = applied.alternate_exchange(self.alternate_exchange_arg.as_ref());
        *self.applied.write() = (applied, ae);
    }

    /// The policy in force.
    pub fn applied_policies(&self) -> Applied {
        self.applied.read().0.clone()
    }

    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Marks it deleted; a delayed exchange's held messages go with it.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        if let Some(d) = self.delay.get() {
            d.destroy();
        }
    }

    pub fn describe(&self) -> String {
        format!("exchange '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// Checks a binding's arguments (headers exchanges: `x-match`) or key
    /// (consistent-hash exchanges: a positive weight).
    pub fn validate_binding(&self, binding: &Binding) -> Result<()> {
        match self.route_kind {
            ExchangeKind::Headers => {
                headers::match_kind(&binding.arguments)?;
            }
            ExchangeKind::ConsistentHash => {
                hash::weight(binding)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks a new exchange's arguments as the plugins do.
    pub fn validate_arguments(kind: ExchangeKind, arguments: &FieldTable) -> Result<()> {
        match kind {
            ExchangeKind::ConsistentHash => HashOn::from_arguments(arguments).map(|_| ()),
            ExchangeKind::DelayedMessage => match delayed_type(arguments) {
                Some(ExchangeKind::DelayedMessage) => Err(AmqpError::precondition_failed(
                    "Invalid argument, 'x-delayed-type' must not be 'x-delayed-message'",
                )),
                Some(inner) => Self::validate_arguments(inner, arguments),
                None => Err(AmqpError::precondition_failed(
                    "Invalid argument, 'x-delayed-type' must be an existing exchange type",
                )),
            },
            _ => Ok(()),
        }
    }

    /// A delayed exchange's store of held messages (set once, when the
    /// exchange is made).
    pub fn delay_store(&self) -> Option<&DelayStore> {
        self.delay.get()
    }

    pub(crate) fn attach_delay_store(&self, store: DelayStore) {
        if self.delay.set(store).is_err() {
            tracing::error!("{}: delay store attached twice", self.describe());
        }
    }

    /// Whether an identical binding exists.
    pub fn has_binding(&self, binding: &Binding) -> bool {
        self.bindings.read().all.iter().any(|x| x.same(binding))
    }

    /// Adds a binding; false if an identical one exists.
    pub fn bind(&self, binding: Binding) -> Result<bool> {
        let kind = if self.route_kind == ExchangeKind::Headers {
            Some(headers::match_kind(&binding.arguments)?)
        } else {
            None
        };
        let weight = if self.route_kind == ExchangeKind::ConsistentHash {
            hash::weight(&binding)?
        } else {
            0
        };
        let mut b = self.bindings.write();
        if b.all.iter().any(|x| x.same(&binding)) {
            return Ok(false);
        }
        b.all.push(binding.clone());
        match &mut b.index {
            Index::Direct(map) => map
                .entry(binding.routing_key.clone())
                .or_default()
                .push(binding),
            Index::Fanout => {}
            Index::Topic(t) => t.insert(binding),
            Index::Headers(v) => v.push((kind.unwrap_or(MatchKind::All), binding)),
            Index::Hash(_, v) => v.push((weight, binding)),
        }
        Ok(true)
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&self, binding: &Binding) -> bool {
        let mut b = self.bindings.write();
        let before = b.all.len();
        b.all.retain(|x| !x.same(binding));
        if b.all.len() == before {
            return false;
        }
        match &mut b.index {
            Index::Direct(map) => {
                if let Some(v) = map.get_mut(&binding.routing_key) {
                    v.retain(|x| !x.same(binding));
                    if v.is_empty() {
                        map.remove(&binding.routing_key);
                    }
                }
            }
            Index::Fanout => {}
            Index::Topic(t) => {
                t.remove(binding);
            }
            Index::Headers(v) => v.retain(|(_, x)| !x.same(binding)),
            Index::Hash(_, v) => v.retain(|(_, x)| !x.same(binding)),
        }
        true
    }

    /// Removes every binding to `dest`; returns them.
    pub fn unbind_destination(&self, dest: &Destination) -> Vec<Binding> {
        let doomed: Vec<Binding> = self
            .bindings
            .read()
            .all
            .iter()
            .filter(|b| b.destination.same(dest))
            .cloned()
            .collect();
        for b in &doomed {
            self.unbind(b);
        }
        doomed
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().all.is_empty()
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings.read().all.clone()
    }

    /// The bindings `keep` selects, cloning only those (an MQTT session
    /// looks for its own among every subscription's).
    pub fn bindings_where(&self, keep: impl Fn(&Binding) -> bool) -> Vec<Binding> {
        self.bindings
            .read()
            .all
            .iter()
            .filter(|b| keep(b))
            .cloned()
            .collect()
    }

    /// Appends the destinations `message` routes to through this exchange's
    /// own bindings (not following exchange-to-exchange bindings further).
    pub fn route(&self, message: &Message, out: &mut Vec<Destination>) {
        let b = self.bindings.read();
        match &b.index {
            Index::Direct(map) => {
                if let Some(v) = map.get(&message.routing_key) {
                    out.extend(v.iter().map(|x| x.destination.clone()));
                }
            }
            Index::Fanout => out.extend(b.all.iter().map(|x| x.destination.clone())),
            Index::Topic(t) => {
                let mut hits = Vec::new();
                t.matches(message.routing_key.as_bytes(), &mut hits);
                out.extend(hits.into_iter().map(|x| x.destination.clone()));
            }
            Index::Headers(v) => {
                let h = message.headers.as_deref();
                out.extend(
                    v.iter()
                        .filter(|(kind, x)| headers::matches(*kind, &x.arguments, h))
                        .map(|(_, x)| x.destination.clone()),
                );
            }
            Index::Hash(on, v) => {
                if let Some(b) = hash::choose(on, message, v) {
                    out.push(b.destination.clone());
                }
            }
        }
    }
}

/// A delayed exchange's `x-delayed-type`.
fn delayed_type(arguments: &FieldTable) -> Option<ExchangeKind> {
    ExchangeKind::parse(arguments.get("x-delayed-type")?.as_bytes()?)
}

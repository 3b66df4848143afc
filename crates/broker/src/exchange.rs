//! Exchanges and their binding indexes.

use std::sync::atomic::{AtomicBool, Ordering};

use ahash::AHashMap;
use parking_lot::RwLock;
use warren_protocol::{FieldTable, ShortStr};

use crate::error::Result;
use crate::message::Message;
use crate::policy::Applied;
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
}

impl ExchangeKind {
    pub fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"direct" => Some(ExchangeKind::Direct),
            b"fanout" => Some(ExchangeKind::Fanout),
            b"topic" => Some(ExchangeKind::Topic),
            b"headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
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
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(AHashMap::new()),
            ExchangeKind::Fanout => Index::Fanout,
            ExchangeKind::Topic => Index::Topic(TopicIndex::default()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
        };
        let alternate_exchange = arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_bytes())
            .map(|b| ShortStr::new(bytes::Bytes::copy_from_slice(b)));
        Exchange {
            name,
            vhost,
            kind,
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

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    pub fn describe(&self) -> String {
        format!("exchange '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// Checks a binding's arguments (headers exchanges: `x-match`).
    pub fn validate_binding(&self, binding: &Binding) -> Result<()> {
        if self.kind == ExchangeKind::Headers {
            headers::match_kind(&binding.arguments)?;
        }
        Ok(())
    }

    /// Whether an identical binding exists.
    pub fn has_binding(&self, binding: &Binding) -> bool {
        self.bindings.read().all.iter().any(|x| x.same(binding))
    }

    /// Adds a binding; false if an identical one exists.
    pub fn bind(&self, binding: Binding) -> Result<bool> {
        let kind = if self.kind == ExchangeKind::Headers {
            Some(headers::match_kind(&binding.arguments)?)
        } else {
            None
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
        }
    }
}

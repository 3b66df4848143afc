//! Binding indexes, one per exchange type. Each answers "which bindings
//! match this message" without scanning bindings that can't match (except
//! headers, whose bindings must each be evaluated against the headers).

pub mod hash;
pub mod headers;
pub mod topic;

use std::sync::Arc;

use warren_protocol::{FieldTable, ShortStr};

use crate::exchange::Exchange;
use crate::queue::Queue;

/// Where a binding sends messages.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    pub fn name(&self) -> &ShortStr {
        match self {
            Destination::Queue(q) => &q.name,
            Destination::Exchange(e) => &e.name,
        }
    }

    pub fn kind_str(&self) -> &'static str {
        match self {
            Destination::Queue(_) => "queue",
            Destination::Exchange(_) => "exchange",
        }
    }

    pub fn same(&self, other: &Destination) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

impl Binding {
    /// Bindings are identified by destination, key and arguments.
    pub fn same(&self, other: &Binding) -> bool {
        self.destination.same(&other.destination)
            && self.routing_key == other.routing_key
            && self.arguments == other.arguments
    }
}

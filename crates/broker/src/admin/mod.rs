//! The administration layer: every operation an operator can do, as typed
//! functions with one validation and one set of errors, for every
//! front-end (the control socket behind `warrenctl`, the management HTTP
//! API, definitions import at boot).
//!
//! Durable changes are journaled before they take effect, under the
//! broker's definitions lock (see [`crate::broker`]); an `Ok` means the
//! change is on disk.
//!
//! - [`users`]: users, passwords, tags, authentication;
//! - [`vhosts`]: virtual hosts;
//! - [`permissions`]: permissions and topic permissions;
//! - [`objects`]: listing queues, exchanges, bindings, connections,
//!   channels and consumers; purging, deleting, closing;
//! - [`definitions`]: RabbitMQ's JSON definitions, export and import;
//! - [`parameters`]: runtime and global parameters, the cluster name;
//! - [`messages`]: publishing, getting and moving messages;
//! - [`request`]: the same operations as serialisable requests.

pub mod definitions;
pub mod error;
pub mod info;
pub mod json;
pub mod limits;
pub mod messages;
pub mod objects;
pub mod parameters;
pub mod permissions;
pub mod policies;
pub mod request;
pub mod users;
pub mod vhosts;

use std::sync::Arc;

pub use error::{AdminError, AdminResult};
pub use request::{Request, Response};

use crate::broker::Broker;
use crate::vhost::VirtualHost;

/// A handle on the broker for administrative operations (cheap to clone).
#[derive(Debug, Clone)]
pub struct Admin {
    broker: Arc<Broker>,
}

impl Admin {
    pub fn new(broker: Arc<Broker>) -> Admin {
        Admin { broker }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The vhost, or `NoSuchVhost`.
    pub fn vhost(&self, name: &str) -> AdminResult<Arc<VirtualHost>> {
        self.broker
            .vhost(name)
            .ok_or_else(|| AdminError::NoSuchVhost {
                name: name.to_string(),
            })
    }

    /// Journals a change; a failure becomes `Storage` (nothing changed).
    fn record(&self, change: crate::definitions::Change) -> AdminResult<()> {
        self.broker.record(change).map_err(|e| {
            tracing::error!("cannot journal a definition change: {e}");
            AdminError::storage(e)
        })
    }
}

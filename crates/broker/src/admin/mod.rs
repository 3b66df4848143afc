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
//! - [`request`]: the same operations as serialisable requests;
//! - [`audit`]: who changed what, through which interface, in the log.

pub mod audit;
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

pub use audit::{Actor, Via};
pub use error::{AdminError, AdminResult};
pub use request::{Request, Response};

use crate::broker::Broker;
use crate::cluster::Recorded;
use crate::vhost::VirtualHost;

/// A handle on the broker for administrative operations (cheap to clone),
/// on behalf of an [`Actor`] the audit log names.
#[derive(Debug, Clone)]
pub struct Admin {
    broker: Arc<Broker>,
    actor: Actor,
}

impl Admin {
    /// The broker acting for itself; front-ends name the actor with
    /// [`Admin::acting_as`].
    pub fn new(broker: Arc<Broker>) -> Admin {
        Admin {
            broker,
            actor: Actor::broker(),
        }
    }

    /// The same handle, on behalf of `actor`.
    pub fn acting_as(&self, actor: Actor) -> Admin {
        Admin {
            broker: self.broker.clone(),
            actor,
        }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
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

    /// A new cluster's first-start definitions (see
    /// [`crate::broker::default_changes`]), made through the cluster like
    /// any change.
    pub fn make_defaults(&self, setup: &crate::broker::BrokerSetup) -> AdminResult<()> {
        for change in crate::broker::default_changes(setup) {
            if !self.record(change.clone())?.is_replicated() {
                self.broker.apply_live(&change);
            }
        }
        Ok(())
    }

    /// Makes a change durable ([`Broker::commit`]); a failure changes
    /// nothing. On [`Recorded::Replicated`] the change is already in
    /// effect on this node and the caller must not apply it again. Once
    /// durable, an administrative change goes to the audit log.
    fn record(&self, change: crate::definitions::Change) -> AdminResult<Recorded> {
        let what = audit::describe(&change, &self.broker.auth);
        let recorded = self.broker.commit(change)?;
        if let Some(what) = what {
            audit::log(&self.actor, &what);
        }
        Ok(recorded)
    }
}

//! Warren's broker core: everything a message meets between the channel
//! that publishes it and the channel that delivers it.
//!
//! - [`Broker`] owns the virtual hosts and the user store.
//! - [`VirtualHost`] owns exchanges and queues, and performs declares,
//!   deletes and (un)binds with RabbitMQ's checks and error texts.
//! - [`Exchange`] routes a message to queues through an index per type
//!   ([`routing`]).
//! - [`Queue`] holds ready messages and its consumers, and pushes messages
//!   to consumers round-robin within their credit.
//!
//! This crate does no socket I/O. Deliveries leave through a channel
//! ([`session::EventSender`]) that the server's connection task drains.
//! Locks are per queue and per exchange; nothing takes a broker-wide lock
//! per message.

pub mod access;
pub mod admin;
pub mod alarms;
pub mod auth;
pub mod blocking;
pub mod broker;
pub mod cluster;
pub mod connections;
pub mod definitions;
pub mod delayed;
pub mod error;
pub mod exchange;
pub mod limits;
pub mod message;
pub mod names;
pub mod persistence;
pub mod policy;
pub mod queue;
pub mod routing;
pub mod sampler;
pub mod session;
pub mod stats;
pub mod store;
pub mod vhost;

pub use broker::Broker;
pub use error::AmqpError;
pub use exchange::{Exchange, ExchangeKind};
pub use message::Message;
pub use queue::Queue;
pub use vhost::VirtualHost;

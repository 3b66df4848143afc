//! What every front-end checks before a message enters the publish
//! pipeline, with RabbitMQ's reply codes and texts: write permission on
//! the exchange (cached per session until permissions change: one atomic
//! load per publish), the topic permission for the routing key, an
//! internal exchange, and the `user_id` and `expiration` properties.

use ahash::AHashSet;
use warren_protocol::{BasicProperties, ShortStr};

use crate::access::{Access, Operation, Resource};
use crate::error::{AmqpError, Result};
use crate::exchange::Exchange;
use crate::message::{expiration_error, parse_expiration};

/// Exchanges a session's write-permission cache holds before it starts over.
const WRITE_CACHE_MAX: usize = 256;

/// A session's publish checks, with its write-permission cache.
#[derive(Debug)]
pub struct PublishChecks {
    /// Exchanges this session may publish to, as checked under the
    /// permissions of epoch `epoch` (dropped when they change).
    write_ok: AHashSet<ShortStr>,
    epoch: u64,
}

impl Default for PublishChecks {
    fn default() -> Self {
        PublishChecks {
            write_ok: AHashSet::new(),
            epoch: u64::MAX,
        }
    }
}

impl PublishChecks {
    /// Write permission on the exchange named `exchange`.
    pub fn write(&mut self, access: &mut Access, exchange: &ShortStr) -> Result<()> {
        if access.refresh() || self.epoch != access.epoch() {
            self.write_ok.clear();
            self.epoch = access.epoch();
        }
        if self.write_ok.contains(exchange) {
            return Ok(());
        }
        access.check(Operation::Write, Resource::Exchange, &exchange.as_str())?;
        if self.write_ok.len() >= WRITE_CACHE_MAX {
            self.write_ok.clear();
        }
        self.write_ok.insert(exchange.clone());
        Ok(())
    }

    /// The exchange accepts client publishes: not internal.
    pub fn exchange(exchange: &Exchange) -> Result<()> {
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                exchange.describe()
            )));
        }
        Ok(())
    }

    /// `user_id` names the publisher, and `expiration` is a TTL.
    pub fn properties(properties: &BasicProperties, user: &str) -> Result<()> {
        if let Some(uid) = &properties.user_id {
            if uid.as_bytes() != user.as_bytes() {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{uid}' but authenticated user was '{user}'"
                )));
            }
        }
        if let Some(exp) = &properties.expiration {
            if parse_expiration(exp.as_bytes()).is_none() {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid expiration '{exp}': {}",
                    expiration_error(exp.as_bytes())
                )));
            }
        }
        Ok(())
    }

    /// The topic permission for `routing_key` (topic exchanges only).
    pub fn topic(access: &mut Access, exchange: &Exchange, routing_key: &str) -> Result<()> {
        access.check_topic(Operation::Write, exchange, routing_key)
    }
}

//! Access control for a client's operations, with RabbitMQ's semantics
//! and texts (its access-control guide):
//!
//! | operation | needs |
//! |---|---|
//! | exchange.declare / queue.declare (not passive), *.delete | configure on the entity |
//! | queue.declare with `x-dead-letter-exchange` | also write on that exchange |
//! | exchange.declare with `alternate-exchange` | also write on that exchange |
//! | queue.bind / unbind | write on the queue, read on the exchange |
//! | exchange.bind / unbind | write on the destination, read on the source |
//! | basic.publish | write on the exchange (`amq.default` for "") |
//! | basic.get / consume, queue.purge | read on the queue |
//!
//! Topic exchanges add topic permissions: publishing needs the routing key
//! to match the user's write pattern for that exchange, binding the key to
//! match the read pattern (when the user has any for the exchange).
//!
//! A denied operation is `403 ACCESS_REFUSED - access to queue 'q' in
//! vhost '/' refused for user 'u'`. The permissions are looked up once and
//! kept until the auth store's epoch moves (any user or permission
//! change), so a change applies to the next operation of every open
//! connection while the hot path costs one atomic load.

use std::sync::Arc;

use crate::auth::{AuthStore, Permission, TopicPermissions};
use crate::error::{AmqpError, Result};
use crate::exchange::{Exchange, ExchangeKind};

/// What kind of entity a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Queue,
    Exchange,
}

impl Resource {
    fn as_str(&self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

/// Which of the three permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Configure,
    Write,
    Read,
}

/// One connection's view of its user's permissions in its vhost.
#[derive(Debug)]
pub struct Access {
    store: Arc<AuthStore>,
    user: String,
    vhost: String,
    epoch: u64,
    permission: Option<Arc<Permission>>,
    topic: Option<TopicPermissions>,
}

/// The permission name the default exchange is checked under.
pub const DEFAULT_EXCHANGE: &str = "amq.default";

impl Access {
    pub fn new(store: Arc<AuthStore>, user: &str, vhost: &str) -> Access {
        let mut a = Access {
            store,
            user: user.to_string(),
            vhost: vhost.to_string(),
            epoch: u64::MAX,
            permission: None,
            topic: None,
        };
        a.refresh();
        a
    }

    /// The same user's access in the same vhost, loaded afresh (for a
    /// check made later, such as a delayed will's).
    pub fn renewed(&self) -> Access {
        Access::new(self.store.clone(), &self.user, &self.vhost)
    }

    /// Reloads the permissions if anything changed since; returns whether
    /// it did (callers drop their own cached checks then).
    pub fn refresh(&mut self) -> bool {
        let now = self.store.epoch();
        if now == self.epoch {
            return false;
        }
        self.epoch = now;
        self.permission = self.store.permission(&self.vhost, &self.user);
        self.topic = self.store.topic_permissions(&self.vhost, &self.user);
        true
    }

    /// The epoch the loaded permissions belong to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn refused(&self, what: String) -> AmqpError {
        AmqpError::access_refused(format!(
            "access to {what} in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        ))
    }

    /// Whether `op` on `name` is allowed (no error built).
    pub fn allows(&self, op: Operation, name: &str) -> bool {
        self.permission.as_ref().is_some_and(|p| {
            match op {
                Operation::Configure => &p.configure,
                Operation::Write => &p.write,
                Operation::Read => &p.read,
            }
            .is_match(name)
        })
    }

    /// Checks `op` on a queue or exchange, refreshing first.
    pub fn check(&mut self, op: Operation, kind: Resource, name: &str) -> Result<()> {
        self.refresh();
        let name = if kind == Resource::Exchange && name.is_empty() {
            DEFAULT_EXCHANGE
        } else {
            name
        };
        if self.allows(op, name) {
            Ok(())
        } else {
            Err(self.refused(format!("{} '{name}'", kind.as_str())))
        }
    }

    /// Checks a routing key against the user's topic permission (write to
    /// publish, read to bind) for a topic exchange. Other exchange types,
    /// and exchanges the user has no topic permission for, allow all.
    pub fn check_topic(&mut self, op: Operation, exchange: &Exchange, key: &str) -> Result<()> {
        if exchange.kind != ExchangeKind::Topic {
            return Ok(());
        }
        self.refresh();
        let Some(list) = &self.topic else {
            return Ok(());
        };
        let Some(t) = list.iter().find(|t| t.exchange == exchange.name.as_str()) else {
            return Ok(());
        };
        let ok = match op {
            Operation::Write => t.write.is_match(key),
            _ => t.read.is_match(key),
        };
        if ok {
            Ok(())
        } else {
            Err(self.refused(format!("topic '{key}' in exchange '{}'", exchange.name)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Permission;

    #[test]
    fn checks_follow_the_store_and_its_changes() {
        let store = Arc::new(AuthStore::default());
        store.set_permission(
            "/",
            "u",
            Permission::new("^cfg", "^w|amq\\.default", "^r").unwrap(),
        );
        let mut a = Access::new(store.clone(), "u", "/");
        assert!(a
            .check(Operation::Configure, Resource::Queue, "cfg-1")
            .is_ok());
        let e = a
            .check(Operation::Configure, Resource::Queue, "other")
            .unwrap_err();
        assert_eq!(
            e.reply_text(),
            "ACCESS_REFUSED - access to queue 'other' in vhost '/' refused for user 'u'"
        );
        assert!(a.check(Operation::Write, Resource::Exchange, "").is_ok());
        store.set_permission("/", "u", Permission::new("", "^$", "").unwrap());
        let e = a
            .check(Operation::Write, Resource::Exchange, "")
            .unwrap_err();
        assert!(e.text.contains("exchange 'amq.default'"), "{e}");
        store.clear_permission("/", "u");
        assert!(a.check(Operation::Read, Resource::Queue, "r").is_err());
    }
}

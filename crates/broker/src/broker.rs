//! The broker: virtual hosts, users, direct reply-to routes, connection ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;
use warren_protocol::ShortStr;

use crate::auth::{AuthStore, Permission};
use crate::consumer::{ConnectionEvent, ConsumerFlow, Delivery, EventSender};
use crate::error::{AmqpError, Result};
use crate::message::Message;
use crate::vhost::VirtualHost;

/// Where a direct reply-to address delivers.
#[derive(Debug, Clone)]
pub struct ReplyRoute {
    pub sink: EventSender,
    pub channel: u16,
    pub consumer_tag: ShortStr,
    pub flow: Arc<ConsumerFlow>,
}

#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<AHashMap<String, Arc<VirtualHost>>>,
    pub auth: AuthStore,
    /// Users that may log in only from loopback (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    reply_routes: RwLock<AHashMap<ShortStr, ReplyRoute>>,
    next_connection_id: AtomicU64,
}

/// First-start settings: the default user, as RabbitMQ's `default_user`.
#[derive(Debug, Clone)]
pub struct BrokerSetup {
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
}

impl Default for BrokerSetup {
    fn default() -> Self {
        BrokerSetup {
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
        }
    }
}

impl Broker {
    /// A broker with the default vhost and the default administrator, who
    /// has full permissions there. Only `guest` is held to loopback, as in
    /// RabbitMQ.
    pub fn new(setup: &BrokerSetup) -> Arc<Self> {
        let broker = Broker {
            vhosts: RwLock::new(AHashMap::new()),
            auth: AuthStore::default(),
            loopback_users: vec!["guest".to_string()],
            reply_routes: RwLock::new(AHashMap::new()),
            next_connection_id: AtomicU64::new(1),
        };
        broker.add_vhost(&setup.default_vhost);
        // A fresh store has no users, so this cannot collide.
        let _ = broker.auth.add_user(
            &setup.default_user,
            &setup.default_pass,
            vec!["administrator".to_string()],
        );
        broker.auth.set_permission(
            &setup.default_vhost,
            &setup.default_user,
            Permission::full(),
        );
        Arc::new(broker)
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VirtualHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VirtualHost::new(name))
            .clone()
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VirtualHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VirtualHost>> {
        let mut v: Vec<_> = self.vhosts.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn add_reply_route(&self, address: ShortStr, route: ReplyRoute) {
        self.reply_routes.write().insert(address, route);
    }

    pub fn remove_reply_route(&self, address: &ShortStr) {
        self.reply_routes.write().remove(address);
    }

    /// Delivers a reply published to a direct reply-to address. Returns
    /// false when nobody listens there (the client went away).
    pub fn deliver_reply(&self, address: &ShortStr, message: Arc<Message>) -> bool {
        let Some(route) = self.reply_routes.read().get(address).cloned() else {
            return false;
        };
        route.flow.on_dispatch(true);
        route
            .sink
            .send(ConnectionEvent::Deliver(Delivery {
                channel: route.channel,
                consumer_tag: route.consumer_tag,
                message,
                redelivered: false,
                queue: None,
                seq: 0,
                no_ack: true,
                flow: route.flow,
            }))
            .is_ok()
    }

    /// Periodic housekeeping for every vhost (TTLs, `x-expires`).
    pub fn sweep(&self) {
        let now = std::time::Instant::now();
        for v in self.vhosts() {
            v.sweep(now);
        }
    }

    pub fn require_vhost(&self, name: &str) -> Result<Arc<VirtualHost>> {
        self.vhost(name)
            .ok_or_else(|| AmqpError::not_allowed(format!("vhost '{name}' not found")))
    }
}

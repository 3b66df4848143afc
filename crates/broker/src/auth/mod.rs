//! Users, password hashes, tags, per-vhost permissions and topic
//! permissions: the user database of a running broker.
//!
//! Password hashes use RabbitMQ's formats ([`passwords`]), so definitions
//! move between Warren and RabbitMQ. Every change bumps an epoch that
//! channels compare before trusting their cached permission checks, so a
//! change takes effect on an open connection's next operation.

pub mod passwords;
pub mod permissions;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;

pub use passwords::{check_password, hash_password, HashAlgorithm};
pub use permissions::{Permission, TopicPermission};

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// Empty: the user has no password and can't log in with PLAIN.
    pub password_hash: String,
    pub hashing: HashAlgorithm,
    pub tags: Vec<String>,
    /// RabbitMQ's user limits, as set (`max-connections`, `max-channels`).
    pub limits: serde_json::Map<String, serde_json::Value>,
}

/// A well-formed SHA-256 hash no password matches (all zero digest).
const UNKNOWN_USER_HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A user's topic permissions in one vhost, one per exchange.
pub type TopicPermissions = Arc<Vec<TopicPermission>>;

#[derive(Debug, Default)]
pub struct AuthStore {
    users: RwLock<AHashMap<String, Arc<User>>>,
    /// (vhost, user) → permission.
    permissions: RwLock<AHashMap<(String, String), Arc<Permission>>>,
    /// (vhost, user) → topic permissions, one per exchange.
    topic: RwLock<AHashMap<(String, String), TopicPermissions>>,
    /// Bumped by every change.
    epoch: AtomicU64,
}

fn key(vhost: &str, user: &str) -> (String, String) {
    (vhost.to_string(), user.to_string())
}

impl AuthStore {
    /// Changes with every user or permission change.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Inserts or replaces a user as stored (hash included).
    pub fn put_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), Arc::new(user));
        self.changed();
    }

    /// Removes a user and every permission it had.
    pub fn delete_user(&self, name: &str) -> Option<Arc<User>> {
        let gone = self.users.write().remove(name);
        self.permissions.write().retain(|(_, u), _| u != name);
        self.topic.write().retain(|(_, u), _| u != name);
        self.changed();
        gone
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        let mut v: Vec<_> = self.users.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The user if `password` is right.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let Some(user) = self.user(name) else {
            // Hash anyway: an unknown user takes as long as a wrong
            // password, so timing doesn't tell which names exist.
            let _ = check_password(HashAlgorithm::Sha256, UNKNOWN_USER_HASH, password);
            return None;
        };
        check_password(user.hashing, &user.password_hash, password).then_some(user)
    }

    pub fn set_permission(&self, vhost: &str, user: &str, p: Permission) {
        self.permissions
            .write()
            .insert(key(vhost, user), Arc::new(p));
        self.changed();
    }

    pub fn clear_permission(&self, vhost: &str, user: &str) {
        self.permissions.write().remove(&key(vhost, user));
        self.changed();
    }

    pub fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.permissions.read().get(&key(vhost, user)).cloned()
    }

    /// Every (vhost, user, permission), sorted.
    pub fn all_permissions(&self) -> Vec<(String, String, Arc<Permission>)> {
        let mut v: Vec<_> = self
            .permissions
            .read()
            .iter()
            .map(|((v, u), p)| (v.clone(), u.clone(), p.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    /// Sets (replaces) the topic permission for one exchange.
    pub fn set_topic_permission(&self, vhost: &str, user: &str, t: TopicPermission) {
        let mut map = self.topic.write();
        let mut list: Vec<TopicPermission> = map
            .get(&key(vhost, user))
            .map(|l| l.as_ref().clone())
            .unwrap_or_default();
        list.retain(|x| x.exchange != t.exchange);
        list.push(t);
        list.sort_by(|a, b| a.exchange.cmp(&b.exchange));
        map.insert(key(vhost, user), Arc::new(list));
        drop(map);
        self.changed();
    }

    /// Clears one exchange's topic permission, or all of them.
    pub fn clear_topic_permission(&self, vhost: &str, user: &str, exchange: Option<&str>) {
        let mut map = self.topic.write();
        match exchange {
            None => {
                map.remove(&key(vhost, user));
            }
            Some(x) => {
                if let Some(list) = map.get(&key(vhost, user)) {
                    let rest: Vec<TopicPermission> =
                        list.iter().filter(|t| t.exchange != x).cloned().collect();
                    if rest.is_empty() {
                        map.remove(&key(vhost, user));
                    } else {
                        map.insert(key(vhost, user), Arc::new(rest));
                    }
                }
            }
        }
        drop(map);
        self.changed();
    }

    /// A user's topic permissions in a vhost (empty: none set).
    pub fn topic_permissions(&self, vhost: &str, user: &str) -> Option<TopicPermissions> {
        self.topic.read().get(&key(vhost, user)).cloned()
    }

    /// Every (vhost, user, topic permissions), sorted.
    pub fn all_topic_permissions(&self) -> Vec<(String, String, TopicPermissions)> {
        let mut v: Vec<_> = self
            .topic
            .read()
            .iter()
            .map(|((v, u), p)| (v.clone(), u.clone(), p.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    /// Forgets every permission in a vhost (the vhost was deleted).
    pub fn clear_vhost(&self, vhost: &str) {
        self.permissions.write().retain(|(v, _), _| v != vhost);
        self.topic.write().retain(|(v, _), _| v != vhost);
        self.changed();
    }
}

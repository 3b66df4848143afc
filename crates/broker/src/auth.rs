//! Users, password hashes, tags and per-vhost permissions.
//!
//! Password hashes use RabbitMQ's default scheme
//! (`rabbit_password_hashing_sha256`): base64 of a 4-byte random salt
//! followed by SHA-256(salt ++ password), so definitions can move between
//! Warren and RabbitMQ.

use std::sync::Arc;

use ahash::AHashMap;
use base64::Engine;
use parking_lot::RwLock;
use rand::RngCore;
use regex::Regex;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    pub tags: Vec<String>,
}

/// Configure/write/read regexes for one user in one vhost.
#[derive(Debug, Clone)]
pub struct Permission {
    pub configure: Regex,
    pub write: Regex,
    pub read: Regex,
}

impl Permission {
    /// Compiles the three patterns. RabbitMQ matches them against the
    /// whole resource name, so they are anchored here.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        let compile = |p: &str| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("invalid regex '{p}': {e}"))
        };
        Ok(Permission {
            configure: compile(configure)?,
            write: compile(write)?,
            read: compile(read)?,
        })
    }

    pub fn full() -> Self {
        // ".*" always compiles.
        Permission::new(".*", ".*", ".*").unwrap_or_else(|_| unreachable!())
    }

    /// The patterns as given (without our anchoring), for listings.
    pub fn patterns(&self) -> [String; 3] {
        let strip = |r: &Regex| {
            let s = r.as_str();
            s.strip_prefix("^(?:")
                .and_then(|s| s.strip_suffix(")$"))
                .unwrap_or(s)
                .to_string()
        };
        [
            strip(&self.configure),
            strip(&self.write),
            strip(&self.read),
        ]
    }
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    hash_with_salt(salt, password)
}

fn hash_with_salt(salt: [u8; 4], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

pub fn check_password(hash: &str, password: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(hash) else {
        return false;
    };
    if raw.len() != 36 {
        return false;
    }
    let salt = [raw[0], raw[1], raw[2], raw[3]];
    // Not timing-sensitive in practice (salted hash), but compare in full.
    let expected = hash_with_salt(salt, password);
    expected.len() == hash.len()
        && expected
            .bytes()
            .zip(hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[derive(Debug, Default)]
pub struct AuthStore {
    users: RwLock<AHashMap<String, Arc<User>>>,
    /// (vhost, user) → permission.
    permissions: RwLock<AHashMap<(String, String), Arc<Permission>>>,
}

impl AuthStore {
    pub fn add_user(&self, name: &str, password: &str, tags: Vec<String>) -> Result<(), String> {
        let mut users = self.users.write();
        if users.contains_key(name) {
            return Err(format!("user '{name}' already exists"));
        }
        users.insert(
            name.to_string(),
            Arc::new(User {
                name: name.to_string(),
                password_hash: hash_password(password),
                tags,
            }),
        );
        Ok(())
    }

    /// Inserts or replaces a user as stored (hash included).
    pub fn put_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), Arc::new(user));
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
        let user = self.user(name)?;
        check_password(&user.password_hash, password).then_some(user)
    }

    pub fn set_permission(&self, vhost: &str, user: &str, p: Permission) {
        self.permissions
            .write()
            .insert((vhost.to_string(), user.to_string()), Arc::new(p));
    }

    pub fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.permissions
            .read()
            .get(&(vhost.to_string(), user.to_string()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_compatible_hash() {
        // The worked example in RabbitMQ's passwords guide: "test12", salt 908D C60A.
        assert!(check_password(
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
            "test12"
        ));
        let h = hash_password("s3cret");
        assert!(check_password(&h, "s3cret"));
        assert!(!check_password(&h, "s3cret!"));
        assert!(!check_password("not base64!", "x"));
    }

    #[test]
    fn permissions_match_whole_names() {
        let p = Permission::new("^amq\\.gen.*", "logs", ".*").unwrap();
        assert!(p.configure.is_match("amq.gen-abc"));
        assert!(p.write.is_match("logs"));
        assert!(!p.write.is_match("logs2"));
        assert_eq!(p.patterns()[1], "logs");
        assert!(Permission::new("(", ".*", ".*").is_err());
    }
}

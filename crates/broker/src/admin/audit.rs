//! The audit trail: every administrative change (users, passwords, tags,
//! limits, vhosts, permissions, topic permissions, policies, operator
//! policies, runtime and global parameters, definitions imports) is
//! logged at info, once it is durable, with who made it and through which
//! interface. Lines go to the `audit` target, so an operator can filter
//! them (`RUST_LOG`-style directives or the JSON formatter's `target`).
//!
//! Secrets never reach the log: a password change is named, not shown.

use std::fmt;
use std::sync::Arc;

use crate::auth::AuthStore;
use crate::definitions::Change;

/// The interface a change came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `warrenctl`, over the control socket.
    Cli,
    /// The management HTTP API (and so the web UI and rabbitmqadmin).
    HttpApi,
    /// A definitions file loaded at boot (`load_definitions`).
    DefinitionsFile,
    /// The broker itself (the default user at first start, the
    /// configuration's cluster name…).
    Broker,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Cli => "the CLI",
            Via::HttpApi => "the HTTP API",
            Via::DefinitionsFile => "a definitions file",
            Via::Broker => "the broker",
        })
    }
}

/// Who asks for a change: a user name (the HTTP API's authenticated
/// user; for the CLI, the operating-system user on the control socket)
/// and the interface.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: Arc<str>,
    pub via: Via,
}

impl Actor {
    pub fn new(user: impl Into<Arc<str>>, via: Via) -> Actor {
        Actor {
            user: user.into(),
            via,
        }
    }

    /// The broker acting on its own behalf.
    pub fn broker() -> Actor {
        Actor::new("warren", Via::Broker)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' through {}", self.user, self.via)
    }
}

/// What a change does, in words, judged against the state before it (a
/// user's password, tags and limits are compared with the old ones).
/// `None` for changes that are not administrative (queues, exchanges and
/// bindings: clients make those at rates no audit log should follow).
pub(crate) fn describe(change: &Change, auth: &AuthStore) -> Option<String> {
    Some(match change {
        Change::AddVhost { name } => format!("Added vhost '{name}'"),
        Change::PutVhost(v) => format!(
            "Put vhost '{}' (description: '{}', tags: {:?}, default queue type: {})",
            v.name,
            v.description,
            v.tags,
            v.default_queue_type.as_deref().unwrap_or("none")
        ),
        Change::DeleteVhost { name } => format!("Deleted vhost '{name}'"),
        Change::PutUser(u) => {
            let Some(old) = auth.user(&u.name) else {
                return Some(format!(
                    "Created user '{}' with tags {:?}{}",
                    u.name,
                    u.tags,
                    if u.password_hash.is_empty() {
                        " and no password"
                    } else {
                        ""
                    }
                ));
            };
            let mut what = Vec::new();
            if old.password_hash != u.password_hash {
                what.push(if u.password_hash.is_empty() {
                    "cleared the password".to_string()
                } else {
                    "changed the password".to_string()
                });
            }
            if old.tags != u.tags {
                what.push(format!("set tags to {:?}", u.tags));
            }
            if old.limits != u.limits {
                what.push(format!(
                    "set limits to {}",
                    serde_json::Value::Object(u.limits.clone())
                ));
            }
            if what.is_empty() {
                what.push("no change".to_string());
            }
            format!("Updated user '{}': {}", u.name, what.join(", "))
        }
        Change::DeleteUser { name } => format!("Deleted user '{name}'"),
        Change::SetPermissions(p) => format!(
            "Set permissions for user '{}' in vhost '{}' to '{}', '{}', '{}'",
            p.user, p.vhost, p.configure, p.write, p.read
        ),
        Change::ClearPermissions { vhost, user } => {
            format!("Cleared permissions for user '{user}' in vhost '{vhost}'")
        }
        Change::SetTopicPermissions(t) => format!(
            "Set topic permissions on exchange '{}' for user '{}' in vhost '{}' to '{}', '{}'",
            t.exchange, t.user, t.vhost, t.write, t.read
        ),
        Change::ClearTopicPermissions {
            vhost,
            user,
            exchange,
        } => match exchange {
            Some(x) => format!(
                "Cleared topic permissions on exchange '{x}' for user '{user}' in vhost '{vhost}'"
            ),
            None => format!("Cleared topic permissions for user '{user}' in vhost '{vhost}'"),
        },
        Change::SetPolicy(p) => {
            format!(
            "Set {} '{}' for vhost '{}': pattern '{}', apply-to '{}', priority {}, definition {}",
            if p.operator { "operator policy" } else { "policy" },
            p.name,
            p.vhost,
            p.pattern,
            p.apply_to,
            p.priority,
            p.definition
        )
        }
        Change::ClearPolicy {
            vhost,
            name,
            operator,
        } => format!(
            "Cleared {} '{name}' for vhost '{vhost}'",
            if *operator {
                "operator policy"
            } else {
                "policy"
            }
        ),
        Change::SetParameter(p) if p.component == "vhost-limits" => {
            format!("Set limits of vhost '{}' to {}", p.vhost, p.value)
        }
        Change::SetParameter(p) => format!(
            "Set runtime parameter '{}' of component '{}' in vhost '{}' to {}",
            p.name, p.component, p.vhost, p.value
        ),
        Change::ClearParameter {
            vhost,
            component,
            name: _,
        } if component == "vhost-limits" => format!("Cleared limits of vhost '{vhost}'"),
        Change::ClearParameter {
            vhost,
            component,
            name,
        } => format!(
            "Cleared runtime parameter '{name}' of component '{component}' in vhost '{vhost}'"
        ),
        Change::SetGlobalParameter(g) => {
            format!("Set global runtime parameter '{}' to {}", g.name, g.value)
        }
        Change::ClearGlobalParameter { name } => {
            format!("Cleared global runtime parameter '{name}'")
        }
        Change::DeclareExchange(_)
        | Change::DeleteExchange { .. }
        | Change::DeclareQueue(_)
        | Change::DeleteQueue { .. }
        | Change::Bind(_)
        | Change::Unbind(_) => return None,
    })
}

/// Writes one audit line.
pub(crate) fn log(actor: &Actor, what: &str) {
    tracing::info!(target: "audit", "{what} (by {actor})");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{PermissionDef, UserDef};

    #[test]
    fn a_password_change_is_named_never_shown() {
        let auth = AuthStore::default();
        let u = UserDef {
            name: "ops".into(),
            password_hash: "c2VjcmV0aGFzaA==".into(),
            hashing_algorithm: String::new(),
            tags: vec!["administrator".into()],
            limits: Default::default(),
        };
        let created = describe(&Change::PutUser(u.clone()), &auth).unwrap();
        assert!(created.starts_with("Created user 'ops'"), "{created}");
        assert!(!created.contains("c2VjcmV0aGFzaA"), "{created}");
        let p = describe(
            &Change::SetPermissions(PermissionDef {
                vhost: "/".into(),
                user: "ops".into(),
                configure: ".*".into(),
                write: "".into(),
                read: "^r".into(),
            }),
            &auth,
        )
        .unwrap();
        assert_eq!(
            p,
            "Set permissions for user 'ops' in vhost '/' to '.*', '', '^r'"
        );
    }
}

//! Users: add, update, delete, passwords, tags, authentication.

use super::info::UserInfo;
use super::{Admin, AdminError, AdminResult};
use crate::auth::{hash_password, passwords, HashAlgorithm};
use crate::broker::user_from_def;
use crate::definitions::{Change, UserDef};

/// How a user's password is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A clear-text password, hashed here (SHA-256).
    Password(String),
    /// A hash in RabbitMQ's format with its algorithm.
    Hash { hash: String, algorithm: String },
    /// No password: the user can't log in with PLAIN.
    None,
}

impl Credentials {
    fn to_def(&self, name: &str, tags: Vec<String>) -> AdminResult<UserDef> {
        let (password_hash, hashing_algorithm) = match self {
            Credentials::Password(p) => (hash_password(p), String::new()),
            Credentials::Hash { hash, algorithm } => {
                let alg = HashAlgorithm::parse(algorithm).ok_or_else(|| {
                    AdminError::invalid(format!("unknown hashing algorithm '{algorithm}'"))
                })?;
                if !passwords::valid_hash(alg, hash) {
                    return Err(AdminError::invalid(format!(
                        "the password hash of user '{name}' is not a valid {} hash",
                        alg.rabbit_name()
                    )));
                }
                let algorithm = if alg == HashAlgorithm::Sha256 {
                    String::new()
                } else {
                    alg.rabbit_name().to_string()
                };
                (hash.clone(), algorithm)
            }
            Credentials::None => (String::new(), String::new()),
        };
        Ok(UserDef {
            name: name.to_string(),
            password_hash,
            hashing_algorithm,
            tags,
            limits: Default::default(),
        })
    }
}

fn check_name(name: &str) -> AdminResult<()> {
    if name.is_empty() {
        return Err(AdminError::invalid("a user name can't be empty"));
    }
    Ok(())
}

impl Admin {
    /// rabbitmqctl add_user: fails if the user exists.
    pub fn add_user(&self, name: &str, credentials: Credentials) -> AdminResult<()> {
        check_name(name)?;
        let _g = self.broker.ddl();
        if self.broker.auth.user(name).is_some() {
            return Err(AdminError::UserExists {
                name: name.to_string(),
            });
        }
        self.store_user(credentials.to_def(name, Vec::new())?)
    }

    /// The HTTP API's PUT: creates, or updates password and tags.
    /// `credentials: None` keeps an existing user's password.
    pub fn put_user(
        &self,
        name: &str,
        credentials: Option<Credentials>,
        tags: Vec<String>,
    ) -> AdminResult<bool> {
        check_name(name)?;
        let _g = self.broker.ddl();
        let existing = self.broker.auth.user(name);
        let def = match (credentials, &existing) {
            (Some(c), _) => UserDef {
                // A new password or tags keep the user's limits.
                limits: existing
                    .as_ref()
                    .map(|u| u.limits.clone())
                    .unwrap_or_default(),
                ..c.to_def(name, tags)?
            },
            (None, Some(u)) => UserDef {
                name: name.to_string(),
                password_hash: u.password_hash.clone(),
                hashing_algorithm: hashing_name(u.hashing),
                tags,
                limits: u.limits.clone(),
            },
            (None, None) => Credentials::None.to_def(name, tags)?,
        };
        self.store_user(def)?;
        Ok(existing.is_none())
    }

    fn store_user(&self, def: UserDef) -> AdminResult<()> {
        if self.record(Change::PutUser(def.clone()))?.is_replicated() {
            return Ok(());
        }
        self.broker.auth.put_user(user_from_def(&def));
        Ok(())
    }

    /// Changes something of an existing user, keeping the rest.
    fn update_user(&self, name: &str, change: impl FnOnce(&mut UserDef)) -> AdminResult<()> {
        let _g = self.broker.ddl();
        let u = self
            .broker
            .auth
            .user(name)
            .ok_or_else(|| AdminError::NoSuchUser {
                name: name.to_string(),
            })?;
        let mut def = UserDef {
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            hashing_algorithm: hashing_name(u.hashing),
            tags: u.tags.clone(),
            limits: u.limits.clone(),
        };
        change(&mut def);
        self.store_user(def)
    }

    pub fn change_password(&self, name: &str, password: &str) -> AdminResult<()> {
        let hash = hash_password(password);
        self.update_user(name, |d| {
            d.password_hash = hash;
            d.hashing_algorithm = String::new();
        })
    }

    pub fn clear_password(&self, name: &str) -> AdminResult<()> {
        self.update_user(name, |d| d.password_hash.clear())
    }

    pub fn set_user_tags(&self, name: &str, tags: Vec<String>) -> AdminResult<()> {
        self.update_user(name, |d| d.tags = tags)
    }

    /// rabbitmqctl set_user_limits: merges the given limits in.
    pub fn set_user_limits(&self, name: &str, limits: &serde_json::Value) -> AdminResult<()> {
        let parsed = crate::limits::validate(limits, crate::limits::Kind::User)
            .map_err(AdminError::invalid)?;
        self.update_user(name, |d| d.limits.extend(parsed))?;
        self.broker.limits_reported.reset();
        Ok(())
    }

    /// rabbitmqctl clear_user_limits: one limit, or `all`.
    pub fn clear_user_limits(&self, name: &str, which: &str) -> AdminResult<()> {
        self.update_user(name, |d| {
            if which == "all" {
                d.limits.clear();
            } else {
                d.limits.remove(which);
            }
        })
    }

    /// Users' limits (of one user, or all that have some), by name.
    pub fn user_limits(
        &self,
        name: Option<&str>,
    ) -> AdminResult<Vec<(String, serde_json::Map<String, serde_json::Value>)>> {
        if let Some(n) = name {
            let u = self
                .broker
                .auth
                .user(n)
                .ok_or_else(|| AdminError::NoSuchUser {
                    name: n.to_string(),
                })?;
            return Ok(vec![(u.name.clone(), u.limits.clone())]);
        }
        let mut out: Vec<_> = self
            .broker
            .auth
            .users()
            .into_iter()
            .filter(|u| !u.limits.is_empty())
            .map(|u| (u.name.clone(), u.limits.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Deletes a user: its permissions go, and its connections are closed
    /// (320, as RabbitMQ).
    pub fn delete_user(&self, name: &str) -> AdminResult<()> {
        {
            let _g = self.broker.ddl();
            if self.broker.auth.user(name).is_none() {
                return Err(AdminError::NoSuchUser {
                    name: name.to_string(),
                });
            }
            if self
                .record(Change::DeleteUser {
                    name: name.to_string(),
                })?
                .is_replicated()
            {
                return Ok(());
            }
            self.broker.auth.delete_user(name);
        }
        let why = format!("user '{name}' is deleted");
        self.broker
            .connections
            .close_where(|c| c.meta.user == name, &why);
        Ok(())
    }

    /// rabbitmqctl authenticate_user.
    pub fn authenticate_user(&self, name: &str, password: &str) -> AdminResult<UserInfo> {
        self.broker
            .auth
            .authenticate(name, password)
            .map(|u| UserInfo::of(&u))
            .ok_or_else(|| AdminError::AuthenticationFailed {
                name: name.to_string(),
            })
    }

    pub fn users(&self) -> Vec<UserInfo> {
        self.broker
            .auth
            .users()
            .iter()
            .map(|u| UserInfo::of(u))
            .collect()
    }

    pub fn user(&self, name: &str) -> AdminResult<UserInfo> {
        self.broker
            .auth
            .user(name)
            .map(|u| UserInfo::of(&u))
            .ok_or_else(|| AdminError::NoSuchUser {
                name: name.to_string(),
            })
    }
}

fn hashing_name(h: HashAlgorithm) -> String {
    if h == HashAlgorithm::Sha256 {
        String::new()
    } else {
        h.rabbit_name().to_string()
    }
}

//! RabbitMQ's vhost limits (`max-connections`, `max-queues`: a runtime
//! parameter, component `vhost-limits`, name `limits`) and user limits
//! (`max-connections`, `max-channels`: in the user record), with the
//! checks and texts of `rabbit_vhost_limit`, `rabbit_auth_backend_internal`
//! and the reader/channel. A negative value means "no limit"; 0 allows
//! nothing. A refused attempt is logged once per limit and subject, not
//! per attempt.

use std::collections::HashSet;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::error::AmqpError;

/// Keys a vhost limit may set.
pub const VHOST_KEYS: &[&str] = &["max-connections", "max-queues"];
/// Keys a user limit may set.
pub const USER_KEYS: &[&str] = &["max-connections", "max-channels"];

/// The runtime parameter component holding vhost limits.
pub const VHOST_COMPONENT: &str = "vhost-limits";

/// Which limits: their texts differ (measured on RabbitMQ 3.10.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vhost,
    User,
}

/// Checks a limits object (integers for known keys) and returns it.
pub fn validate(v: &Value, kind: Kind) -> Result<Map<String, Value>, String> {
    // rabbitmqctl ends the vhost texts with an empty line.
    let (keys, prefix, what, end) = match kind {
        Kind::Vhost => (VHOST_KEYS, "Validation failed\n\n", "limits", "\n"),
        Kind::User => (USER_KEYS, "", "user-limits", ""),
    };
    let Value::Object(m) = v else {
        return Err(format!("{prefix}Unrecognised terms {v} in {what}{end}"));
    };
    let unknown: Vec<String> = m
        .iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, val)| format!("{{<<\"{k}\">>,{}}}", erl(val)))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{prefix}Unrecognised terms [{}] in {what}{end}",
            unknown.join(",")
        ));
    }
    for (k, val) in m {
        if val.as_i64().is_none() {
            return Err(format!(
                "{prefix}{k} should be a number, actually was {}{end}",
                erl(val)
            ));
        }
    }
    Ok(m.clone())
}

/// Erlang's `~p` of a JSON value.
fn erl(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

/// A limit's value: `None` when unset or negative (no limit).
pub fn get(limits: &Map<String, Value>, key: &str) -> Option<u64> {
    limits
        .get(key)?
        .as_i64()
        .and_then(|n| u64::try_from(n).ok())
}

/// Limits refused once, logged once.
#[derive(Debug, Default)]
pub struct Reported(Mutex<HashSet<String>>);

impl Reported {
    /// Logs `what` the first time only.
    pub fn log_once(&self, key: String, what: &str) {
        if self.0.lock().insert(key) {
            tracing::warn!("{what} (further refusals for this limit are not logged)");
        }
    }

    /// A limit changed: its refusals are news again.
    pub fn reset(&self) {
        self.0.lock().clear();
    }
}

/// 530 for the vhost's connection limit (RabbitMQ's text).
pub fn vhost_connections(vhost: &str, user: &str, limit: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached"
    ))
}

/// 530 for the user's connection limit.
pub fn user_connections(user: &str, limit: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "connection refused for user '{user}': user connection limit ({limit}) is reached"
    ))
}

/// 530 for the user's channel limit.
pub fn user_channels(user: &str, limit: u64) -> AmqpError {
    AmqpError::not_allowed(format!(
        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
    ))
}

/// 406 for the vhost's queue limit.
pub fn vhost_queues(queue: &str, vhost: &str, limit: u64) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached"
    ))
}

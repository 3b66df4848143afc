//! What an administrative operation can fail with. Every front-end maps
//! these to its own form: the CLI to rabbitmqctl's messages and exit
//! codes, the HTTP API to status codes and `{"error", "reason"}` bodies.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminError {
    #[error("User \"{name}\" does not exist")]
    NoSuchUser { name: String },
    #[error("User \"{name}\" already exists")]
    UserExists { name: String },
    #[error("Virtual host '{name}' does not exist")]
    NoSuchVhost { name: String },
    #[error("no queue '{name}' in vhost '{vhost}'")]
    NoSuchQueue { vhost: String, name: String },
    #[error("no exchange '{name}' in vhost '{vhost}'")]
    NoSuchExchange { vhost: String, name: String },
    #[error("Parameter does not exist")]
    NoSuchPolicy { vhost: String, name: String },
    #[error("Parameter does not exist")]
    NoSuchParameter {
        vhost: String,
        component: String,
        name: String,
    },
    /// A strict definitions import refused: what it would have left out.
    #[error("{message}")]
    ImportRefused {
        message: String,
        skipped: Vec<super::definitions::report::Skipped>,
    },
    #[error("no connection named '{name}'")]
    NoSuchConnection { name: String },
    #[error("Queue is not empty")]
    QueueNotEmpty { vhost: String, name: String },
    #[error("Queue is in use")]
    QueueInUse { vhost: String, name: String },
    #[error("{message}")]
    InvalidRegex { message: String },
    /// Bad input: arguments, JSON, definitions.
    #[error("{message}")]
    Invalid { message: String },
    /// Refused with an AMQP reply code (a declare's equivalence check,
    /// access refused…).
    #[error("{text}")]
    Refused { code: u16, text: String },
    #[error("failed to authenticate user \"{name}\"")]
    AuthenticationFailed { name: String },
    /// The change could not be made durable; nothing changed.
    #[error("the change could not be written to disk: {message}")]
    Storage { message: String },
    /// A cluster could not commit the change in time (no majority); the
    /// message says whether it certainly was not made.
    #[error("{message}")]
    Unavailable { message: String },
}

impl AdminError {
    pub fn invalid(message: impl Into<String>) -> Self {
        AdminError::Invalid {
            message: message.into(),
        }
    }

    pub(crate) fn storage(e: std::io::Error) -> Self {
        AdminError::Storage {
            message: e.to_string(),
        }
    }
}

impl From<crate::error::AmqpError> for AdminError {
    fn from(e: crate::error::AmqpError) -> Self {
        AdminError::Refused {
            code: e.code,
            text: e.reply_text(),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

//! Errors that end a channel or a connection, carrying the reply code and
//! the text RabbitMQ would send.

use std::fmt;

use warren_protocol::constants::reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    /// The text after RabbitMQ's `CODE_NAME - ` prefix.
    pub text: String,
}

impl AmqpError {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        AmqpError {
            code,
            text: text.into(),
        }
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_FOUND, text)
    }
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(reply::ACCESS_REFUSED, text)
    }
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(reply::RESOURCE_LOCKED, text)
    }
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(reply::PRECONDITION_FAILED, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_ALLOWED, text)
    }
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(reply::COMMAND_INVALID, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(reply::NOT_IMPLEMENTED, text)
    }
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(reply::INTERNAL_ERROR, text)
    }

    /// Whether this error closes the whole connection rather than a channel.
    pub fn is_connection_error(&self) -> bool {
        reply::is_connection_error(self.code)
    }

    /// The reply text as sent on the wire, e.g. `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub fn reply_text(&self) -> String {
        format!("{} - {}", reply::name(self.code), self.text)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reply_text())
    }
}

impl std::error::Error for AmqpError {}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;

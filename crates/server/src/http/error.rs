//! Errors as RabbitMQ's management API returns them: a status code and a
//! JSON body `{"error": <type>, "reason": <text>}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_broker::admin::AdminError;
use warren_protocol::constants::reply;

/// The realm RabbitMQ names in `WWW-Authenticate`; clients don't match on
/// it, but browsers show it in their login prompt.
pub(crate) const REALM: &str = "Basic realm=\"RabbitMQ Management\"";

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
    /// Ask for credentials (a failed login).
    pub challenge: bool,
    /// No body (RabbitMQ's answer to a request without credentials).
    pub empty: bool,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            reason: reason.into(),
            challenge: false,
            empty: false,
        }
    }

    /// 401 for bad or missing credentials, with the challenge.
    pub fn login_failed() -> ApiError {
        ApiError {
            challenge: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed")
        }
    }

    /// 401 for a request without credentials: the challenge, no body.
    pub fn no_credentials() -> ApiError {
        ApiError {
            empty: true,
            ..ApiError::login_failed()
        }
    }

    /// 401 for a logged-in user who may not do this (RabbitMQ spells this
    /// one `not_authorised`).
    pub fn not_authorised(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 429: too many failed logins from this source or for this user name.
    pub fn too_many_logins() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many failed login attempts from this address or for this user; try again later",
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    pub fn not_found_reason(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// A write to a vhost that doesn't exist (RabbitMQ's
    /// `with_vhost_and_props`).
    pub fn vhost_not_found() -> ApiError {
        ApiError::not_found_reason("vhost_not_found")
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    pub fn bad_request_type(error: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, reason)
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported Media Type",
        )
    }

    /// 408: the body did not arrive in time (the connection is closed
    /// after the answer: the rest of the body is not read).
    pub fn request_timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    pub fn service_unavailable(reason: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            reason,
        )
    }

    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            reason,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = if self.empty {
            self.status.into_response()
        } else {
            let body = json!({"error": self.error, "reason": self.reason});
            (self.status, axum::Json(body)).into_response()
        };
        if self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        resp
    }
}

/// A refused AMQP operation, as RabbitMQ's `direct_request` reports it:
/// 404 for not-found, 401 "Access refused." for permissions, 400 with the
/// explanation for the rest. Another connection's exclusive queue is 400
/// with the code and the whole reply text (`405 RESOURCE_LOCKED - cannot
/// obtain exclusive access…`): RabbitMQ runs purge, delete, get and
/// (un)bind on a channel of its own, whose 405 close becomes
/// `bad_request_exception(Code, Reason)`, formatted `"~p ~s"`.
pub(crate) fn amqp(code: u16, text: &str) -> ApiError {
    match code {
        reply::NOT_FOUND => ApiError::not_found_reason(text),
        reply::ACCESS_REFUSED | reply::NOT_ALLOWED => ApiError::not_authorised("Access refused."),
        reply::RESOURCE_LOCKED => {
            ApiError::bad_request(format!("{code} {} - {text}", reply::name(code)))
        }
        _ => ApiError::bad_request(text),
    }
}

/// A channel error as RabbitMQ's `with_channel` reports it (aliveness
/// test, get): 404 and 401 with the whole reply text, 400 `"<code>
/// <reply text>"` for the rest.
pub(crate) fn channel_error(e: &warren_broker::error::AmqpError) -> ApiError {
    match e.code {
        reply::NOT_FOUND => ApiError::not_found_reason(e.reply_text()),
        reply::ACCESS_REFUSED => ApiError::not_authorised(e.reply_text()),
        code => ApiError::bad_request(format!("{code} {}", e.reply_text())),
    }
}

impl From<warren_broker::error::AmqpError> for ApiError {
    fn from(e: warren_broker::error::AmqpError) -> ApiError {
        amqp(e.code, &e.text)
    }
}

/// The explanation of a reply text (`NAME - explanation`).
fn explanation(code: u16, text: &str) -> &str {
    let prefix = reply::name(code);
    text.strip_prefix(prefix)
        .and_then(|t| t.strip_prefix(" - "))
        .unwrap_or(text)
}

/// What the admin layer's errors become, as RabbitMQ answers the same
/// failures over HTTP.
impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match &e {
            AdminError::NoSuchUser { .. }
            | AdminError::NoSuchVhost { .. }
            | AdminError::NoSuchQueue { .. }
            | AdminError::NoSuchExchange { .. }
            | AdminError::NoSuchConnection { .. } => ApiError::not_found(),
            AdminError::Refused { code, text } => amqp(*code, explanation(*code, text)),
            AdminError::Storage { .. } => ApiError::internal(e.to_string()),
            AdminError::Unavailable { message } => ApiError::service_unavailable(message.clone()),
            AdminError::QueueNotEmpty { .. } | AdminError::QueueInUse { .. } => {
                ApiError::bad_request(format!("{} {e}", reply::PRECONDITION_FAILED))
            }
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

//! Who is asking: HTTP basic auth against the broker's users, and
//! RabbitMQ's management authorisation rules.
//!
//! - Every endpoint needs a management user: one tagged `management`,
//!   `policymaker`, `monitoring` or `administrator` ("Not management
//!   user" otherwise).
//! - `administrator` may do everything; `monitoring` may see every vhost,
//!   connection and channel and the node; `policymaker` may manage
//!   policies and parameters in its vhosts; `management` sees the vhosts
//!   it has permissions in and its own connections.
//! - A vhost is visible to a user with permissions in it (RabbitMQ's
//!   "login vhosts"), or to every monitor.
//! - Users held to loopback (`loopback_users`) log in from loopback only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use warren_broker::auth::User;
use warren_broker::VirtualHost;

use super::error::{ApiError, ApiResult};
use super::Api;

/// The authenticated user of one request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: Arc<User>,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.user.name
    }

    /// The admin layer on this user's behalf (the audit log names them
    /// and the HTTP API): for every change a request makes.
    pub fn admin(&self, api: &Api) -> warren_broker::admin::Admin {
        use warren_broker::admin::{Actor, Via};
        api.admin
            .acting_as(Actor::new(self.user.name.as_str(), Via::HttpApi))
    }

    pub fn is_admin(&self) -> bool {
        self.user.has_tag("administrator")
    }

    /// `monitoring` or `administrator`.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.user.has_tag("monitoring")
    }

    /// `policymaker` or `administrator`.
    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.user.has_tag("policymaker")
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> ApiResult<()> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    /// Whether the user may log in to `vhost` (has permissions there).
    pub fn may_login(&self, api: &Api, vhost: &str) -> bool {
        api.broker.auth.permission(vhost, &self.user.name).is_some()
    }

    /// RabbitMQ's `is_authorized_vhost`: administrators, or users with
    /// permissions in the vhost. A vhost that doesn't exist passes here
    /// (the handler answers 404).
    pub fn require_vhost(&self, api: &Api, vhost: &str) -> ApiResult<()> {
        if self.is_admin() || api.broker.vhost(vhost).is_none() || self.may_login(api, vhost) {
            Ok(())
        } else {
            Err(ApiError::not_authorised(
                "User not authorised to access virtual host",
            ))
        }
    }

    /// RabbitMQ's `is_authorized_vhost_visible`: as `require_vhost`, but
    /// monitors see every vhost.
    pub fn require_vhost_visible(&self, api: &Api, vhost: &str) -> ApiResult<()> {
        if self.is_monitor() {
            return Ok(());
        }
        self.require_vhost(api, vhost)
    }

    /// The vhosts whose objects the user may list: all for monitors,
    /// the ones it has permissions in for others.
    pub fn visible_vhosts(&self, api: &Api) -> Vec<Arc<VirtualHost>> {
        let mut all = api.broker.vhosts();
        if !self.is_monitor() {
            all.retain(|v| self.may_login(api, &v.name));
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Whether the user may see objects (connections, channels) owned by
    /// `owner`: monitors see all, others their own.
    pub fn sees_user(&self, owner: &str) -> bool {
        self.is_monitor() || owner == self.user.name
    }
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> ApiResult<Caller> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::no_credentials());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| super::guard::source_of(c.0.ip()));
        let now = std::time::Instant::now();
        let credentials = basic_credentials(parts);
        let name = credentials.as_ref().map_or("", |(n, _)| n.as_str());
        if peer.is_some_and(|ip| api.logins.blocked(ip, name, now)) {
            return Err(ApiError::too_many_logins());
        }
        let user = credentials
            .as_ref()
            .and_then(|(name, password)| api.broker.auth.authenticate(name, password));
        let Some(user) = user else {
            if let Some(ip) = peer {
                api.logins.failed(ip, name, now);
            }
            return Err(ApiError::login_failed());
        };
        if let Some(ip) = peer {
            if !api.broker.login_allowed_from(&user.name, ip) {
                return Err(ApiError::not_authorised(
                    "User can only log in via localhost",
                ));
            }
        }
        let management = ["management", "policymaker", "monitoring", "administrator"];
        if !management.iter().any(|t| user.has_tag(t)) {
            return Err(ApiError::not_authorised("Not management user"));
        }
        // Only now: the right password of a user who may not use the API
        // must not reset the count (issue 19: it let guessing go on).
        if let Some(ip) = peer {
            api.logins.succeeded(ip, &user.name, now);
        }
        Ok(Caller { user })
    }
}

/// The user name and password of an `Authorization: Basic` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

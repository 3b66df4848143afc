//! The management front-end: RabbitMQ's HTTP API and the web UI on one
//! port (15672 by default), and Prometheus metrics on another (15692).
//!
//! Like the AMQP front-end it reaches the broker only through its public
//! interface — mostly the admin layer ([`warren_broker::admin::Admin`]),
//! which the CLI's control socket uses too — and keeps no state of its
//! own: every listing reads the live objects, and message rates come from
//! the broker's sampler.
//!
//! - [`listener`]: the accept loop (header deadline); [`guard`]: bounded
//!   connections (in all, per source, a reserve for operators) and the
//!   socket's write timeout and read gate;
//! - [`auth`]: basic auth and RabbitMQ's tag rules;
//! - [`error`], [`body`]: error shapes, request bodies;
//! - [`listing`]: sorting, paging and filtering for listings; [`columns`]:
//!   column selection and the bounds on query parameters;
//! - [`stats`]: `message_stats` objects;
//! - [`overview`]: overview, whoami, nodes, health checks;
//! - [`queues`], [`exchanges`], [`bindings`]: the topology, publish, get,
//!   purge and move;
//! - [`connections`]: connections, channels and consumers;
//! - [`users`], [`vhosts`], [`definitions`], [`policies`]: accounts,
//!   definitions and policies; [`parameters`]: parameters, global
//!   parameters, user and vhost limits, the cluster name;
//! - [`assets`]: the web UI, embedded in the binary;
//! - [`metrics`]: the Prometheus endpoint.

mod assets;
mod auth;
mod bindings;
mod body;
mod columns;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod guard;
mod listener;
mod listing;
pub(crate) mod metrics;
pub(crate) mod overview;
mod parameters;
mod policies;
mod properties;
mod queues;
mod stats;
mod throttle;
mod users;
mod vhosts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Query;
use axum::routing::{delete, get, post};
use axum::Router;
use tokio::sync::Semaphore;
use warren_broker::admin::Admin;
use warren_broker::Broker;

use crate::config::Config;
pub(crate) use error::{ApiError, ApiResult};
pub(crate) use guard::{ReadGate, MAX_PER_SOURCE};
pub(crate) use listener::serve;

/// What every handler shares.
pub(crate) struct Api {
    pub broker: Arc<Broker>,
    pub admin: Admin,
    pub cfg: Arc<Config>,
    pub started: Instant,
    /// The largest request body accepted.
    pub max_body: usize,
    /// KiB of buffered request bodies allowed at once.
    pub body_budget: Semaphore,
    /// Failed logins per source and per user name.
    pub logins: throttle::LoginThrottle,
    node: String,
    /// This node's cluster membership, when it runs in a cluster: `/api/nodes`
    /// asks the other members for theirs.
    pub member: std::sync::OnceLock<Arc<crate::cluster::member::Member>>,
}

impl Api {
    pub fn new(broker: Arc<Broker>, cfg: Arc<Config>) -> Arc<Api> {
        let logins = throttle::LoginThrottle::new(cfg.management_login_failures);
        Arc::new(Api {
            admin: Admin::new(broker.clone()),
            broker,
            max_body: cfg.management_max_body,
            cfg,
            started: Instant::now(),
            body_budget: Semaphore::new(body::BODY_BUDGET / 1024),
            logins,
            node: warren_broker::connections::node_name(),
            member: std::sync::OnceLock::new(),
        })
    }
}

/// Query-string parameters.
pub(crate) type Params = Query<HashMap<String, String>>;

/// The management API and UI.
pub(crate) fn router(api: Arc<Api>) -> Router {
    let routes = Router::new()
        .route("/api/overview", get(overview::overview))
        .route(
            "/api/cluster-name",
            get(overview::cluster_name).put(parameters::put_cluster_name),
        )
        .route("/api/whoami", get(overview::whoami))
        .route("/api/auth", get(overview::auth_settings))
        .route("/api/extensions", get(overview::extensions))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/aliveness-test/{vhost}", get(overview::aliveness))
        .route("/api/health/checks/alarms", get(overview::health_alarms))
        .route(
            "/api/health/checks/local-alarms",
            get(overview::health_alarms),
        )
        .route(
            "/api/health/checks/virtual-hosts",
            get(overview::health_vhosts),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(overview::health_port),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(overview::health_protocol),
        )
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::connection_channels),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::vhost_connections),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/channels/{name}", get(connections::channel))
        .route(
            "/api/vhosts/{vhost}/channels",
            get(connections::vhost_channels),
        )
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::vhost_consumers))
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::declare)
                .delete(exchanges::remove),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchanges::bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchanges::bindings_destination),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show)
                .put(queues::declare)
                .delete(queues::remove),
        )
        .route("/api/queues/{vhost}/{name}/bindings", get(queues::bindings))
        .route("/api/queues/{vhost}/{name}/contents", delete(queues::purge))
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/move",
            post(queues::move_messages),
        )
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{dtype}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}",
            get(bindings::show).delete(bindings::remove),
        )
        .route("/api/vhosts", get(vhosts::list))
        .route(
            "/api/vhosts/{vhost}",
            get(vhosts::show).put(vhosts::put).delete(vhosts::remove),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(users::vhost_permissions),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(users::vhost_topic_permissions),
        )
        .route("/api/users", get(users::list))
        .route(
            "/api/users/without-permissions",
            get(users::without_permissions),
        )
        .route("/api/users/bulk-delete", post(users::bulk_delete))
        .route(
            "/api/users/{user}",
            get(users::show).put(users::put).delete(users::remove),
        )
        .route(
            "/api/users/{user}/permissions",
            get(users::user_permissions),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(users::user_topic_permissions),
        )
        .route("/api/permissions", get(users::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(users::permission)
                .put(users::set_permission)
                .delete(users::clear_permission),
        )
        .route("/api/topic-permissions", get(users::topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(users::topic_permission)
                .put(users::set_topic_permission)
                .delete(users::clear_topic_permission),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .route("/api/operator-policies", get(policies::list_operator))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::list_vhost_operator),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::show_operator)
                .put(policies::put_operator)
                .delete(policies::remove_operator),
        )
        .route("/api/policies", get(policies::list))
        .route("/api/policies/{vhost}", get(policies::list_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::show)
                .put(policies::put)
                .delete(policies::remove),
        )
        .route("/api/parameters", get(parameters::list))
        .route(
            "/api/parameters/{component}",
            get(parameters::list_component),
        )
        .route(
            "/api/parameters/{component}/{vhost}",
            get(parameters::list_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(parameters::show)
                .put(parameters::put)
                .delete(parameters::remove),
        )
        .route("/api/global-parameters", get(parameters::list_global))
        .route(
            "/api/global-parameters/{name}",
            get(parameters::show_global)
                .put(parameters::put_global)
                .delete(parameters::remove_global),
        )
        .route("/api/user-limits", get(parameters::user_limits))
        .route("/api/user-limits/{user}", get(parameters::user_limits_of))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(parameters::put_user_limit).delete(parameters::remove_user_limit),
        )
        .route("/api/vhost-limits", get(parameters::vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}",
            get(parameters::vhost_limits_of),
        )
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(parameters::put_vhost_limit).delete(parameters::remove_vhost_limit),
        )
        .route("/api/{*rest}", axum::routing::any(not_found))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            sync_definitions,
        ))
        .layer(axum::middleware::from_fn(select_columns))
        .layer(axum::extract::DefaultBodyLimit::max(api.max_body));
    let app = routes.merge(assets::router()).with_state(api);
    // Outside the routes, so it sees the `Allow` header a refused method
    // gets from its route.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::from_fn(allow_options))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers that keep browsers from sniffing types, framing the UI
/// elsewhere, leaking URLs, or running anything not served by Warren.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             object-src 'none'; base-uri 'self'; frame-ancestors 'self'",
        ),
    );
    resp
}

/// On a cluster, a request that changes definitions is decided on the
/// cluster's latest state: this node first applies every change committed
/// before it (a vhost just added through another node exists here). Without
/// a majority it is refused (503) at once. Reads, and publishing or getting
/// messages, go on without it.
async fn sync_definitions(
    axum::extract::State(api): axum::extract::State<Arc<Api>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    const DEFINITIONS: &[&str] = &[
        "/api/users",
        "/api/vhosts",
        "/api/permissions",
        "/api/topic-permissions",
        "/api/policies",
        "/api/operator-policies",
        "/api/parameters",
        "/api/global-parameters",
        "/api/vhost-limits",
        "/api/user-limits",
        "/api/definitions",
        "/api/exchanges",
        "/api/queues",
        "/api/bindings",
        "/api/cluster-name",
    ];
    // Only what changes definitions: closing a connection, purging a
    // queue, getting or publishing messages go on without a majority.
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) && DEFINITIONS.iter().any(|p| path.starts_with(p))
        && !path.ends_with("/get")
        && !path.ends_with("/publish")
        && !path.ends_with("/contents")
        && !path.contains("/actions");
    if changes && api.broker.is_clustered() {
        let broker = api.broker.clone();
        let synced = tokio::task::spawn_blocking(move || broker.sync_definitions()).await;
        match synced {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return error::ApiError::from(e).into_response(),
            Err(_) => return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    next.run(req).await
}

/// `columns=a,b.c` on any GET: listings select columns per item
/// themselves (before paging); single objects are trimmed here. A query
/// whose size would multiply the work is refused first
/// ([`columns::check_query`]).
async fn select_columns(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri()).ok();
    if let Some(Err(e)) = query.as_ref().map(|q| columns::check_query(&q.0)) {
        return e.into_response();
    }
    let selected = query.and_then(|q| q.0.get("columns").cloned());
    let resp = next.run(req).await;
    let Some(selected) = selected else {
        return resp;
    };
    if resp.status() != axum::http::StatusCode::OK {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        // A paged envelope has its items selected already.
        Ok(serde_json::Value::Object(m)) if !m.contains_key("page_count") => {
            columns::Columns::parse(Some(&selected)).apply(serde_json::Value::Object(m))
        }
        _ => return axum::response::Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    let mut resp = axum::Json(value).into_response();
    *resp.status_mut() = parts.status;
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// RabbitMQ (cowboy_rest) answers OPTIONS with the allowed methods, and
/// lists OPTIONS among them when refusing a method with 405.
async fn allow_options(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header::ALLOW, HeaderValue, Method, StatusCode};
    let options = req.method() == Method::OPTIONS;
    let mut resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
        return resp;
    }
    let allow = resp
        .headers()
        .get(ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("{v}, OPTIONS"))
        .unwrap_or_else(|| "OPTIONS".into());
    if options {
        resp = axum::response::Response::default();
    }
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(ALLOW, v);
    }
    resp
}

impl Api {
    /// The node name (RabbitMQ's `rabbit@host` form).
    pub fn node(&self) -> String {
        self.node.clone()
    }

    /// The vhost a write goes to, or 404 `vhost_not_found`.
    pub fn target_vhost(&self, name: &str) -> ApiResult<Arc<warren_broker::VirtualHost>> {
        self.broker
            .vhost(name)
            .ok_or_else(ApiError::vhost_not_found)
    }

    /// The vhost, or 404.
    pub fn vhost(&self, name: &str) -> ApiResult<Arc<warren_broker::VirtualHost>> {
        self.broker.vhost(name).ok_or_else(ApiError::not_found)
    }

    /// The caller's AMQP permissions in `vhost`, for operations that act
    /// as a client would (declare, bind, publish, get, purge).
    pub fn access(&self, caller: &auth::Caller, vhost: &str) -> warren_broker::access::Access {
        warren_broker::access::Access::new(self.broker.auth.clone(), caller.name(), vhost)
    }
}

/// A PUT's answer: 201 when it created the object, 204 when it existed.
pub(crate) fn put_status(existed: bool) -> axum::http::StatusCode {
    if existed {
        axum::http::StatusCode::NO_CONTENT
    } else {
        axum::http::StatusCode::CREATED
    }
}

/// RabbitMQ names the default exchange `amq.default` in URLs.
pub(crate) fn exchange_name(path_name: &str) -> &str {
    if path_name == "amq.default" {
        ""
    } else {
        path_name
    }
}

//! The node at a glance: `/api/overview`, `/api/whoami`, `/api/nodes`,
//! `/api/extensions`, the aliveness test and the health checks.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use warren_broker::admin::messages::GetMode;
use warren_broker::alarms;
use warren_broker::sampler::ChurnCounts;
use warren_broker::stats::Snapshot;
use warren_broker::vhost::QueueSpec;
use warren_protocol::{BasicProperties, FieldTable, ShortStr};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::stats::{details, message_stats, FLOW};
use super::Api;

/// The RabbitMQ version Warren answers as, for tools that check it
/// (rabbitmqadmin, client libraries, dashboards): the release whose
/// management API Warren implements. `product_name`/`product_version`
/// say what it really is.
pub(crate) const RABBITMQ_VERSION: &str = "3.10.8";

fn exchange_types() -> Value {
    let t = |name: &str| {
        json!({
            "name": name,
            "description": format!("AMQP {name} exchange, as per the AMQP specification"),
            "enabled": true,
        })
    };
    json!([t("direct"), t("fanout"), t("headers"), t("topic")])
}

/// The listeners, as the overview and nodes list them.
pub(crate) fn listeners(api: &Api) -> Value {
    let node = &api.node();
    let mut out: Vec<Value> = api
        .cfg
        .listeners
        .iter()
        .map(|l| {
            json!({
                "node": node, "protocol": "amqp", "ip_address": l.ip().to_string(),
                "port": l.port(), "socket_opts": {},
            })
        })
        .collect();
    if let Some(p) = api.cfg.management_port {
        out.push(json!({
            "node": node, "protocol": "http", "ip_address": api.cfg.management_bind().to_string(),
            "port": p, "socket_opts": {"port": p},
        }));
    }
    if let Some(p) = api.cfg.prometheus_port {
        out.push(json!({
            "node": node, "protocol": "http/prometheus",
            "ip_address": api.cfg.management_bind().to_string(),
            "port": p, "socket_opts": {"port": p, "protocol": "http/prometheus"},
        }));
    }
    Value::Array(out)
}

/// Message counts, queue totals and object counts over the vhosts the
/// caller may see (every vhost for monitors).
struct Totals {
    counts: Snapshot,
    messages: u64,
    ready: u64,
    unacked: u64,
    queues: u64,
    exchanges: u64,
    consumers: u64,
    connections: u64,
    channels: u64,
}

fn totals(api: &Api, caller: &Caller) -> Totals {
    let vhosts = caller.visible_vhosts(api);
    let mut t = Totals {
        counts: Snapshot::default(),
        messages: 0,
        ready: 0,
        unacked: 0,
        queues: 0,
        exchanges: 0,
        consumers: 0,
        connections: 0,
        channels: 0,
    };
    t.counts = if caller.is_monitor() {
        api.broker.message_counts()
    } else {
        vhosts.iter().fold(Snapshot::default(), |acc, v| {
            acc.plus(&api.broker.vhost_message_counts(&v.name))
        })
    };
    for v in &vhosts {
        for q in v.queues_unordered() {
            let s = q.stats();
            t.ready += s.ready;
            t.unacked += s.unacked;
            t.consumers += u64::from(s.consumers);
            t.queues += 1;
        }
        t.exchanges += v.exchanges().len() as u64;
    }
    t.messages = t.ready + t.unacked;
    for c in api.broker.connections.list() {
        if caller.sees_user(&c.meta.user) {
            t.connections += 1;
            t.channels += c.channels().len() as u64;
        }
    }
    t
}

pub(crate) async fn overview(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let t = totals(&api, &caller);
    let rates = if caller.is_monitor() {
        &api.broker.stats.rates
    } else {
        // Per-vhost rates would need summing; the node's rates are what a
        // management user's overview showed before it could see them all.
        &api.broker.stats.rates
    };
    let st = &api.broker.stats;
    let mut o = Map::new();
    o.insert("management_version".into(), RABBITMQ_VERSION.into());
    o.insert("rates_mode".into(), "basic".into());
    o.insert(
        "sample_retention_policies".into(),
        json!({"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]}),
    );
    o.insert("exchange_types".into(), exchange_types());
    o.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
    o.insert("product_name".into(), "Warren".into());
    o.insert("rabbitmq_version".into(), RABBITMQ_VERSION.into());
    o.insert("cluster_name".into(), cluster_name_of(&api).into());
    o.insert("disable_stats".into(), false.into());
    o.insert("enable_queue_totals".into(), false.into());
    o.insert(
        "message_stats".into(),
        message_stats(&t.counts, rates, FLOW, true).unwrap_or_else(|| json!({})),
    );
    let churn = api.broker.churn();
    let mut churn_rates = Map::new();
    for (i, name) in ChurnCounts::NAMES.iter().enumerate() {
        churn_rates.insert((*name).into(), churn.0[i].into());
        churn_rates.insert(format!("{name}_details"), details(st.churn_rates[i].rate()));
    }
    o.insert("churn_rates".into(), Value::Object(churn_rates));
    o.insert(
        "queue_totals".into(),
        json!({
            "messages": t.messages, "messages_details": details(st.messages.rate()),
            "messages_ready": t.ready, "messages_ready_details": details(st.ready.rate()),
            "messages_unacknowledged": t.unacked,
            "messages_unacknowledged_details": details(st.unacked.rate()),
        }),
    );
    o.insert(
        "object_totals".into(),
        json!({
            "channels": t.channels, "connections": t.connections, "consumers": t.consumers,
            "exchanges": t.exchanges, "queues": t.queues,
        }),
    );
    o.insert("statistics_db_event_queue".into(), 0.into());
    o.insert("node".into(), api.node().into());
    o.insert("listeners".into(), listeners(&api));
    o.insert("contexts".into(), contexts(&api));
    Ok(Json(Value::Object(o)))
}

fn contexts(api: &Api) -> Value {
    let node = api.node();
    let mut out = Vec::new();
    if let Some(p) = api.cfg.management_port {
        out.push(
            json!({"node": node, "description": "Warren Management", "path": "/",
            "port": p.to_string()}),
        );
    }
    if let Some(p) = api.cfg.prometheus_port {
        out.push(
            json!({"node": node, "description": "Warren Prometheus", "path": "/",
            "port": p.to_string(), "protocol": "'http/prometheus'"}),
        );
    }
    Value::Array(out)
}

/// The `cluster_name` global parameter, or (RabbitMQ's default) the
/// node's name.
fn cluster_name_of(api: &Api) -> String {
    api.admin.cluster_name().unwrap_or_else(|| api.node())
}

pub(crate) async fn cluster_name(State(api): State<Arc<Api>>, _c: Caller) -> Json<Value> {
    Json(json!({ "name": cluster_name_of(&api) }))
}

pub(crate) async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.user.name, "tags": caller.user.tags}))
}

/// The UI's login settings (RabbitMQ's `/api/auth`): basic auth only.
pub(crate) async fn auth_settings() -> Json<Value> {
    Json(json!({"oauth_enabled": false}))
}

pub(crate) async fn extensions(_c: Caller) -> Json<Value> {
    Json(json!([]))
}

/// The open file descriptors and their limit.
pub(crate) fn fds() -> (u64, u64) {
    let used = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let total = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    };
    (used, total)
}

/// This node, as `/api/nodes` lists it (and as other members relay it).
pub(crate) fn node_json(api: &Api) -> Value {
    let s = api.admin.status();
    let (fd_used, fd_total) = fds();
    let alarms = api.broker.alarms.state();
    json!({
        "name": s.node,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": s.os_pid.to_string(),
        "mem_used": s.memory_used,
        "mem_limit": s.memory_high_watermark,
        "mem_alarm": alarms.memory,
        "disk_free": s.disk_free,
        "disk_free_limit": s.disk_free_limit,
        "disk_free_alarm": alarms.disk,
        "fd_used": fd_used,
        "fd_total": fd_total,
        "sockets_used": api.broker.connections.len(),
        "sockets_total": fd_total,
        "proc_used": 0,
        "proc_total": 0,
        "uptime": api.started.elapsed().as_millis() as u64,
        "processors": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "run_queue": 0,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "partitions": api.member.get().map(|m| m.unreachable()).unwrap_or_default(),
        "listeners": listeners(api),
        "contexts": contexts(api),
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "rabbitmq_version": RABBITMQ_VERSION,
        "total_memory": alarms::total_memory(),
    })
}

pub(crate) async fn nodes(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    let Some(member) = api.member.get().cloned() else {
        return Ok(Json(json!([node_json(&api)])));
    };
    let mut out = Vec::new();
    for name in member.members() {
        out.push(member_json(&api, &member, &name).await);
    }
    Ok(Json(Value::Array(out)))
}

/// A member as `/api/nodes` shows it: this node's own figures, another's
/// as it reports them over the cluster link, or, for one that does not
/// answer, RabbitMQ's entry for a stopped node (`running: false`).
async fn member_json(api: &Api, member: &Arc<crate::cluster::member::Member>, name: &str) -> Value {
    if name == api.node() {
        return node_json(api);
    }
    let (m, n) = (member.clone(), name.to_string());
    let asked = tokio::task::spawn_blocking(move || m.node_json_of(&n)).await;
    match asked {
        Ok(Some(v)) => v,
        _ => json!({"name": name, "type": "disc", "running": false, "being_drained": false}),
    }
}

pub(crate) async fn node(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_monitor()?;
    if name == api.node() {
        return Ok(Json(node_json(&api)));
    }
    match api.member.get().cloned() {
        Some(member) if member.is_member(&name) => {
            Ok(Json(member_json(&api, &member, &name).await))
        }
        _ => Err(ApiError::not_found()),
    }
}

/// RabbitMQ's aliveness test: declares `aliveness-test` in the vhost,
/// publishes a message to it and gets one back (no ack), on a channel of
/// the caller's, so with the caller's rights: configure and read on the
/// queue, write on the default exchange, and AMQP's exclusivity rule. A
/// refusal is RabbitMQ's `with_channel` 401 with the AMQP reply text.
pub(crate) async fn aliveness(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    use warren_broker::access::{Operation, Resource};
    caller.require_vhost(&api, &vhost)?;
    let v = api.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    const QUEUE: &str = "aliveness-test";
    let refused = |e: warren_broker::error::AmqpError| super::error::channel_error(&e);
    // All three up front (RabbitMQ finds out one step at a time, and
    // leaves a test message behind when the get is refused).
    let mut access = api.access(&caller, &vhost);
    access
        .check(Operation::Configure, Resource::Queue, QUEUE)
        .and_then(|()| access.check(Operation::Write, Resource::Exchange, ""))
        .and_then(|()| access.check(Operation::Read, Resource::Queue, QUEUE))
        .map_err(refused)?;
    let name = ShortStr::from_static(QUEUE);
    let spec = QueueSpec {
        name: name.clone(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: FieldTable::new(),
        server_named: false,
    };
    v.declare_queue(&spec, 0).map_err(refused)?;
    let body = Bytes::from_static(b"test_message");
    api.admin
        .publish(&vhost, "", QUEUE, BasicProperties::default(), body.clone())
        .await?;
    let got = api
        .admin
        .get_messages(&vhost, QUEUE, 1, GetMode::Ack)
        .await?;
    if got.first().map(|m| &m.body) != Some(&body) {
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": "the test message did not come back"})),
        )
            .into_response());
    }
    Ok(Json(json!({"status": "ok"})).into_response())
}

pub(crate) async fn health_alarms(State(api): State<Arc<Api>>, _c: Caller) -> Response {
    let s = api.broker.alarms.state();
    let mut active = Vec::new();
    if s.memory {
        active.push(json!({"node": api.node(), "resource": "memory"}));
    }
    if s.disk {
        active.push(json!({"node": api.node(), "resource": "disk"}));
    }
    if active.is_empty() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed",
                "reason": "There are alarms in effect in the cluster", "alarms": active})),
        )
            .into_response()
    }
}

/// Every vhost is up whenever the node is (no per-vhost supervisors
/// to fail).
pub(crate) async fn health_vhosts(_c: Caller) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

fn listener_ports(api: &Api) -> Vec<(String, u16)> {
    let mut v = vec![("amqp".to_string(), api.cfg.amqp_port)];
    if let Some(p) = api.cfg.management_port {
        v.push(("http".into(), p));
    }
    if let Some(p) = api.cfg.prometheus_port {
        v.push(("http/prometheus".into(), p));
    }
    v
}

pub(crate) async fn health_port(
    State(api): State<Arc<Api>>,
    _c: Caller,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = listener_ports(&api).into_iter().map(|(_, p)| p).collect();
    if ports.contains(&port) {
        Ok(Json(json!({"status": "ok", "port": port})).into_response())
    } else {
        Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": "No active listener",
                "missing": port, "ports": ports})),
        )
            .into_response())
    }
}

pub(crate) async fn health_protocol(
    State(api): State<Arc<Api>>,
    _c: Caller,
    Path(protocol): Path<String>,
) -> Response {
    let known = listener_ports(&api);
    // RabbitMQ's normalisation of protocol names.
    let wanted = match protocol.to_lowercase().as_str() {
        "amqp091" | "amqp0-9-1" | "amqp0.9.1" => "amqp".to_string(),
        "prometheus" => "http/prometheus".to_string(),
        "management" => "http".to_string(),
        other => other.to_string(),
    };
    if known.iter().any(|(p, _)| *p == wanted) {
        Json(json!({"status": "ok", "protocol": wanted})).into_response()
    } else {
        let protocols: Vec<_> = known.into_iter().map(|(p, _)| p).collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": "No active listener",
                "missing": protocol, "protocols": protocols})),
        )
            .into_response()
    }
}

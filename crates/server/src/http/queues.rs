//! `/api/queues`: listing, declaring, deleting, purging, getting
//! messages, and moving them to another queue.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};
use warren_broker::access::{Operation, Resource};
use warren_broker::admin::json::{json_to_table, table_to_json};
use warren_broker::admin::messages::GetMode;
use warren_broker::queue::{Queue, QueueStats};
use warren_broker::vhost::QueueSpec;
use warren_protocol::ShortStr;

use super::auth::Caller;
use super::bindings::BindingRow;
use super::body::{Fields, JsonBody};
use super::connections::consumer_json;
use super::error::{ApiError, ApiResult};
use super::listing::{respond, ListQuery, Row, SortValue};
use super::stats::{add_message_stats, details, QUEUE};
use super::{properties, Api, Params};

/// One queue in a listing. Small, and lazy: a listing sorted by name
/// reads the counts (under each queue's lock) of the page's queues only.
pub(crate) struct QueueRow<'a> {
    q: Arc<Queue>,
    /// Read from the queue when first needed, then kept.
    stats: std::cell::OnceCell<QueueStats>,
    api: &'a Api,
    /// `disable_stats=true`: the basic fields only.
    basic: bool,
}

impl<'a> QueueRow<'a> {
    fn new(api: &'a Api, q: Arc<Queue>, basic: bool) -> QueueRow<'a> {
        QueueRow {
            stats: std::cell::OnceCell::new(),
            q,
            api,
            basic,
        }
    }

    /// The owning connection, for exclusive queues.
    fn owner(&self) -> Option<Value> {
        let c = self.api.broker.connections.get(self.q.owner?)?;
        Some(
            json!({"name": c.name, "peer_host": c.meta.peer.ip().to_string(),
            "peer_port": c.meta.peer.port()}),
        )
    }
}

impl QueueRow<'_> {
    fn stats(&self) -> &QueueStats {
        self.stats.get_or_init(|| self.q.stats())
    }
}

impl Row for QueueRow<'_> {
    fn name(&self) -> &str {
        std::str::from_utf8(self.q.name.as_bytes()).unwrap_or("")
    }

    fn name_bytes(&self) -> &[u8] {
        self.q.name.as_bytes()
    }

    fn vhost(&self) -> &str {
        &self.q.vhost
    }

    fn sort_value(&self, column: &str) -> Option<SortValue> {
        let s = self.stats();
        let n = |v: u64| Some(SortValue::Number(v as f64));
        let b = |v: bool| Some(SortValue::Atom(if v { "true" } else { "false" }));
        match column {
            "messages" => n(s.ready + s.unacked),
            "messages_ready" => n(s.ready),
            "messages_unacknowledged" => n(s.unacked),
            "consumers" => n(u64::from(s.consumers)),
            "message_bytes" => n(s.ready_bytes + s.unacked_bytes),
            "message_bytes_ready" => n(s.ready_bytes),
            "message_bytes_unacknowledged" => n(s.unacked_bytes),
            "durable" => b(self.q.options.durable),
            "auto_delete" => b(self.q.options.auto_delete),
            "exclusive" => b(self.q.options.exclusive),
            "type" => Some(SortValue::Text(self.q.kind().as_str().into())),
            "state" => Some(SortValue::Text("running".into())),
            "node" => Some(SortValue::Text(self.api.node())),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let q = &self.q;
        let s = self.stats();
        let mut o = Map::new();
        o.insert("name".into(), q.name.as_str().into_owned().into());
        o.insert("vhost".into(), q.vhost.clone().into());
        o.insert("durable".into(), q.options.durable.into());
        o.insert("auto_delete".into(), q.options.auto_delete.into());
        o.insert("exclusive".into(), q.options.exclusive.into());
        o.insert("arguments".into(), table_to_json(&q.options.arguments));
        o.insert("node".into(), self.api.node().into());
        let kind = q.kind();
        o.insert("type".into(), kind.as_str().into());
        if kind == warren_broker::queue::QueueKind::Quorum {
            // RabbitMQ's fields for a quorum queue: its members, those
            // online and the leader; one node, and Warren's own
            // `replicated` says plainly that it is not replicated.
            o.insert("members".into(), vec![self.api.node()].into());
            o.insert("online".into(), vec![self.api.node()].into());
            o.insert("leader".into(), self.api.node().into());
            o.insert("replicated".into(), kind.is_replicated().into());
        }
        o.insert("state".into(), "running".into());
        if let Some(owner) = self.owner() {
            o.insert("owner_pid_details".into(), owner);
        }
        o.insert("messages".into(), (s.ready + s.unacked).into());
        o.insert("messages_ready".into(), s.ready.into());
        o.insert("messages_unacknowledged".into(), s.unacked.into());
        if self.basic {
            return Value::Object(o);
        }
        let r = &q.rates;
        o.insert("messages_details".into(), details(r.total.rate()));
        o.insert("messages_ready_details".into(), details(r.ready.rate()));
        o.insert(
            "messages_unacknowledged_details".into(),
            details(r.unacked.rate()),
        );
        o.insert(
            "message_bytes".into(),
            (s.ready_bytes + s.unacked_bytes).into(),
        );
        o.insert("message_bytes_ready".into(), s.ready_bytes.into());
        o.insert(
            "message_bytes_unacknowledged".into(),
            s.unacked_bytes.into(),
        );
        o.insert("consumers".into(), s.consumers.into());
        o.insert("memory".into(), q.memory().into());
        let applied = q.applied_policies();
        o.insert("policy".into(), applied.policy_name().into());
        o.insert(
            "operator_policy".into(),
            applied.operator_policy_name().into(),
        );
        o.insert(
            "effective_policy_definition".into(),
            Value::Object(applied.effective_definition()),
        );
        o.insert("exclusive_consumer_tag".into(), Value::Null);
        o.insert("single_active_consumer_tag".into(), Value::Null);
        o.insert("head_message_timestamp".into(), Value::Null);
        add_message_stats(&mut o, &q.counters().snapshot(), &r.messages, QUEUE);
        Value::Object(o)
    }
}

fn rows<'a>(
    api: &'a Api,
    vhosts: &[Arc<warren_broker::VirtualHost>],
    q: &ListQuery,
) -> Vec<QueueRow<'a>> {
    vhosts
        .iter()
        .flat_map(|v| v.queues_unordered())
        .map(|queue| QueueRow::new(api, queue, q.disable_stats))
        .collect()
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let q = ListQuery::from_map(&params);
    let vhosts = caller.visible_vhosts(&api);
    respond(rows(&api, &vhosts, &q), &q)
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    let q = ListQuery::from_map(&params);
    respond(rows(&api, &[v], &q), &q)
}

fn find(api: &Api, vhost: &str, name: &str) -> ApiResult<Arc<Queue>> {
    api.vhost(vhost)?
        .queue(&ShortStr::from(name))
        .map_err(|_| ApiError::not_found())
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    let q = find(&api, &vhost, &name)?;
    let mut v = QueueRow::new(&api, q.clone(), false).to_json();
    let conns: std::collections::HashMap<u64, _> = api
        .broker
        .connections
        .list()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let consumers: Vec<Value> = q
        .consumer_infos()
        .iter()
        .map(|c| consumer_json(&q, c, conns.get(&c.connection_id).map(|e| &**e)))
        .collect();
    if let Value::Object(m) = &mut v {
        m.insert("consumer_details".into(), Value::Array(consumers));
        m.insert("incoming".into(), json!([]));
        m.insert("deliveries".into(), json!([]));
    }
    Ok(Json(v))
}

pub(crate) async fn declare(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.target_vhost(&vhost)?;
    if name.len() > ShortStr::MAX_LEN {
        return Err(ApiError::bad_request("queue name is longer than 255 bytes"));
    }
    let arguments = match body.get("arguments") {
        None => Default::default(),
        Some(a) => json_to_table(a).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let spec = QueueSpec {
        name: ShortStr::from(name.as_str()),
        server_named: false,
        passive: false,
        durable: body.bool_field("durable")?.unwrap_or(false),
        exclusive: false,
        auto_delete: body.bool_field("auto_delete")?.unwrap_or(false),
        arguments,
    };
    let mut access = api.access(&caller, &vhost);
    access.check(Operation::Configure, Resource::Queue, &name)?;
    if let Some(dlx) = spec
        .arguments
        .get("x-dead-letter-exchange")
        .and_then(|v| v.as_bytes())
    {
        let dlx = String::from_utf8_lossy(dlx);
        access.check(Operation::Write, Resource::Exchange, &dlx)?;
    }
    let existed = v.queue(&spec.name).is_ok();
    // The texts are the AMQP ones ("expected integer, got longstr"…).
    // RabbitMQ declares without a channel: a locked queue's text comes
    // without the code, as an inequivalent one's.
    v.declare_queue(&spec, 0).map_err(|e| match e.code {
        warren_protocol::constants::reply::RESOURCE_LOCKED => ApiError::bad_request(e.text),
        _ => ApiError::from(e),
    })?;
    Ok(super::put_status(existed))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult<StatusCode> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    find(&api, &vhost, &name)?;
    api.access(&caller, &vhost)
        .check(Operation::Configure, Resource::Queue, &name)?;
    let flag = |k: &str| params.get(k).is_some_and(|v| v == "true");
    v.delete_queue(
        &ShortStr::from(name.as_str()),
        flag("if-unused"),
        flag("if-empty"),
        0,
    )?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn purge(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_vhost(&api, &vhost)?;
    find(&api, &vhost, &name)?;
    api.access(&caller, &vhost)
        .check(Operation::Read, Resource::Queue, &name)?;
    // Refused for another connection's exclusive queue; answers once the
    // removal is durable.
    api.admin.purge_durably(&vhost, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn bindings(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    find(&api, &vhost, &name)?;
    let rows: Vec<BindingRow> = BindingRow::all(&v)
        .into_iter()
        .filter(|b| b.destination_type == "queue" && b.destination == name)
        .collect();
    let q = ListQuery::in_given_order(&params);
    respond(rows, &q)
}

/// The most messages one get request may return.
const GET_MAX: u64 = 10_000;

pub(crate) async fn get_messages(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    // RabbitMQ gets on an internal channel: its 404 carries the reply text.
    api.target_vhost(&vhost)?
        .queue(&ShortStr::from(name.as_str()))
        .map_err(|e| ApiError::not_found_reason(e.reply_text()))?;
    let count = match body.get("count") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        None => return Err(ApiError::bad_request("[{key_missing,count}]")),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request("count must be a non-negative integer"))?;
    let ackmode = body.required_str("ackmode")?;
    let mode = GetMode::parse(&ackmode)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid ackmode: {ackmode}")))?;
    let encoding = body.required_str("encoding")?;
    let base64 = match encoding.as_str() {
        "auto" => false,
        "base64" => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let truncate = match body.get("truncate") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => return Err(ApiError::bad_request("truncate must be an integer")),
    };
    api.access(&caller, &vhost)
        .check(Operation::Read, Resource::Queue, &name)?;
    let got = api
        .admin
        .get_messages(&vhost, &name, count.min(GET_MAX) as usize, mode)
        .await?;
    let out: Vec<Value> = got
        .into_iter()
        .map(|m| {
            let full = m.body.len();
            let body = match truncate {
                Some(t) if t < full => &m.body[..t],
                _ => &m.body[..],
            };
            let (payload, enc) = match (base64, std::str::from_utf8(body)) {
                (false, Ok(text)) => (text.to_string(), "string"),
                _ => (
                    base64::engine::general_purpose::STANDARD.encode(body),
                    "base64",
                ),
            };
            json!({
                "payload_bytes": full,
                "redelivered": m.redelivered,
                "exchange": m.exchange,
                "routing_key": m.routing_key,
                "message_count": m.message_count,
                "properties": properties::to_json(&m.properties),
                "payload": payload,
                "payload_encoding": enc,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// Warren's extension: moves every message ready in the queue to another
/// queue of the same vhost (`{"destination": "name"}` → `{"moved": n}`).
/// Needs read permission on the source and write on the destination.
pub(crate) async fn move_messages(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    find(&api, &vhost, &name)?;
    let dest = body.required_str("destination")?;
    find(&api, &vhost, &dest)?;
    let mut access = api.access(&caller, &vhost);
    access.check(Operation::Read, Resource::Queue, &name)?;
    access.check(Operation::Write, Resource::Queue, &dest)?;
    let moved = api.admin.move_messages(&vhost, &name, &dest).await?;
    Ok(Json(json!({ "moved": moved })).into_response())
}

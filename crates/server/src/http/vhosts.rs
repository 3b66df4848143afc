//! `/api/vhosts`: listing (the vhosts the caller may see), creating,
//! updating and deleting (administrators).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};
use warren_broker::definitions::VhostDef;
use warren_broker::VirtualHost;

use super::auth::Caller;
use super::body::{Fields, JsonBody};
use super::error::{ApiError, ApiResult};
use super::listing::{respond, ListQuery, Row};
use super::stats::{add_message_stats, details, FLOW};
use super::Api;

struct VhostRow {
    v: Arc<VirtualHost>,
    api: Arc<Api>,
}

impl Row for VhostRow {
    fn name(&self) -> &str {
        &self.v.name
    }

    fn to_json(&self) -> Value {
        vhost_json(&self.api, &self.v)
    }
}

fn vhost_json(api: &Api, v: &VirtualHost) -> Value {
    let meta = v.meta();
    let (mut ready, mut unacked) = (0u64, 0u64);
    for q in v.queues_unordered() {
        let s = q.stats();
        ready += s.ready;
        unacked += s.unacked;
    }
    let (mut recv, mut send, mut recv_rate, mut send_rate) = (0u64, 0u64, 0f64, 0f64);
    for c in api.broker.connections.list() {
        if c.meta.vhost == v.name {
            recv += c.stats.traffic().recv_oct;
            send += c.stats.traffic().send_oct;
            recv_rate += c.stats.recv_rate();
            send_rate += c.stats.send_rate();
        }
    }
    let mut o = Map::new();
    o.insert("name".into(), v.name.clone().into());
    o.insert("description".into(), meta.description.clone().into());
    o.insert("tags".into(), json!(meta.tags));
    o.insert(
        "default_queue_type".into(),
        meta.default_queue_type
            .clone()
            .unwrap_or_else(|| "undefined".into())
            .into(),
    );
    o.insert(
        "metadata".into(),
        json!({"description": meta.description, "tags": meta.tags}),
    );
    o.insert("tracing".into(), false.into());
    o.insert("cluster_state".into(), json!({ api.node(): "running" }));
    o.insert("messages".into(), (ready + unacked).into());
    o.insert("messages_ready".into(), ready.into());
    o.insert("messages_unacknowledged".into(), unacked.into());
    o.insert("recv_oct".into(), recv.into());
    o.insert("recv_oct_details".into(), details(recv_rate));
    o.insert("send_oct".into(), send.into());
    o.insert("send_oct_details".into(), details(send_rate));
    add_message_stats(
        &mut o,
        &api.broker.vhost_message_counts(&v.name),
        &v.rates,
        FLOW,
    );
    Value::Object(o)
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Response> {
    let rows: Vec<VhostRow> = caller
        .visible_vhosts(&api)
        .into_iter()
        .map(|v| VhostRow {
            v,
            api: api.clone(),
        })
        .collect();
    respond(rows, &ListQuery::from_map(&params))
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    // RabbitMQ 3.10 shows one vhost to administrators only.
    caller.require_admin()?;
    let v = api.vhost(&name)?;
    Ok(Json(vhost_json(&api, &v)))
}

pub(crate) async fn put(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    // Tracing would turn on the firehose (copies of every message to
    // amq.rabbitmq.trace), which Warren doesn't have: refuse rather than
    // store a flag that does nothing.
    if body.bool_field("tracing")? == Some(true) {
        return Err(ApiError::bad_request(
            "tracing (the firehose) is not supported by Warren",
        ));
    }
    let def = VhostDef {
        name: name.clone(),
        description: body.str_field("description")?.unwrap_or_default(),
        tags: body.tags_field("tags")?,
        default_queue_type: body.str_field("default_queue_type")?,
    };
    let created = caller.admin(&api).add_vhost(def)?;
    if created {
        // As RabbitMQ: whoever creates a vhost over HTTP may use it.
        caller
            .admin(&api)
            .set_permissions(&name, caller.name(), ".*", ".*", ".*")?;
    }
    Ok(super::put_status(!created))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    caller.admin(&api).delete_vhost(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

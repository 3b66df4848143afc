//! `/api/exchanges`: listing, declaring, deleting, their bindings, and
//! publishing a message.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use warren_broker::access::{Operation, Resource};
use warren_broker::admin::json::{json_to_table, table_to_json};
use warren_broker::exchange::Exchange;
use warren_broker::vhost::ExchangeSpec;
use warren_protocol::ShortStr;

use super::auth::Caller;
use super::bindings::BindingRow;
use super::body::{Fields, JsonBody};
use super::error::{ApiError, ApiResult};
use super::listing::{respond, ListQuery, Row, SortValue};
use super::stats::{add_message_stats, EXCHANGE};
use super::{exchange_name, properties, Api, Params};

pub(crate) struct ExchangeRow(Arc<Exchange>);

impl Row for ExchangeRow {
    fn name(&self) -> &str {
        std::str::from_utf8(self.0.name.as_bytes()).unwrap_or("")
    }

    fn vhost(&self) -> &str {
        &self.0.vhost
    }

    fn sort_value(&self, column: &str) -> Option<SortValue> {
        let x = &self.0;
        let b = |v: bool| Some(SortValue::Atom(if v { "true" } else { "false" }));
        match column {
            "type" => Some(SortValue::Text(x.kind.as_str().into())),
            "durable" => b(x.durable),
            "auto_delete" => b(x.auto_delete),
            "internal" => b(x.internal),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let x = &self.0;
        let mut o = Map::new();
        o.insert("name".into(), x.name.as_str().into_owned().into());
        o.insert("vhost".into(), x.vhost.clone().into());
        o.insert("type".into(), x.kind.as_str().into());
        o.insert("durable".into(), x.durable.into());
        o.insert("auto_delete".into(), x.auto_delete.into());
        o.insert("internal".into(), x.internal.into());
        o.insert("arguments".into(), table_to_json(&x.arguments));
        if let Some(p) = x.applied_policies().policy_name() {
            o.insert("policy".into(), p.into());
        }
        add_message_stats(&mut o, &x.counters.snapshot(), &x.rates, EXCHANGE);
        Value::Object(o)
    }
}

fn rows(vhosts: &[Arc<warren_broker::VirtualHost>]) -> Vec<ExchangeRow> {
    vhosts
        .iter()
        .flat_map(|v| v.exchanges())
        .map(ExchangeRow)
        .collect()
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let vhosts = caller.visible_vhosts(&api);
    respond(rows(&vhosts), &ListQuery::from_map(&params))
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    respond(rows(&[v]), &ListQuery::from_map(&params))
}

fn find(api: &Api, vhost: &str, name: &str) -> ApiResult<Arc<Exchange>> {
    api.vhost(vhost)?
        .exchange(&ShortStr::from(exchange_name(name)))
        .map_err(|_| ApiError::not_found())
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    let x = find(&api, &vhost, &name)?;
    let mut v = ExchangeRow(x).to_json();
    if let Value::Object(m) = &mut v {
        m.insert("incoming".into(), json!([]));
        m.insert("outgoing".into(), json!([]));
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
    let name = exchange_name(&name).to_string();
    if name.len() > ShortStr::MAX_LEN {
        return Err(ApiError::bad_request(
            "exchange name is longer than 255 bytes",
        ));
    }
    let arguments = match body.get("arguments") {
        None => Default::default(),
        Some(a) => json_to_table(a).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let spec = ExchangeSpec {
        name: ShortStr::from(name.as_str()),
        kind: ShortStr::from(body.str_field("type")?.unwrap_or_else(|| "direct".into())),
        passive: false,
        durable: body.bool_field("durable")?.unwrap_or(false),
        auto_delete: body.bool_field("auto_delete")?.unwrap_or(false),
        internal: body.bool_field("internal")?.unwrap_or(false),
        arguments,
    };
    let mut access = api.access(&caller, &vhost);
    access.check(Operation::Configure, Resource::Exchange, &name)?;
    if let Some(ae) = spec
        .arguments
        .get("alternate-exchange")
        .and_then(|v| v.as_bytes())
    {
        let ae = String::from_utf8_lossy(ae);
        access.check(Operation::Write, Resource::Exchange, &ae)?;
    }
    let existed = v.exchange(&spec.name).is_ok();
    v.declare_exchange(&spec)?;
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
    let x = find(&api, &vhost, &name)?;
    api.access(&caller, &vhost).check(
        Operation::Configure,
        Resource::Exchange,
        exchange_name(&name),
    )?;
    let if_unused = params.get("if-unused").is_some_and(|v| v == "true");
    v.delete_exchange(&x.name, if_unused)?;
    Ok(StatusCode::NO_CONTENT)
}

fn binding_rows(api: &Api, vhost: &str, name: &str, as_source: bool) -> ApiResult<Vec<BindingRow>> {
    let v = api.vhost(vhost)?;
    let x = find(api, vhost, name)?;
    let name = x.name.as_str().into_owned();
    Ok(BindingRow::all(&v)
        .into_iter()
        .filter(|b| {
            if as_source {
                b.source == name
            } else {
                b.destination_type == "exchange" && b.destination == name
            }
        })
        .collect())
}

pub(crate) async fn bindings_source(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let rows = binding_rows(&api, &vhost, &name, true)?;
    let q = ListQuery::in_given_order(&params);
    respond(rows, &q)
}

pub(crate) async fn bindings_destination(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let rows = binding_rows(&api, &vhost, &name, false)?;
    let q = ListQuery::in_given_order(&params);
    respond(rows, &q)
}

/// Publishes one message; `{"routed": bool}` once it is durable.
pub(crate) async fn publish(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    // RabbitMQ publishes on an internal channel: a missing exchange is
    // its channel error, "<code> <reply text>", as a bad request.
    let x = api
        .target_vhost(&vhost)?
        .exchange(&ShortStr::from(exchange_name(&name)))
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code, e.reply_text())))?;
    for key in ["routing_key", "properties", "payload", "payload_encoding"] {
        if !body.contains_key(key) {
            return Err(ApiError::bad_request(format!("[{{key_missing,{key}}}]")));
        }
    }
    let routing_key = body.required_str("routing_key")?;
    let payload = body.required_str("payload")?;
    let payload = match body.required_str("payload_encoding")?.as_str() {
        "string" => Bytes::from(payload),
        "base64" => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(payload.trim())
                .map_err(|_| ApiError::bad_request("not_base64"))?,
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "Unsupported payload_encoding {other}"
            )))
        }
    };
    let props = properties::from_json(body.get("properties"))?;
    // The checks basic.publish makes (`user_id`, `expiration`). RabbitMQ
    // publishes on an internal channel and reports its channel error as
    // "<code> <reply text>" (measured on 3.10.8).
    warren_broker::session::PublishChecks::properties(&props, caller.name())
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code, e.reply_text())))?;
    let mut access = api.access(&caller, &vhost);
    access.check(Operation::Write, Resource::Exchange, &x.name.as_str())?;
    access.check_topic(Operation::Write, &x, &routing_key)?;
    let routed = api
        .admin
        .publish(&vhost, &x.name.as_str(), &routing_key, props, payload)
        .await?;
    Ok(Json(json!({ "routed": routed })))
}

//! `/api/bindings`: listing, creating and deleting bindings, named in URLs
//! by their "properties key" as RabbitMQ does.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use warren_broker::access::{Operation, Resource};
use warren_broker::admin::json::{json_to_table, table_to_json};
use warren_broker::VirtualHost;
use warren_protocol::{FieldTable, ShortStr};

use super::auth::Caller;
use super::body::{Fields, JsonBody};
use super::error::{ApiError, ApiResult};
use super::listing::{respond, ListQuery, Row};
use super::{exchange_name, Api, Params};

/// One binding, as listed.
pub(crate) struct BindingRow {
    pub vhost: String,
    pub source: String,
    pub destination: String,
    /// "queue" or "exchange".
    pub destination_type: &'static str,
    pub routing_key: String,
    pub arguments: Value,
    /// The arguments as bound (unbinding matches them exactly).
    pub table: FieldTable,
}

impl BindingRow {
    /// Every binding of a vhost, the default exchange's implicit ones
    /// included, ordered as RabbitMQ lists them.
    pub fn all(v: &VirtualHost) -> Vec<BindingRow> {
        let mut rows: Vec<BindingRow> = v
            .bindings()
            .into_iter()
            .map(|(source, kind, dest, key, args)| BindingRow {
                vhost: v.name.clone(),
                source: source.as_str().into_owned(),
                destination: dest.as_str().into_owned(),
                destination_type: kind,
                routing_key: key.as_str().into_owned(),
                arguments: sorted(table_to_json(&args)),
                table: args,
            })
            .collect();
        rows.sort_by(|a, b| {
            (
                &a.source,
                &a.destination,
                a.destination_type,
                &a.routing_key,
            )
                .cmp(&(
                    &b.source,
                    &b.destination,
                    b.destination_type,
                    &b.routing_key,
                ))
                .then_with(|| a.properties_key().cmp(&b.properties_key()))
        });
        rows
    }

    pub fn properties_key(&self) -> String {
        properties_key(&self.routing_key, &self.arguments)
    }
}

impl Row for BindingRow {
    /// Bindings have no name; the listing keeps their order.
    fn name(&self) -> &str {
        ""
    }

    fn vhost(&self) -> &str {
        &self.vhost
    }

    fn to_json(&self) -> Value {
        binding_json(self)
    }
}

pub(crate) fn binding_json(b: &BindingRow) -> Value {
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": b.destination_type,
        "routing_key": b.routing_key,
        "arguments": b.arguments,
        "properties_key": b.properties_key(),
    })
}

/// Arguments with their keys sorted (RabbitMQ keeps binding arguments
/// sorted).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut items: Vec<_> = m.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(items.into_iter().collect())
        }
        other => other,
    }
}

/// URL quoting as mochiweb's `quote_plus`: letters, digits and `.-_`
/// stay, a space is `+`, everything else `%XX`.
pub(crate) fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encoding for a path segment.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'~' | b'_' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// RabbitMQ's properties key: the quoted routing key (`~` when empty),
/// plus `~` and a short hash of the arguments when there are any.
pub(crate) fn properties_key(routing_key: &str, arguments: &Value) -> String {
    let empty = arguments.as_object().is_none_or(|m| m.is_empty());
    let key = quote_plus(routing_key);
    if empty {
        return if key.is_empty() { "~".into() } else { key };
    }
    // FNV-1a over the canonical JSON of the sorted arguments: stable
    // across restarts and builds.
    let canonical = sorted(arguments.clone()).to_string();
    let mut h: u32 = 0x811c_9dc5;
    for b in canonical.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_be_bytes());
    format!("{key}~{hash}")
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let rows: Vec<BindingRow> = caller
        .visible_vhosts(&api)
        .iter()
        .flat_map(|v| BindingRow::all(v))
        .collect();
    respond(rows, &ListQuery::from_map(&params))
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    respond(BindingRow::all(&v), &ListQuery::from_map(&params))
}

/// The `{dtype}` segment: `q` or `e`.
fn dest_is_queue(dtype: &str) -> ApiResult<bool> {
    match dtype {
        "q" => Ok(true),
        "e" => Ok(false),
        _ => Err(ApiError::not_found()),
    }
}

fn between_rows(
    api: &Api,
    vhost: &str,
    source: &str,
    dtype: &str,
    dest: &str,
) -> ApiResult<Vec<BindingRow>> {
    // Missing exchanges or queues have no bindings (an empty list, as
    // RabbitMQ answers), but a missing vhost is a 404.
    let v = api.vhost(vhost)?;
    let queue = dest_is_queue(dtype)?;
    let source = exchange_name(source);
    let kind = if queue { "queue" } else { "exchange" };
    Ok(BindingRow::all(&v)
        .into_iter()
        .filter(|b| b.source == source && b.destination == dest && b.destination_type == kind)
        .collect())
}

pub(crate) async fn between(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, source, dtype, dest)): Path<(String, String, String, String)>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let rows = between_rows(&api, &vhost, &source, &dtype, &dest)?;
    let q = ListQuery::in_given_order(&params);
    respond(rows, &q)
}

pub(crate) async fn create(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, source, dtype, dest)): Path<(String, String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.target_vhost(&vhost)?;
    let queue = dest_is_queue(&dtype)?;
    let source = exchange_name(&source).to_string();
    let routing_key = body.str_field("routing_key")?.unwrap_or_default();
    if routing_key.len() > ShortStr::MAX_LEN {
        return Err(ApiError::bad_request(
            "routing_key is longer than 255 bytes",
        ));
    }
    let arguments = match body.get("arguments") {
        None => Default::default(),
        Some(a) => json_to_table(a).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let mut access = api.access(&caller, &vhost);
    let dest_kind = if queue {
        Resource::Queue
    } else {
        Resource::Exchange
    };
    access.check(Operation::Write, dest_kind, &dest)?;
    access.check(Operation::Read, Resource::Exchange, &source)?;
    if let Ok(x) = v.exchange(&ShortStr::from(source.as_str())) {
        access.check_topic(Operation::Read, &x, &routing_key)?;
    }
    let args_json = sorted(table_to_json(&arguments));
    v.bind(
        &ShortStr::from(source.as_str()),
        &ShortStr::from(dest.as_str()),
        queue,
        ShortStr::from(routing_key.as_str()),
        arguments,
        0,
    )?;
    let location = format!(
        "{}/{}",
        quote(&dest),
        quote(&properties_key(&routing_key, &args_json))
    );
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, h);
    }
    Ok(resp)
}

/// The binding a URL's properties key names. Clients encode the key
/// once (rabbitmqadmin: `a.%2A`) or twice (`a.%252A`, the key as listed,
/// encoded again); like RabbitMQ, compare the keys unquoted.
fn find_binding(
    api: &Api,
    vhost: &str,
    source: &str,
    dtype: &str,
    dest: &str,
    props: &str,
) -> ApiResult<BindingRow> {
    let given = unquote_plus(props);
    between_rows(api, vhost, source, dtype, dest)?
        .into_iter()
        .find(|b| {
            let pk = b.properties_key();
            pk == props || unquote_plus(&pk) == given
        })
        .ok_or_else(ApiError::not_found)
}

/// Reverses `quote_plus` (`+` is a space, `%XX` a byte); malformed
/// escapes stay as they are.
fn unquote_plus(s: &str) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, source, dtype, dest, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    let b = find_binding(&api, &vhost, &source, &dtype, &dest, &props)?;
    Ok(Json(binding_json(&b)))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, source, dtype, dest, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_vhost(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    let b = find_binding(&api, &vhost, &source, &dtype, &dest, &props)?;
    let queue = b.destination_type == "queue";
    let mut access = api.access(&caller, &vhost);
    let dest_kind = if queue {
        Resource::Queue
    } else {
        Resource::Exchange
    };
    access.check(Operation::Write, dest_kind, &b.destination)?;
    access.check(Operation::Read, Resource::Exchange, &b.source)?;
    let arguments = b.table.clone();
    v.unbind(
        &ShortStr::from(b.source.as_str()),
        &ShortStr::from(b.destination.as_str()),
        queue,
        ShortStr::from(b.routing_key.as_str()),
        arguments,
        0,
    )?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys_as_rabbitmq() {
        assert_eq!(properties_key("a.#", &json!({})), "a.%23");
        assert_eq!(properties_key("", &json!({})), "~");
        let k = properties_key("b c", &json!({"x": 1}));
        assert!(k.starts_with("b+c~"), "{k}");
        assert_eq!(k.len(), "b+c~".len() + 6);
        // Argument order doesn't matter; values do.
        assert_eq!(
            properties_key("k", &json!({"a": 1, "b": 2})),
            properties_key("k", &json!({"b": 2, "a": 1}))
        );
        assert_ne!(
            properties_key("k", &json!({"a": 1})),
            properties_key("k", &json!({"a": 2}))
        );
        assert_eq!(quote("zz q/1"), "zz%20q%2F1");
        assert_eq!(properties_key("sp ace/sl~t", &json!({})), "sp+ace%2Fsl%7Et");
        assert_eq!(unquote_plus("sp+ace%2Fsl%7Et"), b"sp ace/sl~t");
        assert_eq!(unquote_plus("a.%2A"), unquote_plus("a.*"));
        assert_eq!(unquote_plus("100%"), b"100%");
        assert_eq!(unquote_plus("%zz%4"), b"%zz%4");
    }
}

//! `/api/connections`, `/api/channels`, `/api/consumers`.
//!
//! Users see their own connections and channels; monitors see all. Only
//! administrators (or the owner) may close a connection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};
use warren_broker::admin::info::{ChannelInfo, ConnectionInfo};
use warren_broker::connections::{ChannelStats, ConnectionEntry};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::listing::{respond, ListQuery, Row, SortValue};
use super::stats::{add_message_stats, details, FLOW};
use super::{Api, Params};

/// `channel_details` as consumers list it.
pub(crate) fn channel_details(c: &ConnectionEntry, number: u16) -> Value {
    json!({
        "connection_name": c.name,
        "name": c.channel_name(number),
        "node": node_of(c),
        "number": number,
        "peer_host": c.meta.peer.ip().to_string(),
        "peer_port": c.meta.peer.port(),
        "user": c.meta.user,
    })
}

fn node_of(c: &ConnectionEntry) -> String {
    // `<warren@host.N.0>` → `warren@host`.
    let inner = c.pid.trim_start_matches('<').trim_end_matches('>');
    let mut parts: Vec<&str> = inner.rsplitn(3, '.').collect();
    parts.pop().unwrap_or(inner).to_string()
}

pub(crate) struct ConnectionRow(Arc<ConnectionEntry>);

impl Row for ConnectionRow {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn vhost(&self) -> &str {
        &self.0.meta.vhost
    }

    fn sort_value(&self, column: &str) -> Option<SortValue> {
        let s = self.0.stats.traffic();
        let n = |v: u64| Some(SortValue::Number(v as f64));
        match column {
            "user" => Some(SortValue::Text(self.0.meta.user.clone())),
            "channels" => n(self.0.channels().len() as u64),
            "recv_oct" => n(s.recv_oct),
            "send_oct" => n(s.send_oct),
            "connected_at" => n(self.0.connected_at),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let c = &self.0;
        let info = ConnectionInfo::of(c);
        let mut o = match serde_json::to_value(&info) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        o.remove("pid");
        o.insert("node".into(), node_of(c).into());
        o.insert("type".into(), "network".into());
        o.insert(
            "user_provided_name".into(),
            info.client_properties
                .get("connection_name")
                .cloned()
                .unwrap_or(Value::Null),
        );
        o.insert(
            "user_who_performed_action".into(),
            c.meta.user.clone().into(),
        );
        o.insert("recv_oct_details".into(), details(c.stats.recv_rate()));
        o.insert("send_oct_details".into(), details(c.stats.send_rate()));
        o.insert("send_pend".into(), 0.into());
        for k in [
            "peer_cert_issuer",
            "peer_cert_subject",
            "peer_cert_validity",
            "ssl_cipher",
            "ssl_hash",
            "ssl_key_exchange",
            "ssl_protocol",
        ] {
            o.insert(k.into(), Value::Null);
        }
        Value::Object(o)
    }
}

fn visible_connections(api: &Api, caller: &Caller, vhost: Option<&str>) -> Vec<ConnectionRow> {
    api.broker
        .connections
        .list()
        .into_iter()
        .filter(|c| caller.sees_user(&c.meta.user) && vhost.is_none_or(|v| c.meta.vhost == v))
        .map(ConnectionRow)
        .collect()
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    respond(
        visible_connections(&api, &caller, None),
        &ListQuery::from_map(&params),
    )
}

pub(crate) async fn vhost_connections(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost_visible(&api, &vhost)?;
    api.vhost(&vhost)?;
    respond(
        visible_connections(&api, &caller, Some(&vhost)),
        &ListQuery::from_map(&params),
    )
}

/// The connection named `name`, if the caller may see it (GET: monitors
/// and the owner; DELETE: administrators and the owner).
fn authorised_connection(
    api: &Api,
    caller: &Caller,
    name: &str,
    closing: bool,
) -> ApiResult<Arc<ConnectionEntry>> {
    let c = api
        .broker
        .connections
        .list()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)?;
    let privileged = if closing {
        caller.is_admin()
    } else {
        caller.is_monitor()
    };
    if !privileged && c.meta.user != caller.name() {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    Ok(c)
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = authorised_connection(&api, &caller, &name, false)?;
    Ok(Json(ConnectionRow(c).to_json()))
}

/// Closes the connection with 320 CONNECTION_FORCED; the `X-Reason`
/// header, if any, is the reason the client sees.
pub(crate) async fn close(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = authorised_connection(&api, &caller, &name, true)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .unwrap_or("Closed via management plugin");
    c.force_close(reason);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) struct ChannelRow {
    conn: Arc<ConnectionEntry>,
    ch: Arc<ChannelStats>,
    name: String,
}

impl Row for ChannelRow {
    fn name(&self) -> &str {
        &self.name
    }

    fn vhost(&self) -> &str {
        &self.conn.meta.vhost
    }

    fn sort_value(&self, column: &str) -> Option<SortValue> {
        let n = |v: u64| Some(SortValue::Number(v as f64));
        match column {
            "user" => Some(SortValue::Text(self.conn.meta.user.clone())),
            "number" => n(u64::from(self.ch.number)),
            "consumer_count" => n(u64::from(self.ch.state().consumers)),
            "messages_unacknowledged" => n(u64::from(self.ch.state().unacked)),
            "prefetch_count" => n(u64::from(self.ch.state().prefetch)),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let info = ChannelInfo::of(&self.conn, &self.ch);
        let mut o = match serde_json::to_value(&info) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        o.remove("pid");
        o.remove("connection");
        o.remove("connection_name");
        o.insert(
            "connection_details".into(),
            json!({
                "name": self.conn.name,
                "peer_host": self.conn.meta.peer.ip().to_string(),
                "peer_port": self.conn.meta.peer.port(),
            }),
        );
        o.insert("node".into(), node_of(&self.conn).into());
        o.insert(
            "user_who_performed_action".into(),
            self.conn.meta.user.clone().into(),
        );
        for k in [
            "acks_uncommitted",
            "messages_uncommitted",
            "messages_unconfirmed",
            "pending_raft_commands",
        ] {
            o.insert(k.into(), 0.into());
        }
        add_message_stats(&mut o, &self.ch.counters.snapshot(), &self.ch.rates, FLOW);
        Value::Object(o)
    }
}

fn channel_rows(conns: Vec<ConnectionRow>) -> Vec<ChannelRow> {
    let mut out = Vec::new();
    for ConnectionRow(c) in conns {
        let mut chans = c.channels();
        chans.sort_by_key(|ch| ch.number);
        for ch in chans {
            out.push(ChannelRow {
                name: c.channel_name(ch.number),
                conn: c.clone(),
                ch,
            });
        }
    }
    out
}

pub(crate) async fn channels(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let rows = channel_rows(visible_connections(&api, &caller, None));
    respond(rows, &ListQuery::from_map(&params))
}

pub(crate) async fn vhost_channels(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost_visible(&api, &vhost)?;
    api.vhost(&vhost)?;
    let rows = channel_rows(visible_connections(&api, &caller, Some(&vhost)));
    respond(rows, &ListQuery::from_map(&params))
}

pub(crate) async fn connection_channels(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let c = authorised_connection(&api, &caller, &name, false)?;
    let rows = channel_rows(vec![ConnectionRow(c)]);
    respond(rows, &ListQuery::from_map(&params))
}

pub(crate) async fn channel(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = channel_rows(visible_connections(&api, &caller, None))
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(ApiError::not_found)?;
    let mut consumers = Vec::new();
    if let Some(v) = api.broker.vhost(&row.conn.meta.vhost) {
        for q in v.queues_unordered() {
            for c in q.consumer_infos() {
                if c.connection_id == row.conn.id && c.channel == row.ch.number {
                    consumers.push(consumer_json(&q, &c, Some(&row.conn)));
                }
            }
        }
    }
    let mut out = row.to_json();
    if let Value::Object(m) = &mut out {
        m.insert("consumer_details".into(), Value::Array(consumers));
    }
    Ok(Json(out))
}

/// One consumer as `/api/consumers` and `consumer_details` show it.
pub(crate) fn consumer_json(
    q: &warren_broker::Queue,
    c: &warren_broker::queue::ConsumerSummary,
    conn: Option<&ConnectionEntry>,
) -> Value {
    json!({
        "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
        "ack_required": c.ack_required,
        "active": c.active,
        "activity_status": if c.active { "up" } else { "waiting" },
        "channel_details": conn.map(|e| channel_details(e, c.channel)).unwrap_or(json!({})),
        "consumer_tag": c.tag.as_str(),
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch,
        "queue": {"name": q.name.as_str(), "vhost": q.vhost},
    })
}

struct ConsumerRow(Value, String);

impl Row for ConsumerRow {
    fn name(&self) -> &str {
        ""
    }

    fn vhost(&self) -> &str {
        &self.1
    }

    fn to_json(&self) -> Value {
        self.0.clone()
    }
}

fn consumer_rows(
    api: &Api,
    caller: &Caller,
    vhosts: &[Arc<warren_broker::VirtualHost>],
) -> Vec<ConsumerRow> {
    let conns: HashMap<u64, Arc<ConnectionEntry>> = api
        .broker
        .connections
        .list()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut out = Vec::new();
    for v in vhosts {
        for q in v.queues() {
            for c in q.consumer_infos() {
                let conn = conns.get(&c.connection_id);
                if conn
                    .is_some_and(|e| !caller.is_monitor() && !caller.may_login(api, &e.meta.vhost))
                {
                    continue;
                }
                out.push(ConsumerRow(
                    consumer_json(&q, &c, conn.map(|e| &**e)),
                    q.vhost.clone(),
                ));
            }
        }
    }
    out
}

pub(crate) async fn consumers(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let vhosts = caller.visible_vhosts(&api);
    let q = ListQuery::in_given_order(&params);
    respond(consumer_rows(&api, &caller, &vhosts), &q)
}

pub(crate) async fn vhost_consumers(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_vhost_visible(&api, &vhost)?;
    let v = api.vhost(&vhost)?;
    let q = ListQuery::in_given_order(&params);
    respond(consumer_rows(&api, &caller, &[v]), &q)
}

//! `/api/policies` and `/api/operator-policies`. Policies: administrators,
//! and policymakers in their vhosts; operator policies: administrators
//! only (RabbitMQ's `rabbit_mgmt_wm_operator_policies`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use warren_broker::definitions::PolicyDef;

use super::auth::Caller;
use super::body::{Fields, JsonBody};
use super::error::{ApiError, ApiResult};
use super::Api;

fn policy_json(p: &PolicyDef) -> Value {
    json!({
        "vhost": p.vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to,
        "definition": p.definition,
        "priority": p.priority,
    })
}

/// Policies or operator policies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policy,
    Operator,
}

/// RabbitMQ's `is_authorized_policies` (operator policies: admins).
fn require(api: &Api, caller: &Caller, vhost: Option<&str>, kind: Kind) -> ApiResult<()> {
    let ok = caller.is_admin()
        || (kind == Kind::Policy
            && caller.is_policymaker()
            && vhost.is_none_or(|v| api.broker.vhost(v).is_none() || caller.may_login(api, v)));
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_authorised(
            "User not authorised to access object",
        ))
    }
}

fn stored(api: &Api, vhost: Option<&str>, kind: Kind) -> Vec<PolicyDef> {
    match kind {
        Kind::Policy => api.admin.policies(vhost),
        Kind::Operator => api.admin.operator_policies(vhost),
    }
}

fn listing(api: &Api, caller: &Caller, vhost: Option<&str>, kind: Kind) -> Json<Value> {
    let visible: Vec<String> = caller
        .visible_vhosts(api)
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let mut ps: Vec<PolicyDef> = stored(api, vhost, kind)
        .into_iter()
        .filter(|p| caller.is_admin() || visible.contains(&p.vhost))
        .collect();
    ps.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Json(Value::Array(ps.iter().map(policy_json).collect()))
}

/// Any management user may list the policies of the vhosts it sees.
pub(crate) async fn list(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(listing(&api, &caller, None, Kind::Policy))
}

pub(crate) async fn list_operator(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    require(&api, &caller, None, Kind::Operator)?;
    Ok(listing(&api, &caller, None, Kind::Operator))
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    list_vhost_of(&api, &caller, &vhost, Kind::Policy)
}

pub(crate) async fn list_vhost_operator(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    list_vhost_of(&api, &caller, &vhost, Kind::Operator)
}

fn list_vhost_of(api: &Api, caller: &Caller, vhost: &str, kind: Kind) -> ApiResult<Json<Value>> {
    require(api, caller, Some(vhost), kind)?;
    api.vhost(vhost)?;
    Ok(listing(api, caller, Some(vhost), kind))
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    show_of(&api, &caller, &vhost, &name, Kind::Policy)
}

pub(crate) async fn show_operator(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    show_of(&api, &caller, &vhost, &name, Kind::Operator)
}

fn show_of(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    name: &str,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    require(api, caller, Some(vhost), kind)?;
    api.vhost(vhost)?;
    let p = stored(api, Some(vhost), kind)
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(policy_json(&p)))
}

pub(crate) async fn put(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    put_of(&api, &caller, vhost, name, body, Kind::Policy)
}

pub(crate) async fn put_operator(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    put_of(&api, &caller, vhost, name, body, Kind::Operator)
}

fn put_of(
    api: &Api,
    caller: &Caller,
    vhost: String,
    name: String,
    body: serde_json::Map<String, Value>,
    kind: Kind,
) -> ApiResult<StatusCode> {
    require(api, caller, Some(&vhost), kind)?;
    api.vhost(&vhost)?;
    let pattern = body.required_str("pattern")?;
    let definition = body
        .get("definition")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("[{key_missing,definition}]"))?;
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("priority must be an integer"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_request("priority must be an integer"))?,
        Some(_) => return Err(ApiError::bad_request("priority must be an integer")),
    };
    let existed = stored(api, Some(&vhost), kind)
        .iter()
        .any(|p| p.name == name);
    caller.admin(api).set_policy(PolicyDef {
        vhost,
        name,
        pattern,
        apply_to: body.str_field("apply-to")?.unwrap_or_else(|| "all".into()),
        definition,
        priority,
        operator: kind == Kind::Operator,
    })?;
    Ok(super::put_status(existed))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove_of(&api, &caller, &vhost, &name, Kind::Policy)
}

pub(crate) async fn remove_operator(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove_of(&api, &caller, &vhost, &name, Kind::Operator)
}

fn remove_of(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    name: &str,
    kind: Kind,
) -> ApiResult<StatusCode> {
    require(api, caller, Some(vhost), kind)?;
    api.vhost(vhost)?;
    let cleared = match kind {
        Kind::Policy => caller.admin(api).clear_policy(vhost, name)?,
        Kind::Operator => caller.admin(api).clear_operator_policy(vhost, name)?,
    };
    if !cleared {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

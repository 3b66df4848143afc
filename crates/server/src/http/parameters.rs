//! `/api/parameters`, `/api/global-parameters`, `/api/user-limits`,
//! `/api/vhost-limits` and `PUT /api/cluster-name`, as RabbitMQ 3.10
//! answers them (shapes, status codes and permission rules measured on
//! 3.10.8):
//!
//! - parameters and global parameters: policymakers and administrators
//!   (others: 401 "User not authorised to access object"), a
//!   policymaker in the vhosts it has permissions in; a PUT answers 201
//!   when it created, 204 when it replaced; a component Warren does not
//!   have is refused with RabbitMQ's "component … not found";
//! - user limits: any management user reads them; vhost limits: as the
//!   vhosts the user sees; setting or clearing either, and the cluster
//!   name: administrators ("Not administrator user"); those PUTs and
//!   DELETEs answer 204, a DELETE of a limit not set too.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use warren_broker::admin::AdminError;
use warren_broker::definitions::{GlobalParameterDef, ParameterDef};

use super::auth::Caller;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::Api;

fn object_denied() -> ApiError {
    ApiError::not_authorised("User not authorised to access object")
}

/// Writing a parameter: as [`require_policymaker`]; operator policies (in
/// parameter form) are for administrators only, as through
/// `/api/operator-policies`.
fn require_writer(api: &Api, caller: &Caller, vhost: &str, component: &str) -> ApiResult<()> {
    if component == "operator_policy" && !caller.is_admin() {
        return Err(object_denied());
    }
    require_policymaker(api, caller, Some(vhost))
}

/// RabbitMQ's `is_authorized_policies`: policymakers, in their vhosts.
fn require_policymaker(api: &Api, caller: &Caller, vhost: Option<&str>) -> ApiResult<()> {
    let ok = caller.is_admin()
        || (caller.is_policymaker()
            && vhost.is_none_or(|v| api.broker.vhost(v).is_none() || caller.may_login(api, v)));
    if ok {
        Ok(())
    } else {
        Err(object_denied())
    }
}

fn parameter_json(p: &ParameterDef) -> Value {
    json!({"value": p.value, "vhost": p.vhost, "component": p.component, "name": p.name})
}

/// The body's `value`, or RabbitMQ's 400.
fn value_of(body: &Map<String, Value>) -> ApiResult<Value> {
    body.get("value")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))
}

fn listing(
    api: &Api,
    caller: &Caller,
    vhost: Option<&str>,
    component: Option<&str>,
) -> Json<Value> {
    let rows: Vec<Value> = api
        .admin
        .parameters(vhost, component)
        .iter()
        .filter(|p| caller.is_admin() || caller.may_login(api, &p.vhost))
        .map(parameter_json)
        .collect();
    Json(Value::Array(rows))
}

pub(crate) async fn list(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, None)?;
    Ok(listing(&api, &caller, None, None))
}

pub(crate) async fn list_component(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(component): Path<String>,
) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, None)?;
    Ok(listing(&api, &caller, None, Some(&component)))
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((component, vhost)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, Some(&vhost))?;
    api.vhost(&vhost)?;
    Ok(listing(&api, &caller, Some(&vhost), Some(&component)))
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, Some(&vhost))?;
    api.vhost(&vhost)?;
    let p = api
        .admin
        .parameters(Some(&vhost), Some(&component))
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(parameter_json(&p)))
}

pub(crate) async fn put(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    require_writer(&api, &caller, &vhost, &component)?;
    api.target_vhost(&vhost)?;
    let value = value_of(&body)?;
    let existed = api
        .admin
        .parameters(Some(&vhost), Some(&component))
        .iter()
        .any(|p| p.name == name);
    caller.admin(&api).set_parameter(ParameterDef {
        vhost,
        component,
        name,
        value,
    })?;
    Ok(super::put_status(existed))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    require_writer(&api, &caller, &vhost, &component)?;
    api.vhost(&vhost)?;
    match caller
        .admin(&api)
        .clear_parameter(&vhost, &component, &name)
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(AdminError::NoSuchParameter { .. }) => Err(ApiError::not_found()),
        Err(e) => Err(e.into()),
    }
}

// ---- global parameters ---------------------------------------------------

fn global_json(g: &GlobalParameterDef) -> Value {
    json!({"name": g.name, "value": g.value})
}

pub(crate) async fn list_global(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, None)?;
    let rows: Vec<Value> = api
        .admin
        .global_parameters()
        .iter()
        .map(global_json)
        .collect();
    Ok(Json(Value::Array(rows)))
}

pub(crate) async fn show_global(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_policymaker(&api, &caller, None)?;
    let g = api
        .admin
        .global_parameters()
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({"value": g.value, "name": g.name})))
}

pub(crate) async fn put_global(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    require_policymaker(&api, &caller, None)?;
    let value = value_of(&body)?;
    let existed = api.admin.global_parameters().iter().any(|g| g.name == name);
    caller
        .admin(&api)
        .set_global_parameter(GlobalParameterDef { name, value })?;
    Ok(super::put_status(existed))
}

pub(crate) async fn remove_global(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_policymaker(&api, &caller, None)?;
    match caller.admin(&api).clear_global_parameter(&name) {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(AdminError::NoSuchParameter { .. }) => Err(ApiError::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `PUT /api/cluster-name` `{"name": ...}`: administrators.
pub(crate) async fn put_cluster_name(
    State(api): State<Arc<Api>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let name = match body.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
        None => return Err(ApiError::bad_request("[{key_missing,name}]")),
    };
    caller.admin(&api).set_cluster_name(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- limits ------------------------------------------------------------------

fn limit_rows(key: &str, rows: Vec<(String, Map<String, Value>)>) -> Json<Value> {
    Json(Value::Array(
        rows.into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(who, l)| json!({key: who, "value": l}))
            .collect(),
    ))
}

/// Any management user reads every user's limits (RabbitMQ 3.10 does).
pub(crate) async fn user_limits(
    State(api): State<Arc<Api>>,
    _caller: Caller,
) -> ApiResult<Json<Value>> {
    Ok(limit_rows("user", api.admin.user_limits(None)?))
}

pub(crate) async fn user_limits_of(
    State(api): State<Arc<Api>>,
    _caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(limit_rows("user", api.admin.user_limits(Some(&user))?))
}

/// RabbitMQ's 400 for a limit of a user that does not exist: the reason
/// is the Erlang term `{no_such_user, Name}` as a JSON list.
fn no_such_user(user: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "bad_request", "reason": ["no_such_user", user]})),
    )
        .into_response()
}

/// `{"max-connections": N}` from a PUT's `{"value": N}`.
fn one_limit(name: &str, body: &Map<String, Value>) -> ApiResult<Value> {
    let value = value_of(body)?;
    Ok(json!({ name: value }))
}

pub(crate) async fn put_user_limit(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let limit = one_limit(&name, &body)?;
    match caller.admin(&api).set_user_limits(&user, &limit) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(AdminError::NoSuchUser { .. }) => Ok(no_such_user(&user)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn remove_user_limit(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    match caller.admin(&api).clear_user_limits(&user, &name) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(AdminError::NoSuchUser { .. }) => Ok(no_such_user(&user)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn vhost_limits(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let visible: Vec<String> = caller
        .visible_vhosts(&api)
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let rows = api
        .admin
        .vhost_limits(None)?
        .into_iter()
        .filter(|(v, _)| visible.contains(v))
        .collect();
    Ok(limit_rows("vhost", rows))
}

pub(crate) async fn vhost_limits_of(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_vhost_visible(&api, &vhost)?;
    api.vhost(&vhost)?;
    Ok(limit_rows("vhost", api.admin.vhost_limits(Some(&vhost))?))
}

pub(crate) async fn put_vhost_limit(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    api.vhost(&vhost)?;
    let limit = one_limit(&name, &body)?;
    caller.admin(&api).set_vhost_limits(&vhost, &limit)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn remove_vhost_limit(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    api.vhost(&vhost)?;
    caller.admin(&api).clear_vhost_limits(&vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

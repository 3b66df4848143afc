//! `/api/users`, `/api/permissions`, `/api/topic-permissions`: accounts
//! and what they may do. Administrators only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use warren_broker::admin::info::{PermissionInfo, TopicPermissionInfo, UserInfo};
use warren_broker::admin::users::Credentials;
use warren_broker::admin::AdminError;

use super::auth::Caller;
use super::body::{Fields, JsonBody};
use super::error::{ApiError, ApiResult};
use super::Api;

fn user_json(u: &UserInfo) -> Value {
    json!({
        "name": u.user,
        "password_hash": u.password_hash,
        "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags,
        "limits": {},
    })
}

fn permission_json(p: &PermissionInfo) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write,
        "read": p.read})
}

fn topic_json(p: &TopicPermissionInfo) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write,
        "read": p.read})
}

fn sorted_users(api: &Api) -> Vec<UserInfo> {
    let mut users = api.admin.users();
    users.sort_by(|a, b| a.user.cmp(&b.user));
    users
}

pub(crate) async fn list(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(Value::Array(
        sorted_users(&api).iter().map(user_json).collect(),
    )))
}

pub(crate) async fn without_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let perms = api.admin.permissions(None, None)?;
    let out: Vec<Value> = sorted_users(&api)
        .iter()
        .filter(|u| !perms.iter().any(|p| p.user == u.user))
        .map(user_json)
        .collect();
    Ok(Json(Value::Array(out)))
}

pub(crate) async fn bulk_delete(
    State(api): State<Arc<Api>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let Some(Value::Array(users)) = body.get("users") else {
        return Err(ApiError::bad_request("[{key_missing,users}]"));
    };
    for u in users {
        if let Some(name) = u.as_str() {
            match caller.admin(&api).delete_user(name) {
                Ok(()) | Err(AdminError::NoSuchUser { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(user_json(&api.admin.user(&name)?)))
}

pub(crate) async fn put(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if !body.contains_key("tags") {
        return Err(ApiError::bad_request("tags_not_present"));
    }
    let tags = body.tags_field("tags")?;
    let credentials = match (
        body.str_field("password")?,
        body.str_field("password_hash")?,
    ) {
        (Some(p), _) => Some(Credentials::Password(p)),
        (None, Some(h)) if h.is_empty() => Some(Credentials::None),
        (None, Some(h)) => Some(Credentials::Hash {
            hash: h,
            algorithm: body
                .str_field("hashing_algorithm")?
                .unwrap_or_else(|| "rabbit_password_hashing_sha256".into()),
        }),
        (None, None) => None,
    };
    // Neither: a new user gets no password (it can't log in with PLAIN),
    // an existing one keeps its own.
    let created = caller.admin(&api).put_user(&name, credentials, tags)?;
    Ok(super::put_status(!created))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    caller.admin(&api).delete_user(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

fn permission_list(api: &Api, vhost: Option<&str>, user: Option<&str>) -> ApiResult<Json<Value>> {
    let mut ps = api.admin.permissions(vhost, user)?;
    ps.sort_by(|a, b| (&a.vhost, &a.user).cmp(&(&b.vhost, &b.user)));
    Ok(Json(Value::Array(ps.iter().map(permission_json).collect())))
}

fn topic_list(api: &Api, vhost: Option<&str>, user: Option<&str>) -> ApiResult<Json<Value>> {
    let mut ps = api.admin.topic_permissions(vhost, user)?;
    ps.sort_by(|a, b| (&a.vhost, &a.user, &a.exchange).cmp(&(&b.vhost, &b.user, &b.exchange)));
    Ok(Json(Value::Array(ps.iter().map(topic_json).collect())))
}

pub(crate) async fn permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    permission_list(&api, None, None)
}

pub(crate) async fn user_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    permission_list(&api, None, Some(&user))
}

pub(crate) async fn vhost_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    permission_list(&api, Some(&vhost), None)
}

pub(crate) async fn permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let p = api
        .admin
        .permissions(Some(&vhost), Some(&user))?
        .into_iter()
        .next()
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&p)))
}

pub(crate) async fn set_permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let configure = body.required_str("configure")?;
    let write = body.required_str("write")?;
    let read = body.required_str("read")?;
    let existed = api.broker.auth.permission(&vhost, &user).is_some();
    caller
        .admin(&api)
        .set_permissions(&vhost, &user, &configure, &write, &read)
        .map_err(missing_as_bad_request)?;
    Ok(super::put_status(existed))
}

/// Setting a permission for a missing user or vhost is a bad request in
/// RabbitMQ, not a 404.
fn missing_as_bad_request(e: AdminError) -> ApiError {
    match e {
        AdminError::NoSuchUser { .. } | AdminError::NoSuchVhost { .. } => {
            ApiError::bad_request("vhost_or_user_not_found")
        }
        other => other.into(),
    }
}

pub(crate) async fn clear_permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if api.broker.auth.permission(&vhost, &user).is_none() {
        return Err(ApiError::not_found());
    }
    caller.admin(&api).clear_permissions(&vhost, &user)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn topic_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    topic_list(&api, None, None)
}

pub(crate) async fn user_topic_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    topic_list(&api, None, Some(&user))
}

pub(crate) async fn vhost_topic_permissions(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    topic_list(&api, Some(&vhost), None)
}

pub(crate) async fn topic_permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let list = api.admin.topic_permissions(Some(&vhost), Some(&user))?;
    if list.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(list.iter().map(topic_json).collect())))
}

pub(crate) async fn set_topic_permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let exchange = body.required_str("exchange")?;
    let write = body.required_str("write")?;
    let read = body.required_str("read")?;
    let existed = api
        .admin
        .topic_permissions(Some(&vhost), Some(&user))
        .map(|l| l.iter().any(|t| t.exchange == exchange))
        .unwrap_or(false);
    caller
        .admin(&api)
        .set_topic_permissions(&vhost, &user, &exchange, &write, &read)
        .map_err(missing_as_bad_request)?;
    Ok(super::put_status(existed))
}

pub(crate) async fn clear_topic_permission(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if api
        .admin
        .topic_permissions(Some(&vhost), Some(&user))?
        .is_empty()
    {
        return Err(ApiError::not_found());
    }
    caller
        .admin(&api)
        .clear_topic_permissions(&vhost, &user, None)?;
    Ok(StatusCode::NO_CONTENT)
}

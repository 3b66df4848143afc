//! `/api/policies`: stored policies (what they apply is the policy
//! engine's business). Administrators, and policymakers in their vhosts.

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

/// RabbitMQ's `is_authorized_policies`.
fn require_policies(api: &Api, caller: &Caller, vhost: Option<&str>) -> ApiResult<()> {
    let ok = caller.is_admin()
        || (caller.is_policymaker()
            && vhost.is_none_or(|v| api.broker.vhost(v).is_none() || caller.may_login(api, v)));
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_authorised(
            "User not authorised to access object",
        ))
    }
}

fn listing(api: &Api, caller: &Caller, vhost: Option<&str>) -> Json<Value> {
    let visible: Vec<String> = caller
        .visible_vhosts(api)
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let mut ps: Vec<PolicyDef> = api
        .admin
        .policies(vhost)
        .into_iter()
        .filter(|p| caller.is_admin() || visible.contains(&p.vhost))
        .collect();
    ps.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Json(Value::Array(ps.iter().map(policy_json).collect()))
}

/// Any management user may list the policies of the vhosts it sees.
pub(crate) async fn list(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    Ok(listing(&api, &caller, None))
}

pub(crate) async fn list_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    require_policies(&api, &caller, Some(&vhost))?;
    api.vhost(&vhost)?;
    Ok(listing(&api, &caller, Some(&vhost)))
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require_policies(&api, &caller, Some(&vhost))?;
    api.vhost(&vhost)?;
    let p = api
        .admin
        .policies(Some(&vhost))
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
    require_policies(&api, &caller, Some(&vhost))?;
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
    let existed = api
        .admin
        .policies(Some(&vhost))
        .iter()
        .any(|p| p.name == name);
    api.admin.set_policy(PolicyDef {
        vhost,
        name,
        pattern,
        apply_to: body.str_field("apply-to")?.unwrap_or_else(|| "all".into()),
        definition,
        priority,
        operator: false,
    })?;
    Ok(super::put_status(existed))
}

pub(crate) async fn remove(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_policies(&api, &caller, Some(&vhost))?;
    api.vhost(&vhost)?;
    if !api.admin.clear_policy(&vhost, &name)? {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

//! `/api/definitions`: RabbitMQ's JSON definitions, exported and imported
//! through the admin layer (the same code as `warrenctl
//! export_definitions` / `import_definitions`). Administrators only.
//!
//! An import answers 204 when everything was imported (RabbitMQ's
//! answer), 200 `{"skipped": [...]}` when items Warren does not support
//! were left out, and with `?strict=true` 400 `{"error": "bad_request",
//! "reason": ..., "skipped": [...]}` (nothing imported) instead.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use warren_broker::admin::definitions::ImportReport;
use warren_broker::admin::AdminError;

use super::auth::Caller;
use super::body::read_limited;
use super::error::{ApiError, ApiResult};
use super::{Api, Params};

/// RabbitMQ 3.10's HTTP export is leaner than its `rabbitmqctl
/// export_definitions` (which the admin layer produces): vhosts by name
/// only, queues without `type`; a vhost's export has only its
/// `parameters`, `policies`, `queues`, `exchanges` and `bindings`, the
/// last three without `vhost`.
fn http_format(mut defs: Value, scoped: bool) -> Value {
    if scoped {
        if let Value::Object(m) = &mut defs {
            const KEEP: [&str; 6] = [
                "rabbit_version",
                "parameters",
                "policies",
                "queues",
                "exchanges",
                "bindings",
            ];
            m.retain(|k, _| KEEP.contains(&k.as_str()));
            for key in ["queues", "exchanges", "bindings"] {
                if let Some(Value::Array(items)) = m.get_mut(key) {
                    for i in items.iter_mut() {
                        if let Value::Object(o) = i {
                            o.remove("vhost");
                        }
                    }
                }
            }
        }
    }
    if let Some(Value::Array(vhosts)) = defs.get_mut("vhosts") {
        for v in vhosts.iter_mut() {
            if let Value::Object(m) = v {
                m.retain(|k, _| k == "name");
            }
        }
    }
    // The HTTP export always says whether an exchange is internal.
    if let Some(Value::Array(exchanges)) = defs.get_mut("exchanges") {
        for x in exchanges.iter_mut() {
            if let Value::Object(m) = x {
                m.entry("internal").or_insert(Value::Bool(false));
            }
        }
    }
    if let Some(Value::Array(queues)) = defs.get_mut("queues") {
        for q in queues.iter_mut() {
            if let Value::Object(m) = q {
                m.remove("type");
            }
        }
    }
    defs
}

fn export_response(defs: Value, scoped: bool, params: &Params) -> Response {
    let file = "definitions.json";
    let mut resp = Json(http_format(defs, scoped)).into_response();
    // `?download=<file>` asks for an attachment, as the UI's export does.
    if params.contains_key("download") {
        let name = params
            .get("download")
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != '"'))
            .map_or(file, |n| n.as_str());
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={name}")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

pub(crate) async fn export(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let defs = api.admin.export_definitions(None)?;
    Ok(export_response(defs, false, &params))
}

pub(crate) async fn export_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_admin()?;
    // RabbitMQ 3.10 answers 400 here (and 404 to the import).
    if api.broker.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    let defs = api.admin.export_definitions(Some(&vhost))?;
    Ok(export_response(defs, true, &params))
}

/// The definitions of an import: a JSON body, or (as the web UI's file
/// upload sends them) a multipart form with the file in any field.
async fn import_body(api: &Arc<Api>, req: Request) -> ApiResult<Value> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let bytes = if content_type.starts_with("multipart/form-data") {
        // Held for the whole upload: the form is buffered like any body.
        let kib = u32::try_from(api.max_body.div_ceil(1024)).unwrap_or(u32::MAX);
        let _permit = api
            .body_budget
            .acquire_many(kib)
            .await
            .map_err(|_| ApiError::service_unavailable("shutting down"))?;
        let mut form = Multipart::from_request(req, api)
            .await
            .map_err(|_| ApiError::bad_request("failed_to_parse_json"))?;
        let mut file = None;
        while let Ok(Some(field)) = form.next_field().await {
            let data = field
                .bytes()
                .await
                .map_err(|_| ApiError::bad_request("Exceeded HTTP request body size limit"))?;
            file.get_or_insert(data);
        }
        file.ok_or_else(|| ApiError::bad_request("failed_to_parse_json"))?
    } else if content_type.starts_with("application/json") {
        read_limited(req, api).await?
    } else {
        return Err(ApiError::unsupported_media_type());
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request("failed_to_parse_json")),
    }
}

/// A definitions file that can't be applied is a bad request, whatever
/// failed inside (a missing vhost included), as RabbitMQ answers.
fn import_error(e: AdminError) -> Response {
    match e {
        AdminError::Storage { .. } => ApiError::from(e).into_response(),
        // A strict import refused: RabbitMQ's error shape, plus the items.
        AdminError::ImportRefused { message, skipped } => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad_request", "reason": message, "skipped": skipped})),
        )
            .into_response(),
        other => ApiError::bad_request(other.to_string()).into_response(),
    }
}

/// `?strict=true` refuses a file with anything Warren would leave out.
fn strict(params: &Params) -> bool {
    params
        .get("strict")
        .is_some_and(|v| matches!(v.as_str(), "true" | "1" | ""))
}

/// The answer to an import: 204 as RabbitMQ's when everything was
/// imported; 200 with `{"skipped": [...]}` when something was left out
/// (each item: kind, name, vhost, component, reason, action).
fn import_answer(r: Result<ImportReport, AdminError>) -> Response {
    match r {
        Ok(report) if report.skipped.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(report) => (StatusCode::OK, Json(json!({"skipped": report.skipped}))).into_response(),
        Err(e) => import_error(e),
    }
}

pub(crate) async fn import(
    State(api): State<Arc<Api>>,
    caller: Caller,
    params: Params,
    req: Request,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let defs = import_body(&api, req).await?;
    Ok(import_answer(caller.admin(&api).import_definitions(
        &defs,
        None,
        strict(&params),
    )))
}

pub(crate) async fn import_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
    req: Request,
) -> ApiResult<Response> {
    caller.require_admin()?;
    api.target_vhost(&vhost)?;
    let defs = import_body(&api, req).await?;
    Ok(import_answer(caller.admin(&api).import_definitions(
        &defs,
        Some(&vhost),
        strict(&params),
    )))
}

//! `/api/definitions`: RabbitMQ's JSON definitions, exported and imported
//! through the admin layer (the same code as `warrenctl
//! export_definitions` / `import_definitions`). Administrators only.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::auth::Caller;
use super::body::{parse_object, read_limited};
use super::error::ApiResult;
use super::{Api, Params};

fn export_response(defs: Value, params: &Params, file: &str) -> Response {
    let mut resp = Json(defs).into_response();
    // `?download=<file>` asks for an attachment, as the UI's export does.
    if params.contains_key("download") {
        let name = params
            .get("download")
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != '"'))
            .map_or(file, |n| n.as_str());
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
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
    Ok(export_response(defs, &params, "definitions.json"))
}

pub(crate) async fn export_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    caller.require_admin()?;
    api.vhost(&vhost)?;
    let defs = api.admin.export_definitions(Some(&vhost))?;
    Ok(export_response(defs, &params, "definitions.json"))
}

async fn import_body(api: &Api, req: Request) -> ApiResult<Value> {
    let bytes = read_limited(req, api).await?;
    Ok(Value::Object(parse_object(&bytes)?))
}

pub(crate) async fn import(
    State(api): State<Arc<Api>>,
    caller: Caller,
    req: Request,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let defs = import_body(&api, req).await?;
    api.admin.import_definitions(&defs, None)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn import_vhost(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(vhost): Path<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    api.vhost(&vhost)?;
    let defs = import_body(&api, req).await?;
    api.admin.import_definitions(&defs, Some(&vhost))?;
    Ok(StatusCode::NO_CONTENT)
}

//! Request bodies: JSON objects read within a size limit, a shared
//! memory budget and a deadline, with RabbitMQ's error texts for what
//! isn't JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::Api;

/// The most bytes all requests together may hold in buffered bodies at
/// once; requests beyond it wait for their turn. With the per-request
/// limit this bounds the API's memory whatever clients send.
pub(crate) const BODY_BUDGET: usize = 64 << 20;

/// How long a request may take to get its share of the budget and send
/// its body: a client that sends slowly (or not at all) can't hold its
/// share, and the requests queued behind it, for longer.
pub(crate) const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body that is a JSON object (an empty body, or `null`, is an
/// empty object, as RabbitMQ takes them).
pub(crate) struct JsonBody(pub Map<String, Value>);

impl FromRequest<Arc<Api>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, api: &Arc<Api>) -> ApiResult<JsonBody> {
        let bytes = read_limited(req, api).await?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Reads a body of at most the configured limit, holding a share of the
/// budget while it is buffered; 408 if that takes longer than
/// [`BODY_TIMEOUT`].
pub(crate) async fn read_limited(req: Request, api: &Api) -> ApiResult<bytes::Bytes> {
    tokio::time::timeout(BODY_TIMEOUT, read_within_budget(req, api))
        .await
        .unwrap_or_else(|_| Err(ApiError::request_timeout()))
}

async fn read_within_budget(req: Request, api: &Api) -> ApiResult<bytes::Bytes> {
    let limit = api.max_body;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let reserve = declared.unwrap_or(limit).clamp(1, limit);
    // Permits are KiB of the budget.
    let kib = u32::try_from(reserve.div_ceil(1024)).unwrap_or(u32::MAX);
    let _permit = api
        .body_budget
        .acquire_many(kib)
        .await
        .map_err(|_| ApiError::service_unavailable("shutting down"))?;
    let body: Body = req.into_body();
    axum::body::to_bytes(body, reserve)
        .await
        .map_err(|_| too_big())
}

fn too_big() -> ApiError {
    ApiError::bad_request("Exceeded HTTP request body size limit")
}

/// RabbitMQ's `decode/1`.
pub(crate) fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    let text = bytes.trim_ascii();
    if text.is_empty() || text == b"null" || text == b"undefined" {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::String(_)) => Err(ApiError::bad_request(
            "invalid payload: the request body JSON-decoded to a string. \
             Is the input doubly-JSON-encoded?",
        )),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// Typed access to a JSON body's fields, with RabbitMQ-like errors.
pub(crate) trait Fields {
    fn str_field(&self, key: &str) -> ApiResult<Option<String>>;
    fn bool_field(&self, key: &str) -> ApiResult<Option<bool>>;
    fn required_str(&self, key: &str) -> ApiResult<String>;
    /// Tags as a comma-separated string or a list (RabbitMQ takes both),
    /// trimmed, without empties or repeats.
    fn tags_field(&self, key: &str) -> ApiResult<Vec<String>>;
}

impl Fields for Map<String, Value> {
    fn str_field(&self, key: &str) -> ApiResult<Option<String>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::bad_request(format!(
                "field '{key}' must be a string"
            ))),
        }
    }

    fn bool_field(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(ApiError::bad_request(format!(
                "field '{key}' must be a boolean"
            ))),
        }
    }

    fn required_str(&self, key: &str) -> ApiResult<String> {
        self.str_field(key)?
            .ok_or_else(|| ApiError::bad_request(format!("[{{key_missing,{key}}}]")))
    }

    fn tags_field(&self, key: &str) -> ApiResult<Vec<String>> {
        let mut tags: Vec<String> = match self.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| ApiError::bad_request("tags must be strings"))
                })
                .collect::<ApiResult<_>>()?,
            Some(_) => return Err(ApiError::bad_request("tags must be a string or a list")),
        };
        tags.retain(|t| !t.is_empty());
        let mut seen = std::collections::HashSet::new();
        tags.retain(|t| seen.insert(t.clone()));
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_as_rabbitmq() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b" null ").unwrap().is_empty());
        assert_eq!(parse_object(b"{\"a\":1}").unwrap()["a"], 1);
        assert_eq!(parse_object(b"{not json").unwrap_err().reason, "not_json");
        assert_eq!(parse_object(b"[1]").unwrap_err().reason, "not_json");
        assert!(parse_object(b"\"{}\"")
            .unwrap_err()
            .reason
            .contains("doubly-JSON-encoded"));
    }
}

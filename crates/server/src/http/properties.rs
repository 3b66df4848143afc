//! Message properties as JSON, both ways, as RabbitMQ's publish and get
//! endpoints write them.

use serde_json::{Map, Value};
use warren_broker::admin::json::{json_to_table, table_to_json};
use warren_protocol::{BasicProperties, ShortStr};

use super::error::{ApiError, ApiResult};

/// The properties that are set, as a JSON object (RabbitMQ writes `[]`
/// when none are: an empty Erlang proplist).
pub(crate) fn to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut text = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.into(), v.as_str().into_owned().into());
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(v) = p.delivery_mode {
        m.insert("delivery_mode".into(), v.into());
    }
    if let Some(v) = p.priority {
        m.insert("priority".into(), v.into());
    }
    if let Some(v) = p.timestamp {
        m.insert("timestamp".into(), v.into());
    }
    if let Some(h) = &p.headers {
        m.insert("headers".into(), table_to_json(h));
    }
    if m.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(m)
    }
}

fn short(key: &str, v: &Value) -> ApiResult<ShortStr> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "property '{key}' must be a string"
            )))
        }
    };
    if s.len() > ShortStr::MAX_LEN {
        return Err(ApiError::bad_request(format!(
            "property '{key}' is longer than 255 bytes"
        )));
    }
    Ok(ShortStr::from(s))
}

fn small_int(key: &str, v: &Value) -> ApiResult<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request(format!("property '{key}' must be a number")))
}

/// Properties from a publish request's `properties` object.
pub(crate) fn from_json(v: Option<&Value>) -> ApiResult<BasicProperties> {
    let mut p = BasicProperties::default();
    let m = match v {
        None | Some(Value::Null) => return Ok(p),
        Some(Value::Object(m)) => m,
        Some(Value::Array(a)) if a.is_empty() => return Ok(p),
        Some(_) => return Err(ApiError::bad_request("properties must be an object")),
    };
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "content_type" => p.content_type = Some(short(k, v)?),
            "content_encoding" => p.content_encoding = Some(short(k, v)?),
            "correlation_id" => p.correlation_id = Some(short(k, v)?),
            "reply_to" => p.reply_to = Some(short(k, v)?),
            "expiration" => p.expiration = Some(short(k, v)?),
            "message_id" => p.message_id = Some(short(k, v)?),
            "type" => p.kind = Some(short(k, v)?),
            "user_id" => p.user_id = Some(short(k, v)?),
            "app_id" => p.app_id = Some(short(k, v)?),
            "cluster_id" => p.cluster_id = Some(short(k, v)?),
            "delivery_mode" => {
                let n = small_int(k, v)?;
                p.delivery_mode = Some(
                    u8::try_from(n)
                        .map_err(|_| ApiError::bad_request("delivery_mode must be 1 or 2"))?,
                );
            }
            "priority" => {
                let n = small_int(k, v)?;
                p.priority = Some(
                    u8::try_from(n).map_err(|_| ApiError::bad_request("priority must be 0-255"))?,
                );
            }
            "timestamp" => p.timestamp = Some(small_int(k, v)?),
            "headers" => {
                // Deeper tables than the codec accepts could never be read
                // back from the store or by a client.
                if depth(v) > warren_protocol::wire::MAX_TABLE_DEPTH {
                    return Err(ApiError::bad_request("headers are nested too deeply"));
                }
                p.headers =
                    Some(json_to_table(v).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown message property '{other}'"
                )))
            }
        }
    }
    Ok(p)
}

/// How deeply objects and arrays nest in `v`.
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn properties_round_trip() {
        let v = json!({
            "content_type": "text/plain", "delivery_mode": 2, "priority": 3,
            "correlation_id": "c-1", "reply_to": "r", "expiration": "60000",
            "message_id": "m", "timestamp": 1700000000, "type": "t", "app_id": "a",
            "headers": {"x": 1, "nested": {"y": "z"}, "list": [1, "two"]},
        });
        let p = from_json(Some(&v)).unwrap();
        assert_eq!(to_json(&p), v);
        assert_eq!(to_json(&BasicProperties::default()), json!([]));
        assert!(from_json(Some(&json!({"delivery_mode": "x"}))).is_err());
        assert!(from_json(Some(&json!({"bogus": 1}))).is_err());
        assert!(from_json(Some(&json!({"message_id": "m".repeat(256)}))).is_err());
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        assert!(from_json(Some(&json!({ "headers": deep }))).is_err());
    }
}

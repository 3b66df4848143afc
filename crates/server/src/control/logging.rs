//! `rotate_logs` (the log file, now) and `set_log_level LEVEL` (every
//! output, at once; RabbitMQ's level names).

use serde_json::{json, Value};
use tracing::info;
use warren_broker::admin::AdminError;
use warren_broker::connections::node_name;

use super::failure;

/// `{"op": "rotate_logs"}`, `{"op": "set_log_level", "level": "debug"}`
/// (or `"args": ["debug"]`).
pub(super) fn handle(op: &str, raw: &Value) -> Value {
    match op {
        "rotate_logs" => match crate::logging::rotate() {
            Ok(Some(path)) => {
                info!(
                    "log file {} rotated (warrenctl rotate_logs)",
                    path.display()
                );
                json!({"ok": true, "result": {"file": path.display().to_string()}, "node": node_name()})
            }
            Ok(None) => json!({"ok": true, "result": {"file": null}, "node": node_name()}),
            Err(e) => failure(AdminError::invalid(e)),
        },
        _ => {
            let level = raw
                .get("level")
                .and_then(Value::as_str)
                .or_else(|| {
                    raw.get("args")
                        .and_then(|a| a.get(0))
                        .and_then(Value::as_str)
                })
                .unwrap_or("");
            let spec = match crate::logging::parse_level(level) {
                Ok(s) => s,
                Err(e) => return failure(AdminError::invalid(e)),
            };
            match crate::logging::set_level(&spec) {
                Ok(()) => {
                    // Said at the new level's reach: warning shows under
                    // every level but error, critical and none.
                    tracing::warn!("log level set to {spec} (warrenctl set_log_level)");
                    json!({"ok": true, "result": {"level": spec.to_string()}, "node": node_name()})
                }
                Err(e) => failure(AdminError::invalid(e)),
            }
        }
    }
}

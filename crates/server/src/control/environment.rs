//! `environment`: every effective setting, its RabbitMQ key, and where its
//! value came from (flag, environment, config file and line, default);
//! secrets masked. `warrenctl environment` prints it.

use serde_json::{json, Value};
use warren_broker::connections::node_name;

use super::Control;

pub(super) fn environment(control: &Control) -> Value {
    let cfg = &control.cfg;
    json!({
        "ok": true,
        "node": node_name(),
        "result": {
            "settings": cfg.effective,
            "ignored_keys": cfg.ignored_keys,
            "log_lines_dropped": crate::logging::dropped(),
        },
    })
}

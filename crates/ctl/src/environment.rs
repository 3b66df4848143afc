//! `environment`: the broker's effective configuration, each setting with
//! its RabbitMQ key and where its value came from (flag, environment,
//! config file and line, default); and the logging commands `rotate_logs`
//! and `set_log_level`.

use serde_json::{json, Value};

use crate::commands::{error, Ctx};
use crate::output::println_safe;
use crate::{Failure, EX_DATAERR};

/// Warren's own layout (rabbitmqctl prints Erlang terms): one setting a
/// line, `name  value  (source)`; `--formatter json` gives the JSON.
pub(crate) fn environment(c: &Ctx) -> Result<(), Failure> {
    let r = c.call(json!({"op": "environment"}), |_| None)?;
    if c.line.options.json {
        println_safe(&r.to_string());
        return Ok(());
    }
    c.out.info(&format!(
        "Application environment of node {} ...",
        c.client.node()
    ));
    let rows: Vec<&Value> = r["settings"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let width = rows
        .iter()
        .filter_map(|row| row["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for row in rows {
        let key = row["rabbitmq_key"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{:<width$}  {}  ({}{})\n",
            row["name"].as_str().unwrap_or(""),
            row["value"].as_str().unwrap_or(""),
            row["source"].as_str().unwrap_or(""),
            if key.is_empty() {
                String::new()
            } else {
                format!("; rabbitmq.conf: {key}")
            },
        ));
    }
    if let Some(ignored) = r["ignored_keys"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\nConfiguration keys Warren does not act on:\n");
        for k in ignored.iter().filter_map(Value::as_str) {
            out.push_str(&format!("  {k}\n"));
        }
    }
    if let Some(n) = r["log_lines_dropped"].as_u64().filter(|n| *n > 0) {
        out.push_str(&format!(
            "\nLog lines dropped (the log file writer fell behind): {n}\n"
        ));
    }
    println_safe(out.trim_end());
    Ok(())
}

pub(crate) fn rotate_logs(c: &Ctx) -> Result<(), Failure> {
    let r = c.call(json!({"op": "rotate_logs"}), |_| None)?;
    c.out
        .info(&format!("Rotating logs for node {} ...", c.client.node()));
    if r["file"].is_null() {
        c.out.info("(no log file is configured: nothing to rotate)");
    }
    Ok(())
}

pub(crate) fn set_log_level(c: &Ctx) -> Result<(), Failure> {
    let level = c.arg(0);
    if !warren_config::LOG_LEVELS.contains(&level) {
        return Err(error(
            EX_DATAERR,
            format!("level {level} is not supported. Try one of debug, info, warning, error, critical, none"),
        ));
    }
    c.call(json!({"op": "set_log_level", "level": level}), |_| None)?;
    c.out.info(&format!("Setting log level to \"{level}\" ..."));
    Ok(())
}

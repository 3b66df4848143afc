//! `set_vhost_limits`, `clear_vhost_limits`, `list_vhost_limits`,
//! `set_user_limits`, `clear_user_limits`, `list_user_limits`, with
//! rabbitmqctl 3.10's banners, output and exit codes (measured).

use serde_json::{json, Value};

use crate::client::Refusal;
use crate::commands::{error, Ctx};
use crate::{Failure, EX_DATAERR, EX_UNAVAILABLE};

fn refusal(r: &Refusal) -> Option<Failure> {
    match r.kind.as_str() {
        "no_such_vhost" => Some(Failure::new(EX_DATAERR, r.message.clone())),
        "no_such_user" | "invalid" => Some(error(EX_UNAVAILABLE, &r.message)),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|_| error(EX_UNAVAILABLE, "JSON decoding error. Reason: badarg"))
}

/// Compact JSON with sorted keys, as rabbitmqctl prints limits.
fn compact(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(m)) => {
            let sorted: std::collections::BTreeMap<&String, &Value> = m.iter().collect();
            serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".into())
        }
        _ => "{}".into(),
    }
}

pub fn set_vhost_limits(c: &Ctx) -> Result<(), Failure> {
    let (def, vhost) = (c.arg(0), c.line.vhost());
    c.out.info(&format!(
        "Setting vhost limits to \"{def}\" for vhost \"{vhost}\" ..."
    ));
    let limits = parse(def)?;
    c.call(
        json!({"op": "set_vhost_limits", "vhost": vhost, "limits": limits}),
        refusal,
    )?;
    Ok(())
}

pub fn clear_vhost_limits(c: &Ctx) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    c.out
        .info(&format!("Clearing vhost \"{vhost}\" limits ..."));
    c.call(
        json!({"op": "clear_vhost_limits", "vhost": vhost, "which": "all"}),
        refusal,
    )?;
    Ok(())
}

pub fn list_vhost_limits(c: &Ctx) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    let global = c.line.flag("--global");
    if global {
        c.out.info("Listing limits for all vhosts ...");
    } else {
        c.out
            .info(&format!("Listing limits for vhost \"{vhost}\" ..."));
    }
    let rows = c.rows(
        json!({"op": "list_vhost_limits", "vhost": vhost, "global": global}),
        refusal,
    )?;
    if global {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| json!({"vhost": r["vhost"], "limits": compact(r.get("limits"))}))
            .collect();
        let cols = vec!["vhost".to_string(), "limits".to_string()];
        c.out
            .table(&cols, &rows, true, &|_, v| crate::output::cell(v));
    } else {
        // No limits: an empty line, as rabbitmqctl (user limits print {}).
        let limits = rows.first().and_then(|r| r.get("limits"));
        let none = limits
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        crate::output::println_safe(&if none { String::new() } else { compact(limits) });
    }
    Ok(())
}

pub fn set_user_limits(c: &Ctx) -> Result<(), Failure> {
    let (user, def) = (c.arg(0), c.arg(1));
    c.out.info(&format!(
        "Setting user limits to \"{def}\" for user \"{user}\" ..."
    ));
    let limits = parse(def)?;
    c.call(
        json!({"op": "set_user_limits", "user": user, "limits": limits}),
        refusal,
    )?;
    Ok(())
}

pub fn clear_user_limits(c: &Ctx) -> Result<(), Failure> {
    let (user, which) = (c.arg(0), c.arg(1));
    if which == "all" {
        c.out
            .info(&format!("Clearing all limits for user \"{user}\" ..."));
    } else {
        c.out.info(&format!(
            "Clearing \"{which}\" limit for user \"{user}\" ..."
        ));
    }
    c.call(
        json!({"op": "clear_user_limits", "user": user, "which": which}),
        refusal,
    )?;
    Ok(())
}

pub fn list_user_limits(c: &Ctx) -> Result<(), Failure> {
    let user = c.line.flag_value("--user");
    let rows = c.rows(json!({"op": "list_user_limits", "user": user}), refusal)?;
    if let Some(u) = user {
        c.out.info(&format!("Listing limits for user \"{u}\" ..."));
    }
    for r in &rows {
        if user.is_none() {
            c.out.info(&format!(
                "Listing limits for user \"{}\" ...",
                r["user"].as_str().unwrap_or("")
            ));
        }
        crate::output::println_safe(&compact(r.get("limits")));
    }
    Ok(())
}

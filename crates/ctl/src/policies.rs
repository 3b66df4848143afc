//! `set_policy`, `clear_policy`, `list_policies` and their operator
//! policy twins, with rabbitmqctl 3.10's banners, columns and errors
//! (`tools/probe-policies-3.10.8.txt`).

use serde_json::{json, Map, Value};

use crate::client::Refusal;
use crate::commands::{error, Ctx};
use crate::output::cell;
use crate::{Failure, EX_DATAERR, EX_UNAVAILABLE, EX_USAGE};

/// Policies or operator policies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Policy,
    Operator,
}

fn refusal(r: &Refusal) -> Option<Failure> {
    match r.kind.as_str() {
        "no_such_vhost" => Some(Failure::new(EX_DATAERR, r.message.clone())),
        "no_such_policy" => Some(error(EX_UNAVAILABLE, "Parameter does not exist")),
        "invalid" => Some(error(EX_UNAVAILABLE, &r.message)),
        _ => None,
    }
}

fn set(c: &Ctx, kind: Kind) -> Result<(), Failure> {
    let (name, pattern, definition) = (c.arg(0), c.arg(1), c.arg(2));
    let vhost = c.line.vhost();
    let priority = match c.line.flag_value("--priority") {
        None => 0,
        Some(p) => p
            .parse::<i64>()
            .map_err(|_| error(EX_USAGE, format!("Invalid value for --priority: {p}")))?,
    };
    let apply_to = c.line.flag_value("--apply-to").unwrap_or("all");
    let what = match kind {
        Kind::Policy => "policy",
        Kind::Operator => "operator policy override",
    };
    c.out.info(&format!(
        "Setting {what} \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" for vhost \"{vhost}\" ..."
    ));
    let parsed: Value = serde_json::from_str(definition)
        .map_err(|_| error(EX_UNAVAILABLE, "JSON decoding error. Reason: badarg"))?;
    c.call(
        json!({"op": "set_policy", "vhost": vhost, "name": name, "pattern": pattern,
               "definition": parsed, "priority": priority, "apply_to": apply_to,
               "operator": kind == Kind::Operator}),
        refusal,
    )?;
    Ok(())
}

fn clear(c: &Ctx, kind: Kind) -> Result<(), Failure> {
    let (name, vhost) = (c.arg(0), c.line.vhost());
    let what = match kind {
        Kind::Policy => "policy",
        Kind::Operator => "operator policy",
    };
    c.out.info(&format!(
        "Clearing {what} \"{name}\" on vhost \"{vhost}\" ..."
    ));
    c.call(
        json!({"op": "clear_policy", "vhost": vhost, "name": name,
               "operator": kind == Kind::Operator}),
        refusal,
    )?;
    Ok(())
}

fn list(c: &Ctx, kind: Kind) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    let what = match kind {
        Kind::Policy => "policies",
        Kind::Operator => "operator policy overrides",
    };
    c.out
        .info(&format!("Listing {what} for vhost \"{vhost}\" ..."));
    let rows = c.rows(
        json!({"op": "list_policies", "vhost": vhost, "operator": kind == Kind::Operator}),
        refusal,
    )?;
    // rabbitmqctl's columns; the definition as compact JSON.
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut m = Map::new();
            for (col, key) in [
                ("vhost", "vhost"),
                ("name", "name"),
                ("pattern", "pattern"),
                ("apply-to", "apply_to"),
                ("definition", "definition"),
                ("priority", "priority"),
            ] {
                let v = r.get(key).cloned().unwrap_or(Value::Null);
                let v = if key == "definition" && !c.out.json {
                    Value::String(v.to_string())
                } else {
                    v
                };
                m.insert(col.to_string(), v);
            }
            Value::Object(m)
        })
        .collect();
    let columns: Vec<String> = [
        "vhost",
        "name",
        "pattern",
        "apply-to",
        "definition",
        "priority",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    c.out.table(&columns, &rows, true, &|_, v| cell(v));
    Ok(())
}

pub fn set_policy(c: &Ctx) -> Result<(), Failure> {
    set(c, Kind::Policy)
}

pub fn clear_policy(c: &Ctx) -> Result<(), Failure> {
    clear(c, Kind::Policy)
}

pub fn list_policies(c: &Ctx) -> Result<(), Failure> {
    list(c, Kind::Policy)
}

pub fn set_operator_policy(c: &Ctx) -> Result<(), Failure> {
    set(c, Kind::Operator)
}

pub fn clear_operator_policy(c: &Ctx) -> Result<(), Failure> {
    clear(c, Kind::Operator)
}

pub fn list_operator_policies(c: &Ctx) -> Result<(), Failure> {
    list(c, Kind::Operator)
}

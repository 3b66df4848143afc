//! `set_parameter`, `clear_parameter`, `list_parameters`,
//! `set_global_parameter`, `clear_global_parameter`,
//! `list_global_parameters`, `set_cluster_name`, with rabbitmqctl 3.10's
//! banners, output and exit codes (measured on 3.10.8): a component no
//! plugin provides, a bad JSON value and a parameter that does not exist
//! exit 69 with RabbitMQ's texts; a vhost that does not exist exits 65.

use serde_json::{json, Value};

use crate::client::Refusal;
use crate::commands::{error, Ctx};
use crate::{Failure, EX_DATAERR, EX_UNAVAILABLE};

fn refusal(r: &Refusal) -> Option<Failure> {
    match r.kind.as_str() {
        "no_such_vhost" => Some(Failure::new(EX_DATAERR, r.message.clone())),
        "invalid" | "no_such_parameter" => Some(error(EX_UNAVAILABLE, &r.message)),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|_| error(EX_UNAVAILABLE, "JSON decoding error. Reason: badarg"))
}

/// Rows with the value as compact JSON text, as rabbitmqctl shows it
/// (a string in `--formatter json` too).
fn with_json_values(rows: Vec<Value>, keys: &[&str]) -> Vec<Value> {
    rows.into_iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for k in keys {
                m.insert((*k).into(), r[*k].clone());
            }
            m.insert("value".into(), Value::String(r["value"].to_string()));
            Value::Object(m)
        })
        .collect()
}

pub fn set_parameter(c: &Ctx) -> Result<(), Failure> {
    let (component, name, value, vhost) = (c.arg(0), c.arg(1), c.arg(2), c.line.vhost());
    c.out.info(&format!(
        "Setting runtime parameter \"{name}\" for component \"{component}\" to \"{value}\" in vhost \"{vhost}\" ..."
    ));
    let value = parse(value)?;
    c.call(
        json!({"op": "set_parameter", "vhost": vhost, "component": component,
               "name": name, "value": value}),
        refusal,
    )?;
    Ok(())
}

pub fn clear_parameter(c: &Ctx) -> Result<(), Failure> {
    let (component, name, vhost) = (c.arg(0), c.arg(1), c.line.vhost());
    c.out.info(&format!(
        "Clearing runtime parameter \"{name}\" for component \"{component}\" on vhost \"{vhost}\" ..."
    ));
    c.call(
        json!({"op": "clear_parameter", "vhost": vhost, "component": component, "name": name}),
        refusal,
    )?;
    Ok(())
}

pub fn list_parameters(c: &Ctx) -> Result<(), Failure> {
    let vhost = c.line.vhost();
    c.out.info(&format!(
        "Listing runtime parameters for vhost \"{vhost}\" ..."
    ));
    let rows = c.rows(json!({"op": "list_parameters", "vhost": vhost}), refusal)?;
    let rows = with_json_values(rows, &["component", "name"]);
    let cols = ["component", "name", "value"].map(String::from);
    c.out
        .table(&cols, &rows, true, &|_, v| crate::output::cell(v));
    Ok(())
}

pub fn set_global_parameter(c: &Ctx) -> Result<(), Failure> {
    let (name, value) = (c.arg(0), c.arg(1));
    c.out.info(&format!(
        "Setting global runtime parameter \"{name}\" to \"{value}\" ..."
    ));
    let value = parse(value)?;
    c.call(
        json!({"op": "set_global_parameter", "name": name, "value": value}),
        refusal,
    )?;
    Ok(())
}

pub fn clear_global_parameter(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    c.out
        .info(&format!("Clearing global runtime parameter \"{name}\" ..."));
    c.call(
        json!({"op": "clear_global_parameter", "name": name}),
        refusal,
    )?;
    Ok(())
}

pub fn list_global_parameters(c: &Ctx) -> Result<(), Failure> {
    c.out.info("Listing global runtime parameters ...");
    let rows = c.rows(json!({"op": "list_global_parameters"}), refusal)?;
    let rows = with_json_values(rows, &["name"]);
    let cols = ["name", "value"].map(String::from);
    c.out
        .table(&cols, &rows, true, &|_, v| crate::output::cell(v));
    Ok(())
}

pub fn set_cluster_name(c: &Ctx) -> Result<(), Failure> {
    let name = c.arg(0);
    c.out.info(&format!("Setting cluster name to {name} ..."));
    c.call(json!({"op": "set_cluster_name", "name": name}), refusal)?;
    Ok(())
}

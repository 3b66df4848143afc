//! Definitions in RabbitMQ's JSON format (`rabbitmqctl export_definitions`,
//! `GET /api/definitions`): users (with their password hashes), vhosts,
//! permissions, topic permissions, parameters, global parameters,
//! policies, queues, exchanges and bindings.
//!
//! Export reflects the live broker as RabbitMQ's does: non-durable queues
//! and exchanges included, exclusive queues and the predeclared `amq.*`
//! exchanges left out. Import applies every section through the same
//! operations the CLI uses (each journaled), in dependency order; an
//! existing object is updated where RabbitMQ would, and an object that
//! conflicts (a queue redeclared with other arguments) fails the import
//! with the declare's error.
//!
//! What Warren does not do (shovels, federation, mirroring, streams…) is
//! never imported as if it worked: [`report`] leaves it out and reports
//! it; a strict import refuses the whole file instead, before anything
//! changed.

pub mod report;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use warren_protocol::ShortStr;

pub use report::{ImportReport, Skipped};

use super::json::{json_to_table, table_to_json};
use super::parameters::operator_policy_parameter;
use super::users::Credentials;
use super::{Admin, AdminError, AdminResult};
use crate::definitions::{GlobalParameterDef, ParameterDef, PolicyDef, VhostDef};
use crate::vhost::{ExchangeSpec, QueueSpec};

/// Which RabbitMQ format version Warren's export corresponds to.
pub const RABBIT_VERSION: &str = "3.10.8";

/// Tags as RabbitMQ writes them: a list, or (before 3.9) a comma list.
fn tags_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: &Value, key: &str) -> AdminResult<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            AdminError::invalid(format!(
                "definitions: '{key}' missing or not a string in {v}"
            ))
        })
}

fn text_or(v: &Value, key: &str, default: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn section<'a>(d: &'a Value, key: &str) -> AdminResult<&'a [Value]> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(AdminError::invalid(format!(
            "definitions: '{key}' must be a list, not {other}"
        ))),
    }
}

/// Only objects of this vhost, when importing into one vhost.
/// Whether an item belongs to a vhost-scoped import: items of a
/// vhost-scoped file carry no vhost and go to the target; items naming
/// another vhost are left out.
fn in_scope(item: &Value, only: Option<&str>) -> bool {
    only.is_none_or(|v| {
        item.get("vhost")
            .and_then(Value::as_str)
            .is_none_or(|x| x == v)
    })
}

#[derive(Debug, Deserialize)]
struct PolicyJson {
    vhost: String,
    name: String,
    pattern: String,
    #[serde(rename = "apply-to", default = "all")]
    apply_to: String,
    definition: Value,
    #[serde(default)]
    priority: i64,
}

fn all() -> String {
    "all".into()
}

impl Admin {
    /// The broker's definitions (or one vhost's), as RabbitMQ exports them.
    pub fn export_definitions(&self, only: Option<&str>) -> AdminResult<Value> {
        if let Some(v) = only {
            self.vhost(v)?;
        }
        let mine = |v: &str| only.is_none_or(|o| o == v);
        let rt = self.broker.runtime.read();
        let vhost_limits = |name: &str| -> Value {
            rt.parameters
                .get(&(name.to_string(), "vhost-limits".into(), "limits".into()))
                .and_then(|p| p.value.as_object())
                .map(|m| Value::Array(m.iter().map(|(k, v)| json!([k, v])).collect()))
                .unwrap_or_else(|| json!([]))
        };
        let users: Vec<Value> = self
            .broker
            .auth
            .users()
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "password_hash": u.password_hash,
                    "hashing_algorithm": u.hashing.rabbit_name(),
                    "tags": u.tags,
                    "limits": u.limits,
                })
            })
            .collect();
        let vhosts: Vec<Value> = self
            .broker
            .vhosts()
            .iter()
            .filter(|v| mine(&v.name))
            .map(|v| {
                let m = v.meta();
                json!({
                    "name": v.name,
                    "limits": vhost_limits(&v.name),
                    "metadata": {"description": m.description, "tags": m.tags},
                })
            })
            .collect();
        let permissions: Vec<Value> = self
            .permissions(only, None)?
            .into_iter()
            .map(|p| json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}))
            .collect();
        let topic_permissions: Vec<Value> = self
            .topic_permissions(only, None)?
            .into_iter()
            .map(|t| json!({"user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read}))
            .collect();
        // Operator policies go out as RabbitMQ exports them: parameters of
        // the component `operator_policy`.
        let parameters: Vec<Value> = rt
            .parameters
            .values()
            .cloned()
            .chain(
                rt.policies
                    .values()
                    .filter(|p| p.operator)
                    .cloned()
                    .map(operator_policy_parameter),
            )
            .filter(|p| mine(&p.vhost))
            .map(|p| json!({"vhost": p.vhost, "component": p.component, "name": p.name, "value": p.value}))
            .collect();
        let global_parameters: Vec<Value> = rt
            .global_parameters
            .values()
            .map(|g| json!({"name": g.name, "value": g.value}))
            .collect();
        let policies: Vec<Value> = rt
            .policies
            .values()
            .filter(|p| !p.operator && mine(&p.vhost))
            .map(|p| json!({"vhost": p.vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to, "definition": p.definition, "priority": p.priority}))
            .collect();
        drop(rt);
        let mut queues = Vec::new();
        let mut exchanges = Vec::new();
        let mut bindings = Vec::new();
        for v in self.broker.vhosts().iter().filter(|v| mine(&v.name)) {
            for q in v.queues().iter().filter(|q| !q.options.exclusive) {
                queues.push(json!({
                    "name": q.name.to_string(), "vhost": v.name, "durable": q.options.durable,
                    "auto_delete": q.options.auto_delete, "arguments": table_to_json(&q.options.arguments),
                    "type": q.kind().as_str(),
                }));
            }
            for x in v
                .exchanges()
                .iter()
                .filter(|x| !x.is_default() && !x.name.starts_with("amq."))
            {
                let mut e = json!({
                    "name": x.name.to_string(), "vhost": v.name, "type": x.kind.as_str(), "durable": x.durable,
                    "auto_delete": x.auto_delete, "arguments": table_to_json(&x.arguments),
                });
                // RabbitMQ's export leaves `internal` out; keep it where it
                // matters so internal exchanges round-trip.
                if x.internal {
                    e["internal"] = true.into();
                }
                exchanges.push(e);
            }
            for x in v.exchanges().iter().filter(|x| !x.is_default()) {
                for b in x.bindings() {
                    let exclusive = matches!(&b.destination, crate::routing::Destination::Queue(q) if q.options.exclusive);
                    if exclusive {
                        continue;
                    }
                    bindings.push(json!({
                        "source": x.name.to_string(), "vhost": v.name,
                        "destination": b.destination.name().to_string(),
                        "destination_type": b.destination.kind_str(),
                        "routing_key": b.routing_key.to_string(),
                        "arguments": table_to_json(&b.arguments),
                    }));
                }
            }
        }
        let mut out = Map::new();
        out.insert("rabbit_version".into(), RABBIT_VERSION.into());
        out.insert("rabbitmq_version".into(), RABBIT_VERSION.into());
        out.insert("product_name".into(), "Warren".into());
        out.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
        if only.is_none() {
            out.insert("users".into(), users.into());
            out.insert("vhosts".into(), vhosts.into());
            out.insert("permissions".into(), permissions.into());
            out.insert("topic_permissions".into(), topic_permissions.into());
            out.insert("global_parameters".into(), global_parameters.into());
        }
        out.insert("parameters".into(), parameters.into());
        out.insert("policies".into(), policies.into());
        out.insert("queues".into(), queues.into());
        out.insert("exchanges".into(), exchanges.into());
        out.insert("bindings".into(), bindings.into());
        Ok(Value::Object(out))
    }

    /// Imports RabbitMQ-format definitions (all of them, or only the
    /// objects of vhost `only`, as `POST /api/definitions/{vhost}`).
    ///
    /// What Warren does not do is left out and reported (each item logged
    /// as a warning); with `strict`, a file with anything to report is
    /// refused whole (`ImportRefused`, carrying the report) before
    /// anything changed.
    pub fn import_definitions(
        &self,
        d: &Value,
        only: Option<&str>,
        strict: bool,
    ) -> AdminResult<ImportReport> {
        if !d.is_object() {
            return Err(AdminError::invalid("definitions must be a JSON object"));
        }
        let (clean, skipped) = report::sanitize(d, only);
        if !strict || skipped.is_empty() {
            super::audit::log(
                &self.actor,
                &match only {
                    Some(v) => format!("Importing definitions into vhost '{v}'"),
                    None => "Importing definitions".to_string(),
                },
            );
        }
        if strict && !skipped.is_empty() {
            let mut message = format!(
                "definitions refused (strict import): {} item(s) Warren does not support; nothing was imported",
                skipped.len()
            );
            for s in &skipped {
                message.push_str("\n  ");
                message.push_str(&s.line());
            }
            tracing::warn!("{message}");
            return Err(AdminError::ImportRefused { message, skipped });
        }
        for s in &skipped {
            tracing::warn!("definitions import: {}", s.line());
        }
        self.apply_definitions(&clean, only)?;
        Ok(ImportReport { skipped })
    }

    fn apply_definitions(&self, d: &Value, only: Option<&str>) -> AdminResult<()> {
        if only.is_none() {
            for u in section(d, "users")? {
                self.import_user(u)?;
            }
            for v in section(d, "vhosts")? {
                let m = v.get("metadata").cloned().unwrap_or(Value::Null);
                self.add_vhost(VhostDef {
                    name: text(v, "name")?,
                    description: text_or(&m, "description", ""),
                    tags: tags_of(m.get("tags")),
                    default_queue_type: m
                        .get("default_queue_type")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })?;
            }
            for p in section(d, "permissions")? {
                self.set_permissions(
                    &text(p, "vhost")?,
                    &text(p, "user")?,
                    &text(p, "configure")?,
                    &text(p, "write")?,
                    &text(p, "read")?,
                )?;
            }
            for t in section(d, "topic_permissions")? {
                self.set_topic_permissions(
                    &text(t, "vhost")?,
                    &text(t, "user")?,
                    &text(t, "exchange")?,
                    &text(t, "write")?,
                    &text(t, "read")?,
                )?;
            }
            for g in section(d, "global_parameters")? {
                self.set_global_parameter(GlobalParameterDef {
                    name: text(g, "name")?,
                    value: g.get("value").cloned().unwrap_or(Value::Null),
                })?;
            }
        }
        let vhost_of = |item: &Value| -> String {
            only.map(str::to_string)
                .unwrap_or_else(|| text_or(item, "vhost", "/"))
        };
        for p in section(d, "parameters")?
            .iter()
            .filter(|p| in_scope(p, only))
        {
            let (component, name) = (text(p, "component")?, text(p, "name")?);
            let vhost = vhost_of(p);
            let at = format!(" ({vhost}/{component}/{name})");
            self.set_parameter(ParameterDef {
                vhost,
                component,
                name,
                value: p.get("value").cloned().unwrap_or(Value::Null),
            })
            .map_err(|e| match e {
                AdminError::Invalid { message } => AdminError::invalid(format!("{message}{at}")),
                other => other,
            })?;
        }
        for p in section(d, "policies")?.iter().filter(|p| in_scope(p, only)) {
            let mut pj: PolicyJson = serde_json::from_value(p.clone())
                .map_err(|e| AdminError::invalid(format!("definitions: bad policy {p}: {e}")))?;
            pj.vhost = vhost_of(p);
            self.set_policy(PolicyDef {
                vhost: pj.vhost,
                name: pj.name,
                pattern: pj.pattern,
                apply_to: pj.apply_to,
                definition: pj.definition,
                priority: pj.priority,
                operator: false,
            })?;
        }
        for x in section(d, "exchanges")?
            .iter()
            .filter(|x| in_scope(x, only))
        {
            let vhost = self.vhost(&vhost_of(x))?;
            vhost.declare_exchange(&ExchangeSpec {
                name: ShortStr::from(text(x, "name")?.as_str()),
                kind: ShortStr::from(text_or(x, "type", "direct").as_str()),
                passive: false,
                durable: flag(x, "durable", true),
                auto_delete: flag(x, "auto_delete", false),
                internal: flag(x, "internal", false),
                arguments: json_to_table(x.get("arguments").unwrap_or(&Value::Null))?,
            })?;
        }
        for q in section(d, "queues")?.iter().filter(|q| in_scope(q, only)) {
            let vhost = self.vhost(&vhost_of(q))?;
            vhost.declare_queue(
                &QueueSpec {
                    name: ShortStr::from(text(q, "name")?.as_str()),
                    server_named: false,
                    passive: false,
                    durable: flag(q, "durable", true),
                    exclusive: false,
                    auto_delete: flag(q, "auto_delete", false),
                    arguments: json_to_table(q.get("arguments").unwrap_or(&Value::Null))?,
                },
                0,
            )?;
        }
        for b in section(d, "bindings")?.iter().filter(|b| in_scope(b, only)) {
            let vhost = self.vhost(&vhost_of(b))?;
            let is_queue = text_or(b, "destination_type", "queue") == "queue";
            vhost.bind(
                &ShortStr::from(text(b, "source")?.as_str()),
                &ShortStr::from(text(b, "destination")?.as_str()),
                is_queue,
                ShortStr::from(text_or(b, "routing_key", "").as_str()),
                json_to_table(b.get("arguments").unwrap_or(&Value::Null))?,
                0,
            )?;
        }
        Ok(())
    }

    fn import_user(&self, u: &Value) -> AdminResult<()> {
        let name = text(u, "name")?;
        let credentials = match (
            u.get("password_hash").and_then(Value::as_str),
            u.get("password").and_then(Value::as_str),
        ) {
            (Some(hash), _) => Credentials::Hash {
                hash: hash.to_string(),
                algorithm: text_or(u, "hashing_algorithm", ""),
            },
            (None, Some(p)) => Credentials::Password(p.to_string()),
            (None, None) => Credentials::None,
        };
        // User limits as RabbitMQ exports them (`{"max-connections": 10}`),
        // validated before the user is touched; present, they replace the
        // user's limits.
        let limits = match u.get("limits") {
            None | Some(Value::Null) => None,
            Some(l) => Some(
                crate::limits::validate(l, crate::limits::Kind::User)
                    .map_err(|e| AdminError::invalid(format!("user '{name}': {e}")))?,
            ),
        };
        self.put_user(&name, Some(credentials), tags_of(u.get("tags")))?;
        if let Some(l) = limits {
            let current = self.user_limits(Some(&name))?;
            if current.first().map(|(_, m)| m) != Some(&l) {
                self.clear_user_limits(&name, "all")?;
                if !l.is_empty() {
                    self.set_user_limits(&name, &Value::Object(l))?;
                }
            }
        }
        Ok(())
    }
}

//! What a definitions import leaves out, and why: no silent migration
//! traps. A RabbitMQ export can carry things Warren does not do (shovels,
//! federation, classic mirroring, streams, plugins' exchange types and
//! parameters); importing them as if they worked would leave an operator
//! believing they run. Before anything is applied, [`sanitize`] walks the
//! file and returns a copy without them plus one [`Skipped`] per item left
//! out or changed; the import applies the copy (or, strict, refuses the
//! whole file when the report is not empty).
//!
//! Per kind (see docs/migration.md):
//! - parameters of components `shovel`, `federation-upstream`,
//!   `federation-upstream-set` and any component Warren does not know:
//!   skipped (`vhost-limits`, `policy` and `operator_policy` are applied);
//! - policies: `ha-*` (classic mirroring), `federation-upstream[-set]` and
//!   the stream-only keys (`max-age`, `stream-max-segment-size-bytes`)
//!   are removed and the rest imported; a policy left empty is skipped;
//! - queues of a type Warren refuses (`stream`, anything not classic or
//!   quorum): skipped, with the bindings to them;
//! - exchanges of a type Warren does not have: skipped, with their
//!   bindings;
//! - global parameters of RabbitMQ plugins Warren does not have
//!   (`mqtt_port_to_vhost_mapping`, `mqtt_default_vhosts`): skipped.
//!   Other global parameters are stored as RabbitMQ stores them (it acts
//!   on none but `cluster_name`, which Warren applies too).
//!
//! Left as they are, because Warren behaves as RabbitMQ does for them:
//! `queue-mode`/`x-queue-mode: lazy` (Warren's queues keep their backlog
//! on disk and page it in), `queue-master-locator`/`queue-leader-locator`
//! (one node: placement has one answer), `queue-version`, and the quorum
//! keys (`delivery-limit`, `max-in-memory-*`).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::exchange::ExchangeKind;

/// One item of a definitions file Warren did not import as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Skipped {
    /// `policy`, `operator_policy`, `queue`, `exchange`, `binding`,
    /// `global_parameter`, or a parameter's component (`shovel`,
    /// `federation-upstream`, `federation-upstream-set`; `parameter` for a
    /// component Warren does not know).
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
    /// A parameter's component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub reason: String,
    /// `skipped`, or `imported without <keys>` for a policy whose other
    /// keys were imported.
    pub action: String,
}

impl Skipped {
    /// One line for the log and the CLI.
    pub fn line(&self) -> String {
        let mut s = format!("{} '{}'", self.kind, self.name);
        if let Some(c) = &self.component {
            if *c != self.kind {
                s.push_str(&format!(" (component '{c}')"));
            }
        }
        if let Some(v) = &self.vhost {
            s.push_str(&format!(" in vhost '{v}'"));
        }
        format!("{s}: {}: {}", self.action, self.reason)
    }
}

/// What an import reports: the items left out or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub skipped: Vec<Skipped>,
}

pub(crate) const SHOVELS: &str = "shovels are not supported by Warren yet";
pub(crate) const FEDERATION: &str = "federation is not supported by Warren yet";
pub(crate) const STREAMS: &str = "streams are not supported by Warren yet";
pub(crate) const MIRRORING: &str =
    "classic queue mirroring (ha-* keys) is not supported by Warren; \
     quorum queues are the replacement";

/// Policy keys of RabbitMQ features Warren does not have, with the reason.
pub(crate) fn unsupported_policy_key(key: &str) -> Option<&'static str> {
    match key {
        k if k.starts_with("ha-") => Some(MIRRORING),
        "federation-upstream" | "federation-upstream-set" => Some(FEDERATION),
        "max-age" | "stream-max-segment-size-bytes" => Some(STREAMS),
        _ => None,
    }
}

/// Parameter components Warren applies (the rest are refused).
pub(crate) const KNOWN_COMPONENTS: &[&str] = &["vhost-limits", "policy", "operator_policy"];

/// Why a parameter of `component` is not imported (`None`: it is).
pub(crate) fn component_refusal(component: &str) -> Option<(String, String)> {
    if KNOWN_COMPONENTS.contains(&component) {
        return None;
    }
    Some(match component {
        "shovel" => (component.into(), SHOVELS.into()),
        "federation-upstream" | "federation-upstream-set" => (component.into(), FEDERATION.into()),
        other => (
            "parameter".into(),
            format!("component '{other}' belongs to a RabbitMQ plugin Warren does not have"),
        ),
    })
}

/// Global parameters of RabbitMQ plugins Warren does not have.
fn global_refusal(name: &str) -> Option<&'static str> {
    match name {
        "mqtt_port_to_vhost_mapping" | "mqtt_default_vhosts" => Some(
            "the MQTT plugin's port-to-vhost and certificate-to-vhost mappings are not supported \
             by Warren (it serves MQTT in one vhost, the mqtt.vhost setting)",
        ),
        _ => None,
    }
}

/// Whether Warren declares queues of this type (`None`: classic).
fn queue_type_refusal(kind: &str) -> Option<String> {
    match kind {
        "classic" | "quorum" => None,
        "stream" => Some(STREAMS.into()),
        other => Some(format!("queue type '{other}' is not supported by Warren")),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The vhost an item goes to.
fn vhost_of(item: &Value, only: Option<&str>) -> String {
    only.map(str::to_string)
        .unwrap_or_else(|| s(item, "vhost").unwrap_or("/").to_string())
}

fn skipped(kind: &str, name: &str, vhost: Option<String>, reason: &str) -> Skipped {
    Skipped {
        kind: kind.into(),
        name: name.into(),
        vhost,
        component: None,
        reason: reason.into(),
        action: "skipped".into(),
    }
}

/// A queue's type as an export gives it: the `x-queue-type` argument, or
/// (rabbitmqctl's export) the `type` field.
fn queue_type(q: &Value) -> String {
    q.get("arguments")
        .and_then(|a| s(a, "x-queue-type"))
        .or_else(|| s(q, "type"))
        .unwrap_or("classic")
        .to_string()
}

/// Removes from a policy definition the keys of features Warren lacks;
/// returns the removed keys and the reasons (in order, deduplicated).
fn strip_policy(def: &mut Value) -> (Vec<String>, Vec<&'static str>) {
    let Value::Object(m) = def else {
        return (Vec::new(), Vec::new());
    };
    let mut keys = Vec::new();
    let mut reasons: Vec<&'static str> = Vec::new();
    m.retain(|k, _| match unsupported_policy_key(k) {
        Some(r) => {
            keys.push(k.clone());
            if !reasons.contains(&r) {
                reasons.push(r);
            }
            false
        }
        None => true,
    });
    (keys, reasons)
}

/// A policy-shaped item (a policy, or an `operator_policy`/`policy`
/// parameter's value) stripped; `None` if nothing of it is left.
fn policy_item(
    kind: &str,
    name: &str,
    vhost: String,
    def: &mut Value,
    out: &mut Vec<Skipped>,
) -> bool {
    let (keys, reasons) = strip_policy(def);
    if keys.is_empty() {
        return true;
    }
    let empty = def.as_object().is_some_and(Map::is_empty);
    out.push(Skipped {
        kind: kind.into(),
        name: name.into(),
        vhost: Some(vhost),
        component: None,
        reason: reasons.join("; "),
        action: if empty {
            "skipped".into()
        } else {
            format!("imported without {}", keys.join(", "))
        },
    });
    !empty
}

/// Whether `item` is part of a vhost-scoped import (see `in_scope` in
/// the parent module).
fn in_scope(item: &Value, only: Option<&str>) -> bool {
    only.is_none_or(|v| s(item, "vhost").is_none_or(|x| x == v))
}

/// The definitions without what Warren does not do, and the report.
/// Items of a shape the import can't read are left for it to refuse with
/// its error.
pub(crate) fn sanitize(d: &Value, only: Option<&str>) -> (Value, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut d = d.clone();
    let Some(root) = d.as_object_mut() else {
        return (d, out);
    };
    // Per section: keep the items that pass.
    let mut filter = |key: &str, keep: &mut dyn FnMut(&mut Value) -> bool| {
        if let Some(Value::Array(items)) = root.get_mut(key) {
            items.retain_mut(|i| keep(i));
        }
    };
    if only.is_none() {
        filter("global_parameters", &mut |g| {
            let Some(name) = s(g, "name") else {
                return true;
            };
            match global_refusal(name) {
                Some(r) => {
                    out.push(skipped("global_parameter", name, None, r));
                    false
                }
                None => true,
            }
        });
    }
    filter("parameters", &mut |p| {
        if !in_scope(p, only) {
            return true;
        }
        let (Some(component), Some(name)) = (s(p, "component"), s(p, "name")) else {
            return true;
        };
        let vhost = vhost_of(p, only);
        if let Some((kind, reason)) = component_refusal(component) {
            out.push(Skipped {
                component: Some(component.into()),
                ..skipped(&kind, name, Some(vhost), &reason)
            });
            return false;
        }
        if component == "operator_policy" || component == "policy" {
            let (component, name) = (component.to_string(), name.to_string());
            if let Some(def) = p.get_mut("value").and_then(|v| v.get_mut("definition")) {
                let kind = if component == "policy" {
                    "policy"
                } else {
                    "operator_policy"
                };
                return policy_item(kind, &name, vhost, def, &mut out);
            }
        }
        true
    });
    filter("policies", &mut |p| {
        if !in_scope(p, only) {
            return true;
        }
        let Some(name) = s(p, "name").map(str::to_string) else {
            return true;
        };
        let vhost = vhost_of(p, only);
        match p.get_mut("definition") {
            Some(def) => policy_item("policy", &name, vhost, def, &mut out),
            None => true,
        }
    });
    // Queues and exchanges left out, by (vhost, name), for their bindings.
    let mut gone_queues: HashSet<(String, String)> = HashSet::new();
    let mut gone_exchanges: HashSet<(String, String)> = HashSet::new();
    filter("queues", &mut |q| {
        if !in_scope(q, only) {
            return true;
        }
        let Some(name) = s(q, "name") else {
            return true;
        };
        let vhost = vhost_of(q, only);
        match queue_type_refusal(&queue_type(q)) {
            Some(r) => {
                out.push(skipped("queue", name, Some(vhost.clone()), &r));
                gone_queues.insert((vhost, name.to_string()));
                false
            }
            None => true,
        }
    });
    filter("exchanges", &mut |x| {
        if !in_scope(x, only) {
            return true;
        }
        let (Some(name), Some(kind)) = (s(x, "name"), s(x, "type")) else {
            return true;
        };
        if ExchangeKind::parse(kind.as_bytes()).is_some() {
            return true;
        }
        let vhost = vhost_of(x, only);
        out.push(skipped(
            "exchange",
            name,
            Some(vhost.clone()),
            &format!("exchange type '{kind}' is not supported by Warren (a RabbitMQ plugin's)"),
        ));
        gone_exchanges.insert((vhost, name.to_string()));
        false
    });
    filter("bindings", &mut |b| {
        if !in_scope(b, only) {
            return true;
        }
        let (Some(source), Some(dest)) = (s(b, "source"), s(b, "destination")) else {
            return true;
        };
        let vhost = vhost_of(b, only);
        let to_queue = s(b, "destination_type").unwrap_or("queue") == "queue";
        let why = if gone_exchanges.contains(&(vhost.clone(), source.to_string())) {
            Some(format!("its source exchange '{source}' was not imported"))
        } else if to_queue && gone_queues.contains(&(vhost.clone(), dest.to_string())) {
            Some(format!("its destination queue '{dest}' was not imported"))
        } else if !to_queue && gone_exchanges.contains(&(vhost.clone(), dest.to_string())) {
            Some(format!(
                "its destination exchange '{dest}' was not imported"
            ))
        } else {
            None
        };
        match why {
            Some(r) => {
                let key = s(b, "routing_key").unwrap_or("");
                let name = format!("{source} -> {dest} ({key})");
                out.push(skipped("binding", &name, Some(vhost), &r));
                false
            }
            None => true,
        }
    });
    (d, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ha_keys_are_stripped_and_an_empty_policy_skipped() {
        let d = json!({"policies": [
            {"vhost": "/", "name": "both", "pattern": ".", "definition": {"ha-mode": "all", "message-ttl": 60000}},
            {"vhost": "/", "name": "ha", "pattern": ".", "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}},
            {"vhost": "/", "name": "plain", "pattern": ".", "definition": {"max-length": 1}},
        ]});
        let (clean, report) = sanitize(&d, None);
        let names: Vec<&str> = clean["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["both", "plain"]);
        assert_eq!(
            clean["policies"][0]["definition"],
            json!({"message-ttl": 60000})
        );
        assert_eq!(report.len(), 2);
        assert_eq!(report[0].action, "imported without ha-mode");
        assert_eq!(report[1].action, "skipped");
        assert!(report[1].reason.contains("quorum queues"));
    }

    #[test]
    fn streams_and_their_bindings_are_skipped() {
        let d = json!({
            "queues": [{"vhost": "v", "name": "s", "arguments": {"x-queue-type": "stream"}},
                       {"vhost": "v", "name": "q", "arguments": {"x-queue-type": "quorum"}}],
            "exchanges": [{"vhost": "v", "name": "r", "type": "x-recent-history"}],
            "bindings": [{"vhost": "v", "source": "amq.direct", "destination": "s", "destination_type": "queue", "routing_key": "k"},
                         {"vhost": "v", "source": "amq.direct", "destination": "q", "destination_type": "queue", "routing_key": "k"},
                         {"vhost": "v", "source": "r", "destination": "q", "destination_type": "queue", "routing_key": ""}],
        });
        let (clean, report) = sanitize(&d, None);
        assert_eq!(clean["queues"].as_array().unwrap().len(), 1);
        assert_eq!(clean["exchanges"].as_array().unwrap().len(), 0);
        assert_eq!(clean["bindings"].as_array().unwrap().len(), 1);
        let kinds: Vec<&str> = report.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["queue", "exchange", "binding", "binding"]);
    }

    #[test]
    fn plugin_parameters_are_skipped_and_limits_kept() {
        let d = json!({"parameters": [
            {"vhost": "v", "component": "shovel", "name": "s", "value": {}},
            {"vhost": "v", "component": "federation-upstream-set", "name": "u", "value": [{"upstream": "x"}]},
            {"vhost": "v", "component": "mystery", "name": "m", "value": 1},
            {"vhost": "v", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 1}},
        ], "global_parameters": [{"name": "cluster_name", "value": "c"},
                                 {"name": "mqtt_port_to_vhost_mapping", "value": {}}]});
        let (clean, report) = sanitize(&d, None);
        assert_eq!(clean["parameters"].as_array().unwrap().len(), 1);
        assert_eq!(clean["global_parameters"].as_array().unwrap().len(), 1);
        let kinds: Vec<&str> = report.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "global_parameter",
                "shovel",
                "federation-upstream-set",
                "parameter"
            ]
        );
    }

    #[test]
    fn bad_shapes_are_left_for_the_import_to_refuse() {
        for d in [
            json!([]),
            json!({"policies": 3}),
            json!({"policies": [1, {"name": 2}]}),
            json!({"queues": [{"name": "q", "arguments": 5}]}),
        ] {
            let (clean, report) = sanitize(&d, None);
            assert_eq!(clean, d);
            assert!(report.is_empty());
        }
    }
}

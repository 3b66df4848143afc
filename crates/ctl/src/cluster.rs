//! `cluster_status`, as RabbitMQ 3.10 prints it, for a cluster of one:
//! Warren does not cluster yet, so the node is the only disk node and the
//! only running node, there are no partitions, and it is never under
//! maintenance.

use std::io::IsTerminal;

use serde_json::{json, Value};

use crate::commands::Ctx;
use crate::diagnostics::{alarm_lines, node};
use crate::features::rows as feature_flags;
use crate::output::println_safe;
use crate::Failure;

/// The RabbitMQ release whose interfaces Warren implements (the server's
/// `RABBITMQ_VERSION`, as the management API reports it).
pub(crate) const RABBITMQ_VERSION: &str = "3.10.8";

/// A section heading: bold on a terminal (rabbitmqctl's `bright`), plain
/// in a pipe.
fn bright(s: &str) -> String {
    if std::io::stdout().is_terminal() {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// The cluster name: the `cluster_name` global parameter where the node
/// has one, else the node's name (RabbitMQ's default).
fn cluster_name(c: &Ctx, node: &str) -> String {
    let named = c
        .client
        .request(json!({"op": "list_global_parameters"}))
        .ok()
        .and_then(|v| {
            v.as_array()?
                .iter()
                .find(|p| p["name"] == "cluster_name")
                .and_then(|p| p["value"].as_str().map(str::to_string))
        });
    named.unwrap_or_else(|| node.to_string())
}

pub(crate) fn cluster_status(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    let name = cluster_name(c, &n.name);
    let node = n.name.as_str();
    c.out.info(&format!("Cluster status of node {node} ..."));
    let flags = feature_flags();
    let versions_line = format!(
        "{node}: Warren {} (RabbitMQ {RABBITMQ_VERSION} compatible; no Erlang runtime)",
        n.version
    );
    if c.out.json {
        let alarms: Vec<Value> = n
            .alarms
            .iter()
            .map(|a| json!({"type": "resource_limit", "resource": a, "node": node}))
            .collect();
        let listeners: Vec<Value> = n.listeners.iter().map(|l| l.json(node)).collect();
        let v = json!({
            "cluster_name": name,
            "disk_nodes": [node],
            "ram_nodes": [],
            "running_nodes": [node],
            "alarms": alarms,
            "maintenance_status": {node: "not under maintenance"},
            "partitions": {},
            "listeners": {node: listeners},
            "versions": {node: {
                "rabbitmq_name": "Warren",
                "rabbitmq_version": n.version,
                "erlang_version": "none",
            }},
            "feature_flags": flags.iter().map(|f| json!({
                "name": f["name"], "desc": f["desc"], "doc_url": f["doc_url"],
                "state": f["state"], "stability": f["stability"], "provided_by": f["provided_by"],
            })).collect::<Vec<_>>(),
        });
        println_safe(&v.to_string());
        return Ok(());
    }
    let mut lines = vec![
        format!("{}\n", bright("Basics")),
        format!("Cluster name: {name}"),
        format!("\n{}\n", bright("Disk Nodes")),
        node.to_string(),
        format!("\n{}\n", bright("Running Nodes")),
        node.to_string(),
        format!("\n{}\n", bright("Versions")),
        versions_line,
        format!("\n{}\n", bright("Maintenance status")),
        format!("Node: {node}, status: not under maintenance"),
        format!("\n{}\n", bright("Alarms")),
    ];
    let alarms = alarm_lines(&n.alarms, node);
    if alarms.is_empty() {
        lines.push("(none)".into());
    } else {
        lines.extend(alarms);
    }
    lines.push(format!("\n{}\n", bright("Network Partitions")));
    lines.push("(none)".into());
    lines.push(format!("\n{}\n", bright("Listeners")));
    if n.listeners.is_empty() {
        lines.push("(none)".into());
    } else {
        lines.extend(n.listeners.iter().map(|l| {
            format!("Node: {node}, {}", {
                // "Node: X, interface: …": the per-node form starts lower case.
                let line = l.line();
                let mut chars = line.chars();
                match chars.next() {
                    Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
                    None => line,
                }
            })
        }));
    }
    lines.push(format!("\n{}\n", bright("Feature flags")));
    lines.extend(flags.iter().map(|f| {
        format!(
            "Flag: {}, state: {}",
            f["name"].as_str().unwrap_or(""),
            f["state"].as_str().unwrap_or("")
        )
    }));
    println_safe(&lines.join("\n"));
    Ok(())
}

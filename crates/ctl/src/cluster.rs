//! `cluster_status`, as RabbitMQ 3.10 prints it: the members, those this
//! node reaches (running) and those it does not (a partition), from the
//! node's cluster view; a node alone is a cluster of one. Versions and
//! alarms are each running member's, as it reports them over the cluster
//! link; listeners are this node's. No node is ever under maintenance.

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

/// Another running member's version and alarms, as it reports them.
struct Other {
    name: String,
    version: String,
    alarms: Vec<String>,
}

/// The cluster as the node sees it; a node alone is its own cluster.
struct Membership {
    members: Vec<String>,
    running: Vec<String>,
    unreachable: Vec<String>,
    leader: Option<String>,
    others: Vec<Other>,
}

fn membership(c: &Ctx, node: &str) -> Membership {
    let view = c
        .client
        .request(json!({"op": "cluster_members"}))
        .ok()
        .filter(|v| !v.is_null());
    let names = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match view {
        Some(v) => Membership {
            members: names(&v, "members"),
            running: names(&v, "running"),
            unreachable: names(&v, "unreachable"),
            leader: v["leader"].as_str().map(str::to_string),
            others: v["others"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(name, info)| Other {
                            name: name.clone(),
                            version: info["version"].as_str().unwrap_or("?").to_string(),
                            alarms: names(info, "alarms"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        None => Membership {
            members: vec![node.to_string()],
            running: vec![node.to_string()],
            unreachable: vec![],
            leader: None,
            others: vec![],
        },
    }
}

pub(crate) fn cluster_status(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    let name = cluster_name(c, &n.name);
    let node = n.name.as_str();
    let Membership {
        members,
        running,
        unreachable,
        leader,
        others,
    } = membership(c, node);
    c.out.info(&format!("Cluster status of node {node} ..."));
    let flags = feature_flags();
    let versions_line = format!(
        "{node}: Warren {} (RabbitMQ {RABBITMQ_VERSION} compatible; no Erlang runtime)",
        n.version
    );
    if c.out.json {
        let mut alarms: Vec<Value> = n
            .alarms
            .iter()
            .map(|a| json!({"type": "resource_limit", "resource": a, "node": node}))
            .collect();
        for o in &others {
            alarms.extend(
                o.alarms
                    .iter()
                    .map(|a| json!({"type": "resource_limit", "resource": a, "node": o.name})),
            );
        }
        let mut versions = serde_json::Map::new();
        versions.insert(
            node.to_string(),
            json!({"rabbitmq_name": "Warren", "rabbitmq_version": n.version, "erlang_version": "none"}),
        );
        for o in &others {
            versions.insert(
                o.name.clone(),
                json!({"rabbitmq_name": "Warren", "rabbitmq_version": o.version, "erlang_version": "none"}),
            );
        }
        let mut maintenance = serde_json::Map::new();
        for m in &members {
            maintenance.insert(m.clone(), json!("not under maintenance"));
        }
        let listeners: Vec<Value> = n.listeners.iter().map(|l| l.json(node)).collect();
        let v = json!({
            "cluster_name": name,
            "disk_nodes": members,
            "ram_nodes": [],
            "running_nodes": running,
            "alarms": alarms,
            "maintenance_status": maintenance,
            "partitions": if unreachable.is_empty() { json!({}) } else { json!({node: unreachable}) },
            "listeners": {node: listeners},
            "versions": versions,
            "feature_flags": flags.iter().map(|f| json!({
                "name": f["name"], "desc": f["desc"], "doc_url": f["doc_url"],
                "state": f["state"], "stability": f["stability"], "provided_by": f["provided_by"],
            })).collect::<Vec<_>>(),
        });
        let mut v = v;
        // Warren's addition, on a cluster only (a single node keeps
        // RabbitMQ's keys exactly): the definitions group's leader.
        if let (Some(l), Some(m)) = (&leader, v.as_object_mut()) {
            m.insert("definitions_leader".into(), json!(l));
        }
        println_safe(&v.to_string());
        return Ok(());
    }
    let mut lines = vec![
        format!("{}\n", bright("Basics")),
        format!("Cluster name: {name}"),
        format!("\n{}\n", bright("Disk Nodes")),
        members.join("\n"),
        format!("\n{}\n", bright("Running Nodes")),
        running.join("\n"),
        format!("\n{}\n", bright("Versions")),
        versions_line,
    ];
    lines.extend(others.iter().map(|o| {
        format!(
            "{}: Warren {} (RabbitMQ {RABBITMQ_VERSION} compatible; no Erlang runtime)",
            o.name, o.version
        )
    }));
    lines.push(format!("\n{}\n", bright("Maintenance status")));
    lines.extend(
        members
            .iter()
            .map(|m| format!("Node: {m}, status: not under maintenance")),
    );
    lines.push(format!("\n{}\n", bright("Alarms")));
    let mut alarms = alarm_lines(&n.alarms, node);
    for o in &others {
        alarms.extend(alarm_lines(&o.alarms, &o.name));
    }
    if alarms.is_empty() {
        lines.push("(none)".into());
    } else {
        lines.extend(alarms);
    }
    lines.push(format!("\n{}\n", bright("Network Partitions")));
    if unreachable.is_empty() {
        lines.push("(none)".into());
    } else {
        lines.push(format!(
            "Node {node} cannot communicate with {}",
            unreachable.join(", ")
        ));
    }
    if let Some(leader) = &leader {
        lines.push(format!("\n{}\n", bright("Definitions")));
        lines.push(format!("Leader: {leader}"));
    }
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

/// rabbitmqctl join_cluster: this node (fresh: no cluster yet) asks NODE's
/// cluster to add it.
pub(crate) fn join_cluster(c: &Ctx) -> Result<(), Failure> {
    let target = crate::node::expand(c.arg(0));
    let local = node(c)?.name;
    c.out
        .info(&format!("Clustering node {local} with {target}"));
    c.call(
        json!({"op": "join_cluster", "node": target}),
        membership_refusal,
    )?;
    Ok(())
}

/// rabbitmqctl forget_cluster_node: removes a stopped member.
pub(crate) fn forget_cluster_node(c: &Ctx) -> Result<(), Failure> {
    let target = crate::node::expand(c.arg(0));
    c.out
        .info(&format!("Removing node {target} from the cluster"));
    c.call(
        json!({"op": "forget_cluster_node", "node": target}),
        membership_refusal,
    )?;
    Ok(())
}

fn membership_refusal(r: &crate::client::Refusal) -> Option<Failure> {
    let code = match r.kind.as_str() {
        "unavailable" => crate::EX_TEMPFAIL,
        _ => crate::EX_SOFTWARE,
    };
    Some(crate::commands::error(code, &r.message))
}

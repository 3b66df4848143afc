//! rabbitmq-diagnostics' health checks and observability commands, with
//! its banners, texts, JSON shapes and exit codes (RabbitMQ 3.10's
//! `deps/rabbitmq_cli/lib/rabbitmq/cli/diagnostics/commands/*.ex`): a
//! failed check exits 69 (EX_UNAVAILABLE); a broker that can't be reached
//! exits 69 too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::commands::{error, Ctx};
use crate::output::println_safe;
use crate::{Failure, EX_UNAVAILABLE};

/// What the `diagnostics` op reports.
pub(crate) struct Node {
    pub name: String,
    pub booted: bool,
    pub version: String,
    /// `memory`, `disk`.
    pub alarms: Vec<String>,
    pub listeners: Vec<Listener>,
}

/// One bound listener.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub protocol: String,
    pub addr: SocketAddr,
}

impl Listener {
    /// The interface as rabbitmq-diagnostics prints it (IPv6 in brackets).
    pub fn interface(&self) -> String {
        match self.addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    }

    /// `RabbitMQ.CLI.Core.Listeners.protocol_label`, except that Warren's
    /// AMQP listeners speak AMQP 0-9-1 only.
    pub fn purpose(&self) -> String {
        match self.protocol.as_str() {
            "amqp" => "AMQP 0-9-1",
            "amqp/ssl" => "AMQP 0-9-1 over TLS",
            "mqtt" => "MQTT",
            "mqtt/ssl" => "MQTT over TLS",
            "http" => "HTTP API",
            "https" => "HTTP API over TLS (HTTPS)",
            "http/web-mqtt" => "MQTT over WebSockets",
            "https/web-mqtt" => "MQTT over WebSockets and TLS (HTTPS)",
            "http/prometheus" => "Prometheus exporter API over HTTP",
            "https/prometheus" => "Prometheus exporter API over TLS (HTTPS)",
            other => other,
        }
        .to_string()
    }

    /// `Interface: [::], port: 5672, protocol: amqp, purpose: …`.
    pub fn line(&self) -> String {
        format!(
            "Interface: {}, port: {}, protocol: {}, purpose: {}",
            self.interface(),
            self.addr.port(),
            self.protocol,
            self.purpose()
        )
    }

    /// The listener as rabbitmq-diagnostics' JSON shows one.
    pub fn json(&self, node: &str) -> Value {
        json!({
            "node": node,
            "protocol": self.protocol,
            "interface": self.interface(),
            "port": self.addr.port(),
            "purpose": self.purpose(),
        })
    }
}

/// Asks the node for its state.
pub(crate) fn node(c: &Ctx) -> Result<Node, Failure> {
    let v = c.call(json!({"op": "diagnostics"}), |_| None)?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let listeners = v["listeners"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    Some(Listener {
                        protocol: l["protocol"].as_str()?.to_string(),
                        addr: l["addr"].as_str()?.parse().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Node {
        name: c.client.node(),
        booted: v["booted"].as_bool().unwrap_or(false),
        version: v["version"].as_str().unwrap_or("").to_string(),
        alarms: strings(&v["alarms"]),
        listeners,
    })
}

/// `Memory alarm on node X`, `Free disk space alarm on node X`.
pub(crate) fn alarm_lines(alarms: &[String], node: &str) -> Vec<String> {
    alarms
        .iter()
        .map(|a| match a.as_str() {
            "memory" => format!("Memory alarm on node {node}"),
            "disk" => format!("Free disk space alarm on node {node}"),
            other => format!("{other} alarm on node {node}"),
        })
        .collect()
}

/// Prints an informational string result: plain, or `{"message": …}`
/// under `--formatter json` (rabbitmqctl's JSON formatter for strings).
fn say(c: &Ctx, text: &str) {
    if c.out.json {
        println_safe(&json!({ "message": text }).to_string());
    } else {
        println_safe(text);
    }
}

/// A failed health check: exit 69; nothing printed with `--silent`.
fn check_failed(c: &Ctx, text: String) -> Failure {
    if c.line.options.silent {
        Failure::new(EX_UNAVAILABLE, "")
    } else {
        Failure::new(EX_UNAVAILABLE, text)
    }
}

// ---- ping, check_running, server_version ---------------------------------

pub(crate) fn ping(c: &Ctx) -> Result<(), Failure> {
    let ms = c.line.options.timeout * 1000;
    let target = crate::node::target(c.line.options.node.as_deref());
    match c.client.request(json!({"op": "await_startup"})) {
        Ok(_) | Err(Ok(_)) => {}
        Err(Err(_)) => {
            return Err(error(
                EX_UNAVAILABLE,
                format!("Failed to connect and authenticate to {target} in {ms} ms"),
            ))
        }
    }
    c.out.info(&format!(
        "Will ping {}. This only checks if the OS process is running and answers on its control socket. Timeout: {ms} ms.",
        c.client.node()
    ));
    say(c, "Ping succeeded");
    Ok(())
}

pub(crate) fn check_running(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Checking if RabbitMQ is running on node {} ...",
        n.name
    ));
    if !n.booted {
        return Err(error(
            EX_UNAVAILABLE,
            format!(
                "RabbitMQ on node {} is not running or has not fully booted yet (check with is_booting)",
                n.name
            ),
        ));
    }
    say(
        c,
        &format!("RabbitMQ on node {} is fully booted and running", n.name),
    );
    Ok(())
}

pub(crate) fn server_version(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Asking node {} for its RabbitMQ version...",
        n.name
    ));
    if c.out.json {
        println_safe(&json!({"result": "ok", "value": n.version}).to_string());
    } else {
        println_safe(&n.version);
    }
    Ok(())
}

// ---- alarms ---------------------------------------------------------------

pub(crate) fn alarms(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Asking node {} to report any known resource alarms ...",
        n.name
    ));
    let lines = alarm_lines(&n.alarms, &n.name);
    if c.out.json {
        let v = if lines.is_empty() {
            json!({"result": "ok", "node": n.name, "alarms": []})
        } else {
            json!({"result": "ok", "local": lines, "global": [],
                   "message": format!("Node {} reported alarms", n.name)})
        };
        println_safe(&v.to_string());
    } else if lines.is_empty() {
        println_safe(&format!(
            "Node {} reported no alarms, local or clusterwide",
            n.name
        ));
    } else {
        println_safe(&lines.join("\n"));
    }
    Ok(())
}

pub(crate) fn check_local_alarms(c: &Ctx) -> Result<(), Failure> {
    check_alarms_of(c, true)
}

pub(crate) fn check_alarms(c: &Ctx) -> Result<(), Failure> {
    check_alarms_of(c, false)
}

/// Warren's alarms are all local (one node): `check_alarms` and
/// `check_local_alarms` see the same ones and differ in texts only.
fn check_alarms_of(c: &Ctx, local: bool) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Asking node {} to report any local resource alarms ...",
        n.name
    ));
    let lines = alarm_lines(&n.alarms, &n.name);
    if lines.is_empty() {
        if c.out.json {
            println_safe(&json!({"result": "ok"}).to_string());
        } else if !c.line.options.silent {
            println_safe(&if local {
                format!("Node {} reported no local alarms", n.name)
            } else {
                format!("Node {} reported no alarms, local or clusterwide", n.name)
            });
        }
        return Ok(());
    }
    if c.out.json {
        let v = if local {
            json!({"result": "error", "local": lines,
                   "message": format!("Node {} reported local alarms", n.name)})
        } else {
            json!({"result": "error", "local": lines, "global": [],
                   "message": format!("Node {} reported alarms", n.name)})
        };
        return Err(Failure::new(EX_UNAVAILABLE, v.to_string()));
    }
    // check_local_alarms answers {error, Lines} ("Error:" and the lines),
    // check_alarms {error, check_failed, Lines} (the lines alone).
    let text = lines.join("\n");
    Err(check_failed(
        c,
        if local {
            format!("Error:\n{text}")
        } else {
            text
        },
    ))
}

// ---- listeners --------------------------------------------------------------

pub(crate) fn listeners(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Asking node {} to report its protocol listeners ...",
        n.name
    ));
    if c.out.json {
        let ls: Vec<Value> = n.listeners.iter().map(|l| l.json(&n.name)).collect();
        println_safe(&json!({"result": "ok", "node": n.name, "listeners": ls}).to_string());
    } else if n.listeners.is_empty() {
        println_safe(&format!("Node {} reported no enabled listeners.", n.name));
    } else {
        let lines: Vec<String> = n.listeners.iter().map(Listener::line).collect();
        println_safe(&lines.join("\n"));
    }
    Ok(())
}

/// Where to connect to test a listener: its address, or loopback for a
/// wildcard one (IPv6 loopback first for `[::]`, then IPv4's, as a
/// dual-stack wildcard takes both).
fn probe_addrs(addr: SocketAddr) -> Vec<SocketAddr> {
    let port = addr.port();
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]
        }
        IpAddr::V6(ip) if ip.is_unspecified() => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        ],
        _ => vec![addr],
    }
}

/// Opens a TCP connection to the listener and closes it.
pub(crate) fn reachable(addr: SocketAddr, timeout: Duration) -> bool {
    probe_addrs(addr)
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, timeout).is_ok())
}

pub(crate) fn check_port_connectivity(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.out.info(&format!(
        "Testing TCP connections to all active listeners on node {} ...",
        n.name
    ));
    // rabbitmq-diagnostics' default is 30 s for the whole check, shared
    // between the listeners.
    let total = Duration::from_secs(c.line.options.timeout.clamp(1, 30));
    let each = total / (n.listeners.len() as u32 + 1);
    let failures: Vec<&Listener> = n
        .listeners
        .iter()
        .filter(|l| !reachable(l.addr, each))
        .collect();
    if failures.is_empty() {
        if c.out.json {
            let ls: Vec<Value> = n.listeners.iter().map(|l| l.json(&n.name)).collect();
            println_safe(&json!({"result": "ok", "node": n.name, "listeners": ls}).to_string());
        } else {
            let mut ports: Vec<u16> = n.listeners.iter().map(|l| l.addr.port()).collect();
            ports.sort_unstable();
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            println_safe(&format!(
                "Successfully connected to ports {} on node {}.",
                ports.join(", "),
                n.name
            ));
        }
        return Ok(());
    }
    if c.out.json {
        let fs: Vec<Value> = failures.iter().map(|l| l.json(&n.name)).collect();
        return Err(Failure::new(
            EX_UNAVAILABLE,
            json!({"result": "error", "node": n.name, "failures": fs}).to_string(),
        ));
    }
    let mut lines = vec![format!(
        "Connection to ports of the following listeners on node {} failed: ",
        n.name
    )];
    lines.extend(failures.iter().map(|l| l.line()));
    Err(error(EX_UNAVAILABLE, lines.join("\n")))
}

/// `RabbitMQ.CLI.Core.Listeners.normalize_protocol`: aliases to names.
pub(crate) fn normalize_protocol(p: &str) -> String {
    let v = p.to_lowercase();
    let name = match v.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp0_9_1" | "amqp10" | "amqp1.0" | "amqp1-0"
        | "amqp1_0" => "amqp",
        "amqps" => "amqp/ssl",
        "mqtt3.1" | "mqtt3.1.1" | "mqtt31" | "mqtt311" | "mqtt3_1" | "mqtt3_1_1" => "mqtt",
        "mqtts" | "mqtt+tls" | "mqtt+ssl" => "mqtt/ssl",
        "stomp1.0" | "stomp1.1" | "stomp1.2" | "stomp10" | "stomp11" | "stomp12" | "stomp1_0"
        | "stomp1_1" | "stomp1_2" => "stomp",
        "stomps" | "stomp+tls" | "stomp+ssl" => "stomp/ssl",
        "http1" | "http1.1" | "http_api" | "management" | "management_ui" | "ui" => "http",
        "cli" | "distribution" => "clustering",
        "webmqtt" | "web-mqtt" | "web_mqtt" => "http/web-mqtt",
        "webmqtt/tls" | "web-mqtt/tls" | "webmqtt/ssl" | "web-mqtt/ssl" | "webmqtt+tls"
        | "web-mqtt+tls" | "webmqtt+ssl" | "web-mqtt+ssl" => "https/web-mqtt",
        "webstomp" | "web-stomp" | "web_stomp" => "http/web-stomp",
        "webstomp/tls" | "web-stomp/tls" | "webstomp/ssl" | "web-stomp/ssl" | "webstomp+tls"
        | "web-stomp+tls" | "webstomp+ssl" | "web-stomp+ssl" => "https/web-stomp",
        other => other,
    };
    name.to_string()
}

pub(crate) fn check_protocol_listener(c: &Ctx) -> Result<(), Failure> {
    let asked = c.arg(0);
    let proto = normalize_protocol(asked);
    let n = node(c)?;
    c.out.info(&format!(
        "Asking node {} if there's an active listener for protocol {asked} ...",
        n.name
    ));
    if n.listeners.iter().any(|l| l.protocol == proto) {
        if c.out.json {
            println_safe(&json!({"result": "ok", "node": n.name, "protocol": proto}).to_string());
        } else {
            println_safe(&format!(
                "A listener for protocol {proto} is running on node {}.",
                n.name
            ));
        }
        return Ok(());
    }
    let mut protocols: Vec<String> = n.listeners.iter().map(|l| l.protocol.clone()).collect();
    if c.out.json {
        let ls: Vec<Value> = n.listeners.iter().map(|l| l.json(&n.name)).collect();
        return Err(Failure::new(
            EX_UNAVAILABLE,
            json!({"result": "error", "missing": proto, "protocols": protocols, "listeners": ls})
                .to_string(),
        ));
    }
    protocols.sort();
    Err(error(
        EX_UNAVAILABLE,
        format!(
            "No listener for protocol {proto} is active on node {}. Found listeners for the following protocols: {}",
            n.name,
            protocols.join(", ")
        ),
    ))
}

// ---- virtual hosts ----------------------------------------------------------

/// Warren's virtual hosts have no process of their own that can be down:
/// a vhost whose state could not be recovered stops the broker's start.
/// So every vhost the node lists is running; the check asks the node.
pub(crate) fn check_virtual_hosts(c: &Ctx) -> Result<(), Failure> {
    let n = node(c)?;
    c.call(json!({"op": "list_vhosts"}), |_| None)?;
    c.out.info(&format!(
        "Checking if all vhosts are running on node {} ...",
        n.name
    ));
    if c.out.json {
        println_safe(&json!({"result": "ok"}).to_string());
    } else if !c.line.options.silent {
        println_safe(&format!("Node {} reported all vhosts as running", n.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn protocol_aliases() {
        assert_eq!(normalize_protocol("AMQP0-9-1"), "amqp");
        assert_eq!(normalize_protocol("amqps"), "amqp/ssl");
        assert_eq!(normalize_protocol("management"), "http");
        assert_eq!(normalize_protocol("web-mqtt"), "http/web-mqtt");
        assert_eq!(normalize_protocol("http/prometheus"), "http/prometheus");
        assert_eq!(normalize_protocol("stomp"), "stomp");
    }

    #[test]
    fn listener_lines() {
        let l = Listener {
            protocol: "amqp".into(),
            addr: "[::]:5672".parse().unwrap(),
        };
        assert_eq!(
            l.line(),
            "Interface: [::], port: 5672, protocol: amqp, purpose: AMQP 0-9-1"
        );
        let l = Listener {
            protocol: "http/prometheus".into(),
            addr: "127.0.0.1:15692".parse().unwrap(),
        };
        assert_eq!(l.json("n")["interface"], "127.0.0.1");
        assert_eq!(l.json("n")["purpose"], "Prometheus exporter API over HTTP");
        assert_eq!(
            alarm_lines(&["memory".into(), "disk".into()], "warren@h"),
            vec![
                "Memory alarm on node warren@h",
                "Free disk space alarm on node warren@h"
            ]
        );
    }

    #[test]
    fn connectivity_probe_sees_open_and_closed_ports() {
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = open.local_addr().unwrap();
        let t = Duration::from_secs(5);
        assert!(reachable(addr, t));
        // A wildcard address is probed on loopback.
        let wildcard = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
        assert!(reachable(wildcard, t));
        drop(open);
        assert!(!reachable(addr, t));
    }
}

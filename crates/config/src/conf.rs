//! RabbitMQ's `rabbitmq.conf` (the sysctl-like "new style" format read by
//! cuttlefish): `key = value` lines, `#` comment lines, blank lines. The
//! value is the rest of the line, trimmed; it may hold spaces and `#`
//! (a password may), so only whole lines are comments.

use std::collections::BTreeMap;
use std::path::Path;

use crate::keys::unsupported;
use crate::{Error, Layers, Source};

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Splits the file into entries, keeping line numbers.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: String| Error::new(format!("{} line {}: {msg}", path.display(), i + 1));
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(format!("expected 'key = value', found '{line}'")));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-$@".contains(c))
        {
            return Err(at(format!("invalid key '{key}'")));
        }
        out.push(Entry {
            key: key.to_string(),
            value: value.trim().to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// `cluster_formation.classic_config.nodes.N = NAME`: a member's name.
const NODES: &str = "cluster_formation.classic_config.nodes.";
/// `cluster_formation.warren.addresses.NAME = HOST:PORT`: where this node
/// reaches it. NAME holds `@` and dots: it is the whole rest of the key.
const ADDRESSES: &str = "cluster_formation.warren.addresses.";
const BACKEND: &str = "cluster_formation.peer_discovery_backend";

/// What one key does.
enum Action {
    /// Sets a setting.
    Set(&'static str, String),
    /// Adds to a list setting (`listeners.tcp.NAME`).
    Push(&'static str, String),
    /// A list setting given as `none`: present and empty.
    Clear(&'static str),
    /// Handled after every line is read.
    Later,
}

/// Reads the file's entries into the file layer; RabbitMQ keys Warren
/// ignores go to `warnings`; an unknown key or a bad value is an error
/// naming it and its line.
pub(crate) fn apply(
    path: &Path,
    text: &str,
    layers: &mut Layers,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let entries = parse(path, text)?;
    // name -> (values, source); lists accumulate, the rest: last line wins.
    let mut found: BTreeMap<&'static str, (Vec<String>, Source)> = BTreeMap::new();
    let mut later: BTreeMap<String, Entry> = BTreeMap::new();
    for e in &entries {
        let source = Source::File {
            path: path.to_path_buf(),
            line: Some(e.line),
            key: e.key.clone(),
        };
        let bad = |why: &str| {
            Error::new(format!(
                "{} line {}: invalid value '{}' for '{}': {why}",
                path.display(),
                e.line,
                e.value,
                e.key
            ))
        };
        let action = match action(&e.key, &e.value) {
            Ok(Some(a)) => a,
            Ok(None) => {
                if let Some(why) = unsupported(&e.key) {
                    warnings.push(format!("{}: {why}", e.key));
                    continue;
                }
                return Err(Error::new(format!(
                    "{} line {}: unknown key '{}'",
                    path.display(),
                    e.line,
                    e.key
                )));
            }
            Err(why) => return Err(bad(&why)),
        };
        match action {
            Action::Set(name, v) => {
                found.insert(name, (vec![v], source));
            }
            Action::Push(name, v) => {
                let slot = found.entry(name).or_insert((Vec::new(), source.clone()));
                slot.0.push(v);
                slot.1 = source;
            }
            Action::Clear(name) => {
                found.insert(name, (Vec::new(), source));
            }
            Action::Later => {
                if let Some(prev) = later.get(&e.key) {
                    if e.key.starts_with(ADDRESSES) && prev.value != e.value {
                        return Err(Error::new(format!(
                            "{} line {}: cluster node '{}' is given two addresses: {} (line {}) and {}",
                            path.display(),
                            e.line,
                            &e.key[ADDRESSES.len()..],
                            prev.value,
                            prev.line,
                            e.value
                        )));
                    }
                }
                later.insert(e.key.clone(), e.clone());
            }
        }
    }
    resolve_later(path, &later, &mut found, warnings)?;
    for (name, (values, source)) in found {
        layers.set(name, values, source);
    }
    Ok(())
}

fn port(v: &str) -> Result<String, String> {
    v.parse::<u16>()
        .map(|p| p.to_string())
        .map_err(|_| "expected a port number (1-65535)".to_string())
}

/// A port, or ADDR:PORT (`[::1]:5672`, `127.0.0.1:5672`, and RabbitMQ's
/// own IPv6 form without brackets, `::1:5672`, normalised to `[::1]:5672`).
fn listener(v: &str) -> Result<String, String> {
    if v.parse::<u16>().is_ok() || v.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(v.to_string());
    }
    if let Some((ip, port)) = v.rsplit_once(':') {
        if let (Ok(ip), Ok(port)) = (ip.parse::<std::net::Ipv6Addr>(), port.parse::<u16>()) {
            return Ok(std::net::SocketAddr::from((ip, port)).to_string());
        }
    }
    Err("expected a port or ADDRESS:PORT".to_string())
}

fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

fn number(v: &str) -> Result<String, String> {
    v.parse::<u64>()
        .map(|n| n.to_string())
        .map_err(|_| "expected a whole number".to_string())
}

fn number_or_infinity(v: &str) -> Result<String, String> {
    if v == "infinity" {
        return Ok(v.to_string());
    }
    number(v).map_err(|_| "expected a whole number or infinity".to_string())
}

fn bytes(v: &str) -> Result<String, String> {
    crate::parse_size(v)
        .map(|n| n.to_string())
        .ok_or_else(|| "expected a size (bytes, or 512MiB, 50MB, 1GB)".to_string())
}

/// RabbitMQ's level names (logger's, as 3.10 takes them).
fn level(v: &str) -> Result<String, String> {
    if crate::LOG_LEVELS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err("expected debug, info, warning, error, critical or none".to_string())
    }
}

fn formatter(v: &str) -> Result<String, String> {
    match v {
        "plaintext" | "json" => Ok(v.to_string()),
        _ => Err("expected plaintext or json".to_string()),
    }
}

/// The action for `key`; `Ok(None)`: not a key Warren acts on.
fn action(key: &str, v: &str) -> Result<Option<Action>, String> {
    use Action::*;
    let text = || v.to_string();
    Ok(Some(match key {
        "listeners.tcp" if v == "none" => Clear("listeners"),
        "listeners.tcp" => return Err("expected none".into()),
        k if k.starts_with("listeners.tcp.") => Push("listeners", listener(v)?),
        "listeners.ssl" | "mqtt.listeners.ssl" => Later,
        k if k.starts_with("listeners.ssl.") || k.starts_with("mqtt.listeners.ssl.") => {
            listener(v)?;
            Later
        }
        "ssl_options.certfile" => Set("ssl_options.certfile", text()),
        "ssl_options.keyfile" => Set("ssl_options.keyfile", text()),
        "ssl_options.cacertfile" => Set("ssl_options.cacertfile", text()),
        "ssl_options.verify" => match v {
            "verify_peer" | "verify_none" => Set("ssl_options.verify", text()),
            _ => return Err("expected verify_peer or verify_none".into()),
        },
        "ssl_options.fail_if_no_peer_cert" => {
            Set("ssl_options.fail_if_no_peer_cert", boolean(v)?.to_string())
        }
        "ssl_handshake_timeout" => Set("ssl_handshake_timeout", number(v)?),
        "management.tcp.port" => Set("management_port", port(v)?),
        "management.tcp.ip" | "management.ssl.ip" => {
            v.parse::<std::net::IpAddr>()
                .map_err(|_| "expected an IP address".to_string())?;
            Set("management_bind", text())
        }
        "management.ssl.port" => {
            port(v)?;
            Later
        }
        "management.ssl.certfile" | "management.ssl.keyfile" | "management.ssl.cacertfile" => Later,
        "management.http.max_body_size" => Set("management_max_body_size", number(v)?),
        "management.load_definitions" | "load_definitions" | "definitions.local.path" => {
            Set("load_definitions", text())
        }
        "prometheus.tcp.port" => Set("prometheus_port", port(v)?),
        "mqtt.listeners.tcp" if v == "none" => Set("mqtt", "false".into()),
        "mqtt.listeners.tcp" => return Err("expected none".into()),
        k if k.starts_with("mqtt.listeners.tcp.") => {
            listener(v)?;
            Later
        }
        "web_mqtt.tcp.port" => Set("web_mqtt_port", port(v)?),
        "mqtt.vhost" => Set("mqtt_vhost", text()),
        "mqtt.max_session_expiry_interval_seconds" => Set(
            "mqtt_max_session_expiry_interval_seconds",
            number_or_infinity(v)?,
        ),
        "default_user" => Set("default_user", text()),
        "default_pass" => Set("default_pass", text()),
        "default_vhost" => Set("default_vhost", text()),
        k if k.starts_with("default_user_tags.") => {
            let tag = &k["default_user_tags.".len()..];
            if boolean(v)? {
                Push("default_user_tags", tag.to_string())
            } else {
                // Present: the list is what the true ones make it.
                Push("default_user_tags", String::new())
            }
        }
        "default_permissions.configure" => Set("default_permissions.configure", text()),
        "default_permissions.read" => Set("default_permissions.read", text()),
        "default_permissions.write" => Set("default_permissions.write", text()),
        "loopback_users" if v == "none" => Clear("loopback_users"),
        "loopback_users" => return Err("expected none".into()),
        k if k.starts_with("loopback_users.") => {
            let user = &k["loopback_users.".len()..];
            if boolean(v)? {
                Push("loopback_users", user.to_string())
            } else {
                Push("loopback_users", String::new())
            }
        }
        "vm_memory_high_watermark.relative" => {
            let f: f64 = v
                .parse()
                .map_err(|_| "expected a fraction of RAM such as 0.4".to_string())?;
            if !(0.0..=1.0).contains(&f) {
                return Err("expected a fraction of RAM between 0 and 1".into());
            }
            Later
        }
        "vm_memory_high_watermark.absolute" | "disk_free_limit.absolute" => {
            bytes(v)?;
            Later
        }
        "disk_free_limit.relative" => {
            v.parse::<f64>()
                .map_err(|_| "expected a multiple of RAM such as 1.5".to_string())?;
            Later
        }
        "channel_max" => Set("channel_max", number(v)?),
        "frame_max" => Set("frame_max", bytes(v)?),
        "heartbeat" => Set("heartbeat", number(v)?),
        "handshake_timeout" => Set("handshake_timeout", number(v)?),
        "consumer_timeout" => Set("consumer_timeout", number(v)?),
        "max_message_size" => Set("max_message_size", bytes(v)?),
        "connection_max" => Set("connection_max", number_or_infinity(v)?),
        "consumer_max_per_channel" => Set("consumer_max_per_channel", number_or_infinity(v)?),
        "cluster_name" => Set("cluster_name", text()),
        BACKEND => Later,
        k if k.starts_with(NODES) && k.len() > NODES.len() => {
            crate::cluster::node_name(v)?;
            Later
        }
        k if k.starts_with(ADDRESSES) && k.len() > ADDRESSES.len() => {
            crate::cluster::node_name(&k[ADDRESSES.len()..])?;
            crate::cluster::address(v)?;
            Later
        }
        "log.default.level" => Set("log_level", level(v)?),
        "log.console" => Set("log_console", boolean(v)?.to_string()),
        "log.console.level" => Set("log_console_level", level(v)?),
        "log.console.formatter" => Set("log_console_formatter", formatter(v)?),
        "log.file" => Set("log_file", text()),
        "log.file.level" => Set("log_file_level", level(v)?),
        "log.file.formatter" => Set("log_file_formatter", formatter(v)?),
        "log.file.rotation.size" => Set("log_file_rotation_size", number(v)?),
        "log.file.rotation.count" => Set("log_file_rotation_count", number(v)?),
        "log.file.rotation.date" => Set("log_file_rotation_date", text()),
        // Warren's own settings.
        "warren.node_name" => Set("node_name", text()),
        "warren.data_dir" => Set("data_dir", text()),
        "warren.bind" => {
            v.parse::<std::net::IpAddr>()
                .map_err(|_| "expected an IP address".to_string())?;
            Set("bind", text())
        }
        "warren.worker_threads" => Set("worker_threads", number(v)?),
        "warren.cluster.port" => match v.parse::<u16>() {
            Ok(p) if p > 0 => Set("cluster_port", p.to_string()),
            _ => return Err("expected a port number (1-65535)".into()),
        },
        "warren.cluster.bind" => {
            v.parse::<std::net::IpAddr>()
                .map_err(|_| "expected an IP address".to_string())?;
            Set("cluster_bind", text())
        }
        "warren.cluster.tls" => Set("cluster_tls", boolean(v)?.to_string()),
        "warren.cluster.secret_file" if v.is_empty() => return Err("expected a path".into()),
        "warren.cluster.secret_file" => Set("cluster_secret_file", text()),
        "warren.mqtt.retained_max_bytes" => Set("mqtt_retained_max_bytes", bytes(v)?),
        "warren.mqtt.max_keepalive" => Set("mqtt_max_keepalive", number(v)?),
        "warren.management.login_failures" => Set("management_login_failures", number(v)?),
        "warren.http.max_connections_per_source" => {
            Set("http_max_connections_per_source", number(v)?)
        }
        "warren.management" => Set("management", boolean(v)?.to_string()),
        "warren.prometheus" => Set("prometheus", boolean(v)?.to_string()),
        _ => return Ok(None),
    }))
}

/// Keys whose meaning depends on others: TLS listeners, the management
/// listener's TLS, watermarks given two ways.
fn resolve_later(
    path: &Path,
    later: &BTreeMap<String, Entry>,
    found: &mut BTreeMap<&'static str, (Vec<String>, Source)>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let src = |e: &Entry| Source::File {
        path: path.to_path_buf(),
        line: Some(e.line),
        key: e.key.clone(),
    };
    // One listener per protocol beyond AMQP: its port; an address is the
    // bind address's.
    for (prefix, name) in [
        ("listeners.ssl.", "ssl_port"),
        ("mqtt.listeners.ssl.", "mqtt_ssl_port"),
        ("mqtt.listeners.tcp.", "mqtt_port"),
    ] {
        let given: Vec<&Entry> = later
            .values()
            .filter(|e| e.key.starts_with(prefix))
            .collect();
        for (i, e) in given.iter().enumerate() {
            if i > 0 {
                warnings.push(format!(
                    "{}: Warren serves one such listener, on {}",
                    e.key, given[0].value
                ));
                continue;
            }
            let p = match e.value.parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    warnings.push(format!(
                        "{}: the address {} is not used, this listener listens on bind (warren.bind)",
                        e.key,
                        a.ip()
                    ));
                    a.port().to_string()
                }
                Err(_) => e.value.clone(),
            };
            found.insert(name, (vec![p], src(e)));
        }
    }
    for key in ["listeners.ssl", "mqtt.listeners.ssl"] {
        if let Some(e) = later.get(key) {
            if e.value != "none" {
                return Err(Error::new(format!(
                    "{} line {}: invalid value '{}' for '{key}': expected none",
                    path.display(),
                    e.line,
                    e.value
                )));
            }
            warnings.push(format!(
                "{key} = none: TLS listeners are served whenever ssl_options.certfile and keyfile are set"
            ));
        }
    }
    // The management listener: HTTPS when management.ssl.port is given.
    if let Some(e) = later.get("management.ssl.port") {
        if let Some((_, tcp)) = found.get("management_port") {
            warnings.push(format!(
                "management.tcp.port: Warren serves the management API on one listener, HTTPS on management.ssl.port {} (ignoring {tcp})",
                e.value
            ));
        }
        found.insert("management_port", (vec![e.value.clone()], src(e)));
        found.insert("management_ssl", (vec!["true".into()], src(e)));
    }
    // One certificate for every TLS listener: management.ssl.* files fill
    // in ssl_options.* when those are not given.
    for f in ["certfile", "keyfile", "cacertfile"] {
        let Some(e) = later.get(&format!("management.ssl.{f}")) else {
            continue;
        };
        let name: &'static str = match f {
            "certfile" => "ssl_options.certfile",
            "keyfile" => "ssl_options.keyfile",
            _ => "ssl_options.cacertfile",
        };
        match found.get(name) {
            Some((v, _)) if v.first() != Some(&e.value) => warnings.push(format!(
                "management.ssl.{f}: Warren has one certificate for every TLS listener; ssl_options.{f} is used"
            )),
            Some(_) => {}
            None => {
                warnings.push(format!(
                    "management.ssl.{f}: Warren has one certificate for every TLS listener; it is used as ssl_options.{f} (AMQPS and MQTTS too)"
                ));
                found.insert(name, (vec![e.value.clone()], src(e)));
            }
        }
    }
    cluster_nodes(path, later, found, warnings)?;
    // Both forms given: absolute wins, as RabbitMQ's.
    for (what, rel_form) in [
        ("vm_memory_high_watermark", ""),
        ("disk_free_limit", "mem_relative "),
    ] {
        let abs = later.get(&format!("{what}.absolute"));
        let rel = later.get(&format!("{what}.relative"));
        if abs.is_some() && rel.is_some() {
            warnings.push(format!(
                "{what}.relative: {what}.absolute is also set and wins (as in RabbitMQ)"
            ));
        }
        let name: &'static str = if what == "disk_free_limit" {
            "disk_free_limit"
        } else {
            "vm_memory_high_watermark"
        };
        if let Some(e) = abs {
            let b = crate::parse_size(&e.value).unwrap_or(0);
            // A size: "<bytes>B" keeps it apart from a fraction.
            found.insert(name, (vec![format!("{b}B")], src(e)));
        } else if let Some(e) = rel {
            found.insert(name, (vec![format!("{rel_form}{}", e.value)], src(e)));
        }
    }
    Ok(())
}

/// The classic config's members, each with its address, into
/// `cluster_nodes` (`NAME=HOST:PORT` values, as the flag gives them).
fn cluster_nodes(
    path: &Path,
    later: &BTreeMap<String, Entry>,
    found: &mut BTreeMap<&'static str, (Vec<String>, Source)>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    if let Some(e) = later.get(BACKEND) {
        if !crate::cluster::is_classic_config(&e.value) {
            warnings.push(format!(
                "{BACKEND} = {}: Warren's only peer discovery is classic_config \
                 (cluster_formation.classic_config.nodes.N with cluster_formation.warren.addresses.NAME)",
                e.value
            ));
        }
    }
    let mut members: Vec<&Entry> = later
        .values()
        .filter(|e| e.key.starts_with(NODES))
        .collect();
    members.sort_by_key(|e| e.line);
    let at =
        |e: &Entry, msg: String| Error::new(format!("{} line {}: {msg}", path.display(), e.line));
    let mut values: Vec<String> = Vec::new();
    for e in &members {
        let Some(addr) = later.get(&format!("{ADDRESSES}{}", e.value)) else {
            return Err(at(
                e,
                format!(
                    "cluster node '{}' ('{}') has no address: add {ADDRESSES}{} = HOST:PORT",
                    e.value, e.key, e.value
                ),
            ));
        };
        let v = format!("{}={}", e.value, addr.value);
        if !values.contains(&v) {
            values.push(v);
        }
    }
    for a in later.values().filter(|e| e.key.starts_with(ADDRESSES)) {
        let name = &a.key[ADDRESSES.len()..];
        if !members.iter().any(|m| m.value == name) {
            return Err(at(
                a,
                format!(
                    "'{}': '{name}' is not a cluster node: list it as {NODES}N = {name}",
                    a.key
                ),
            ));
        }
    }
    if let Some(first) = members.first() {
        let source = Source::File {
            path: path.to_path_buf(),
            line: Some(first.line),
            key: first.key.clone(),
        };
        found.insert("cluster_nodes", (values, source));
    }
    Ok(())
}

#[cfg(test)]
mod listener_tests {
    #[test]
    fn rabbitmqs_ipv6_form_is_accepted() {
        assert_eq!(super::listener("::1:5672").as_deref(), Ok("[::1]:5672"));
        assert_eq!(super::listener("[::]:5672").as_deref(), Ok("[::]:5672"));
        assert_eq!(super::listener("5672").as_deref(), Ok("5672"));
        assert!(super::listener("::1").is_err());
        assert!(super::listener("host:5672").is_err());
    }
}

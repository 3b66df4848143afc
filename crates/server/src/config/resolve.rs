//! From flags, environment, file and defaults to a typed [`Config`]: the
//! layers come from `warren_config`; flags are read here from clap, which
//! also says whether a value came from the command line or from its
//! `WARREN_*` variable.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use warren_broker::alarms::Watermark;
use warren_config::{Env, Layers, Setting, Source};

use super::{Args, ClusterSettings, Config, DefaultPermissions, EffectiveSetting};
use crate::logging::{parse_level, LogSettings, Rotation};

/// Flags (clap ids) and the settings they give.
const FLAGS: &[(&str, &str)] = &[
    ("amqp_port", "amqp_port"),
    ("bind", "bind"),
    ("listen", "listeners"),
    ("data_dir", "data_dir"),
    ("node_name", "node_name"),
    ("log_level", "log_level"),
    ("consumer_max_per_channel", "consumer_max_per_channel"),
    ("connection_max", "connection_max"),
    ("ssl_port", "ssl_port"),
    ("ssl_certfile", "ssl_options.certfile"),
    ("ssl_keyfile", "ssl_options.keyfile"),
    ("ssl_cacertfile", "ssl_options.cacertfile"),
    ("ssl_verify", "ssl_options.verify"),
    ("management_login_failures", "management_login_failures"),
    (
        "http_max_connections_per_source",
        "http_max_connections_per_source",
    ),
    ("consumer_timeout", "consumer_timeout"),
    ("handshake_timeout", "handshake_timeout"),
    ("ssl_handshake_timeout", "ssl_handshake_timeout"),
    ("heartbeat", "heartbeat"),
    ("frame_max", "frame_max"),
    ("channel_max", "channel_max"),
    ("vm_memory_high_watermark", "vm_memory_high_watermark"),
    ("disk_free_limit", "disk_free_limit"),
    ("worker_threads", "worker_threads"),
    ("definitions", "load_definitions"),
    ("loopback_users", "loopback_users"),
    ("management_port", "management_port"),
    ("prometheus_port", "prometheus_port"),
    ("management_bind", "management_bind"),
    ("mqtt_port", "mqtt_port"),
    ("web_mqtt_port", "web_mqtt_port"),
    ("mqtt_ssl_port", "mqtt_ssl_port"),
    (
        "mqtt_max_session_expiry",
        "mqtt_max_session_expiry_interval_seconds",
    ),
    ("mqtt_max_keepalive", "mqtt_max_keepalive"),
    ("mqtt_vhost", "mqtt_vhost"),
    ("mqtt_retained_max_bytes", "mqtt_retained_max_bytes"),
    ("cluster_node", "cluster_nodes"),
    ("cluster_port", "cluster_port"),
    ("cluster_bind", "cluster_bind"),
    ("cluster_secret_file", "cluster_secret_file"),
];

/// Switches: the clap id, the setting, the value they set.
const SWITCHES: &[(&str, &str, &str)] = &[
    ("disable_management", "management", "false"),
    ("disable_prometheus", "prometheus", "false"),
    ("disable_mqtt", "mqtt", "false"),
    ("cluster_tls", "cluster_tls", "true"),
    ("management_ssl", "management_ssl", "true"),
    (
        "ssl_fail_if_no_peer_cert",
        "ssl_options.fail_if_no_peer_cert",
        "true",
    ),
];

/// Where clap found `id`: the command line or its environment variable.
fn source_of(cmd: &clap::Command, m: &ArgMatches, id: &str) -> Option<Source> {
    let arg = cmd.get_arguments().find(|a| a.get_id() == id)?;
    match m.value_source(id)? {
        ValueSource::CommandLine => Some(Source::Flag {
            name: format!("--{}", arg.get_long().unwrap_or(id)),
        }),
        ValueSource::EnvVariable => Some(Source::Env {
            var: arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: None,
        }),
        _ => None,
    }
}

fn flag_layer(m: &ArgMatches, layers: &mut Layers) {
    let cmd = Args::command();
    for (id, name) in FLAGS {
        let Some(source) = source_of(&cmd, m, id) else {
            continue;
        };
        let values: Vec<String> = m
            .get_raw(id)
            .map(|v| {
                v.flat_map(|s| {
                    s.to_string_lossy()
                        .split(',')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
            })
            .unwrap_or_default();
        let values = if matches!(*name, "listeners" | "loopback_users" | "cluster_nodes") {
            values
        } else {
            // One value: commas belong to it.
            m.get_raw(id)
                .and_then(|mut v| v.next())
                .map(|s| vec![s.to_string_lossy().into_owned()])
                .unwrap_or(values)
        };
        layers.set(name, values, source);
    }
    for (id, name, value) in SWITCHES {
        if m.get_flag(id) {
            if let Some(source) = source_of(&cmd, m, id) {
                layers.set(name, vec![value.to_string()], source);
            }
        }
    }
}

fn invalid(s: &Setting, name: &str, expected: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid configuration: {}: invalid value '{}' (expected {expected})",
        s.source.locate(name),
        s.values.join(",")
    )
}

/// Typed access to the merged layers; errors name the key and its source.
struct Typed<'a>(&'a Layers);

impl Typed<'_> {
    fn get(&self, name: &str) -> Option<&Setting> {
        self.0.get(name)
    }

    fn with<T>(
        &self,
        name: &str,
        expected: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(s) => f(s.text().trim())
                .map(Some)
                .ok_or_else(|| invalid(s, name, expected)),
        }
    }

    fn parse<T: FromStr>(&self, name: &str, expected: &str) -> anyhow::Result<Option<T>> {
        self.with(name, expected, |t| t.parse().ok())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|s| s.text().to_string())
    }

    fn boolean(&self, name: &str) -> anyhow::Result<Option<bool>> {
        self.with(name, "true or false", |t| match t {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        })
    }

    /// A whole number or `infinity` (`None` inside: no limit).
    fn limit(&self, name: &str) -> anyhow::Result<Option<Option<u64>>> {
        self.with(name, "a whole number or infinity", |t| match t {
            "infinity" => Some(None),
            n => n.parse().ok().map(Some),
        })
    }

    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|s| {
            s.values
                .iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        })
    }
}

/// An MQTT session expiry limit: whole seconds, or `infinity` (`None`).
pub(crate) fn parse_session_expiry(text: &str) -> Option<Option<u32>> {
    let t = text.trim();
    if t == "infinity" {
        return Some(None);
    }
    t.parse::<u32>().ok().map(Some)
}

/// "0.4" is a fraction of RAM; anything with a unit, or above 1, a size.
pub(crate) fn parse_watermark(text: &str) -> Option<Watermark> {
    let t = text.trim();
    if let Ok(f) = t.parse::<f64>() {
        if (0.0..=1.0).contains(&f) {
            return Some(Watermark::Relative(f));
        }
    }
    warren_config::parse_size(t).map(Watermark::Absolute)
}

/// A size, or `mem_relative F`: F times total RAM (RabbitMQ's
/// `disk_free_limit.relative`).
fn parse_disk_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Some(f) = t.strip_prefix("mem_relative") {
        let f: f64 = f.trim_start_matches([' ', ':', ',']).trim().parse().ok()?;
        return (f >= 0.0).then(|| (f * warren_broker::alarms::total_memory() as f64) as u64);
    }
    warren_config::parse_size(t)
}

/// `$D0`: daily at midnight; `$D<hour>` at that hour (lager's and
/// RabbitMQ's date syntax). Weekly and monthly forms are refused.
fn parse_rotation_date(text: &str) -> Option<Option<u8>> {
    let t = text.trim();
    if t.is_empty() {
        return Some(None);
    }
    let hour: u8 = t.strip_prefix("$D")?.parse().ok()?;
    (hour < 24).then_some(Some(hour))
}

impl Config {
    /// The broker's configuration from its command line and environment.
    pub fn from_command_line() -> anyhow::Result<Config> {
        let matches = Args::command().get_matches();
        let env = Env::from_process()?;
        Config::resolve(
            &matches,
            &env,
            Path::new(warren_config::DEFAULT_CONFIG_FILE),
        )
    }

    /// Merges flags, environment, file and defaults.
    pub fn resolve(m: &ArgMatches, env: &Env, default_file: &Path) -> anyhow::Result<Config> {
        let cmd = Args::command();
        let flag_file = m
            .get_one::<PathBuf>("config")
            .cloned()
            .zip(source_of(&cmd, m, "config"));
        let file = warren_config::config_file_location(flag_file, env, default_file);
        let loaded = warren_config::load(file, env)?;
        let mut layers = loaded.layers;
        flag_layer(m, &mut layers);
        let mut cfg = typed(&layers)?;
        cfg.ignored_keys = loaded.warnings;
        let (node, node_source) = warren_config::node_name(&layers);
        let (data_dir, data_source) = warren_config::data_dir(&layers, &node);
        cfg.node_name = node.clone();
        cfg.data_dir = data_dir.clone();
        cfg.log.file = log_file(&layers, &node);
        if cfg.cluster.secret_file.as_os_str().is_empty() {
            cfg.cluster.secret_file = data_dir.join(warren_config::cluster::SECRET_FILE);
        }
        cfg.effective = effective(&layers, &cfg);
        let mut extra = vec![
            row("node_name", "", node, &node_source),
            row("data_dir", "", data_dir.display().to_string(), &data_source),
        ];
        if let Some((path, source)) = &loaded.config_file {
            extra.push(row("config_file", "", path.display().to_string(), source));
        }
        if let Some(path) = &loaded.env_file {
            extra.push(row(
                "env_file",
                "",
                path.display().to_string(),
                &Source::Default,
            ));
        }
        cfg.effective
            .retain(|r| r.name != "node_name" && r.name != "data_dir");
        extra.append(&mut cfg.effective);
        cfg.effective = extra;
        Ok(cfg)
    }
}

fn row(name: &str, key: &str, value: String, source: &Source) -> EffectiveSetting {
    EffectiveSetting {
        name: name.to_string(),
        rabbitmq_key: key.to_string(),
        value,
        source: source.to_string(),
        origin: source.kind().to_string(),
    }
}

/// The log file: `log.file` / `RABBITMQ_LOGS` (`-` or `false`: none;
/// relative: under `RABBITMQ_LOG_BASE`), else `<RABBITMQ_LOG_BASE>/<node
/// name>.log`, else none.
fn log_file(layers: &Layers, node: &str) -> Option<PathBuf> {
    let base = layers
        .get(warren_config::LOG_BASE)
        .map(|s| PathBuf::from(s.text()));
    match layers.get("log_file").map(|s| s.text().trim().to_string()) {
        Some(f) if f == "-" || f == "false" || f.is_empty() => None,
        Some(f) => {
            let p = PathBuf::from(f);
            Some(match (&base, p.is_relative()) {
                (Some(b), true) => b.join(p),
                _ => p,
            })
        }
        None => base.map(|b| b.join(format!("{node}.log"))),
    }
}

/// Every setting's effective value and its source.
fn effective(layers: &Layers, cfg: &Config) -> Vec<EffectiveSetting> {
    warren_config::keys::SPECS
        .iter()
        .map(|spec| {
            let (value, source) = match layers.get(spec.name) {
                Some(s) => (s.values.join(", "), s.source.clone()),
                None => (spec.default.to_string(), Source::Default),
            };
            let value = match spec.name {
                _ if spec.secret => "********".to_string(),
                "log_file" => cfg
                    .log
                    .file
                    .as_ref()
                    .map_or("none".into(), |p| p.display().to_string()),
                "cluster_nodes" => cfg
                    .cluster
                    .nodes
                    .iter()
                    .map(|(n, a)| format!("{n}={a}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                "cluster_bind" => cfg.cluster.bind.to_string(),
                "cluster_secret_file" => cfg.cluster.secret_file.display().to_string(),
                "listeners" => cfg
                    .listeners
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => value,
            };
            let source = match (spec.name, layers.get(warren_config::LOG_BASE)) {
                ("log_file", Some(base)) if layers.get("log_file").is_none() => base.source.clone(),
                _ => source,
            };
            row(spec.name, spec.rabbitmq, value, &source)
        })
        .collect()
}

/// The level of one output: its own (`log.console.level`) unless the
/// general one (`--log-level`) comes from a higher layer.
fn output_level(t: &Typed, own: &str) -> anyhow::Result<crate::logging::LevelSpec> {
    let pick = if t.0.rank(own) >= t.0.rank("log_level") && t.get(own).is_some() {
        own
    } else {
        "log_level"
    };
    match t.get(pick) {
        None => Ok(crate::logging::LevelSpec::default()),
        Some(s) => parse_level(s.text())
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}: {e}", s.source.locate(pick))),
    }
}

fn typed(layers: &Layers) -> anyhow::Result<Config> {
    let t = Typed(layers);
    let d = Config::default();
    let num = "a whole number";
    let port = "a port number";
    let frame_max = t.parse::<u32>("frame_max", num)?.unwrap_or(d.frame_max);
    if frame_max < warren_protocol::constants::FRAME_MIN_SIZE {
        let s = t.get("frame_max").map(|s| s.source.locate("frame_max"));
        anyhow::bail!(
            "invalid configuration: {}: frame_max must be at least 4096",
            s.unwrap_or_default()
        );
    }
    let bind = t
        .parse::<IpAddr>("bind", "an IP address")?
        .unwrap_or(d.bind);
    let amqp_port = t.parse::<u16>("amqp_port", port)?.unwrap_or(d.amqp_port);
    // Listeners, unless --bind / --amqp-port (RABBITMQ_NODE_IP_ADDRESS /
    // RABBITMQ_NODE_PORT) come from a higher layer.
    let listeners = match t.get("listeners") {
        Some(s) if s.source.rank() >= layers.rank("bind").max(layers.rank("amqp_port")) => {
            let mut out = Vec::new();
            for v in s.values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
                let addr = match v.parse::<u16>() {
                    Ok(p) => SocketAddr::new(bind, p),
                    Err(_) => v
                        .parse::<SocketAddr>()
                        .map_err(|_| invalid(s, "listeners", "a port or ADDRESS:PORT"))?,
                };
                out.push(addr);
            }
            out
        }
        _ => vec![SocketAddr::new(bind, amqp_port)],
    };
    let ms = |name: &str, default: std::time::Duration| -> anyhow::Result<std::time::Duration> {
        Ok(t.parse::<u64>(name, "milliseconds")?
            .map_or(default, std::time::Duration::from_millis))
    };
    let permission = |name: &str, default: &str| -> anyhow::Result<String> {
        let v = t.text(name).unwrap_or_else(|| default.to_string());
        if let Some(s) = t.get(name) {
            regex::Regex::new(&v).map_err(|_| invalid(s, name, "a regular expression"))?;
        }
        Ok(v)
    };
    let rotation_size = t
        .with("log_file_rotation_size", "bytes", warren_config::parse_size)?
        .unwrap_or(0);
    let rotation_date = t
        .with(
            "log_file_rotation_date",
            "$D0 (daily at midnight) or $D<hour>; weekly and monthly rotation are not supported",
            parse_rotation_date,
        )?
        .flatten();
    let formatter = |name: &str| -> anyhow::Result<bool> {
        Ok(t.with(name, "plaintext or json", |v| match v {
            "plaintext" => Some(false),
            "json" => Some(true),
            _ => None,
        })?
        .unwrap_or(false))
    };
    let log = LogSettings {
        console: t.boolean("log_console")?.unwrap_or(true)
            || t.text("log_file").as_deref() == Some("-"),
        console_level: output_level(&t, "log_console_level")?,
        console_json: formatter("log_console_formatter")?,
        file: None,
        file_level: output_level(&t, "log_file_level")?,
        file_json: formatter("log_file_formatter")?,
        rotation: Rotation {
            size: rotation_size,
            count: t.parse::<u32>("log_file_rotation_count", num)?.unwrap_or(5),
            daily_hour: rotation_date,
        },
    };
    let on = |name: &str| -> anyhow::Result<bool> { Ok(t.boolean(name)?.unwrap_or(true)) };
    let cluster = cluster(&t, bind)?;
    Ok(Config {
        node_name: d.node_name.clone(),
        cluster_name: t.text("cluster_name").filter(|c| !c.is_empty()),
        worker_threads: t.parse("worker_threads", num)?.unwrap_or(d.worker_threads),
        vm_memory_high_watermark: t
            .with(
                "vm_memory_high_watermark",
                "a fraction of RAM (0.4) or a size (512MiB)",
                parse_watermark,
            )?
            .unwrap_or(d.vm_memory_high_watermark),
        disk_free_limit: t
            .with(
                "disk_free_limit",
                "a size (50MB, 1GB) or mem_relative F",
                parse_disk_limit,
            )?
            .unwrap_or(d.disk_free_limit),
        amqp_port,
        bind,
        listeners,
        data_dir: d.data_dir.clone(),
        log,
        heartbeat: t.parse("heartbeat", "seconds")?.unwrap_or(d.heartbeat),
        ssl: crate::tls::SslOptions {
            certfile: t.text("ssl_options.certfile").map(PathBuf::from),
            keyfile: t.text("ssl_options.keyfile").map(PathBuf::from),
            cacertfile: t.text("ssl_options.cacertfile").map(PathBuf::from),
            verify: t.text("ssl_options.verify"),
            fail_if_no_peer_cert: t
                .boolean("ssl_options.fail_if_no_peer_cert")?
                .unwrap_or(false),
        },
        ssl_port: t.parse("ssl_port", port)?.unwrap_or(d.ssl_port),
        connection_max: t.limit("connection_max")?.unwrap_or(d.connection_max),
        consumer_max_per_channel: t
            .limit("consumer_max_per_channel")?
            .unwrap_or(d.consumer_max_per_channel),
        management_ssl: t.boolean("management_ssl")?.unwrap_or(false),
        management_login_failures: t
            .parse("management_login_failures", num)?
            .unwrap_or(d.management_login_failures),
        http_max_connections_per_source: t
            .parse("http_max_connections_per_source", num)?
            .unwrap_or(d.http_max_connections_per_source),
        consumer_timeout: match t.parse::<u64>("consumer_timeout", "milliseconds")? {
            Some(0) => None,
            Some(n) => Some(std::time::Duration::from_millis(n)),
            None => d.consumer_timeout,
        },
        handshake_timeout: ms("handshake_timeout", d.handshake_timeout)?,
        ssl_handshake_timeout: ms("ssl_handshake_timeout", d.ssl_handshake_timeout)?,
        frame_max,
        channel_max: t
            .parse::<u16>("channel_max", "a number of channels up to 65535")?
            .unwrap_or(d.channel_max)
            .max(1),
        default_user: t.text("default_user").unwrap_or(d.default_user.clone()),
        default_pass: t.text("default_pass").unwrap_or(d.default_pass.clone()),
        default_vhost: t.text("default_vhost").unwrap_or(d.default_vhost.clone()),
        default_user_tags: t
            .list("default_user_tags")
            .unwrap_or(d.default_user_tags.clone()),
        default_permissions: DefaultPermissions {
            configure: permission("default_permissions.configure", ".*")?,
            write: permission("default_permissions.write", ".*")?,
            read: permission("default_permissions.read", ".*")?,
        },
        max_message_size: t
            .with("max_message_size", "bytes", warren_config::parse_size)?
            .unwrap_or(d.max_message_size),
        definitions: t.text("load_definitions").map(PathBuf::from),
        loopback_users: t.list("loopback_users").unwrap_or(d.loopback_users.clone()),
        management_port: if on("management")? {
            Some(t.parse("management_port", port)?.unwrap_or(15672))
        } else {
            None
        },
        prometheus_port: if on("prometheus")? {
            Some(t.parse("prometheus_port", port)?.unwrap_or(15692))
        } else {
            None
        },
        management_bind: t.parse("management_bind", "an IP address")?,
        management_max_body: t
            .parse("management_max_body_size", "bytes")?
            .unwrap_or(d.management_max_body),
        mqtt_port: if on("mqtt")? {
            Some(t.parse("mqtt_port", port)?.unwrap_or(1883))
        } else {
            None
        },
        mqtt_ssl_port: t.parse("mqtt_ssl_port", port)?.unwrap_or(d.mqtt_ssl_port),
        mqtt_max_session_expiry: t
            .with(
                "mqtt_max_session_expiry_interval_seconds",
                "seconds, or infinity",
                parse_session_expiry,
            )?
            .unwrap_or(d.mqtt_max_session_expiry),
        mqtt_max_keepalive: t.parse("mqtt_max_keepalive", "seconds")?,
        web_mqtt_port: t.parse("web_mqtt_port", port)?,
        mqtt_vhost: t.text("mqtt_vhost"),
        mqtt_retained_max_bytes: t
            .with(
                "mqtt_retained_max_bytes",
                "bytes",
                warren_config::parse_size,
            )?
            .unwrap_or(d.mqtt_retained_max_bytes),
        cluster,
        effective: Vec::new(),
        ignored_keys: Vec::new(),
    })
}

/// The cluster settings; the secret file's default (in the data
/// directory) is filled in once that is known.
fn cluster(t: &Typed, bind: IpAddr) -> anyhow::Result<ClusterSettings> {
    let port = t
        .with("cluster_port", "a port number (1-65535)", |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        })?
        .unwrap_or(warren_config::cluster::DEFAULT_PORT);
    let (nodes, nodes_source) = match t.get("cluster_nodes") {
        None => (Vec::new(), Source::Default),
        Some(s) => {
            let nodes = warren_config::cluster::nodes(&s.values).map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration: {}: {e}",
                    s.source.locate("cluster_nodes")
                )
            })?;
            (nodes, s.source.clone())
        }
    };
    let secret_file = match t.get("cluster_secret_file") {
        Some(s) if s.text().trim().is_empty() => {
            return Err(invalid(s, "cluster_secret_file", "a path"))
        }
        Some(s) => PathBuf::from(s.text().trim()),
        None => PathBuf::new(),
    };
    Ok(ClusterSettings {
        port,
        bind: t
            .parse::<IpAddr>("cluster_bind", "an IP address")?
            .unwrap_or(bind),
        nodes,
        secret_file,
        nodes_source,
        tls: t.boolean("cluster_tls")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests;

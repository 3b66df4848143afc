//! Configuration: command-line flags, each with an environment variable,
//! over an optional TOML file, over built-in defaults.
//!
//! Precedence (highest first): flag, environment variable, config file,
//! default. The defaults are RabbitMQ's.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use warren_broker::alarms::{parse_size, Watermark};

#[derive(Debug, Parser)]
#[command(
    name = "warren",
    version,
    about = "A RabbitMQ-compatible AMQP 0-9-1 message broker"
)]
pub struct Args {
    /// AMQP listener port [default: 5672]
    #[arg(long, env = "WARREN_AMQP_PORT")]
    pub amqp_port: Option<u16>,

    /// Address to listen on [default: `::`, all interfaces, IPv6 and IPv4, like RabbitMQ]
    #[arg(long, env = "WARREN_BIND")]
    pub bind: Option<IpAddr>,

    /// AMQP listeners, ADDR:PORT, repeatable (RabbitMQ's listeners.tcp.N);
    /// replaces --bind/--amqp-port [e.g. --listen [::1]:5672 --listen 127.0.0.1:5673]
    #[arg(long = "listen", env = "WARREN_LISTEN", value_delimiter = ',')]
    pub listen: Vec<SocketAddr>,

    /// Directory for data (definitions, messages) and the control socket
    /// [default: $XDG_DATA_HOME/warren, else ~/.local/share/warren]
    #[arg(long, env = "WARREN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// TOML configuration file
    #[arg(long, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log filter, e.g. info, debug, warren=debug [default: info]
    #[arg(long, env = "WARREN_LOG")]
    pub log_level: Option<String>,

    /// Most consumers on one channel (RabbitMQ's consumer_max_per_channel) [default: no limit]
    #[arg(long, env = "WARREN_CONSUMER_MAX_PER_CHANNEL")]
    pub consumer_max_per_channel: Option<u64>,

    /// Most AMQP connections the node accepts (RabbitMQ's connection_max) [default: no limit]
    #[arg(long, env = "WARREN_CONNECTION_MAX")]
    pub connection_max: Option<u64>,

    /// AMQPS (TLS) port, served when a certificate and key are given [default: 5671]
    #[arg(long, env = "WARREN_SSL_PORT")]
    pub ssl_port: Option<u16>,

    /// TLS certificate chain, PEM (RabbitMQ's ssl_options.certfile)
    #[arg(long, env = "WARREN_SSL_CERTFILE")]
    pub ssl_certfile: Option<PathBuf>,

    /// TLS private key, PEM (ssl_options.keyfile)
    #[arg(long, env = "WARREN_SSL_KEYFILE")]
    pub ssl_keyfile: Option<PathBuf>,

    /// CA certificates for client certificates, PEM (ssl_options.cacertfile)
    #[arg(long, env = "WARREN_SSL_CACERTFILE")]
    pub ssl_cacertfile: Option<PathBuf>,

    /// verify_peer: ask clients for a certificate signed by the CA (ssl_options.verify)
    #[arg(long, env = "WARREN_SSL_VERIFY")]
    pub ssl_verify: Option<String>,

    /// Refuse TLS clients without a certificate (ssl_options.fail_if_no_peer_cert)
    #[arg(long, env = "WARREN_SSL_FAIL_IF_NO_PEER_CERT")]
    pub ssl_fail_if_no_peer_cert: bool,

    /// Failed management logins per source within a minute before it gets 429; 0: no limit [default: 10]
    #[arg(long, env = "WARREN_MANAGEMENT_LOGIN_FAILURES")]
    pub management_login_failures: Option<u32>,

    /// Open connections per source address on each HTTP listener (management, Prometheus, web MQTT); 0: only the listener's 1,024 [default: 64]
    #[arg(long, env = "WARREN_HTTP_MAX_CONNECTIONS_PER_SOURCE")]
    pub http_max_connections_per_source: Option<usize>,

    /// Serve the management API and UI (and Prometheus) over HTTPS with the same certificate
    #[arg(long, env = "WARREN_MANAGEMENT_SSL")]
    pub management_ssl: bool,

    /// Close a channel whose oldest delivery is unacknowledged this long,
    /// ms (RabbitMQ's consumer_timeout); 0 disables [default: 1800000]
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT")]
    pub consumer_timeout: Option<u64>,

    /// Time a client has for the AMQP handshake (header to connection.open),
    /// ms (RabbitMQ's handshake_timeout) [default: 10000]
    #[arg(long, env = "WARREN_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<u64>,

    /// Time a client has for the TLS handshake, ms (RabbitMQ's
    /// ssl_handshake_timeout) [default: 5000]
    #[arg(long, env = "WARREN_SSL_HANDSHAKE_TIMEOUT")]
    pub ssl_handshake_timeout: Option<u64>,

    /// Heartbeat interval proposed to clients, seconds; 0 disables [default: 60]
    #[arg(long, env = "WARREN_HEARTBEAT")]
    pub heartbeat: Option<u16>,

    /// Largest frame accepted, bytes [default: 131072]
    #[arg(long, env = "WARREN_FRAME_MAX")]
    pub frame_max: Option<u32>,

    /// Most channels per connection [default: 2047]
    #[arg(long, env = "WARREN_CHANNEL_MAX")]
    pub channel_max: Option<u16>,

    /// Memory high watermark: a fraction of RAM (0.4) or a size (512MB, 1GiB) [default: 0.4]
    #[arg(long, env = "WARREN_VM_MEMORY_HIGH_WATERMARK")]
    pub vm_memory_high_watermark: Option<String>,

    /// Free disk below which publishers are blocked (50MB, 1GB, bytes) [default: 50MB]
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT")]
    pub disk_free_limit: Option<String>,

    /// Threads serving connections [default: one per CPU core]
    #[arg(long, env = "WARREN_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Definitions (RabbitMQ's JSON format) to import at every start, as
    /// RabbitMQ's load_definitions
    #[arg(long, env = "WARREN_DEFINITIONS")]
    pub definitions: Option<PathBuf>,

    /// Users that may connect only from loopback, comma-separated; empty
    /// for none [default: guest]
    #[arg(long, env = "WARREN_LOOPBACK_USERS", value_delimiter = ',')]
    pub loopback_users: Option<Vec<String>>,

    /// Management HTTP API and web UI port [default: 15672]
    #[arg(long, env = "WARREN_MANAGEMENT_PORT")]
    pub management_port: Option<u16>,

    /// Prometheus metrics port [default: 15692]
    #[arg(long, env = "WARREN_PROMETHEUS_PORT")]
    pub prometheus_port: Option<u16>,

    /// Address the management and Prometheus ports listen on [default: --bind]
    #[arg(long, env = "WARREN_MANAGEMENT_BIND")]
    pub management_bind: Option<IpAddr>,

    /// Don't serve the management API and web UI
    #[arg(long, env = "WARREN_DISABLE_MANAGEMENT")]
    pub disable_management: bool,

    /// Don't serve Prometheus metrics
    #[arg(long, env = "WARREN_DISABLE_PROMETHEUS")]
    pub disable_prometheus: bool,

    /// MQTT 3.1.1/5.0 port [default: 1883]
    #[arg(long, env = "WARREN_MQTT_PORT")]
    pub mqtt_port: Option<u16>,

    /// MQTT over WebSockets (`ws://…:PORT/ws`, RabbitMQ's web_mqtt
    /// plugin, whose port is 15675); off unless given
    #[arg(long, env = "WARREN_WEB_MQTT_PORT")]
    pub web_mqtt_port: Option<u16>,

    /// MQTT over TLS port, served when a certificate and key are given
    /// (RabbitMQ's mqtt.listeners.ssl) [default: 8883]
    #[arg(long, env = "WARREN_MQTT_SSL_PORT")]
    pub mqtt_ssl_port: Option<u16>,

    /// Longest an MQTT session outlives its connection, in seconds, or
    /// `infinity` (RabbitMQ's mqtt.max_session_expiry_interval_seconds):
    /// a 3.1.1 persistent session's, or less if an MQTT 5 client asks
    /// [default: 86400]
    #[arg(long, env = "WARREN_MQTT_MAX_SESSION_EXPIRY")]
    pub mqtt_max_session_expiry: Option<String>,

    /// Longest keepalive an MQTT 5 client gets, in seconds: one that asks
    /// for more (or for none) is given this one in CONNACK's Server Keep
    /// Alive (as mosquitto's max_keepalive) [default: the client's]
    #[arg(long, env = "WARREN_MQTT_MAX_KEEPALIVE")]
    pub mqtt_max_keepalive: Option<u16>,

    /// The vhost MQTT clients get when their user name names none
    /// (RabbitMQ's mqtt.vhost) [default: the default vhost]
    #[arg(long, env = "WARREN_MQTT_VHOST")]
    pub mqtt_vhost: Option<String>,

    /// Don't accept MQTT connections
    #[arg(long, env = "WARREN_DISABLE_MQTT")]
    pub disable_mqtt: bool,

    /// Bytes of retained MQTT messages the broker keeps (on disk, all
    /// vhosts together); a retain past it is refused [default: 64 MiB]
    #[arg(long, env = "WARREN_MQTT_RETAINED_MAX_BYTES")]
    pub mqtt_retained_max_bytes: Option<u64>,
}

/// A TOML value that may be written as a number or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumOrText {
    Num(f64),
    Text(String),
}

impl NumOrText {
    fn text(self) -> String {
        match self {
            NumOrText::Num(n) => n.to_string(),
            NumOrText::Text(t) => t,
        }
    }
}

/// An MQTT session expiry limit: whole seconds, or `infinity` (`None`).
pub fn parse_session_expiry(text: &str) -> anyhow::Result<Option<u32>> {
    let t = text.trim();
    if t == "infinity" {
        return Ok(None);
    }
    t.parse::<u32>().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "invalid mqtt max_session_expiry_interval_seconds '{t}' (seconds, or infinity)"
        )
    })
}

/// "0.4" is a fraction of RAM; anything with a unit, or above 1, a size.
pub fn parse_watermark(text: &str) -> anyhow::Result<Watermark> {
    let t = text.trim();
    if let Ok(f) = t.parse::<f64>() {
        if (0.0..=1.0).contains(&f) {
            return Ok(Watermark::Relative(f));
        }
    }
    parse_size(t)
        .map(Watermark::Absolute)
        .ok_or_else(|| anyhow::anyhow!("invalid memory high watermark '{t}' (use 0.4 or 512MB)"))
}

/// The TOML file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub amqp_port: Option<u16>,
    pub bind: Option<IpAddr>,
    /// AMQP listeners (`["[::]:5672", "127.0.0.1:5673"]`).
    pub listeners: Option<Vec<SocketAddr>>,
    pub data_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub heartbeat: Option<u16>,
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    /// Milliseconds; 0 disables.
    pub consumer_timeout: Option<u64>,
    /// Milliseconds.
    pub handshake_timeout: Option<u64>,
    /// Milliseconds.
    pub ssl_handshake_timeout: Option<u64>,
    pub ssl_port: Option<u16>,
    pub connection_max: Option<u64>,
    pub consumer_max_per_channel: Option<u64>,
    /// RabbitMQ's `ssl_options.*`.
    pub ssl_options: Option<crate::tls::SslOptions>,
    /// HTTPS for the management and Prometheus listeners.
    pub management_ssl: Option<bool>,
    pub management_login_failures: Option<u32>,
    pub http_max_connections_per_source: Option<usize>,
    pub default_user: Option<String>,
    pub default_pass: Option<String>,
    pub default_vhost: Option<String>,
    pub max_message_size: Option<u64>,
    pub vm_memory_high_watermark: Option<NumOrText>,
    pub disk_free_limit: Option<NumOrText>,
    /// RabbitMQ's `load_definitions`.
    pub load_definitions: Option<PathBuf>,
    pub loopback_users: Option<Vec<String>>,
    pub management_port: Option<u16>,
    pub prometheus_port: Option<u16>,
    pub management_bind: Option<IpAddr>,
    /// `false` turns the management API and UI off.
    pub management: Option<bool>,
    /// `false` turns the Prometheus endpoint off.
    pub prometheus: Option<bool>,
    pub mqtt_port: Option<u16>,
    pub mqtt_ssl_port: Option<u16>,
    /// Seconds, or "infinity".
    pub mqtt_max_session_expiry_interval_seconds: Option<NumOrText>,
    pub mqtt_max_keepalive: Option<u16>,
    pub web_mqtt_port: Option<u16>,
    pub mqtt_vhost: Option<String>,
    /// `false` turns MQTT off.
    pub mqtt: Option<bool>,
    /// Bytes of retained MQTT messages kept (all vhosts together).
    pub mqtt_retained_max_bytes: Option<u64>,
    /// Largest HTTP request body, bytes (RabbitMQ's max_http_body_size).
    pub management_max_body_size: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub amqp_port: u16,
    pub bind: IpAddr,
    /// Where AMQP is served: `--listen`s, else `bind`:`amqp_port`.
    pub listeners: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub heartbeat: u16,
    pub frame_max: u32,
    pub channel_max: u16,
    /// RabbitMQ's `consumer_timeout`; `None`: off.
    pub consumer_timeout: Option<std::time::Duration>,
    /// RabbitMQ's `handshake_timeout`: header to connection.open.
    pub handshake_timeout: std::time::Duration,
    /// RabbitMQ's `ssl_handshake_timeout`.
    pub ssl_handshake_timeout: std::time::Duration,
    /// TLS files; AMQPS is served on `ssl_port` when a certificate and key
    /// are set.
    pub ssl: crate::tls::SslOptions,
    pub ssl_port: u16,
    pub management_ssl: bool,
    /// RabbitMQ's `connection_max` (`None`: no limit).
    pub connection_max: Option<u64>,
    /// RabbitMQ's `consumer_max_per_channel` (`None`: no limit).
    pub consumer_max_per_channel: Option<u64>,
    /// Failed management logins per source per minute (0: unlimited).
    pub management_login_failures: u32,
    /// Open connections per source address on each HTTP listener (0: no
    /// limit but the listener's).
    pub http_max_connections_per_source: usize,
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    /// Largest message body accepted (RabbitMQ's max_message_size).
    pub max_message_size: u64,
    pub vm_memory_high_watermark: Watermark,
    pub disk_free_limit: u64,
    /// 0: one per core.
    pub worker_threads: usize,
    /// Definitions imported at every start.
    pub definitions: Option<PathBuf>,
    /// Users held to loopback connections.
    pub loopback_users: Vec<String>,
    /// The management API's port; `None` when it is turned off.
    pub management_port: Option<u16>,
    /// The Prometheus port; `None` when it is turned off.
    pub prometheus_port: Option<u16>,
    /// Where the HTTP ports listen (`None`: where AMQP does).
    pub management_bind: Option<IpAddr>,
    /// Largest HTTP request body accepted.
    pub management_max_body: usize,
    /// The MQTT port; `None` when MQTT is turned off.
    pub mqtt_port: Option<u16>,
    /// MQTT over TLS, served with the TLS files when MQTT is on.
    pub mqtt_ssl_port: u16,
    /// Longest a persistent MQTT session outlives its connection, seconds
    /// (`None`: for ever).
    pub mqtt_max_session_expiry: Option<u32>,
    /// The keepalive imposed on MQTT 5 clients asking for longer.
    pub mqtt_max_keepalive: Option<u16>,
    /// MQTT over WebSockets, when given and MQTT is on.
    pub web_mqtt_port: Option<u16>,
    /// The vhost of MQTT clients whose user name names none (`None`:
    /// the default vhost).
    pub mqtt_vhost: Option<String>,
    /// Bytes of retained MQTT messages kept, on disk, all vhosts
    /// together (their log records: topic, properties and payload).
    pub mqtt_retained_max_bytes: u64,
}

impl Config {
    /// What the broker core needs from this configuration to open.
    pub fn broker_setup(&self) -> warren_broker::broker::BrokerSetup {
        warren_broker::broker::BrokerSetup {
            default_user: self.default_user.clone(),
            default_pass: self.default_pass.clone(),
            default_vhost: self.default_vhost.clone(),
            memory_high_watermark: self.vm_memory_high_watermark,
            disk_free_limit: self.disk_free_limit,
            loopback_users: self.loopback_users.clone(),
        }
    }

    /// The address the HTTP listeners bind.
    pub fn management_bind(&self) -> IpAddr {
        self.management_bind.unwrap_or(self.bind)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp_port: 5672,
            // `[::]`: IPv6 and IPv4 (dual-stack), as RabbitMQ listens.
            bind: IpAddr::from([0u16; 8]),
            listeners: vec![SocketAddr::new(IpAddr::from([0u16; 8]), 5672)],
            data_dir: default_data_dir(),
            log_level: "info".into(),
            heartbeat: 60,
            // RabbitMQ 3.10's default: 30 minutes.
            consumer_timeout: Some(std::time::Duration::from_millis(1_800_000)),
            // RabbitMQ's defaults: 10 s and 5 s.
            handshake_timeout: std::time::Duration::from_secs(10),
            ssl_handshake_timeout: std::time::Duration::from_secs(5),
            ssl: crate::tls::SslOptions::default(),
            ssl_port: 5671,
            management_ssl: false,
            connection_max: None,
            consumer_max_per_channel: None,
            management_login_failures: 10,
            http_max_connections_per_source: crate::http::MAX_PER_SOURCE,
            frame_max: 131_072,
            channel_max: 2047,
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            max_message_size: 128 * 1024 * 1024,
            vm_memory_high_watermark: Watermark::Relative(0.4),
            disk_free_limit: 50_000_000,
            worker_threads: 0,
            definitions: None,
            loopback_users: vec!["guest".into()],
            management_port: Some(15672),
            prometheus_port: Some(15692),
            management_bind: None,
            // RabbitMQ 3.10's default max_http_body_size.
            management_max_body: 10_000_000,
            mqtt_port: Some(1883),
            mqtt_ssl_port: 8883,
            // RabbitMQ's default: one day.
            mqtt_max_session_expiry: Some(86_400),
            mqtt_max_keepalive: None,
            web_mqtt_port: None,
            mqtt_vhost: None,
            mqtt_retained_max_bytes: 64 << 20,
        }
    }
}

/// Where data lives unless told otherwise. Absolute, so `warrenctl` finds
/// the broker from any working directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("warren");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/warren"),
        None => PathBuf::from("warren-data"),
    }
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl Config {
    /// Merges flags/env, the config file and defaults.
    pub fn load(args: Args) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let frame_max = args.frame_max.or(file.frame_max).unwrap_or(d.frame_max);
        if frame_max < warren_protocol::constants::FRAME_MIN_SIZE {
            anyhow::bail!("frame_max must be at least 4096");
        }
        let watermark = match args
            .vm_memory_high_watermark
            .or(file.vm_memory_high_watermark.map(NumOrText::text))
        {
            Some(t) => parse_watermark(&t)?,
            None => d.vm_memory_high_watermark,
        };
        let disk_free_limit = match args
            .disk_free_limit
            .or(file.disk_free_limit.map(NumOrText::text))
        {
            Some(t) => parse_size(&t).ok_or_else(|| {
                anyhow::anyhow!("invalid disk free limit '{t}' (use 50MB or bytes)")
            })?,
            None => d.disk_free_limit,
        };
        let bind = args.bind.or(file.bind).unwrap_or(d.bind);
        let amqp_port = args.amqp_port.or(file.amqp_port).unwrap_or(d.amqp_port);
        Ok(Config {
            worker_threads: args.worker_threads.unwrap_or(d.worker_threads),
            vm_memory_high_watermark: watermark,
            disk_free_limit,
            amqp_port,
            bind,
            listeners: if !args.listen.is_empty() {
                args.listen
            } else {
                file.listeners
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| vec![SocketAddr::new(bind, amqp_port)])
            },
            data_dir: args.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            log_level: args.log_level.or(file.log_level).unwrap_or(d.log_level),
            heartbeat: args.heartbeat.or(file.heartbeat).unwrap_or(d.heartbeat),
            ssl: {
                let f = file.ssl_options.unwrap_or_default();
                crate::tls::SslOptions {
                    certfile: args.ssl_certfile.or(f.certfile),
                    keyfile: args.ssl_keyfile.or(f.keyfile),
                    cacertfile: args.ssl_cacertfile.or(f.cacertfile),
                    verify: args.ssl_verify.or(f.verify),
                    fail_if_no_peer_cert: args.ssl_fail_if_no_peer_cert || f.fail_if_no_peer_cert,
                }
            },
            ssl_port: args.ssl_port.or(file.ssl_port).unwrap_or(d.ssl_port),
            connection_max: args.connection_max.or(file.connection_max),
            consumer_max_per_channel: args
                .consumer_max_per_channel
                .or(file.consumer_max_per_channel),
            management_ssl: args.management_ssl || file.management_ssl.unwrap_or(false),
            management_login_failures: args
                .management_login_failures
                .or(file.management_login_failures)
                .unwrap_or(d.management_login_failures),
            http_max_connections_per_source: args
                .http_max_connections_per_source
                .or(file.http_max_connections_per_source)
                .unwrap_or(d.http_max_connections_per_source),
            consumer_timeout: match args.consumer_timeout.or(file.consumer_timeout) {
                Some(0) => None,
                Some(ms) => Some(std::time::Duration::from_millis(ms)),
                None => d.consumer_timeout,
            },
            handshake_timeout: args
                .handshake_timeout
                .or(file.handshake_timeout)
                .map_or(d.handshake_timeout, std::time::Duration::from_millis),
            ssl_handshake_timeout: args
                .ssl_handshake_timeout
                .or(file.ssl_handshake_timeout)
                .map_or(d.ssl_handshake_timeout, std::time::Duration::from_millis),
            frame_max,
            channel_max: args
                .channel_max
                .or(file.channel_max)
                .unwrap_or(d.channel_max)
                .max(1),
            // Environment first, RabbitMQ's names honoured too.
            default_user: env_first(&["WARREN_DEFAULT_USER", "RABBITMQ_DEFAULT_USER"])
                .or(file.default_user)
                .unwrap_or(d.default_user),
            default_pass: env_first(&["WARREN_DEFAULT_PASS", "RABBITMQ_DEFAULT_PASS"])
                .or(file.default_pass)
                .unwrap_or(d.default_pass),
            default_vhost: env_first(&["WARREN_DEFAULT_VHOST", "RABBITMQ_DEFAULT_VHOST"])
                .or(file.default_vhost)
                .unwrap_or(d.default_vhost),
            max_message_size: file.max_message_size.unwrap_or(d.max_message_size),
            definitions: args.definitions.or(file.load_definitions),
            loopback_users: args
                .loopback_users
                .or(file.loopback_users)
                .map(|v| v.into_iter().filter(|u| !u.is_empty()).collect())
                .unwrap_or(d.loopback_users),
            management_port: (!args.disable_management && file.management != Some(false))
                .then(|| {
                    args.management_port
                        .or(file.management_port)
                        .or(d.management_port)
                })
                .flatten(),
            prometheus_port: (!args.disable_prometheus && file.prometheus != Some(false))
                .then(|| {
                    args.prometheus_port
                        .or(file.prometheus_port)
                        .or(d.prometheus_port)
                })
                .flatten(),
            management_bind: args.management_bind.or(file.management_bind),
            management_max_body: file
                .management_max_body_size
                .unwrap_or(d.management_max_body),
            mqtt_port: (!args.disable_mqtt && file.mqtt != Some(false))
                .then(|| args.mqtt_port.or(file.mqtt_port).or(d.mqtt_port))
                .flatten(),
            mqtt_ssl_port: args
                .mqtt_ssl_port
                .or(file.mqtt_ssl_port)
                .unwrap_or(d.mqtt_ssl_port),
            mqtt_max_session_expiry: match args.mqtt_max_session_expiry.or(file
                .mqtt_max_session_expiry_interval_seconds
                .map(NumOrText::text))
            {
                Some(t) => parse_session_expiry(&t)?,
                None => d.mqtt_max_session_expiry,
            },
            mqtt_max_keepalive: args.mqtt_max_keepalive.or(file.mqtt_max_keepalive),
            web_mqtt_port: args.web_mqtt_port.or(file.web_mqtt_port),
            mqtt_vhost: args.mqtt_vhost.or(file.mqtt_vhost),
            mqtt_retained_max_bytes: args
                .mqtt_retained_max_bytes
                .or(file.mqtt_retained_max_bytes)
                .unwrap_or(d.mqtt_retained_max_bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["warren"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn defaults_are_rabbitmqs() {
        let c = Config::load(args(&[])).unwrap();
        assert_eq!(c.amqp_port, 5672);
        assert_eq!(c.frame_max, 131_072);
        assert_eq!(c.channel_max, 2047);
        assert_eq!(c.heartbeat, 60);
        assert_eq!(c.management_port, Some(15672));
        assert_eq!(c.prometheus_port, Some(15692));
    }

    #[test]
    fn http_listeners_are_configurable() {
        let c = Config::load(args(&[
            "--management-port",
            "15000",
            "--disable-prometheus",
        ]))
        .unwrap();
        assert_eq!(c.management_port, Some(15000));
        assert_eq!(c.prometheus_port, None);
        let c = Config::load(args(&["--disable-management", "--bind", "127.0.0.1"])).unwrap();
        assert_eq!(c.management_port, None);
        assert_eq!(c.management_bind().to_string(), "127.0.0.1");
    }

    #[test]
    fn loopback_users_and_definitions_are_configurable() {
        let c = Config::load(args(&[])).unwrap();
        assert_eq!(c.loopback_users, vec!["guest".to_string()]);
        assert!(c.definitions.is_none());
        let c = Config::load(args(&["--loopback-users", ""])).unwrap();
        assert!(
            c.loopback_users.is_empty(),
            "an empty list lets guest in from anywhere"
        );
        let c = Config::load(args(&[
            "--loopback-users",
            "guest,ops",
            "--definitions",
            "/d.json",
        ]))
        .unwrap();
        assert_eq!(
            c.loopback_users,
            vec!["guest".to_string(), "ops".to_string()]
        );
        assert_eq!(
            c.definitions.as_deref(),
            Some(std::path::Path::new("/d.json"))
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("warren-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("warren.toml");
        std::fs::write(
            &file,
            "amqp_port = 5999\nheartbeat = 10\nbind = \"127.0.0.1\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::load(args(&["--config", path, "--heartbeat", "5"])).unwrap();
        assert_eq!(c.amqp_port, 5999);
        assert_eq!(c.heartbeat, 5);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let err = Config::load(args(&["--config", path]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid config file"), "{err}");
        let err = Config::load(args(&["--frame-max", "100"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4096"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Configuration: command-line flags (each with a `WARREN_*` environment
//! variable), RabbitMQ's environment variables and env file, the config
//! file (rabbitmq.conf or TOML), and built-in defaults, resolved by the
//! `warren_config` crate (shared with warrenctl) and typed here.
//!
//! Precedence (highest first): flag, environment variable, config file,
//! default. The defaults are RabbitMQ's. docs/configuration.md lists
//! every setting.

mod resolve;
pub mod secret;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use warren_broker::alarms::Watermark;

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

    /// Configuration file: rabbitmq.conf format, or Warren's TOML when it
    /// ends in .toml [default: $RABBITMQ_CONFIG_FILE, else
    /// /etc/warren/rabbitmq.conf if it exists]
    #[arg(long, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,

    /// The node's name (RabbitMQ's RABBITMQ_NODENAME) [default:
    /// warren@<short hostname>]
    #[arg(long, env = "WARREN_NODE_NAME")]
    pub node_name: Option<String>,

    /// Log level: debug, info, warning, error, critical or none (RabbitMQ's
    /// names); also TARGET=LEVEL directives, comma-separated
    /// (info,warren_server::mqtt=debug) [default: info]
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

    /// A cluster member, NAME=HOST:PORT: its node name and the address at
    /// which this node reaches it; repeatable; this node may list itself
    /// (RabbitMQ's cluster_formation.classic_config.nodes.N)
    /// [e.g. --cluster-node rabbit@a=10.0.0.1:25672]
    #[arg(long, env = "WARREN_CLUSTER_NODE", value_delimiter = ',')]
    pub cluster_node: Vec<String>,

    /// The inter-node port (RabbitMQ's distribution port, RABBITMQ_DIST_PORT) [default: 25672]
    #[arg(long, env = "WARREN_CLUSTER_PORT")]
    pub cluster_port: Option<u16>,

    /// Address the inter-node port listens on [default: --bind]
    #[arg(long, env = "WARREN_CLUSTER_BIND")]
    pub cluster_bind: Option<IpAddr>,

    /// The secret the cluster's nodes share (RabbitMQ's Erlang cookie):
    /// created with a random one if missing; must be readable by its owner
    /// only [default: <data dir>/.cluster_secret]
    #[arg(long, env = "WARREN_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Inter-node TLS, with the certificate, key and CA of --ssl-certfile,
    /// --ssl-keyfile and --ssl-cacertfile (RabbitMQ's ssl_options): every
    /// node's certificate must be signed by that CA
    #[arg(long, env = "WARREN_CLUSTER_TLS")]
    pub cluster_tls: bool,
}

/// The cluster as configured (issue 21). The members are the seed list:
/// each node's name and the address at which THIS node reaches it (so a
/// test can put a proxy on each directed link). This node may be among
/// them (then it is not a peer, but its membership is confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The inter-node port this node listens on.
    pub port: u16,
    /// Where it listens (default: the `bind` address).
    pub bind: IpAddr,
    /// `(node name, "host:port")`, in the order given, names unique.
    pub nodes: Vec<(String, String)>,
    /// The shared secret's file: [`secret::load_or_create_secret`].
    pub secret_file: PathBuf,
    /// Where `nodes` came from (`flag --cluster-node`, a file's line),
    /// for messages about them.
    pub nodes_source: warren_config::Source,
    /// Inter-node TLS with ssl_options' certificate, key and CA.
    pub tls: bool,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            port: warren_config::cluster::DEFAULT_PORT,
            bind: IpAddr::from([0u16; 8]),
            nodes: Vec::new(),
            secret_file: PathBuf::new(),
            nodes_source: warren_config::Source::Default,
            tls: false,
        }
    }
}

impl ClusterSettings {
    /// Clustered: some members are configured.
    pub fn enabled(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The inter-node listener's address.
    #[allow(dead_code)] // TODO(cluster): used when the cluster is wired
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// The members other than `own` (this node's name), with their addresses.
    #[allow(dead_code)] // TODO(cluster): used when the cluster is wired
    pub fn peers<'a>(&'a self, own: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.nodes
            .iter()
            .filter(move |(n, _)| n != own)
            .map(|(n, a)| (n.as_str(), a.as_str()))
    }
}

/// The default user's permissions on the default vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultPermissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// One row of `warrenctl environment`: a setting's effective value and
/// where it came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EffectiveSetting {
    pub name: String,
    pub rabbitmq_key: String,
    pub value: String,
    pub source: String,
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The node's name (`warren@host`).
    pub node_name: String,
    /// RabbitMQ's `cluster_name` (`None`: the node name, as RabbitMQ).
    #[allow(dead_code)] // applied to the broker by the cluster-name work
    pub cluster_name: Option<String>,
    pub amqp_port: u16,
    pub bind: IpAddr,
    /// Where AMQP is served: `--listen`s / `listeners.tcp.*`, else
    /// `bind`:`amqp_port`; empty with `listeners.tcp = none`.
    pub listeners: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    /// Logging: outputs, levels, formats, the file and its rotation.
    pub log: crate::logging::LogSettings,
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
    /// RabbitMQ's `default_user_tags`.
    pub default_user_tags: Vec<String>,
    /// RabbitMQ's `default_permissions`.
    pub default_permissions: DefaultPermissions,
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
    /// The cluster's members, port, address and secret file.
    pub cluster: ClusterSettings,
    /// Every setting's effective value and source, for `warrenctl
    /// environment` (secrets masked).
    pub effective: Vec<EffectiveSetting>,
    /// RabbitMQ keys in the config file Warren does not act on, with why:
    /// logged in one warning at startup.
    pub ignored_keys: Vec<String>,
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
            default_user_tags: self.default_user_tags.clone(),
            default_permissions: [
                self.default_permissions.configure.clone(),
                self.default_permissions.write.clone(),
                self.default_permissions.read.clone(),
            ],
        }
    }

    /// Clustered: `--cluster-node`s or the classic config's nodes given.
    pub fn cluster_enabled(&self) -> bool {
        self.cluster.enabled()
    }

    /// The address the HTTP listeners bind.
    pub fn management_bind(&self) -> IpAddr {
        self.management_bind.unwrap_or(self.bind)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: format!("warren@{}", warren_config::short_hostname()),
            cluster_name: None,
            amqp_port: 5672,
            // `[::]`: IPv6 and IPv4 (dual-stack), as RabbitMQ listens.
            bind: IpAddr::from([0u16; 8]),
            listeners: vec![SocketAddr::new(IpAddr::from([0u16; 8]), 5672)],
            data_dir: warren_config::default_data_dir(),
            log: crate::logging::LogSettings::default(),
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
            default_user_tags: vec!["administrator".into()],
            default_permissions: DefaultPermissions {
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            },
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
            cluster: ClusterSettings::default(),
            effective: Vec::new(),
            ignored_keys: Vec::new(),
        }
    }
}

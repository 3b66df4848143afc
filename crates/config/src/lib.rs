//! Warren's configuration, shared by the broker (`warren`) and `warrenctl`.
//!
//! Settings come from four layers, highest first: command-line flags,
//! the environment (RabbitMQ's `RABBITMQ_*` variables, the env file
//! `rabbitmq-env.conf`, Warren's `WARREN_*` variables), the config file
//! (RabbitMQ's `rabbitmq.conf` format, or Warren's TOML), and built-in
//! defaults. Every setting is kept as text with the place it came from
//! ([`Source`]); the server turns the text into typed values, and a bad
//! value is reported with its key and, for a file, its line.
//!
//! Settings are named by their Warren TOML name (`amqp_port`,
//! `ssl_options.certfile`, `log_file_level`, …); [`keys::SPECS`] lists
//! every one with its RabbitMQ key, flag, environment variables and
//! default.

pub mod cluster;
mod conf;
mod env;
pub mod keys;
mod size;
mod toml_file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use env::{Env, LOG_BASE};
pub use size::parse_size;

/// RabbitMQ's log level names (Erlang logger's, as 3.10 takes them):
/// the only levels a configuration, a flag or `set_log_level` accepts.
pub const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
    "none",
];

/// Where the package puts the config file; read when no other is named
/// and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/warren/rabbitmq.conf";
/// Where the package puts RabbitMQ's env file; read when
/// `RABBITMQ_CONF_ENV_FILE` names no other and it exists.
pub const DEFAULT_ENV_FILE: &str = "/etc/warren/rabbitmq-env.conf";

/// A configuration error: the message names the file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    /// A config file; `line` for rabbitmq.conf, `key` as written there.
    File {
        path: PathBuf,
        line: Option<usize>,
        key: String,
    },
    /// An environment variable; `file` when it came from the env file.
    Env {
        var: String,
        file: Option<PathBuf>,
    },
    /// A command-line flag.
    Flag {
        name: String,
    },
}

impl Source {
    /// Precedence: flag 3, environment 2, file 1, default 0.
    pub fn rank(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::File { .. } => 1,
            Source::Env { .. } => 2,
            Source::Flag { .. } => 3,
        }
    }

    /// A short word for listings: `default`, `file`, `env`, `flag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File { .. } => "file",
            Source::Env { .. } => "env",
            Source::Flag { .. } => "flag",
        }
    }

    /// How an error names the setting: `/etc/warren/rabbitmq.conf line 7:
    /// 'heartbeat'`, `environment variable RABBITMQ_NODE_PORT`, `flag
    /// --heartbeat`.
    pub fn locate(&self, name: &str) -> String {
        match self {
            Source::Default => format!("default of '{name}'"),
            Source::File {
                path,
                line: Some(l),
                key,
            } => format!("{} line {l}: '{key}'", path.display()),
            Source::File { path, key, .. } => format!("{}: '{key}'", path.display()),
            Source::Env { var, file: None } => format!("environment variable {var}"),
            Source::Env { var, file: Some(f) } => format!("{var} in {}", f.display()),
            Source::Flag { name } => format!("flag {name}"),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File {
                path,
                line: Some(l),
                key,
            } => write!(f, "{} line {l} ({key})", path.display()),
            Source::File { path, key, .. } => write!(f, "{} ({key})", path.display()),
            Source::Env { var, file: None } => write!(f, "environment {var}"),
            Source::Env { var, file: Some(p) } => {
                write!(f, "environment {var} (from {})", p.display())
            }
            Source::Flag { name } => write!(f, "flag {name}"),
        }
    }
}

/// One setting's value (several for lists: listeners, loopback users,
/// tags), and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub values: Vec<String>,
    pub source: Source,
}

impl Setting {
    /// The value of a single-valued setting.
    pub fn text(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
}

/// Every setting given, each from the highest layer that gives it.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    map: BTreeMap<String, Setting>,
}

impl Layers {
    /// Sets `name` unless a higher layer already did; at equal rank the
    /// later call wins (Warren's `WARREN_*` variables are applied after
    /// RabbitMQ's, so they win over them).
    pub fn set(&mut self, name: &str, values: Vec<String>, source: Source) {
        if let Some(old) = self.map.get(name) {
            if old.source.rank() > source.rank() {
                return;
            }
        }
        self.map
            .insert(name.to_string(), Setting { values, source });
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.map.get(name)
    }

    /// The source rank of `name`, 0 when not given.
    pub fn rank(&self, name: &str) -> u8 {
        self.map.get(name).map_or(0, |s| s.source.rank())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Setting)> {
        self.map.iter()
    }
}

/// The config file, the env file and what they and the environment give.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub layers: Layers,
    /// The config file read, and what named it.
    pub config_file: Option<(PathBuf, Source)>,
    pub env_file: Option<PathBuf>,
    /// Keys RabbitMQ has that Warren does not act on, each with why
    /// (`auth_backends.1: Warren authenticates against its internal user
    /// database only`), and settings only partly honoured.
    pub warnings: Vec<String>,
}

/// Which config file to read: `flag` (`--config`, or `WARREN_CONFIG` as
/// the broker's flag parser saw it), else `WARREN_CONFIG`, else
/// `RABBITMQ_CONFIG_FILE` (as RabbitMQ, `/etc/x/rabbitmq` means
/// `/etc/x/rabbitmq.conf` when only that exists), else `default` when it
/// exists.
pub fn config_file_location(
    flag: Option<(PathBuf, Source)>,
    env: &Env,
    default: &Path,
) -> Option<(PathBuf, Source)> {
    if flag.is_some() {
        return flag;
    }
    for var in ["WARREN_CONFIG", "RABBITMQ_CONFIG_FILE"] {
        if let Some((value, source)) = env.get(var) {
            let p = PathBuf::from(value);
            if !p.exists() && p.extension().is_none() {
                let with_ext = p.with_extension("conf");
                if with_ext.exists() {
                    return Some((with_ext, source));
                }
            }
            return Some((p, source));
        }
    }
    default.exists().then(|| {
        (
            default.to_path_buf(),
            Source::File {
                path: default.to_path_buf(),
                line: None,
                key: "(default location)".into(),
            },
        )
    })
}

/// Reads the config file (if any) and the environment into layers. The
/// caller adds its flags with [`Layers::set`].
pub fn load(config: Option<(PathBuf, Source)>, env: &Env) -> Result<Loaded, Error> {
    let mut loaded = Loaded {
        env_file: env.file().map(Path::to_path_buf),
        ..Default::default()
    };
    if let Some((path, _)) = &config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("cannot read config file {}: {e}", path.display())))?;
        let is_toml = path.extension().and_then(|e| e.to_str()) == Some("toml");
        if is_toml {
            toml_file::apply(path, &text, &mut loaded.layers)?;
        } else {
            conf::apply(path, &text, &mut loaded.layers, &mut loaded.warnings)?;
        }
    }
    loaded.config_file = config;
    env::apply(env, &mut loaded.layers);
    Ok(loaded)
}

/// This host's name up to the first dot (`warren@<short hostname>`).
pub fn short_hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    host.split('.').next().unwrap_or("localhost").to_string()
}

/// The node name: `node_name` as given (RabbitMQ's `RABBITMQ_NODENAME`;
/// a name without `@` gets `@<short hostname>`, as RabbitMQ's does), else
/// `warren@<short hostname>`.
pub fn node_name(layers: &Layers) -> (String, Source) {
    match layers.get("node_name").filter(|s| !s.text().is_empty()) {
        Some(s) => {
            let n = s.text();
            let name = if n.contains('@') {
                n.to_string()
            } else {
                format!("{n}@{}", short_hostname())
            };
            (name, s.source.clone())
        }
        None => (format!("warren@{}", short_hostname()), Source::Default),
    }
}

/// Where data lives unless told otherwise: `$XDG_DATA_HOME/warren`, else
/// `~/.local/share/warren`. Absolute, so `warrenctl` finds the broker from
/// any working directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("warren");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/warren"),
        None => PathBuf::from("warren-data"),
    }
}

/// The data directory: `--data-dir` / `WARREN_DATA_DIR` >
/// `RABBITMQ_MNESIA_DIR` > `RABBITMQ_MNESIA_BASE/<node name>` > the
/// config file's `data_dir` > [`default_data_dir`].
pub fn data_dir(layers: &Layers, node: &str) -> (PathBuf, Source) {
    let given = layers.get("data_dir").filter(|s| !s.text().is_empty());
    if let Some(s) = given.filter(|s| s.source.rank() >= 2) {
        return (PathBuf::from(s.text()), s.source.clone());
    }
    if let Some(base) = layers
        .get(env::MNESIA_BASE)
        .filter(|s| !s.text().is_empty())
    {
        return (PathBuf::from(base.text()).join(node), base.source.clone());
    }
    if let Some(s) = given {
        return (PathBuf::from(s.text()), s.source.clone());
    }
    (default_data_dir(), Source::Default)
}

/// What `warrenctl` needs to find the broker: the data directory as the
/// broker would resolve it from the environment, the env file and the
/// config file (no flags: `warrenctl --data-dir` is checked before this).
/// Fails only when the env file cannot be read.
pub fn locate_data_dir() -> Result<(PathBuf, Source), Error> {
    let env = Env::from_process()?;
    let file = config_file_location(None, &env, Path::new(DEFAULT_CONFIG_FILE));
    // A config file warrenctl cannot read (the package's is the broker
    // user's, mode 0640) or that is broken (the broker refuses it and says
    // why): the environment and env file still locate the data directory.
    let loaded = load(file, &env).or_else(|_| load(None, &env))?;
    let mut layers = loaded.layers;
    // WARREN_DATA_DIR and WARREN_NODE_NAME, as the broker's flag parser
    // reads them.
    for (var, name) in [
        ("WARREN_DATA_DIR", "data_dir"),
        ("WARREN_NODE_NAME", "node_name"),
    ] {
        if let Some((v, source)) = env.get(var) {
            layers.set(name, vec![v.to_string()], source);
        }
    }
    let (node, _) = node_name(&layers);
    Ok(data_dir(&layers, &node))
}

#[cfg(test)]
mod tests;

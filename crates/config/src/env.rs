//! The environment: the process's variables over RabbitMQ's env file
//! (`rabbitmq-env.conf`: `NAME=value` lines, names with or without the
//! `RABBITMQ_` prefix, as RabbitMQ's scripts read it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Layers, Source};

/// `RABBITMQ_MNESIA_BASE`, kept aside: the data directory is
/// `<base>/<node name>`, known once every layer is in.
pub(crate) const MNESIA_BASE: &str = "rabbitmq_mnesia_base";
/// `RABBITMQ_LOG_BASE`: the log file is `<base>/<node name>.log`.
pub const LOG_BASE: &str = "log_base";

/// Environment variables, each remembering whether the env file gave it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, (String, bool)>,
    file: Option<PathBuf>,
}

impl Env {
    /// The process environment over the env file named by
    /// `RABBITMQ_CONF_ENV_FILE`, else [`crate::DEFAULT_ENV_FILE`] if it
    /// exists.
    pub fn from_process() -> Result<Env, Error> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Env::build(vars, Path::new(crate::DEFAULT_ENV_FILE))
    }

    /// `vars` over the env file they name (or `default_file` if it exists).
    pub fn build(
        vars: impl IntoIterator<Item = (String, String)>,
        default_file: &Path,
    ) -> Result<Env, Error> {
        let mut env = Env::default();
        for (k, v) in vars {
            env.vars.insert(k, (v, false));
        }
        let file = match env.vars.get("RABBITMQ_CONF_ENV_FILE") {
            Some((f, _)) if !f.is_empty() => Some(PathBuf::from(f)),
            _ => default_file.exists().then(|| default_file.to_path_buf()),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::new(format!("cannot read env file {}: {e}", path.display())))?;
            for (name, value) in parse_env_file(&path, &text)? {
                // The real environment wins over the file.
                env.vars.entry(name).or_insert((value, true));
            }
            env.file = Some(path);
        }
        Ok(env)
    }

    /// The env file read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A non-empty variable and where it came from.
    pub fn get(&self, name: &str) -> Option<(&str, Source)> {
        let (v, from_file) = self.vars.get(name)?;
        if v.is_empty() {
            return None;
        }
        Some((
            v,
            Source::Env {
                var: name.to_string(),
                file: if *from_file { self.file.clone() } else { None },
            },
        ))
    }
}

/// `NAME=value` lines; `#` comments; optional `export`; values may be
/// quoted. Names without `RABBITMQ_` get it (`NODE_PORT` is
/// `RABBITMQ_NODE_PORT`), as in RabbitMQ's rabbitmq-env.conf.
fn parse_env_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        let Some((name, value)) = line.split_once('=') else {
            return Err(Error::new(format!(
                "{} line {}: expected NAME=value, found '{line}'",
                path.display(),
                i + 1
            )));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::new(format!(
                "{} line {}: invalid variable name '{name}'",
                path.display(),
                i + 1
            )));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| value.to_string());
        let name = if name.starts_with("RABBITMQ_") || name.starts_with("WARREN_") {
            name.to_string()
        } else {
            format!("RABBITMQ_{name}")
        };
        out.push((name, value));
    }
    Ok(out)
}

/// RabbitMQ's environment variables (and Warren's `WARREN_DEFAULT_*`,
/// which the flag parser does not read) into the environment layer.
pub(crate) fn apply(env: &Env, layers: &mut Layers) {
    let map: &[(&str, &str)] = &[
        ("RABBITMQ_NODE_PORT", "amqp_port"),
        ("RABBITMQ_NODE_IP_ADDRESS", "bind"),
        ("RABBITMQ_DIST_PORT", "cluster_port"),
        ("RABBITMQ_NODENAME", "node_name"),
        ("RABBITMQ_MNESIA_BASE", MNESIA_BASE),
        ("RABBITMQ_MNESIA_DIR", "data_dir"),
        ("RABBITMQ_LOG_BASE", LOG_BASE),
        ("RABBITMQ_LOGS", "log_file"),
        ("RABBITMQ_DEFAULT_USER", "default_user"),
        ("RABBITMQ_DEFAULT_PASS", "default_pass"),
        ("RABBITMQ_DEFAULT_VHOST", "default_vhost"),
        ("WARREN_DEFAULT_USER", "default_user"),
        ("WARREN_DEFAULT_PASS", "default_pass"),
        ("WARREN_DEFAULT_VHOST", "default_vhost"),
    ];
    for (var, name) in map {
        if let Some((value, source)) = env.get(var) {
            layers.set(name, vec![value.to_string()], source);
        }
    }
}

//! Warren's TOML config file: the settings' own names (`amqp_port = 5673`,
//! `[ssl_options]`, `[default_permissions]`, `[cluster_nodes]`); an unknown
//! key is an error, as the file's `deny_unknown_fields` was.

use std::path::Path;

use crate::keys::SPECS;
use crate::{Error, Layers, Source};

fn text(path: &Path, key: &str, v: &toml::Value) -> Result<Vec<String>, Error> {
    Ok(match v {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    toml::Value::Array(_) | toml::Value::Table(_) => {
                        return Err(Error::new(format!(
                            "invalid config file {}: '{key}' must be a list of values",
                            path.display()
                        )))
                    }
                    other => out.extend(text(path, key, other)?),
                }
            }
            out
        }
        toml::Value::Datetime(d) => vec![d.to_string()],
        toml::Value::Table(_) => {
            return Err(Error::new(format!(
                "invalid config file {}: '{key}' is not a table",
                path.display()
            )))
        }
    })
}

pub(crate) fn apply(path: &Path, body: &str, layers: &mut Layers) -> Result<(), Error> {
    let table: toml::Table = body
        .parse()
        .map_err(|e| Error::new(format!("invalid config file {}: {e}", path.display())))?;
    let mut flat = Vec::new();
    for (k, v) in &table {
        match (k.as_str(), v) {
            // `[cluster_nodes]` with `"rabbit@a" = "10.0.0.1:25672"`: the
            // same as `cluster_nodes = ["rabbit@a=10.0.0.1:25672"]`.
            ("cluster_nodes", toml::Value::Table(t)) => {
                let mut values = Vec::new();
                for (name, addr) in t {
                    let toml::Value::String(addr) = addr else {
                        return Err(Error::new(format!(
                            "invalid config file {}: 'cluster_nodes.{name}' must be a string, \"HOST:PORT\"",
                            path.display()
                        )));
                    };
                    values.push(format!("{name}={addr}"));
                }
                let source = Source::File {
                    path: path.to_path_buf(),
                    line: None,
                    key: k.clone(),
                };
                layers.set(k, values, source);
            }
            ("ssl_options" | "default_permissions", toml::Value::Table(t)) => {
                for (sub, sv) in t {
                    flat.push((format!("{k}.{sub}"), sv));
                }
            }
            _ => flat.push((k.clone(), v)),
        }
    }
    for (key, v) in flat {
        if !SPECS.iter().any(|s| s.name == key) {
            return Err(Error::new(format!(
                "invalid config file {}: unknown key '{key}'",
                path.display()
            )));
        }
        let values = text(path, &key, v)?;
        let source = Source::File {
            path: path.to_path_buf(),
            line: None,
            key: key.clone(),
        };
        layers.set(&key, values, source);
    }
    Ok(())
}

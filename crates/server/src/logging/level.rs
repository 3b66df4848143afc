//! RabbitMQ's log level names, everywhere a level is given (`--log-level`,
//! `WARREN_LOG`, `log.console.level`, `log.file.level`, `warrenctl
//! set_log_level`): `debug`, `info`, `warning`, `error`, `critical`,
//! `none`, and logger's `notice` (as info), `alert` and `emergency` (as
//! error). `critical` is tracing's error. An unknown name is an error.
//!
//! Decision: `TARGET=LEVEL` directives stay accepted for debugging one
//! module (`info,warren_server::mqtt=debug`), with the same level names.

use std::fmt;

/// A validated level (or list of directives) and its tracing filter text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSpec {
    text: String,
    directives: String,
}

impl Default for LevelSpec {
    fn default() -> Self {
        LevelSpec {
            text: "info".into(),
            directives: "info".into(),
        }
    }
}

impl fmt::Display for LevelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl LevelSpec {
    /// The tracing `EnvFilter` text (`warn`, `info,warren_server=debug`).
    pub fn directives(&self) -> &str {
        &self.directives
    }

    /// The filter itself. openraft's own lines (every retry to an
    /// unreachable node, at error) are for debugging it: off unless the
    /// level is debug or names the target. Warren logs what an operator
    /// needs (leader changes, nodes up and down) itself.
    pub(crate) fn filter(&self) -> tracing_subscriber::EnvFilter {
        let d = self.directives();
        let quiet = !d.contains("openraft") && !d.split(',').any(|p| p == "debug" || p == "trace");
        let text = if quiet {
            format!("{d},openraft=off")
        } else {
            d.to_string()
        };
        tracing_subscriber::EnvFilter::try_new(text)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    }
}

/// RabbitMQ's name to tracing's.
fn tracing_name(level: &str) -> Option<&'static str> {
    Some(match level {
        "debug" => "debug",
        "info" | "notice" => "info",
        "warning" => "warn",
        "error" | "critical" | "alert" | "emergency" => "error",
        "none" => "off",
        _ => return None,
    })
}

/// `warning`, or `info,warren_server::mqtt=debug`.
pub fn parse_level(text: &str) -> Result<LevelSpec, String> {
    let text = text.trim();
    let unknown = |l: &str| {
        format!("unknown log level '{l}' (use debug, info, warning, error, critical or none)")
    };
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let directive = match part.split_once('=') {
            Some((target, level)) => {
                let target = target.trim();
                if target.is_empty()
                    || !target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                {
                    return Err(format!("invalid log target '{target}'"));
                }
                let l = tracing_name(level.trim()).ok_or_else(|| unknown(level.trim()))?;
                format!("{target}={l}")
            }
            None => tracing_name(part).ok_or_else(|| unknown(part))?.to_string(),
        };
        out.push(directive);
    }
    let directives = out.join(",");
    tracing_subscriber::EnvFilter::try_new(&directives).map_err(|e| e.to_string())?;
    Ok(LevelSpec {
        text: text.to_string(),
        directives,
    })
}

/// tracing's level as RabbitMQ names it in log lines.
pub(crate) fn rabbit_name(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warning",
        tracing::Level::INFO => "info",
        _ => "debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_level("warning").unwrap().directives(), "warn");
        assert_eq!(parse_level("critical").unwrap().directives(), "error");
        assert_eq!(parse_level("none").unwrap().directives(), "off");
        assert!(parse_level("warn").is_err());
        assert!(parse_level("trace").is_err());
        assert!(parse_level("").is_err());
        assert_eq!(
            parse_level("info, warren_server::mqtt=debug")
                .unwrap()
                .directives(),
            "info,warren_server::mqtt=debug"
        );
        assert!(parse_level("x=loud").is_err());
    }
}

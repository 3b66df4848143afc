//! Log line formats: RabbitMQ's plaintext (`2026-12-07 20:44:00.123456+00:00
//! [warning] message key=value`) and JSON lines (`{"time": …, "level":
//! "warning", "msg": …, "key": value}`), levels by RabbitMQ's names.
//! Colour only on a terminal; control characters in messages are escaped
//! in plaintext (a client-supplied name cannot forge a line or send escape
//! sequences to an operator's terminal); JSON escapes them itself.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::level::rabbit_name;

/// One output's format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    pub json: bool,
    /// Colour the level (plaintext on a terminal only).
    pub ansi: bool,
}

#[derive(Default)]
struct Fields {
    msg: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            self.rest.insert(
                field.name().to_string(),
                Value::String(format!("{value:?}")),
            );
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            self.rest
                .insert(field.name().to_string(), Value::String(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_string(), value.into());
    }
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's
/// civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Now, UTC, as RabbitMQ's rfc3339_space: `2026-12-07 20:44:00.123456+00:00`.
pub(crate) fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = t.as_secs() as i64;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:06}+00:00",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_micros()
    )
}

/// Control characters as `\u{..}` escapes (tabs stay).
fn escape_controls(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
}

impl Format {
    /// One event as one line (without the newline).
    /// `target`: the event's (the module, or `audit` for the audit
    /// trail), in JSON lines only.
    fn line(&self, level: &tracing::Level, target: &str, fields: Fields) -> String {
        let level = rabbit_name(level);
        if self.json {
            let mut m = Map::new();
            m.insert("time".into(), now().into());
            m.insert("level".into(), level.into());
            m.insert("target".into(), target.into());
            m.insert("msg".into(), fields.msg.into());
            for (k, v) in fields.rest {
                m.entry(k).or_insert(v);
            }
            return Value::Object(m).to_string();
        }
        let mut out = now();
        out.push(' ');
        let colour = match level {
            "error" => "\x1b[31m",
            "warning" => "\x1b[33m",
            "debug" => "\x1b[2m",
            _ => "",
        };
        if self.ansi && !colour.is_empty() {
            let _ = write!(out, "{colour}[{level}]\x1b[0m ");
        } else {
            let _ = write!(out, "[{level}] ");
        }
        escape_controls(&mut out, &fields.msg);
        for (k, v) in fields.rest {
            out.push(' ');
            out.push_str(&k);
            out.push('=');
            match v {
                Value::String(s) => escape_controls(&mut out, &s),
                other => out.push_str(&other.to_string()),
            }
        }
        out
    }
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        writeln!(writer, "{}", self.line(meta.level(), meta.target(), fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_794), (2026, 12, 7));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }

    #[test]
    fn lines() {
        let f = Fields {
            msg: "bad \x1b[31m name\nforged".into(),
            rest: Map::from_iter([("peer".to_string(), Value::from("1.2.3.4"))]),
        };
        let plain = Format {
            json: false,
            ansi: false,
        }
        .line(&tracing::Level::WARN, "warren_server", f);
        assert!(!plain.contains('\x1b') && !plain.contains('\n'), "{plain}");
        assert!(
            plain.contains("[warning] bad \\u{1b}[31m name\\u{a}forged peer=1.2.3.4"),
            "{plain}"
        );
        let f = Fields {
            msg: "hello".into(),
            rest: Map::new(),
        };
        let json = Format {
            json: true,
            ansi: false,
        }
        .line(&tracing::Level::ERROR, "audit", f);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["target"], "audit");
        assert_eq!(v["msg"], "hello");
    }
}

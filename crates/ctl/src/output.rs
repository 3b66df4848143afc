//! rabbitmqctl's output: informational lines (dropped by `-q`), then a
//! tab-separated header row (dropped by `--no-table-headers` and `-s`,
//! and absent when there are no rows) and one row per item; or, with
//! `--formatter json`, a JSON array, one object per line.

use std::io::Write;

use serde_json::Value;

use crate::args::Options;

pub struct Out {
    quiet: bool,
    headers: bool,
    pub(crate) json: bool,
}

impl Out {
    pub fn new(o: &Options) -> Out {
        Out {
            quiet: o.quiet || o.json,
            headers: !o.no_table_headers && !o.silent,
            json: o.json,
        }
    }

    /// An informational line.
    pub fn info(&self, line: &str) {
        if !self.quiet {
            println_safe(line);
        }
    }

    /// Rows as a table (or JSON) of `columns`; `headers: false` for the
    /// listings rabbitmqctl prints without one.
    pub fn table(
        &self,
        columns: &[String],
        rows: &[Value],
        headers: bool,
        render: &dyn Fn(&str, &Value) -> String,
    ) {
        if self.json {
            println_safe("[");
            for (i, r) in rows.iter().enumerate() {
                let mut m = serde_json::Map::new();
                for c in columns {
                    m.insert(c.clone(), r[c.as_str()].clone());
                }
                let sep = if i == 0 { "" } else { "," };
                println_safe(&format!("{sep}{}", Value::Object(m)));
            }
            println_safe("]");
            return;
        }
        if rows.is_empty() {
            return;
        }
        if headers && self.headers {
            println_safe(&columns.join("\t"));
        }
        for r in rows {
            let cells: Vec<String> = columns.iter().map(|c| render(c, &r[c.as_str()])).collect();
            println_safe(&cells.join("\t"));
        }
    }
}

/// Prints a line; a closed pipe (`| head`) is not worth a panic.
pub fn println_safe(s: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{s}");
}

/// A value as rabbitmqctl prints it in tables: strings bare, lists of
/// tags as `[a, b]`, argument tables as `[{"key",value},…]`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(cell).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(_) => term(v),
        other => other.to_string(),
    }
}

/// Erlang-term style, as rabbitmqctl shows tables: `[{"k","v"},{"n",1}]`.
pub fn term(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{{\"{k}\",{}}}", term(v)))
                .collect();
            format!("[{}]", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(term).collect();
            format!("[{}]", items.join(","))
        }
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "undefined".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_look_like_rabbitmqctl() {
        assert_eq!(
            cell(&json!(["administrator", "management"])),
            "[administrator, management]"
        );
        assert_eq!(cell(&json!([])), "[]");
        assert_eq!(
            cell(&json!({"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx"})),
            "[{\"x-message-ttl\",60000},{\"x-dead-letter-exchange\",\"dlx\"}]"
        );
        assert_eq!(cell(&json!({})), "[]");
        assert_eq!(
            term(&json!({"capabilities": {"basic.nack": true}})),
            "[{\"capabilities\",[{\"basic.nack\",true}]}]"
        );
        assert_eq!(cell(&json!(true)), "true");
    }
}

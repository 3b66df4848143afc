//! `memory_breakdown`, as rabbitmq-diagnostics prints it: categories
//! largest first, in the unit asked for (`--unit`, decimal multiples),
//! with their share of the total. What Warren attributes is listed in the
//! server's `control/diagnostics.rs`; the rest is `other`.

use serde_json::{json, Value};

use crate::commands::{error, usage_failure, Ctx};
use crate::diagnostics::node;
use crate::output::println_safe;
use crate::{Failure, EX_SOFTWARE};

/// `RabbitMQ.CLI.InformationUnit.known_units`.
const UNITS: &[&str] = &[
    "bytes",
    "kb",
    "kilobytes",
    "mb",
    "megabytes",
    "gb",
    "gigabytes",
    "tb",
    "terabytes",
];

/// Bytes in `unit` as rabbitmq-diagnostics prints them: bytes as an
/// integer, else decimal multiples rounded to 4 places.
pub(crate) fn convert(bytes: u64, unit: &str) -> String {
    let div = match unit {
        "kb" | "kilobytes" => 1e3,
        "mb" | "megabytes" => 1e6,
        "gb" | "gigabytes" => 1e9,
        "tb" | "terabytes" => 1e12,
        _ => return bytes.to_string(),
    };
    elixir_float(round(bytes as f64 / div, 4))
}

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

/// A float as Elixir prints it: the shortest digits that read back, with
/// a `.0` on whole numbers, and `1.0e-4` style below 0.001.
pub(crate) fn elixir_float(x: f64) -> String {
    if x == 0.0 {
        return "0.0".into();
    }
    if x.abs() < 1e-3 || x.abs() >= 1e16 {
        let s = format!("{x:e}");
        return match s.split_once('e') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
            _ => s,
        };
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

pub(crate) fn memory_breakdown(c: &Ctx) -> Result<(), Failure> {
    let unit = c.line.flag_value("--unit").unwrap_or("gb").to_lowercase();
    if !UNITS.contains(&unit.as_str()) {
        return Err(usage_failure(
            c,
            &format!("unit '{unit}' is not supported. Please use one of: bytes, mb, gb"),
        ));
    }
    let n = node(c)?;
    let m = c.call(json!({"op": "memory_breakdown"}), |_| None)?;
    c.out
        .info(&format!("Reporting memory breakdown on node {}...", n.name));
    let total = m["total"].as_u64().unwrap_or(0);
    if total == 0 {
        return Err(error(
            EX_SOFTWARE,
            "the node could not measure its memory use",
        ));
    }
    let mut rows: Vec<(String, u64)> = m["categories"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let pct = |b: u64| round(b as f64 / total as f64 * 100.0, 2);
    if c.out.json {
        let mut o = serde_json::Map::new();
        for (k, b) in &rows {
            o.insert(k.clone(), json!({"bytes": b, "percentage": pct(*b)}));
        }
        println_safe(&Value::Object(o).to_string());
        return Ok(());
    }
    let mut text = String::new();
    for (k, b) in &rows {
        text.push_str(&format!(
            "{k}: {} {unit} ({}%)\n",
            convert(*b, &unit),
            elixir_float(pct(*b))
        ));
    }
    println_safe(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_floats_as_rabbitmq_prints_them() {
        assert_eq!(convert(1_234_567, "bytes"), "1234567");
        assert_eq!(convert(1_234_567, "mb"), "1.2346");
        assert_eq!(convert(2_000_000_000, "gb"), "2.0");
        assert_eq!(convert(12_345_678, "gb"), "0.0123");
        assert_eq!(convert(100_000, "gb"), "1.0e-4");
        assert_eq!(convert(0, "gb"), "0.0");
        assert_eq!(elixir_float(round(33.3333, 2)), "33.33");
        assert_eq!(elixir_float(100.0), "100.0");
    }
}

//! Sizes as RabbitMQ writes them: `1000000`, `50MB`, `512MiB`, `1GB`,
//! `2TB`; also `k`/`M`/`G` (RabbitMQ's binary shorthands: `1024M`).

/// Bytes; `None` for anything else. Units, case-insensitive: `kB`, `MB`,
/// `GB`, `TB`, `PB` are powers of 1000; `KiB`/`Ki`/`k`, `MiB`/`Mi`/`M`,
/// `GiB`/`Gi`/`G`, `TiB`/`Ti`/`T`, `PiB`/`Pi`/`P` powers of 1024 (the
/// memory units documented in rabbitmq.conf.example).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let k: f64 = 1024.0;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "k" | "ki" | "kib" => k,
        "mb" => 1e6,
        "m" | "mi" | "mib" => k * k,
        "gb" => 1e9,
        "g" | "gi" | "gib" => k * k * k,
        "tb" => 1e12,
        "t" | "ti" | "tib" => k * k * k * k,
        "pb" => 1e15,
        "p" | "pi" | "pib" => k * k * k * k * k,
        _ => return None,
    };
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

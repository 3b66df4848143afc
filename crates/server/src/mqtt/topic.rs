//! MQTT topics as AMQP routing keys on `amq.topic`, as RabbitMQ's MQTT
//! plugin maps them: the level separator `/` becomes `.` (and a `.` in
//! an MQTT topic becomes `/`, so the mapping is reversible), `+` becomes
//! `*` and `#` stays `#`.

/// A topic name or filter, level by level, as an AMQP routing or binding key.
pub(crate) fn to_amqp(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            '+' => '*',
            c => c,
        })
        .collect()
}

/// An AMQP routing key as an MQTT topic name.
pub(crate) fn from_amqp(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// An AMQP routing key's limit: a longer MQTT topic has no AMQP name
/// (RabbitMQ refuses it too), so it is refused rather than cut.
pub(crate) const MAX_LEN: usize = 255;

/// Why a topic name or filter is refused.
pub(crate) fn check_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("empty topic name");
    }
    if topic.len() > MAX_LEN {
        return Err("topic name longer than 255 bytes");
    }
    if topic.contains(['+', '#']) {
        return Err("wildcard in a topic name");
    }
    if topic.contains('*') {
        // `*` would be AMQP's one-level wildcard once mapped.
        return Err("'*' in a topic name");
    }
    Ok(())
}

/// Section 4.7: `#` only as the last level, `+` only as a whole level.
pub(crate) fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("empty topic filter");
    }
    if filter.len() > MAX_LEN {
        return Err("topic filter longer than 255 bytes");
    }
    if filter.contains('*') {
        return Err("'*' in a topic filter");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("'#' not alone in the last level");
        }
        if l.contains('+') && *l != "+" {
            return Err("'+' not alone in its level");
        }
    }
    Ok(())
}

/// Whether `filter` matches `topic` by MQTT's rules, including section
/// 4.7.2: a filter starting with a wildcard matches no `$` topic.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_round_trips_and_matches_rabbitmq() {
        assert_eq!(to_amqp("a/b/c"), "a.b.c");
        assert_eq!(to_amqp("sensors/+/temp/#"), "sensors.*.temp.#");
        assert_eq!(to_amqp("v1.2/x"), "v1/2.x");
        for t in ["a/b", "a.b/c", "/lead", "trail/", "é/ü", "$SYS/x"] {
            assert_eq!(from_amqp(&to_amqp(t)), t);
        }
    }

    #[test]
    fn filters_match_as_the_spec_says() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "x/y"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("+", ""));
        assert!(!matches("a/b", "a/b/c"));
        assert!(check_filter("a/#/b").is_err());
        assert!(check_filter("a/b#").is_err());
        assert!(check_filter("a+/b").is_err());
        assert!(check_filter("+/+/#").is_ok());
        assert!(check_name("a/+").is_err());
        assert!(check_name("a/b").is_ok());
        assert!(check_name(&"x".repeat(255)).is_ok());
        assert!(check_name(&"x".repeat(256)).is_err());
        assert!(check_filter(&format!("{}/#", "x".repeat(254))).is_err());
    }
}

//! A published message, shared (`Arc`) by every queue it is routed to.

use std::sync::OnceLock;

use bytes::Bytes;
use warren_protocol::{BasicProperties, Decoder, FieldTable, ShortStr};

use crate::store::Location;

/// Kept small on purpose (it is created once per publish and shared): the
/// full properties stay encoded in `raw_properties`; only what routing and
/// queues look at is decoded here.
#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// The properties as the publisher encoded them, sent on unchanged.
    pub raw_properties: Bytes,
    /// The body as received: one buffer shared from the socket read to
    /// every socket write, never copied per queue or per consumer.
    pub body: Bytes,
    /// delivery_mode = 2.
    pub persistent: bool,
    /// The `expiration` property, in milliseconds.
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent); a priority queue caps it
    /// at its `x-max-priority`.
    pub priority: u8,
    /// The `headers` property (headers exchanges, dead-letter history).
    pub headers: Option<Box<FieldTable>>,
    /// Where the message store holds it, once some queue wrote it there
    /// (`None` inside if that write failed). Written once for all queues.
    pub location: OnceLock<Option<Location>>,
}

/// A per-message TTL in milliseconds: a non-negative decimal integer, as
/// RabbitMQ accepts in the `expiration` property.
pub fn parse_expiration(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Why RabbitMQ refuses an `expiration` that [`parse_expiration`] refuses,
/// as it prints the reason (`invalid expiration '…': <this>`): `no_integer`,
/// `{value_negative,-5}` or `{leftover_string,"abc"}` (measured on 3.10.8).
pub fn expiration_error(text: &[u8]) -> String {
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    let lossy = String::from_utf8_lossy(text);
    if let Some(rest) = text.strip_prefix(b"-") {
        if digits(rest) {
            return format!("{{value_negative,{lossy}}}");
        }
    }
    let lead = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if lead > 0 && lead < text.len() {
        let rest = String::from_utf8_lossy(&text[lead..]);
        return format!("{{leftover_string,\"{rest}\"}}");
    }
    "no_integer".to_string()
}

impl Message {
    pub fn new(
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: BasicProperties,
        raw_properties: Bytes,
        body: Bytes,
    ) -> Self {
        Message {
            exchange,
            routing_key,
            raw_properties,
            body,
            persistent: properties.is_persistent(),
            priority: properties.priority.unwrap_or(0),
            expiration_ms: properties
                .expiration
                .as_ref()
                .and_then(|e| parse_expiration(e.as_bytes())),
            headers: properties.headers.map(Box::new),
            location: OnceLock::new(),
        }
    }

    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// All properties, decoded from the raw bytes (the rare paths that
    /// rewrite them, such as dead-lettering).
    pub fn properties(&self) -> BasicProperties {
        BasicProperties::decode(&mut Decoder::new(self.raw_properties.clone())).unwrap_or_default()
    }

    /// Bytes this message accounts for in memory statistics.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod expiration_tests {
    use super::{expiration_error, parse_expiration};

    /// RabbitMQ 3.10.8's reasons, measured over AMQP and HTTP.
    #[test]
    fn refused_expirations_name_rabbitmqs_reason() {
        assert_eq!(parse_expiration(b"1500"), Some(1500));
        for (text, reason) in [
            (&b"bad"[..], "no_integer"),
            (b"", "no_integer"),
            (b"-5", "{value_negative,-5}"),
            (b"12abc", "{leftover_string,\"abc\"}"),
        ] {
            assert_eq!(parse_expiration(text), None);
            assert_eq!(expiration_error(text), reason);
        }
    }
}

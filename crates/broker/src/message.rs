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

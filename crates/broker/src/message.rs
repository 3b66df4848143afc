//! A published message, shared (`Arc`) by every queue it is routed to.

use std::sync::OnceLock;

use bytes::Bytes;
use warren_protocol::{BasicProperties, ShortStr};

use crate::store::Location;

#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: BasicProperties,
    /// The properties as the publisher encoded them, sent on unchanged.
    pub raw_properties: Bytes,
    /// The body as received: one buffer shared from the socket read to
    /// every socket write, never copied per queue or per consumer.
    pub body: Bytes,
    /// Where the message store holds it, once some queue wrote it there
    /// (`None` inside if that write failed). Written once for all queues.
    pub location: OnceLock<Option<Location>>,
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
            properties,
            raw_properties,
            body,
            location: OnceLock::new(),
        }
    }

    pub fn is_persistent(&self) -> bool {
        self.properties.is_persistent()
    }

    /// Bytes this message accounts for in memory statistics.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

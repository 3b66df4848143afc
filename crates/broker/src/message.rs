//! A published message, shared (`Arc`) by every queue it is routed to.

use bytes::Bytes;
use warren_protocol::{BasicProperties, ShortStr};

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
}

impl Message {
    pub fn is_persistent(&self) -> bool {
        self.properties.is_persistent()
    }

    /// Bytes this message accounts for in memory statistics.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

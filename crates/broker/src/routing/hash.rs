//! The consistent-hash exchange (`x-consistent-hash`, RabbitMQ's
//! `rabbitmq_consistent_hash_exchange` plugin, built in): each binding's
//! key is its weight; a message goes to exactly one binding, chosen from
//! a hash of its routing key (or of the header named by `hash-header`, or
//! of the property named by `hash-property`), in proportion to the
//! weights. Adding or removing a binding moves only the messages that
//! binding gains or loses.
//!
//! Warren chooses by weighted rendezvous hashing (each binding scores
//! `weight / -ln(u)` with `u` a hash of the message key and the binding;
//! the highest score wins): exact proportions for any weights, no ring to
//! allocate (a weight of a billion costs nothing), O(bindings) per
//! message. The plugin's exact key-to-queue mapping (a ring) is not
//! reproduced; the distribution and the stability are.

use warren_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

use super::Binding;
use crate::error::{AmqpError, Result};
use crate::message::Message;

/// What a consistent-hash exchange hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    RoutingKey,
    Header(ShortStr),
    /// `message_id`, `correlation_id` or `timestamp`.
    Property(HashProperty),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashProperty {
    MessageId,
    CorrelationId,
    Timestamp,
}

impl HashOn {
    /// From the exchange's arguments, with the plugin's errors.
    pub fn from_arguments(args: &FieldTable) -> Result<HashOn> {
        let header = args.get("hash-header");
        let property = args.get("hash-property");
        match (header, property) {
            (Some(_), Some(_)) => Err(AmqpError::precondition_failed(
                "hash-header and hash-property are mutually exclusive",
            )),
            (Some(h), None) => match h.as_bytes() {
                Some(b) if b.len() <= 255 => Ok(HashOn::Header(ShortStr::new(
                    bytes::Bytes::copy_from_slice(b),
                ))),
                _ => Err(AmqpError::precondition_failed(
                    "hash-header must be a string",
                )),
            },
            (None, Some(p)) => {
                let name = p.as_bytes().unwrap_or(b"");
                let prop = match name {
                    b"message_id" => HashProperty::MessageId,
                    b"correlation_id" => HashProperty::CorrelationId,
                    b"timestamp" => HashProperty::Timestamp,
                    other => {
                        return Err(AmqpError::precondition_failed(format!(
                            "Unsupported property: {}",
                            String::from_utf8_lossy(other)
                        )))
                    }
                };
                Ok(HashOn::Property(prop))
            }
            (None, None) => Ok(HashOn::RoutingKey),
        }
    }
}

/// A binding's weight: its key, a positive integer (the plugin's check).
pub fn weight(binding: &Binding) -> Result<u64> {
    let key = binding.routing_key.as_bytes();
    let text = std::str::from_utf8(key).unwrap_or("");
    match text.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n as u64),
        Ok(_) => Err(AmqpError::precondition_failed(
            "The binding key must be greater than 0",
        )),
        Err(_) => Err(AmqpError::precondition_failed(format!(
            "The binding key must be an integer: <<\"{}\">>",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// FNV-1a, then a 64-bit finaliser: stable across runs and platforms.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separates the parts ("ab","c" differs from "a","bc").
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bytes a message is hashed on (empty when the header or property
/// is missing: all such messages go to one binding, as with the plugin).
fn key_of(on: &HashOn, message: &Message) -> Vec<u8> {
    match on {
        HashOn::RoutingKey => message.routing_key.as_bytes().to_vec(),
        HashOn::Header(h) => match message
            .headers
            .as_deref()
            .and_then(|t| t.get(h.as_str().as_ref()))
        {
            Some(FieldValue::LongStr(b)) | Some(FieldValue::Bytes(b)) => b.to_vec(),
            Some(v) => format!("{v:?}").into_bytes(),
            None => Vec::new(),
        },
        HashOn::Property(p) => {
            let props: BasicProperties = message.properties();
            match p {
                HashProperty::MessageId => props.message_id.map(|s| s.as_bytes().to_vec()),
                HashProperty::CorrelationId => props.correlation_id.map(|s| s.as_bytes().to_vec()),
                HashProperty::Timestamp => props.timestamp.map(|t| t.to_be_bytes().to_vec()),
            }
            .unwrap_or_default()
        }
    }
}

/// The binding `message` goes to, among `bindings` with their weights.
pub fn choose<'a>(
    on: &HashOn,
    message: &Message,
    bindings: &'a [(u64, Binding)],
) -> Option<&'a Binding> {
    let key = key_of(on, message);
    let kh = hash(&[&key]);
    let mut best: Option<(f64, &Binding)> = None;
    for (w, b) in bindings {
        let bh = mix(kh ^ hash(&[b.destination.name().as_bytes(), b.routing_key.as_bytes()]));
        // u in (0, 1): 53 random bits, never 0.
        let u = ((bh >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = *w as f64 / -u.ln();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, b));
        }
    }
    best.map(|(_, b)| b)
}

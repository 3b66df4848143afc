//! The AMQP 0-9-1 wire format, as RabbitMQ speaks it, and MQTT's
//! ([`mqtt`]: 3.1, 3.1.1 and 5.0 control packets).
//!
//! This crate does no I/O: it turns bytes into frames, methods, content
//! headers and field tables and back. Everything peer-controlled is bounded
//! (frame size, table nesting) and every malformed input is a [`DecodeError`],
//! never a panic, so the whole crate can be fuzzed.
//!
//! Byte strings are [`bytes::Bytes`] slices of the frame they came from, so
//! decoding a message's routing key or body copies nothing.

pub mod constants;
pub mod frame;
pub mod methods;
pub mod mqtt;
pub mod properties;
pub mod table;
pub mod wire;

pub use frame::{Frame, FrameError, FramePayload};
pub use methods::Method;
pub use properties::{BasicProperties, ContentHeader};
pub use table::{Decimal, FieldTable, FieldValue};
pub use wire::{DecodeError, Decoder, Encoder, ShortStr};

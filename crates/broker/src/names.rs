//! Server-generated names, in RabbitMQ's formats.

use base64::Engine;
use rand::RngCore;

fn random_token() -> String {
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A server-named queue: `amq.gen-` and 22 URL-safe base64 characters.
pub fn queue_name() -> String {
    format!("amq.gen-{}", random_token())
}

/// A server-generated consumer tag: `amq.ctag-` and 22 characters.
pub fn consumer_tag() -> String {
    format!("amq.ctag-{}", random_token())
}

/// The per-channel address a direct reply-to consumer is reached at.
pub fn reply_to_address() -> String {
    format!("{}.{}", DIRECT_REPLY_TO, random_token())
}

/// The pseudo-queue RPC clients consume to get replies without a queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

//! The connection state machine fed arbitrary byte streams after a valid
//! handshake, against a real broker on loopback: whatever arrives, the
//! broker answers, closes or hangs up, never panics (a panic in any task
//! aborts), and a new connection is still answered afterwards. Seeds are
//! pika sessions after their connection.open (fuzz/corpus/connection).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warren_server::fuzzing::Amqp;

fuzz_target!(|data: &[u8]| {
    static BROKER: OnceLock<Amqp> = OnceLock::new();
    let broker = BROKER.get_or_init(|| Amqp::new().expect("a scratch broker"));
    broker.feed(data);
});

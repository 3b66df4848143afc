//! MQTT control packets: a client's byte stream (CONNECT first, then the
//! packets of the level it names) never panics the decoder, every packet
//! that decodes re-encodes and decodes to itself, and nothing is buffered
//! past the packet limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_protocol::mqtt::{decode, Packet};

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::new();
    let mut level = None;
    // Fed in small reads, as a socket would.
    for chunk in data.chunks(7) {
        buf.extend_from_slice(chunk);
        loop {
            match decode(&mut buf, level, MAX) {
                Ok(Some(p)) => {
                    if let Packet::Connect(c) = &p {
                        level = Some(c.level);
                    }
                    let l = level.unwrap_or(4);
                    let mut out = BytesMut::new();
                    p.encode(l, &mut out);
                    let before = if matches!(p, Packet::Connect(_)) { None } else { level };
                    let again = decode(&mut out, before, usize::MAX)
                        .expect("a re-encoded packet decodes")
                        .expect("whole");
                    assert_eq!(again, p);
                    assert!(out.is_empty());
                }
                Ok(None) => {
                    assert!(buf.len() <= MAX + 5, "buffered past the limit");
                    break;
                }
                Err(_) => return,
            }
        }
    }
});

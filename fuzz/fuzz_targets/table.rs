//! Field tables (nested tables, arrays, every value type): decoding
//! arbitrary bytes never panics, and what decodes re-encodes and decodes
//! to the same table (compared as bytes: a NaN double is not equal to
//! itself, but it must come back bit for bit).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren_protocol::wire::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(Bytes::copy_from_slice(data));
    if let Ok(t) = d.get_table() {
        let mut out = BytesMut::new();
        t.encode(&mut out);
        let first = out.freeze();
        let again = Decoder::new(first.clone()).get_table().expect("re-encoded table decodes");
        let mut out2 = BytesMut::new();
        again.encode(&mut out2);
        assert_eq!(first, out2.freeze());
    }
});

//! MQTT's primitive types (section 1.5): big-endian integers, the
//! variable byte integer, UTF-8 strings and binary data, both with a
//! two-byte length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::MqttError;

/// Reads from one packet's bytes; never past them.
pub(crate) struct Reader {
    buf: Bytes,
}

fn short() -> MqttError {
    MqttError::Malformed("packet shorter than its contents".into())
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, MqttError> {
        if self.buf.is_empty() {
            return Err(short());
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, MqttError> {
        if self.buf.len() < 2 {
            return Err(short());
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, MqttError> {
        if self.buf.len() < 4 {
            return Err(short());
        }
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer: at most four bytes, at most 268,435,455.
    pub(crate) fn varint(&mut self) -> Result<u32, MqttError> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MqttError::Malformed(
            "variable byte integer over 4 bytes".into(),
        ))
    }

    /// The next `len` bytes as a reader of their own.
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader, MqttError> {
        Ok(Reader {
            buf: self.bytes(len)?,
        })
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<Bytes, MqttError> {
        if self.buf.len() < len {
            return Err(short());
        }
        Ok(self.buf.split_to(len))
    }

    /// Binary data: two-byte length, then the bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, MqttError> {
        let len = usize::from(self.u16()?);
        self.bytes(len)
    }

    /// A UTF-8 string: well-formed, and without U+0000 (section 1.5.4).
    pub(crate) fn string(&mut self) -> Result<String, MqttError> {
        let b = self.binary()?;
        let s = std::str::from_utf8(&b)
            .map_err(|_| MqttError::Malformed("string is not UTF-8".into()))?;
        if s.contains('\0') {
            return Err(MqttError::Malformed("string contains U+0000".into()));
        }
        Ok(s.to_string())
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

pub(crate) fn put_varint(out: &mut BytesMut, mut v: u32) {
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

/// Binary data; longer than 65,535 bytes is the caller's bug (the
/// strings Warren sends are topic names and ids it has checked).
pub(crate) fn put_binary(out: &mut BytesMut, b: &[u8]) {
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    out.put_u16(len);
    out.extend_from_slice(&b[..usize::from(len)]);
}

pub(crate) fn put_str(out: &mut BytesMut, s: &str) {
    put_binary(out, s.as_bytes())
}

/// The bytes a variable byte integer takes.
pub(crate) fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

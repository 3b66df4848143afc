//! Primitive AMQP types and the encoder/decoder that handle them, including
//! the packing of consecutive `bit` fields into one octet.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::table::FieldTable;

/// Why a frame payload could not be decoded. Each maps to a reply code in the
/// server; none is a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload ended in the middle of a value.
    Truncated,
    /// A class/method pair that 0-9-1 (with RabbitMQ's extensions) doesn't have.
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A field table value with a type tag we don't know.
    UnknownFieldType(u8),
    /// Field tables nested deeper than [`MAX_TABLE_DEPTH`].
    TableTooDeep,
    /// A content header for a class other than basic, or otherwise malformed.
    BadContentHeader(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated value"),
            DecodeError::UnknownMethod {
                class_id,
                method_id,
            } => write!(f, "unknown method {class_id}/{method_id}"),
            DecodeError::UnknownFieldType(t) => write!(f, "unknown field type {:?}", *t as char),
            DecodeError::TableTooDeep => write!(f, "field table nested too deep"),
            DecodeError::BadContentHeader(why) => write!(f, "bad content header: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Nested tables and arrays beyond this depth are refused, so a hostile
/// peer can't exhaust the stack with a 128 KiB frame of nested tables.
pub const MAX_TABLE_DEPTH: usize = 32;

/// An AMQP short string: at most 255 octets, usually UTF-8 but not required
/// to be. Backed by `Bytes`, so it is a cheap slice of the frame it came from.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

impl ShortStr {
    pub const MAX_LEN: usize = 255;

    /// Builds a short string, truncating at 255 octets (RabbitMQ truncates
    /// over-long reply texts the same way).
    pub fn new(bytes: impl Into<Bytes>) -> ShortStr {
        let b: Bytes = bytes.into();
        if b.len() > Self::MAX_LEN {
            // Cut on a char boundary when the text is UTF-8, so it stays UTF-8.
            let mut end = Self::MAX_LEN;
            if let Ok(s) = std::str::from_utf8(&b) {
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
            }
            ShortStr(b.slice(..end))
        } else {
            ShortStr(b)
        }
    }

    pub const fn from_static(s: &'static str) -> ShortStr {
        // Callers pass literals well under 255 octets.
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text, with invalid UTF-8 replaced: for messages and logs.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix.as_bytes())
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        ShortStr::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        ShortStr::new(Bytes::from(s))
    }
}

impl std::borrow::Borrow<[u8]> for ShortStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        &self.0[..] == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        &self.0[..] == other.as_bytes()
    }
}

/// Writes AMQP values into a buffer, packing consecutive bits.
pub struct Encoder<'a> {
    buf: &'a mut BytesMut,
    bits: u8,
    bit_count: u8,
}

impl<'a> Encoder<'a> {
    pub fn new(buf: &'a mut BytesMut) -> Self {
        Encoder {
            buf,
            bits: 0,
            bit_count: 0,
        }
    }

    fn flush_bits(&mut self) {
        if self.bit_count > 0 {
            self.buf.put_u8(self.bits);
            self.bits = 0;
            self.bit_count = 0;
        }
    }

    /// Writes any pending bits; call after the last field.
    pub fn finish(&mut self) {
        self.flush_bits();
    }

    pub fn put_bit(&mut self, v: bool) {
        if self.bit_count == 8 {
            self.flush_bits();
        }
        if v {
            self.bits |= 1 << self.bit_count;
        }
        self.bit_count += 1;
    }

    pub fn put_u8(&mut self, v: u8) {
        self.flush_bits();
        self.buf.put_u8(v);
    }

    pub fn put_u16(&mut self, v: u16) {
        self.flush_bits();
        self.buf.put_u16(v);
    }

    pub fn put_u32(&mut self, v: u32) {
        self.flush_bits();
        self.buf.put_u32(v);
    }

    pub fn put_u64(&mut self, v: u64) {
        self.flush_bits();
        self.buf.put_u64(v);
    }

    pub fn put_short_str(&mut self, s: &[u8]) {
        self.flush_bits();
        let len = s.len().min(ShortStr::MAX_LEN);
        self.buf.put_u8(len as u8);
        self.buf.put_slice(&s[..len]);
    }

    pub fn put_long_str(&mut self, s: &[u8]) {
        self.flush_bits();
        // Long strings come from frames, which are far below 4 GiB.
        debug_assert!(s.len() <= u32::MAX as usize);
        self.buf.put_u32(s.len() as u32);
        self.buf.put_slice(s);
    }

    pub fn put_table(&mut self, t: &FieldTable) {
        self.flush_bits();
        t.encode(self.buf);
    }

    /// Direct access for values that encode themselves (tables, arrays).
    pub fn buf(&mut self) -> &mut BytesMut {
        self.flush_bits();
        self.buf
    }
}

/// Reads AMQP values from a frame payload. Strings are zero-copy slices.
pub struct Decoder {
    data: Bytes,
    bits: u8,
    /// Bits left in `bits`; 0 means the next bit reads a fresh octet.
    bits_left: u8,
}

impl Decoder {
    pub fn new(data: Bytes) -> Self {
        Decoder {
            data,
            bits: 0,
            bits_left: 0,
        }
    }

    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.data.len() < n {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn get_bit(&mut self) -> Result<bool, DecodeError> {
        if self.bits_left == 0 {
            self.need(1)?;
            self.bits = self.data.get_u8();
            self.bits_left = 8;
        }
        let v = self.bits & 1 == 1;
        self.bits >>= 1;
        self.bits_left -= 1;
        Ok(v)
    }

    pub fn get_u8(&mut self) -> Result<u8, DecodeError> {
        self.bits_left = 0;
        self.need(1)?;
        Ok(self.data.get_u8())
    }

    pub fn get_u16(&mut self) -> Result<u16, DecodeError> {
        self.bits_left = 0;
        self.need(2)?;
        Ok(self.data.get_u16())
    }

    pub fn get_u32(&mut self) -> Result<u32, DecodeError> {
        self.bits_left = 0;
        self.need(4)?;
        Ok(self.data.get_u32())
    }

    pub fn get_u64(&mut self) -> Result<u64, DecodeError> {
        self.bits_left = 0;
        self.need(8)?;
        Ok(self.data.get_u64())
    }

    pub fn get_bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.bits_left = 0;
        self.need(n)?;
        Ok(self.data.split_to(n))
    }

    pub fn get_short_str(&mut self) -> Result<ShortStr, DecodeError> {
        let len = self.get_u8()? as usize;
        Ok(ShortStr(self.get_bytes(len)?))
    }

    pub fn get_long_str(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.get_u32()? as usize;
        self.get_bytes(len)
    }

    pub fn get_table(&mut self) -> Result<FieldTable, DecodeError> {
        self.bits_left = 0;
        FieldTable::decode(self, 0)
    }
}

/// A type that is a method argument: knows its own wire form.
pub trait Wire: Sized {
    fn put(&self, enc: &mut Encoder<'_>);
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError>;
}

impl Wire for bool {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_bit(*self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_bit()
    }
}

impl Wire for u8 {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_u8(*self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_u8()
    }
}

impl Wire for u16 {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_u16(*self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_u16()
    }
}

impl Wire for u32 {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_u32(*self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_u32()
    }
}

impl Wire for u64 {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_u64(*self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_u64()
    }
}

impl Wire for ShortStr {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_short_str(self.as_bytes())
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_short_str()
    }
}

/// `longstr` arguments are raw bytes.
impl Wire for Bytes {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_long_str(self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_long_str()
    }
}

impl Wire for FieldTable {
    fn put(&self, enc: &mut Encoder<'_>) {
        enc.put_table(self)
    }
    fn get(dec: &mut Decoder) -> Result<Self, DecodeError> {
        dec.get_table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_into_octets_and_reset_on_other_fields() {
        let mut buf = BytesMut::new();
        let mut e = Encoder::new(&mut buf);
        e.put_bit(true);
        e.put_bit(false);
        e.put_bit(true);
        e.put_u8(7);
        for i in 0..9 {
            e.put_bit(i % 2 == 0);
        }
        e.finish();
        assert_eq!(&buf[..], &[0b101, 7, 0b0101_0101, 0b1]);
        let mut d = Decoder::new(buf.freeze());
        assert!(d.get_bit().unwrap());
        assert!(!d.get_bit().unwrap());
        assert!(d.get_bit().unwrap());
        assert_eq!(d.get_u8().unwrap(), 7);
        for i in 0..9 {
            assert_eq!(d.get_bit().unwrap(), i % 2 == 0);
        }
        assert_eq!(d.get_u8(), Err(DecodeError::Truncated));
    }

    #[test]
    fn short_str_truncates_on_char_boundary() {
        let s = "é".repeat(200); // 400 octets
        let ss = ShortStr::from(s);
        assert!(ss.len() <= 255);
        assert!(std::str::from_utf8(ss.as_bytes()).is_ok());
    }
}

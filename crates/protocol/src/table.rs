//! Field tables and arrays, with every value type RabbitMQ sends and accepts
//! (the 0-9-1 errata set: `t b B s u I i l f d D S A T F V x`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::{DecodeError, Decoder, ShortStr, MAX_TABLE_DEPTH};

/// A decimal: `value` scaled down by 10^`scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub scale: u8,
    pub value: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s` (RabbitMQ's tag for a signed 16-bit integer)
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`
    Decimal(Decimal),
    /// `S`
    LongStr(Bytes),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`: seconds since the epoch.
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    Bytes(Bytes),
}

impl FieldValue {
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal(_) => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::Bytes(_) => b'x',
        }
    }

    /// The value as an integer, for arguments such as `x-message-ttl`
    /// that clients send with whichever integer type their language prefers.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            FieldValue::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(b) | FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.tag());
        match self {
            FieldValue::Bool(v) => buf.put_u8(u8::from(*v)),
            FieldValue::I8(v) => buf.put_i8(*v),
            FieldValue::U8(v) => buf.put_u8(*v),
            FieldValue::I16(v) => buf.put_i16(*v),
            FieldValue::U16(v) => buf.put_u16(*v),
            FieldValue::I32(v) => buf.put_i32(*v),
            FieldValue::U32(v) => buf.put_u32(*v),
            FieldValue::I64(v) => buf.put_i64(*v),
            FieldValue::F32(v) => buf.put_f32(*v),
            FieldValue::F64(v) => buf.put_f64(*v),
            FieldValue::Decimal(d) => {
                buf.put_u8(d.scale);
                buf.put_u32(d.value);
            }
            FieldValue::LongStr(b) | FieldValue::Bytes(b) => {
                buf.put_u32(b.len() as u32);
                buf.put_slice(b);
            }
            FieldValue::Array(items) => {
                let at = reserve_len(buf);
                for item in items {
                    item.encode(buf);
                }
                patch_len(buf, at);
            }
            FieldValue::Timestamp(v) => buf.put_u64(*v),
            FieldValue::Table(t) => t.encode(buf),
            FieldValue::Void => {}
        }
    }

    fn decode(dec: &mut Decoder, depth: usize) -> Result<FieldValue, DecodeError> {
        let tag = dec.get_u8()?;
        Ok(match tag {
            b't' => FieldValue::Bool(dec.get_u8()? != 0),
            b'b' => FieldValue::I8(dec.get_u8()? as i8),
            b'B' => FieldValue::U8(dec.get_u8()?),
            b's' => FieldValue::I16(dec.get_u16()? as i16),
            b'u' => FieldValue::U16(dec.get_u16()?),
            b'I' => FieldValue::I32(dec.get_u32()? as i32),
            b'i' => FieldValue::U32(dec.get_u32()?),
            b'l' => FieldValue::I64(dec.get_u64()? as i64),
            b'f' => FieldValue::F32(f32::from_bits(dec.get_u32()?)),
            b'd' => FieldValue::F64(f64::from_bits(dec.get_u64()?)),
            b'D' => {
                let scale = dec.get_u8()?;
                let value = dec.get_u32()?;
                FieldValue::Decimal(Decimal { scale, value })
            }
            b'S' => FieldValue::LongStr(dec.get_long_str()?),
            b'x' => FieldValue::Bytes(dec.get_long_str()?),
            b'A' => {
                if depth >= MAX_TABLE_DEPTH {
                    return Err(DecodeError::TableTooDeep);
                }
                let body = dec.get_long_str()?;
                let mut inner = Decoder::new(body);
                let mut items = Vec::new();
                while inner.remaining() > 0 {
                    items.push(FieldValue::decode(&mut inner, depth + 1)?);
                }
                FieldValue::Array(items)
            }
            b'T' => FieldValue::Timestamp(dec.get_u64()?),
            b'F' => FieldValue::Table(FieldTable::decode(dec, depth + 1)?),
            b'V' => FieldValue::Void,
            other => return Err(DecodeError::UnknownFieldType(other)),
        })
    }
}

/// An ordered table of named values. Tables on the wire are small (a few
/// arguments or headers), so a vector with linear lookup beats a map, and
/// it keeps the order the peer sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.get_raw(key.as_bytes())
    }

    /// Lookup by raw name: names need not be UTF-8.
    pub fn get_raw(&self, key: &[u8]) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry of that name.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: FieldValue) {
        let key = key.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.0.iter()
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        let at = reserve_len(buf);
        for (k, v) in &self.0 {
            let len = k.len().min(ShortStr::MAX_LEN);
            buf.put_u8(len as u8);
            buf.put_slice(&k.as_bytes()[..len]);
            v.encode(buf);
        }
        patch_len(buf, at);
    }

    pub(crate) fn decode(dec: &mut Decoder, depth: usize) -> Result<FieldTable, DecodeError> {
        if depth > MAX_TABLE_DEPTH {
            return Err(DecodeError::TableTooDeep);
        }
        let body = dec.get_long_str()?;
        let mut inner = Decoder::new(body);
        let mut entries = Vec::new();
        while inner.remaining() > 0 {
            let key = inner.get_short_str()?;
            let value = FieldValue::decode(&mut inner, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<T: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: T) -> Self {
        FieldTable(iter.into_iter().collect())
    }
}

fn reserve_len(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_u32(0);
    at
}

fn patch_len(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let mut nested = FieldTable::new();
        nested.insert("inner", FieldValue::LongStr(Bytes::from_static(b"x")));
        let t: FieldTable = vec![
            ("t", FieldValue::Bool(true)),
            ("b", FieldValue::I8(-3)),
            ("B", FieldValue::U8(250)),
            ("s", FieldValue::I16(-300)),
            ("u", FieldValue::U16(60000)),
            ("I", FieldValue::I32(-70000)),
            ("i", FieldValue::U32(4_000_000_000)),
            ("l", FieldValue::I64(-5_000_000_000)),
            ("f", FieldValue::F32(1.5)),
            ("d", FieldValue::F64(-2.25)),
            (
                "D",
                FieldValue::Decimal(Decimal {
                    scale: 2,
                    value: 12345,
                }),
            ),
            (
                "S",
                FieldValue::LongStr(Bytes::from_static("水许传".as_bytes())),
            ),
            (
                "A",
                FieldValue::Array(vec![FieldValue::I32(1), FieldValue::Void]),
            ),
            ("T", FieldValue::Timestamp(1_700_000_000)),
            ("F", FieldValue::Table(nested)),
            ("V", FieldValue::Void),
            ("x", FieldValue::Bytes(Bytes::from_static(&[0, 1, 2]))),
        ]
        .into_iter()
        .map(|(k, v)| (ShortStr::from(k), v))
        .collect();
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        let mut d = Decoder::new(buf.freeze());
        assert_eq!(d.get_table().unwrap(), t);
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // Build 10,000 nested tables by hand: {"a": {"a": ...}}.
        let depth = 10_000;
        let mut body: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut outer = vec![1, b'a', b'F'];
            outer.extend_from_slice(&(body.len() as u32).to_be_bytes());
            outer.extend_from_slice(&body);
            body = outer;
        }
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        let mut d = Decoder::new(Bytes::from(framed));
        assert_eq!(d.get_table(), Err(DecodeError::TableTooDeep));
    }

    #[test]
    fn unknown_type_and_truncation_are_errors() {
        let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 3, 1, b'k', b'Z']));
        assert_eq!(d.get_table(), Err(DecodeError::UnknownFieldType(b'Z')));
        let mut d = Decoder::new(Bytes::from_static(&[0, 0, 0, 9, 1, b'k']));
        assert_eq!(d.get_table(), Err(DecodeError::Truncated));
    }
}

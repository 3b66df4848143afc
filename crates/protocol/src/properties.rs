//! Content headers and the 14 basic-class properties.

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::class;
use crate::table::FieldTable;
use crate::wire::{DecodeError, Decoder, Encoder, ShortStr};

/// The properties a message carries (basic class, spec section 1.8.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

// Property flag bits, most significant first, as the spec orders them.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const KIND: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
/// Set when another flags word follows; basic never needs one.
const CONTINUATION: u16 = 1;

impl BasicProperties {
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    fn flags(&self) -> u16 {
        let mut f = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                f |= bit
            }
        };
        set(self.content_type.is_some(), CONTENT_TYPE);
        set(self.content_encoding.is_some(), CONTENT_ENCODING);
        set(self.headers.is_some(), HEADERS);
        set(self.delivery_mode.is_some(), DELIVERY_MODE);
        set(self.priority.is_some(), PRIORITY);
        set(self.correlation_id.is_some(), CORRELATION_ID);
        set(self.reply_to.is_some(), REPLY_TO);
        set(self.expiration.is_some(), EXPIRATION);
        set(self.message_id.is_some(), MESSAGE_ID);
        set(self.timestamp.is_some(), TIMESTAMP);
        set(self.kind.is_some(), KIND);
        set(self.user_id.is_some(), USER_ID);
        set(self.app_id.is_some(), APP_ID);
        set(self.cluster_id.is_some(), CLUSTER_ID);
        f
    }

    /// Appends the flags word and the property list.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags());
        let mut e = Encoder::new(buf);
        let s = |e: &mut Encoder<'_>, v: &Option<ShortStr>| {
            if let Some(v) = v {
                e.put_short_str(v.as_bytes())
            }
        };
        s(&mut e, &self.content_type);
        s(&mut e, &self.content_encoding);
        if let Some(h) = &self.headers {
            e.put_table(h);
        }
        if let Some(v) = self.delivery_mode {
            e.put_u8(v);
        }
        if let Some(v) = self.priority {
            e.put_u8(v);
        }
        s(&mut e, &self.correlation_id);
        s(&mut e, &self.reply_to);
        s(&mut e, &self.expiration);
        s(&mut e, &self.message_id);
        if let Some(v) = self.timestamp {
            e.put_u64(v);
        }
        s(&mut e, &self.kind);
        s(&mut e, &self.user_id);
        s(&mut e, &self.app_id);
        s(&mut e, &self.cluster_id);
        e.finish();
    }

    /// Decodes the flags word and the property list.
    pub fn decode(dec: &mut Decoder) -> Result<BasicProperties, DecodeError> {
        let mut flags = dec.get_u16()?;
        // Skip any further flag words: basic defines only 14 properties,
        // so their bits can't name anything we know.
        let mut more = flags & CONTINUATION != 0;
        while more {
            more = dec.get_u16()? & CONTINUATION != 0;
        }
        flags &= !CONTINUATION;
        let s = |dec: &mut Decoder, bit: u16| -> Result<Option<ShortStr>, DecodeError> {
            if flags & bit != 0 {
                Ok(Some(dec.get_short_str()?))
            } else {
                Ok(None)
            }
        };
        let content_type = s(dec, CONTENT_TYPE)?;
        let content_encoding = s(dec, CONTENT_ENCODING)?;
        let headers = if flags & HEADERS != 0 {
            Some(dec.get_table()?)
        } else {
            None
        };
        let delivery_mode = if flags & DELIVERY_MODE != 0 {
            Some(dec.get_u8()?)
        } else {
            None
        };
        let priority = if flags & PRIORITY != 0 {
            Some(dec.get_u8()?)
        } else {
            None
        };
        let correlation_id = s(dec, CORRELATION_ID)?;
        let reply_to = s(dec, REPLY_TO)?;
        let expiration = s(dec, EXPIRATION)?;
        let message_id = s(dec, MESSAGE_ID)?;
        let timestamp = if flags & TIMESTAMP != 0 {
            Some(dec.get_u64()?)
        } else {
            None
        };
        Ok(BasicProperties {
            content_type,
            content_encoding,
            headers,
            delivery_mode,
            priority,
            correlation_id,
            reply_to,
            expiration,
            message_id,
            timestamp,
            kind: s(dec, KIND)?,
            user_id: s(dec, USER_ID)?,
            app_id: s(dec, APP_ID)?,
            cluster_id: s(dec, CLUSTER_ID)?,
        })
    }
}

/// A content header frame's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    pub properties: BasicProperties,
    /// The properties exactly as the publisher encoded them (flags word
    /// included), so a delivery can send them on without re-encoding.
    pub raw_properties: Bytes,
}

impl ContentHeader {
    pub fn new(body_size: u64, properties: BasicProperties) -> Self {
        let mut buf = BytesMut::new();
        properties.encode(&mut buf);
        ContentHeader {
            class_id: class::BASIC,
            body_size,
            properties,
            raw_properties: buf.freeze(),
        }
    }

    pub fn decode(payload: Bytes) -> Result<ContentHeader, DecodeError> {
        let mut dec = Decoder::new(payload.clone());
        let class_id = dec.get_u16()?;
        if class_id != class::BASIC {
            return Err(DecodeError::BadContentHeader("class is not basic"));
        }
        let _weight = dec.get_u16()?;
        let body_size = dec.get_u64()?;
        let props_start = payload.len() - dec.remaining();
        let properties = BasicProperties::decode(&mut dec)?;
        let props_end = payload.len() - dec.remaining();
        Ok(ContentHeader {
            class_id,
            body_size,
            properties,
            raw_properties: payload.slice(props_start..props_end),
        })
    }

    /// Reads a header's class, body size and raw property bytes without
    /// decoding the properties (the publish path decodes them once, when
    /// the message is complete).
    pub fn peek(payload: Bytes) -> Result<(u16, u64, Bytes), DecodeError> {
        let mut dec = Decoder::new(payload.clone());
        let class_id = dec.get_u16()?;
        let _weight = dec.get_u16()?;
        let body_size = dec.get_u64()?;
        let start = payload.len() - dec.remaining();
        Ok((class_id, body_size, payload.slice(start..)))
    }

    /// Appends a header payload: class, weight, size and raw properties.
    pub fn encode_payload(buf: &mut BytesMut, body_size: u64, raw_properties: &[u8]) {
        buf.put_u16(class::BASIC);
        buf.put_u16(0);
        buf.put_u64(body_size);
        buf.put_slice(raw_properties);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::FieldValue;

    #[test]
    fn all_fourteen_round_trip_and_raw_is_kept() {
        let mut headers = FieldTable::new();
        headers.insert("x-a", FieldValue::I32(1));
        let props = BasicProperties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c1".into()),
            reply_to: Some("amq.gen-x".into()),
            expiration: Some("60000".into()),
            message_id: Some("m1".into()),
            timestamp: Some(1_700_000_000),
            kind: Some("t".into()),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
            cluster_id: Some("c".into()),
        };
        let h = ContentHeader::new(42, props.clone());
        let mut buf = BytesMut::new();
        ContentHeader::encode_payload(&mut buf, 42, &h.raw_properties);
        let back = ContentHeader::decode(buf.freeze()).unwrap();
        assert_eq!(back.properties, props);
        assert_eq!(back.body_size, 42);
        assert_eq!(back.raw_properties, h.raw_properties);
        assert!(back.properties.is_persistent());
    }

    #[test]
    fn empty_properties_are_two_zero_octets() {
        let h = ContentHeader::new(0, BasicProperties::default());
        assert_eq!(&h.raw_properties[..], &[0, 0]);
    }
}

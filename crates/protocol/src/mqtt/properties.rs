//! MQTT 5.0 properties (section 2.2.2): a length-prefixed list of
//! identifier/value pairs carried by most packets. MQTT 3.1.1 packets
//! have none; their [`Properties`] stay empty.

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{put_binary, put_str, put_varint, Reader};
use super::MqttError;

/// Every property MQTT 5.0 defines. Which ones a packet may carry is the
/// receiver's business; the codec keeps whatever arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    /// In SUBSCRIBE at most one; in a PUBLISH to a client, one per
    /// matching subscription that has one.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(String, String)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// One property's wire form.
enum Kind {
    Byte,
    U16,
    U32,
    VarInt,
    Str,
    Bin,
    Pair,
}

fn kind(id: u8) -> Option<Kind> {
    Some(match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Kind::Byte,
        0x13 | 0x21 | 0x22 | 0x23 => Kind::U16,
        0x02 | 0x11 | 0x18 | 0x27 => Kind::U32,
        0x0B => Kind::VarInt,
        0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Kind::Str,
        0x09 | 0x16 => Kind::Bin,
        0x26 => Kind::Pair,
        _ => return None,
    })
}

impl Properties {
    /// Reads the property length and the properties it covers.
    pub(crate) fn read(r: &mut Reader) -> Result<Properties, MqttError> {
        let len = r.varint()? as usize;
        let mut r = r.sub(len)?;
        let mut p = Properties::default();
        while !r.is_empty() {
            let id = r.u8()?;
            let dup = |present: bool| {
                if present {
                    Err(MqttError::Protocol(format!(
                        "property 0x{id:02x} given twice"
                    )))
                } else {
                    Ok(())
                }
            };
            match kind(id) {
                Some(Kind::Byte) => {
                    let v = r.u8()?;
                    let slot = match id {
                        0x01 => &mut p.payload_format_indicator,
                        0x17 => &mut p.request_problem_information,
                        0x19 => &mut p.request_response_information,
                        0x24 => &mut p.maximum_qos,
                        0x25 => &mut p.retain_available,
                        0x28 => &mut p.wildcard_subscription_available,
                        0x29 => &mut p.subscription_identifier_available,
                        _ => &mut p.shared_subscription_available,
                    };
                    dup(slot.is_some())?;
                    *slot = Some(v);
                }
                Some(Kind::U16) => {
                    let v = r.u16()?;
                    let slot = match id {
                        0x13 => &mut p.server_keep_alive,
                        0x21 => &mut p.receive_maximum,
                        0x22 => &mut p.topic_alias_maximum,
                        _ => &mut p.topic_alias,
                    };
                    dup(slot.is_some())?;
                    *slot = Some(v);
                }
                Some(Kind::U32) => {
                    let v = r.u32()?;
                    let slot = match id {
                        0x02 => &mut p.message_expiry_interval,
                        0x11 => &mut p.session_expiry_interval,
                        0x18 => &mut p.will_delay_interval,
                        _ => &mut p.maximum_packet_size,
                    };
                    dup(slot.is_some())?;
                    *slot = Some(v);
                }
                Some(Kind::VarInt) => {
                    let v = r.varint()?;
                    if v == 0 {
                        return Err(MqttError::Protocol("subscription identifier 0".into()));
                    }
                    p.subscription_identifiers.push(v);
                }
                Some(Kind::Str) => {
                    let v = r.string()?;
                    let slot = match id {
                        0x03 => &mut p.content_type,
                        0x08 => &mut p.response_topic,
                        0x12 => &mut p.assigned_client_identifier,
                        0x15 => &mut p.authentication_method,
                        0x1A => &mut p.response_information,
                        0x1C => &mut p.server_reference,
                        _ => &mut p.reason_string,
                    };
                    dup(slot.is_some())?;
                    *slot = Some(v);
                }
                Some(Kind::Bin) => {
                    let v = r.binary()?;
                    let slot = match id {
                        0x09 => &mut p.correlation_data,
                        _ => &mut p.authentication_data,
                    };
                    dup(slot.is_some())?;
                    *slot = Some(v);
                }
                Some(Kind::Pair) => {
                    let k = r.string()?;
                    let v = r.string()?;
                    p.user_properties.push((k, v));
                }
                None => return Err(MqttError::Malformed(format!("unknown property 0x{id:02x}"))),
            }
        }
        Ok(p)
    }

    /// Writes the property length and the properties.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        let mut b = BytesMut::new();
        let byte = |b: &mut BytesMut, id: u8, v: Option<u8>| {
            if let Some(v) = v {
                b.put_u8(id);
                b.put_u8(v);
            }
        };
        let u16_ = |b: &mut BytesMut, id: u8, v: Option<u16>| {
            if let Some(v) = v {
                b.put_u8(id);
                b.put_u16(v);
            }
        };
        let u32_ = |b: &mut BytesMut, id: u8, v: Option<u32>| {
            if let Some(v) = v {
                b.put_u8(id);
                b.put_u32(v);
            }
        };
        let str_ = |b: &mut BytesMut, id: u8, v: &Option<String>| {
            if let Some(v) = v {
                b.put_u8(id);
                put_str(b, v);
            }
        };
        let bin = |b: &mut BytesMut, id: u8, v: &Option<Bytes>| {
            if let Some(v) = v {
                b.put_u8(id);
                put_binary(b, v);
            }
        };
        byte(&mut b, 0x01, self.payload_format_indicator);
        u32_(&mut b, 0x02, self.message_expiry_interval);
        str_(&mut b, 0x03, &self.content_type);
        str_(&mut b, 0x08, &self.response_topic);
        bin(&mut b, 0x09, &self.correlation_data);
        for id in &self.subscription_identifiers {
            b.put_u8(0x0B);
            put_varint(&mut b, *id);
        }
        u32_(&mut b, 0x11, self.session_expiry_interval);
        str_(&mut b, 0x12, &self.assigned_client_identifier);
        u16_(&mut b, 0x13, self.server_keep_alive);
        str_(&mut b, 0x15, &self.authentication_method);
        bin(&mut b, 0x16, &self.authentication_data);
        byte(&mut b, 0x17, self.request_problem_information);
        u32_(&mut b, 0x18, self.will_delay_interval);
        byte(&mut b, 0x19, self.request_response_information);
        str_(&mut b, 0x1A, &self.response_information);
        str_(&mut b, 0x1C, &self.server_reference);
        str_(&mut b, 0x1F, &self.reason_string);
        u16_(&mut b, 0x21, self.receive_maximum);
        u16_(&mut b, 0x22, self.topic_alias_maximum);
        u16_(&mut b, 0x23, self.topic_alias);
        byte(&mut b, 0x24, self.maximum_qos);
        byte(&mut b, 0x25, self.retain_available);
        for (k, v) in &self.user_properties {
            b.put_u8(0x26);
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        u32_(&mut b, 0x27, self.maximum_packet_size);
        byte(&mut b, 0x28, self.wildcard_subscription_available);
        byte(&mut b, 0x29, self.subscription_identifier_available);
        byte(&mut b, 0x2A, self.shared_subscription_available);
        put_varint(out, b.len() as u32);
        out.extend_from_slice(&b);
    }
}

//! The MQTT 3.1, 3.1.1 and 5.0 wire format (control packets), as pure
//! functions: bytes in, [`Packet`]s out, and back. Like the AMQP codec it
//! does no I/O, bounds everything a peer controls (the packet size is the
//! caller's limit, checked from the fixed header before the body is
//! buffered; the buffer grows with the bytes that arrive, never to the
//! announced size at once) and turns every malformed input into an
//! [`MqttError`].
//!
//! A packet's layout depends on the protocol version, which CONNECT
//! announces: [`decode`] takes it (`None` before CONNECT).

use bytes::{BufMut, Bytes, BytesMut};

mod properties;
#[cfg(test)]
mod tests;
mod wire;

pub use properties::Properties;
use wire::{put_binary, put_str, put_varint, varint_len, Reader};

/// The protocol level in CONNECT: 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1), 5.
pub type Level = u8;

pub const LEVEL_31: Level = 3;
pub const LEVEL_311: Level = 4;
pub const LEVEL_5: Level = 5;

/// Why bytes are not a packet. `Malformed` and `Protocol` map onto MQTT
/// 5's reason codes 0x81 and 0x82; a 3.1.1 peer is simply disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("packet of {size} bytes is over the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("unsupported protocol level {0}")]
    UnsupportedLevel(u8),
}

/// What a client asks to be published after it goes away uncleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub level: Level,
    pub client_id: String,
    /// 3.1.1's clean session, 5.0's clean start.
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub will: Option<Will>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// 5.0 reason code, or 3.1.1 return code (0 accepted … 5 not authorized).
    pub code: u8,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Empty when a 5.0 topic alias stands for it.
    pub topic: String,
    /// Present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    pub properties: Properties,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: a packet id and (5.0) a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: u16,
    pub reason: u8,
    pub properties: Properties,
}

impl Ack {
    pub fn new(packet_id: u16, reason: u8) -> Ack {
        Ack {
            packet_id,
            reason,
            properties: Properties::default(),
        }
    }
}

/// A subscription's options (5.0; 3.1.1 has only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages; 1: only for a new subscription; 2: never.
    pub retain_handling: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<(String, SubOptions)>,
}

/// SUBACK and UNSUBACK: one code per filter (3.1.1's UNSUBACK has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    pub codes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<String>,
}

/// DISCONNECT and AUTH (5.0 reason and properties; 3.1.1 DISCONNECT has none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(SubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Disconnect),
}

/// Makes room for more of a packet of `size` bytes whose first
/// `buf.len()` bytes have arrived. Memory follows the bytes that actually
/// arrive, never the size the fixed header announces: room for twice what
/// is buffered (which the allocator may round up to twice again), so a
/// peer that announces
/// 256 MiB and sends a few bytes holds a few bytes. A buffer that already
/// has that room is left alone (its capacity is the reader's: replacing
/// it by an exact-sized one would make every later read a small one).
fn grow(buf: &mut BytesMut, size: usize) {
    let target = size.min(buf.len().saturating_mul(2));
    if target > buf.capacity() {
        buf.reserve(target - buf.len());
    }
}

/// Splits one packet off the front of `buf`, if a whole one is there.
/// `level` is the connection's protocol level (`None` before CONNECT,
/// when only CONNECT is accepted); `max` bounds the packet's size, and
/// is checked as soon as the fixed header is read.
pub fn decode(
    buf: &mut BytesMut,
    level: Option<Level>,
    max: usize,
) -> Result<Option<Packet>, MqttError> {
    let Some((first, body_len, header_len)) = fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header_len + body_len;
    if size > max {
        return Err(MqttError::TooLarge { size, max });
    }
    if buf.len() < size {
        grow(buf, size);
        return Ok(None);
    }
    let mut packet = buf.split_to(size).freeze();
    let body = packet.split_off(header_len);
    let kind = first >> 4;
    let flags = first & 0x0f;
    let mut r = Reader::new(body);
    let p = match (kind, level) {
        (1, None) => Packet::Connect(Box::new(connect(&mut r, flags)?)),
        (1, Some(_)) => return Err(MqttError::Protocol("a second CONNECT".into())),
        (_, None) => {
            return Err(MqttError::Protocol(
                "the first packet must be CONNECT".into(),
            ))
        }
        (_, Some(level)) => packet_body(kind, flags, &mut r, level)?,
    };
    if !r.is_empty() {
        return Err(MqttError::Malformed(
            "bytes after the packet's contents".into(),
        ));
    }
    Ok(Some(p))
}

/// The fixed header: first byte, remaining length and the header's size;
/// `None` while incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, MqttError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut len: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((buf[0], len, 2 + i)));
        }
    }
    Err(MqttError::Malformed("remaining length over 4 bytes".into()))
}

fn flags_must_be(flags: u8, want: u8, what: &str) -> Result<(), MqttError> {
    if flags != want {
        return Err(MqttError::Malformed(format!(
            "{what} with flags {flags:#x}"
        )));
    }
    Ok(())
}

fn connect(r: &mut Reader, flags: u8) -> Result<Connect, MqttError> {
    flags_must_be(flags, 0, "CONNECT")?;
    let name = r.string()?;
    let level = r.u8()?;
    match (name.as_str(), level) {
        ("MQTT", LEVEL_311 | LEVEL_5) | ("MQIsdp", LEVEL_31) => {}
        ("MQTT" | "MQIsdp", l) => return Err(MqttError::UnsupportedLevel(l)),
        _ => return Err(MqttError::Protocol(format!("protocol name '{name}'"))),
    }
    let cf = r.u8()?;
    if cf & 0x01 != 0 {
        return Err(MqttError::Malformed("CONNECT reserved flag set".into()));
    }
    let keep_alive = r.u16()?;
    let properties = if level == LEVEL_5 {
        Properties::read(r)?
    } else {
        Properties::default()
    };
    let client_id = r.string()?;
    let will_flag = cf & 0x04 != 0;
    let will_qos = (cf >> 3) & 0x03;
    let will_retain = cf & 0x20 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(MqttError::Malformed(
            "will QoS or retain without a will".into(),
        ));
    }
    if will_qos > 2 {
        return Err(MqttError::Malformed("will QoS 3".into()));
    }
    let will = if will_flag {
        let properties = if level == LEVEL_5 {
            Properties::read(r)?
        } else {
            Properties::default()
        };
        Some(Will {
            topic: r.string()?,
            payload: r.binary()?,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if cf & 0x80 != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if cf & 0x40 != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    if level == LEVEL_311 && password.is_some() && username.is_none() {
        return Err(MqttError::Malformed("password without a user name".into()));
    }
    Ok(Connect {
        level,
        client_id,
        clean_start: cf & 0x02 != 0,
        keep_alive,
        username,
        password,
        will,
        properties,
    })
}

fn props(r: &mut Reader, level: Level) -> Result<Properties, MqttError> {
    if level == LEVEL_5 {
        Properties::read(r)
    } else {
        Ok(Properties::default())
    }
}

fn packet_id(r: &mut Reader) -> Result<u16, MqttError> {
    match r.u16()? {
        0 => Err(MqttError::Malformed("packet identifier 0".into())),
        id => Ok(id),
    }
}

/// PUBACK-like: the id, then (5.0) an optional reason and properties.
fn ack(r: &mut Reader, level: Level) -> Result<Ack, MqttError> {
    let packet_id = packet_id(r)?;
    let mut a = Ack::new(packet_id, 0);
    if level == LEVEL_5 && !r.is_empty() {
        a.reason = r.u8()?;
        if !r.is_empty() {
            a.properties = Properties::read(r)?;
        }
    }
    Ok(a)
}

fn packet_body(kind: u8, flags: u8, r: &mut Reader, level: Level) -> Result<Packet, MqttError> {
    Ok(match kind {
        2 => {
            flags_must_be(flags, 0, "CONNACK")?;
            let ack_flags = r.u8()?;
            let code = r.u8()?;
            Packet::ConnAck(ConnAck {
                session_present: ack_flags & 1 != 0,
                code,
                properties: props(r, level)?,
            })
        }
        3 => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                return Err(MqttError::Malformed("PUBLISH with QoS 3".into()));
            }
            let dup = flags & 0x08 != 0;
            if qos == 0 && dup {
                return Err(MqttError::Malformed("DUP set on a QoS 0 PUBLISH".into()));
            }
            let topic = r.string()?;
            let packet_id = if qos > 0 { Some(packet_id(r)?) } else { None };
            let properties = props(r, level)?;
            Packet::Publish(Publish {
                dup,
                qos,
                retain: flags & 0x01 != 0,
                topic,
                packet_id,
                properties,
                payload: r.rest(),
            })
        }
        4 => {
            flags_must_be(flags, 0, "PUBACK")?;
            Packet::PubAck(ack(r, level)?)
        }
        5 => {
            flags_must_be(flags, 0, "PUBREC")?;
            Packet::PubRec(ack(r, level)?)
        }
        6 => {
            flags_must_be(flags, 2, "PUBREL")?;
            Packet::PubRel(ack(r, level)?)
        }
        7 => {
            flags_must_be(flags, 0, "PUBCOMP")?;
            Packet::PubComp(ack(r, level)?)
        }
        8 => {
            flags_must_be(flags, 2, "SUBSCRIBE")?;
            let packet_id = packet_id(r)?;
            let properties = props(r, level)?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                let o = r.u8()?;
                let reserved = if level == LEVEL_5 { 0xc0 } else { 0xfc };
                if o & reserved != 0 || o & 0x03 == 3 || (o >> 4) & 0x03 == 3 {
                    return Err(MqttError::Malformed(format!("subscription options {o:#x}")));
                }
                filters.push((
                    f,
                    SubOptions {
                        qos: o & 0x03,
                        no_local: o & 0x04 != 0,
                        retain_as_published: o & 0x08 != 0,
                        retain_handling: (o >> 4) & 0x03,
                    },
                ));
            }
            if filters.is_empty() {
                return Err(MqttError::Protocol(
                    "SUBSCRIBE without a topic filter".into(),
                ));
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        }
        9 | 11 => {
            flags_must_be(flags, 0, "SUBACK")?;
            let packet_id = packet_id(r)?;
            let properties = props(r, level)?;
            // 3.1.1's UNSUBACK has no payload: anything after the id is
            // malformed (and would not survive a re-encode).
            let codes = if kind == 11 && level != LEVEL_5 {
                Vec::new()
            } else {
                r.rest().to_vec()
            };
            let a = SubAck {
                packet_id,
                properties,
                codes,
            };
            if kind == 9 {
                Packet::SubAck(a)
            } else {
                Packet::UnsubAck(a)
            }
        }
        10 => {
            flags_must_be(flags, 2, "UNSUBSCRIBE")?;
            let packet_id = packet_id(r)?;
            let properties = props(r, level)?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                filters.push(r.string()?);
            }
            if filters.is_empty() {
                return Err(MqttError::Protocol(
                    "UNSUBSCRIBE without a topic filter".into(),
                ));
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        }
        12 => {
            flags_must_be(flags, 0, "PINGREQ")?;
            Packet::PingReq
        }
        13 => {
            flags_must_be(flags, 0, "PINGRESP")?;
            Packet::PingResp
        }
        14 | 15 => {
            flags_must_be(flags, 0, "DISCONNECT")?;
            if kind == 15 && level != LEVEL_5 {
                return Err(MqttError::Protocol("AUTH before MQTT 5".into()));
            }
            let mut d = Disconnect::default();
            if level == LEVEL_5 && !r.is_empty() {
                d.reason = r.u8()?;
                if !r.is_empty() {
                    d.properties = Properties::read(r)?;
                }
            }
            if kind == 14 {
                Packet::Disconnect(d)
            } else {
                Packet::Auth(d)
            }
        }
        _ => return Err(MqttError::Malformed(format!("packet type {kind}"))),
    })
}

/// Writes a fixed header for a body of `len` bytes.
fn header(out: &mut BytesMut, first: u8, len: usize) {
    out.put_u8(first);
    put_varint(out, u32::try_from(len).unwrap_or(u32::MAX));
}

/// Properties as they will be written (for lengths).
fn props_bytes(p: &Properties) -> BytesMut {
    let mut b = BytesMut::new();
    p.write(&mut b);
    b
}

impl Publish {
    /// Everything but the payload, which the caller writes after it
    /// (so a delivery's body is never copied).
    pub fn encode_head(&self, level: Level, out: &mut BytesMut) {
        let props = (level == LEVEL_5).then(|| props_bytes(&self.properties));
        let len = 2
            + self.topic.len()
            + if self.packet_id.is_some() { 2 } else { 0 }
            + props.as_ref().map_or(0, |p| p.len())
            + self.payload.len();
        let first = 0x30
            | if self.dup { 0x08 } else { 0 }
            | (self.qos.min(2) << 1)
            | if self.retain { 0x01 } else { 0 };
        header(out, first, len);
        put_str(out, &self.topic);
        if let Some(id) = self.packet_id {
            out.put_u16(id);
        }
        if let Some(p) = props {
            out.extend_from_slice(&p);
        }
    }
}

impl Packet {
    /// Appends the packet's bytes for a peer speaking `level`.
    pub fn encode(&self, level: Level, out: &mut BytesMut) {
        let v5 = level == LEVEL_5;
        match self {
            Packet::Connect(c) => {
                let mut b = BytesMut::new();
                put_str(
                    &mut b,
                    if c.level == LEVEL_31 {
                        "MQIsdp"
                    } else {
                        "MQTT"
                    },
                );
                b.put_u8(c.level);
                let mut cf = 0u8;
                if c.clean_start {
                    cf |= 0x02;
                }
                if let Some(w) = &c.will {
                    cf |= 0x04 | (w.qos.min(2) << 3) | if w.retain { 0x20 } else { 0 };
                }
                if c.password.is_some() {
                    cf |= 0x40;
                }
                if c.username.is_some() {
                    cf |= 0x80;
                }
                b.put_u8(cf);
                b.put_u16(c.keep_alive);
                if c.level == LEVEL_5 {
                    c.properties.write(&mut b);
                }
                put_str(&mut b, &c.client_id);
                if let Some(w) = &c.will {
                    if c.level == LEVEL_5 {
                        w.properties.write(&mut b);
                    }
                    put_str(&mut b, &w.topic);
                    put_binary(&mut b, &w.payload);
                }
                if let Some(u) = &c.username {
                    put_str(&mut b, u);
                }
                if let Some(p) = &c.password {
                    put_binary(&mut b, p);
                }
                header(out, 0x10, b.len());
                out.extend_from_slice(&b);
            }
            Packet::ConnAck(a) => {
                let props = v5.then(|| props_bytes(&a.properties));
                header(out, 0x20, 2 + props.as_ref().map_or(0, |p| p.len()));
                out.put_u8(u8::from(a.session_present));
                out.put_u8(a.code);
                if let Some(p) = props {
                    out.extend_from_slice(&p);
                }
            }
            Packet::Publish(p) => {
                p.encode_head(level, out);
                out.extend_from_slice(&p.payload);
            }
            Packet::PubAck(a) => encode_ack(out, 0x40, a, v5),
            Packet::PubRec(a) => encode_ack(out, 0x50, a, v5),
            Packet::PubRel(a) => encode_ack(out, 0x62, a, v5),
            Packet::PubComp(a) => encode_ack(out, 0x70, a, v5),
            Packet::Subscribe(s) => {
                let mut b = BytesMut::new();
                b.put_u16(s.packet_id);
                if v5 {
                    s.properties.write(&mut b);
                }
                for (f, o) in &s.filters {
                    put_str(&mut b, f);
                    let mut byte = o.qos & 0x03;
                    if v5 {
                        byte |= u8::from(o.no_local) << 2
                            | u8::from(o.retain_as_published) << 3
                            | (o.retain_handling & 0x03) << 4;
                    }
                    b.put_u8(byte);
                }
                header(out, 0x82, b.len());
                out.extend_from_slice(&b);
            }
            Packet::SubAck(a) => encode_suback(out, 0x90, a, v5, true),
            Packet::UnsubAck(a) => encode_suback(out, 0xb0, a, v5, v5),
            Packet::Unsubscribe(u) => {
                let mut b = BytesMut::new();
                b.put_u16(u.packet_id);
                if v5 {
                    u.properties.write(&mut b);
                }
                for f in &u.filters {
                    put_str(&mut b, f);
                }
                header(out, 0xa2, b.len());
                out.extend_from_slice(&b);
            }
            Packet::PingReq => out.extend_from_slice(&[0xc0, 0]),
            Packet::PingResp => out.extend_from_slice(&[0xd0, 0]),
            Packet::Disconnect(d) | Packet::Auth(d) => {
                let first = if matches!(self, Packet::Auth(_)) {
                    0xf0
                } else {
                    0xe0
                };
                if !v5 {
                    out.extend_from_slice(&[first, 0]);
                    return;
                }
                let props = props_bytes(&d.properties);
                header(out, first, 1 + props.len());
                out.put_u8(d.reason);
                out.extend_from_slice(&props);
            }
        }
    }
}

fn encode_ack(out: &mut BytesMut, first: u8, a: &Ack, v5: bool) {
    if v5 && (a.reason != 0 || a.properties != Properties::default()) {
        let props = props_bytes(&a.properties);
        header(out, first, 3 + props.len());
        out.put_u16(a.packet_id);
        out.put_u8(a.reason);
        out.extend_from_slice(&props);
    } else {
        header(out, first, 2);
        out.put_u16(a.packet_id);
    }
}

fn encode_suback(out: &mut BytesMut, first: u8, a: &SubAck, v5: bool, codes: bool) {
    let props = v5.then(|| props_bytes(&a.properties));
    let len = 2 + props.as_ref().map_or(0, |p| p.len()) + if codes { a.codes.len() } else { 0 };
    header(out, first, len);
    out.put_u16(a.packet_id);
    if let Some(p) = props {
        out.extend_from_slice(&p);
    }
    if codes {
        out.extend_from_slice(&a.codes);
    }
}

/// The size of a PUBLISH as [`Publish::encode_head`] plus its payload
/// would write it (for a client's maximum packet size).
pub fn publish_size(p: &Publish, level: Level) -> usize {
    let props = if level == LEVEL_5 {
        props_bytes(&p.properties).len()
    } else {
        0
    };
    let len =
        2 + p.topic.len() + if p.packet_id.is_some() { 2 } else { 0 } + props + p.payload.len();
    1 + varint_len(u32::try_from(len).unwrap_or(u32::MAX)) + len
}

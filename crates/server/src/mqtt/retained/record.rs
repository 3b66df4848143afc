//! A retained message's record in its vhost's log (format in
//! `retained.rs`): encoding a retain, reading one back (length and CRC
//! checked), and the head of a record (topic, QoS, deadline, delete or
//! not) that loading reads instead of the whole record.

use std::os::unix::fs::FileExt;

use bytes::BytesMut;
use warren_protocol::mqtt::{self, Packet, Publish, LEVEL_5};

use super::RetainedEntry;

/// Largest record accepted (a retained message is a PUBLISH, so bounded
/// by the MQTT packet limit anyway).
pub(super) const RECORD_MAX: usize = 256 << 20;
/// Bit 31 of a record's length: an expiry deadline precedes the packet.
pub(super) const HAS_DEADLINE: u32 = 1 << 31;

/// `retained-<vhost in hex>.log`.
pub(crate) fn file_name(vhost: &str) -> String {
    let hex: String = vhost.bytes().map(|b| format!("{b:02x}")).collect();
    format!("retained-{hex}.log")
}

/// The vhost a log's file name is for.
pub(crate) fn vhost_of(file_name: &str) -> Option<String> {
    let hex = file_name.strip_prefix("retained-")?.strip_suffix(".log")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A retain, encoded as its log record.
pub(super) struct Record {
    pub(super) topic: String,
    pub(super) qos: u8,
    pub(super) deadline: Option<u64>,
    pub(super) empty: bool,
    pub(super) bytes: Vec<u8>,
}

impl Record {
    pub(super) fn new(mut p: Publish, now: u64) -> Record {
        p.properties.topic_alias = None;
        p.dup = false;
        p.qos = p.qos.min(2);
        // A QoS 1 or 2 PUBLISH needs an id to be well-formed; subscribers get
        // their own.
        p.packet_id = (p.qos > 0).then_some(1);
        p.retain = true;
        let deadline = p
            .properties
            .message_expiry_interval
            .map(|s| now.saturating_add(u64::from(s) * 1000));
        let mut b = BytesMut::new();
        let mut flag = 0;
        if let Some(d) = deadline {
            b.extend_from_slice(&d.to_be_bytes());
            flag = HAS_DEADLINE;
        }
        let (topic, qos, empty) = (p.topic.clone(), p.qos, p.payload.is_empty());
        Packet::Publish(p).encode(LEVEL_5, &mut b);
        let mut bytes = Vec::with_capacity(8 + b.len());
        // Within u32: a PUBLISH is at most 256 MiB (its remaining length).
        bytes.extend_from_slice(&(b.len() as u32 | flag).to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&b).to_be_bytes());
        bytes.extend_from_slice(&b);
        Record {
            topic,
            qos,
            deadline,
            empty,
            bytes,
        }
    }
}

/// A record's bytes, checked (length and CRC), without its header.
pub(super) fn read_checked(e: &RetainedEntry) -> Result<(u32, BytesMut), String> {
    let len = usize::try_from(e.len)
        .ok()
        .filter(|l| (8..=RECORD_MAX + 8).contains(l))
        .ok_or("bad record length")?;
    let mut b = BytesMut::zeroed(len);
    e.file
        .read_exact_at(&mut b, e.offset)
        .map_err(|err| format!("read at byte {}: {err}", e.offset))?;
    let field = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let crc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let body = b.split_off(8);
    if (field & !HAS_DEADLINE) as usize != body.len() || crc32fast::hash(&body) != crc {
        return Err(format!("damaged record at byte {}", e.offset));
    }
    Ok((field, body))
}

/// The message of `e` with the expiry interval it has left; `None` if
/// it has expired.
pub(super) fn read(e: &RetainedEntry, now: u64) -> Result<Option<Publish>, String> {
    if e.expired(now) {
        return Ok(None);
    }
    let (field, mut body) = read_checked(e)?;
    if field & HAS_DEADLINE != 0 {
        if body.len() < 8 {
            return Err("short record".into());
        }
        let _ = body.split_to(8);
    }
    let mut p = match mqtt::decode(&mut body, Some(LEVEL_5), RECORD_MAX) {
        Ok(Some(Packet::Publish(p))) => p,
        _ => return Err("unreadable record".into()),
    };
    if let Some(d) = e.deadline {
        let left = d.saturating_sub(now).div_ceil(1000);
        p.properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX));
    }
    Ok(Some(p))
}

/// What loading needs of a record: its topic, QoS, deadline, and
/// whether it deletes.
pub(super) struct Head {
    pub(super) topic: String,
    pub(super) qos: u8,
    pub(super) deadline: Option<u64>,
    pub(super) empty: bool,
}

pub(super) enum Parsed {
    Head(Head),
    /// The first `n` bytes of the body are needed.
    Need(usize),
    Bad(&'static str),
}

/// Parses the head of a record's body from its first bytes.
pub(super) fn parse_head(field: u32, body_len: usize, b: &[u8]) -> Parsed {
    macro_rules! need {
        ($n:expr) => {
            let n = $n;
            if n > body_len {
                return Parsed::Bad("record too short");
            }
            if n > b.len() {
                return Parsed::Need(n);
            }
        };
    }
    let mut at = 0;
    let deadline = if field & HAS_DEADLINE != 0 {
        need!(8);
        at = 8;
        let mut d = [0u8; 8];
        d.copy_from_slice(&b[..8]);
        Some(u64::from_be_bytes(d))
    } else {
        None
    };
    let varint = |at: &mut usize| -> Result<usize, Parsed> {
        let mut v = 0usize;
        for i in 0..4 {
            if *at + 1 > body_len {
                return Err(Parsed::Bad("record too short"));
            }
            if *at + 1 > b.len() {
                return Err(Parsed::Need(*at + 1));
            }
            let byte = b[*at];
            *at += 1;
            v |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Parsed::Bad("bad variable integer"))
    };
    need!(at + 1);
    let first = b[at];
    at += 1;
    if first >> 4 != 3 {
        return Parsed::Bad("not a PUBLISH");
    }
    let qos = (first >> 1) & 3;
    let remaining = match varint(&mut at) {
        Ok(v) => v,
        Err(p) => return p,
    };
    if at + remaining != body_len {
        return Parsed::Bad("packet length");
    }
    need!(at + 2);
    let tlen = usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
    at += 2;
    need!(at + tlen);
    let Ok(topic) = std::str::from_utf8(&b[at..at + tlen]) else {
        return Parsed::Bad("topic is not UTF-8");
    };
    let topic = topic.to_string();
    at += tlen;
    if qos > 0 {
        at += 2;
    }
    let plen = match varint(&mut at) {
        Ok(v) => v,
        Err(p) => return p,
    };
    let Some(end) = at.checked_add(plen).filter(|&e| e <= body_len) else {
        return Parsed::Bad("properties length");
    };
    Parsed::Head(Head {
        topic,
        qos,
        deadline,
        empty: end == body_len,
    })
}

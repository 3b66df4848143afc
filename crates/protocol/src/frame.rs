//! Framing: splitting a byte stream into frames and writing frames out.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::constants::{
    FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_OVERHEAD,
};
use crate::methods::Method;
use crate::properties::ContentHeader;

#[derive(Debug, Clone, PartialEq)]
pub enum FramePayload {
    /// A method payload, not yet decoded (the server decodes it on the
    /// channel's behalf so it can attribute errors to class/method ids).
    Method(Bytes),
    Header(Bytes),
    Body(Bytes),
    Heartbeat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub channel: u16,
    pub payload: FramePayload,
}

/// A stream that can't be framed: all are connection errors (501).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// `size` is the payload size, `max` the largest payload allowed
    /// (frame_max minus the 8 octets of framing).
    TooLarge {
        kind: u8,
        size: u32,
        max: u32,
    },
    BadFrameEnd {
        kind: u8,
        end: u8,
    },
    UnknownType(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RabbitMQ's wording, which clients and people have seen before.
        match self {
            FrameError::TooLarge { kind, size, max } => write!(
                f,
                "type {kind}, all octets = <<>>: {{frame_too_large,{size},{max}}}"
            ),
            FrameError::BadFrameEnd { kind, end } => write!(
                f,
                "type {kind}, all octets = <<>>: {{invalid_frame_end_marker,{end}}}"
            ),
            FrameError::UnknownType(t) => write!(f, "type {t}, all octets = <<>>: unknown_frame"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Frame {
    /// Takes one whole frame off the front of `buf`, or returns `Ok(None)`
    /// when more bytes are needed. `frame_max` bounds the whole frame,
    /// overhead included, so a peer can't make us buffer more than that.
    pub fn parse(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
        if buf.len() < FRAME_HEADER_SIZE {
            return Ok(None);
        }
        let kind = buf[0];
        let channel = u16::from_be_bytes([buf[1], buf[2]]);
        let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(FrameError::UnknownType(kind));
        }
        let total = u64::from(size) + FRAME_OVERHEAD as u64;
        if total > u64::from(frame_max) {
            return Err(FrameError::TooLarge {
                kind,
                size,
                max: frame_max.saturating_sub(FRAME_OVERHEAD as u32),
            });
        }
        let total = total as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let end = buf[total - 1];
        if end != FRAME_END {
            return Err(FrameError::BadFrameEnd { kind, end });
        }
        let mut frame = buf.split_to(total).freeze();
        frame.advance(FRAME_HEADER_SIZE);
        frame.truncate(size as usize);
        let payload = match kind {
            FRAME_METHOD => FramePayload::Method(frame),
            FRAME_HEADER => FramePayload::Header(frame),
            FRAME_BODY => FramePayload::Body(frame),
            _ => FramePayload::Heartbeat,
        };
        Ok(Some(Frame { channel, payload }))
    }
}

/// Writes the 7-octet frame header with a placeholder size; returns where
/// the size goes, for [`end_frame`].
fn begin_frame(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    let at = buf.len();
    buf.put_u32(0);
    at
}

fn end_frame(buf: &mut BytesMut, size_at: usize) {
    let size = (buf.len() - size_at - 4) as u32;
    buf[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

pub fn write_method(buf: &mut BytesMut, channel: u16, method: &Method) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    method.encode(buf);
    end_frame(buf, at);
}

/// Writes a basic.deliver method frame straight from borrowed fields: the
/// delivery hot path, with no `Method` value built (and no reference
/// counts touched) per message. Same bytes as `write_method`.
pub fn write_deliver(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
) {
    let short = |buf: &mut BytesMut, s: &[u8]| {
        let n = s.len().min(255);
        buf.put_u8(n as u8);
        buf.put_slice(&s[..n]);
    };
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(60);
    short(buf, consumer_tag);
    buf.put_u64(delivery_tag);
    buf.put_u8(u8::from(redelivered));
    short(buf, exchange);
    short(buf, routing_key);
    end_frame(buf, at);
}

/// Writes a content header from already-encoded properties.
pub fn write_header(buf: &mut BytesMut, channel: u16, body_size: u64, raw_properties: &[u8]) {
    let at = begin_frame(buf, FRAME_HEADER, channel);
    ContentHeader::encode_payload(buf, body_size, raw_properties);
    end_frame(buf, at);
}

/// The 7 octets that open a body frame of `len` octets; the caller writes
/// the body (or queues it as its own buffer) and then [`FRAME_END`].
pub fn body_frame_header(channel: u16, len: usize) -> [u8; FRAME_HEADER_SIZE] {
    let mut h = [0u8; FRAME_HEADER_SIZE];
    h[0] = FRAME_BODY;
    h[1..3].copy_from_slice(&channel.to_be_bytes());
    h[3..7].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

pub fn write_body(buf: &mut BytesMut, channel: u16, body: &[u8]) {
    buf.put_slice(&body_frame_header(channel, body.len()));
    buf.put_slice(body);
    buf.put_u8(FRAME_END);
}

pub fn write_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::BasicAck;

    #[test]
    fn parses_frames_split_anywhere() {
        let mut out = BytesMut::new();
        write_method(
            &mut out,
            3,
            &Method::BasicAck(BasicAck {
                delivery_tag: 9,
                multiple: true,
            }),
        );
        write_body(&mut out, 3, b"hello");
        write_heartbeat(&mut out);
        let all = out.freeze();
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let mut frames = Vec::new();
            while let Some(f) = Frame::parse(&mut buf, 4096).unwrap() {
                frames.push(f);
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some(f) = Frame::parse(&mut buf, 4096).unwrap() {
                frames.push(f);
            }
            assert_eq!(frames.len(), 3, "cut at {cut}");
            assert_eq!(
                frames[1].payload,
                FramePayload::Body(Bytes::from_static(b"hello"))
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn write_deliver_matches_the_generic_encoder() {
        use crate::methods::BasicDeliver;
        let m = Method::BasicDeliver(BasicDeliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 77,
            redelivered: true,
            exchange: "logs".into(),
            routing_key: "a.b".into(),
        });
        let mut generic = BytesMut::new();
        write_method(&mut generic, 9, &m);
        let mut fast = BytesMut::new();
        write_deliver(&mut fast, 9, b"ctag", 77, true, b"logs", b"a.b");
        assert_eq!(generic, fast);
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 1, 0, 0][..]);
        assert!(matches!(
            Frame::parse(&mut buf, 4096),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[9u8, 0, 1, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(
            Frame::parse(&mut buf, 4096),
            Err(FrameError::UnknownType(9))
        );
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0x00][..]);
        assert_eq!(
            Frame::parse(&mut buf, 4096),
            Err(FrameError::BadFrameEnd { kind: 8, end: 0 })
        );
    }
}

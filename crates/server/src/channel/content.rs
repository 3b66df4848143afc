//! Content assembly: basic.publish, its header, its body frames.

use super::*;

/// Body frames seen so far. One frame (the usual case) is kept as the
/// slice of the read buffer it arrived in: no copy.
pub(super) enum BodyParts {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    pub(super) fn len(&self) -> usize {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(b) => b.len(),
            BodyParts::Many(b) => b.len(),
        }
    }

    /// Adds a body frame. Memory follows the bytes actually received,
    /// never the size the header claims: a peer that announces 128 MiB and
    /// sends two bytes holds two bytes (growth is amortised doubling, so at
    /// most twice what arrived, and never beyond `expected`).
    pub(super) fn push(&mut self, part: Bytes, expected: usize) {
        *self = match std::mem::replace(self, BodyParts::Empty) {
            BodyParts::Empty => BodyParts::One(part),
            BodyParts::One(first) => {
                let have = first.len() + part.len();
                let mut all =
                    BytesMut::with_capacity(have.saturating_mul(2).min(expected).max(have));
                all.extend_from_slice(&first);
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
            BodyParts::Many(mut all) => {
                let need = all.len() + part.len();
                if need > all.capacity() {
                    // Double, but never past the declared size.
                    let target = need
                        .max(all.capacity().saturating_mul(2))
                        .min(expected.max(need));
                    all.reserve(target - all.len());
                }
                all.extend_from_slice(&part);
                BodyParts::Many(all)
            }
        }
    }

    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

impl Channel {
    pub fn on_header(&mut self, s: &mut ConnContext, payload: Bytes) -> Result<()> {
        if !matches!(self.content, Content::Header(_)) {
            return Err(self.content_violation().unwrap_or_else(unexpected_content));
        }
        if payload.len() >= 2 {
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            if class_id != warren_protocol::constants::class::BASIC {
                return Err(AmqpError::new(
                    reply::UNEXPECTED_FRAME,
                    format!("expected content header for class 60, got one for class {class_id} instead"),
                ));
            }
        }
        let Content::Header(publish) = std::mem::replace(&mut self.content, Content::Idle) else {
            unreachable!("checked above")
        };
        let (_, body_size, raw_properties) = ContentHeader::peek(payload)
            .map_err(|e| AmqpError::new(reply::FRAME_ERROR, format!("bad content header: {e}")))?;
        if body_size > s.max_message_size {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                body_size, s.max_message_size
            )));
        }
        if body_size == 0 {
            return self.publish(s, publish, raw_properties, Bytes::new());
        }
        self.content = Content::Body {
            publish,
            raw_properties,
            body_size,
            body: BodyParts::Empty,
        };
        Ok(())
    }

    pub fn on_body(&mut self, s: &mut ConnContext, payload: Bytes) -> Result<()> {
        let Content::Body {
            body_size, body, ..
        } = &mut self.content
        else {
            return Err(self.content_violation().unwrap_or_else(unexpected_content));
        };
        let expected = *body_size as usize;
        if body.len() + payload.len() > expected {
            return Err(AmqpError::new(
                reply::FRAME_ERROR,
                "content body larger than its header declared",
            ));
        }
        body.push(payload, expected);
        if body.len() < expected {
            return Ok(());
        }
        let Content::Body {
            publish,
            raw_properties,
            body,
            ..
        } = std::mem::replace(&mut self.content, Content::Idle)
        else {
            unreachable!("matched above")
        };
        self.publish(s, publish, raw_properties, body.into_bytes())
    }
}

/// Bodies up to this size are copied once, at ingress, into a buffer of
/// their own (together with exchange, routing key and properties).
pub(super) const INLINE_BODY_MAX: usize = 1024;

/// A small message's fields are slices of the connection's 64 KiB read
/// buffer, which hundreds of messages share: every clone and drop of any
/// of them, on the publisher's core and on each consumer's, hits that
/// buffer's one reference count (a contended cache line), and one
/// long-queued message pins the whole buffer. Copying a small message once
/// into its own allocation is cheaper than both. Large bodies stay
/// zero-copy slices.
pub(super) fn compact(
    exchange: ShortStr,
    routing_key: ShortStr,
    props: Bytes,
    body: Bytes,
) -> (ShortStr, ShortStr, Bytes, Bytes) {
    if body.len() > INLINE_BODY_MAX {
        return (exchange, routing_key, props, body);
    }
    let (e, r, p) = (exchange.len(), routing_key.len(), props.len());
    let mut v = Vec::with_capacity(e + r + p + body.len());
    v.extend_from_slice(exchange.as_bytes());
    v.extend_from_slice(routing_key.as_bytes());
    v.extend_from_slice(&props);
    v.extend_from_slice(&body);
    let all = Bytes::from(v);
    (
        ShortStr::new(all.slice(0..e)),
        ShortStr::new(all.slice(e..e + r)),
        all.slice(e + r..e + r + p),
        all.slice(e + r + p..),
    )
}

pub(super) fn encode_properties(p: &BasicProperties) -> Bytes {
    let mut buf = BytesMut::new();
    p.encode(&mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn capacity(b: &BodyParts) -> usize {
        match b {
            BodyParts::Many(m) => m.capacity(),
            BodyParts::One(o) => o.len(),
            BodyParts::Empty => 0,
        }
    }

    /// A header claiming 128 MiB followed by a few tiny frames must not
    /// reserve the claimed size (200 such channels once reserved 25 GiB).
    #[test]
    pub(super) fn body_memory_follows_received_bytes_not_the_claim() {
        let claimed = 128 << 20;
        let mut b = BodyParts::Empty;
        for _ in 0..3 {
            b.push(Bytes::from_static(b"x"), claimed);
        }
        assert_eq!(b.len(), 3);
        assert!(capacity(&b) <= 64, "reserved {} bytes", capacity(&b));
        // Growing to the real size stays within twice what arrived.
        let frame = Bytes::from(vec![7u8; 131_064]);
        let mut received = 3;
        while received + frame.len() <= 4 << 20 {
            b.push(frame.clone(), claimed);
            received += frame.len();
            assert!(
                capacity(&b) <= 2 * received,
                "{} for {received}",
                capacity(&b)
            );
        }
        // And never past the declared size when it is reached.
        let mut exact = BodyParts::Empty;
        for _ in 0..5 {
            exact.push(Bytes::from(vec![1u8; 1000]), 5000);
        }
        assert_eq!(exact.len(), 5000);
        assert!(capacity(&exact) <= 8192);
        assert!(exact.into_bytes().iter().all(|&x| x == 1));
    }
}

//! The link's frames after the handshake: pure codec, no I/O.
//!
//! ```text
//! u32 length | u32 crc32 | u8 kind | u8 service | u64 correlation id | payload
//! ```
//!
//! All big-endian. `length` counts the bytes after the crc field (kind,
//! service, id and payload: `BODY_FIXED + payload.len()`); the crc
//! (crc32fast, IEEE) covers those same bytes. A length above [`MAX_FRAME`]
//! is refused from the first 4 bytes, before anything is reserved for it.

use bytes::{Buf, Bytes, BytesMut};

use super::Service;

/// The largest `length` a frame may declare: 64 MiB.
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// Bytes before `length` counts: the length and crc fields.
pub(crate) const PREFIX: usize = 8;
/// Fixed bytes counted by `length`: kind, service, correlation id.
pub(crate) const BODY_FIXED: usize = 10;
/// The whole header.
pub(crate) const HEADER_LEN: usize = PREFIX + BODY_FIXED;
/// The largest payload a frame carries.
pub(crate) const MAX_PAYLOAD: usize = MAX_FRAME - BODY_FIXED;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A request; the payload goes to the service's handler.
    Request = 1,
    /// The handler's answer to the request with the same id.
    ResponseOk = 2,
    /// The handler's error text (UTF-8) for the request with the same id.
    ResponseErr = 3,
    /// A one-way message; id 0.
    OneWay = 4,
    /// Sent on a connection idle for the heartbeat interval; id 0, no payload.
    Heartbeat = 5,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Request,
            2 => Kind::ResponseOk,
            3 => Kind::ResponseErr,
            4 => Kind::OneWay,
            5 => Kind::Heartbeat,
            _ => return None,
        })
    }
}

/// One decoded frame; the payload is a slice of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: Kind,
    pub service: Service,
    pub id: u64,
    pub payload: Bytes,
}

/// Why a peer's bytes are not a frame: the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("frame length {0} out of bounds (at least {BODY_FIXED}, at most {MAX_FRAME})")]
    Length(u32),
    #[error(
        "frame checksum mismatch (crc32 {declared:#010x} declared, {computed:#010x} computed)"
    )]
    Crc { declared: u32, computed: u32 },
    #[error("unknown frame kind {0}")]
    Kind(u8),
}

/// The header of a frame carrying `payload` (which the caller writes
/// right after it, without copying it here). `payload` must be at most
/// [`MAX_PAYLOAD`] bytes (checked by the senders).
pub(crate) fn header(kind: Kind, service: Service, id: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut h = [0u8; HEADER_LEN];
    let length = (BODY_FIXED + payload.len()) as u32;
    h[0..4].copy_from_slice(&length.to_be_bytes());
    h[8] = kind as u8;
    h[9] = service.0;
    h[10..18].copy_from_slice(&id.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[PREFIX..]);
    crc.update(payload);
    h[4..8].copy_from_slice(&crc.finalize().to_be_bytes());
    h
}

/// Header and payload in one buffer (tests, and anything not on the hot path).
#[cfg(test)]
pub(crate) fn encode(frame: &Frame, out: &mut BytesMut) {
    out.extend_from_slice(&header(frame.kind, frame.service, frame.id, &frame.payload));
    out.extend_from_slice(&frame.payload);
}

/// Takes one frame off the front of `buf`, or `Ok(None)` if it does not
/// hold a whole one yet (then it has reserved room for the rest of it,
/// which is at most [`MAX_FRAME`] + [`PREFIX`] bytes, the length having
/// been checked first). On an error the connection must be closed: the
/// stream is no longer in sync.
pub(crate) fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = length as usize;
    if !(BODY_FIXED..=MAX_FRAME).contains(&len) {
        return Err(FrameError::Length(length));
    }
    let total = PREFIX + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let declared = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let computed = crc32fast::hash(&buf[PREFIX..total]);
    if declared != computed {
        return Err(FrameError::Crc { declared, computed });
    }
    let kind = Kind::from_u8(buf[8]).ok_or(FrameError::Kind(buf[8]))?;
    let service = Service(buf[9]);
    let mut frame = buf.split_to(total);
    frame.advance(PREFIX + 2);
    let id = frame.get_u64();
    Ok(Some(Frame {
        kind,
        service,
        id,
        payload: frame.freeze(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        (1u8..=5).prop_map(|b| Kind::from_u8(b).unwrap())
    }

    fn frame() -> impl Strategy<Value = Frame> {
        (
            kind(),
            any::<u8>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(kind, s, id, p)| Frame {
                kind,
                service: Service(s),
                id,
                payload: Bytes::from(p),
            })
    }

    /// What decoding may ever reserve: room for one maximal frame (the
    /// allocator may round a growth up to twice the old capacity).
    fn bounded(buf: &BytesMut, before: usize) {
        assert!(buf.capacity() <= 2 * before.max(PREFIX + MAX_FRAME));
    }

    proptest! {
        #[test]
        fn round_trip(frames in proptest::collection::vec(frame(), 1..8), cut in 0usize..2000) {
            let mut wire = BytesMut::new();
            for f in &frames {
                encode(f, &mut wire);
            }
            // Fed in two pieces, cut anywhere.
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = decode(&mut buf).unwrap() {
                got.push(f);
            }
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let before = buf.capacity();
            for _ in 0..bytes.len() + 1 {
                match decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            bounded(&buf, before);
        }

        #[test]
        fn mutated_frames_are_refused_or_equal(
            f in frame(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut wire = BytesMut::new();
            encode(&f, &mut wire);
            let original = wire.clone();
            for (at, x) in flips {
                let i = at % wire.len();
                wire[i] ^= x;
            }
            let before = wire.capacity();
            // Whatever gets through the crc is the original frame (or a
            // collision, vanishingly unlikely in 4 flips).
            if let Ok(Some(g)) = decode(&mut wire) {
                prop_assert_eq!(&wire_of(&g), &original);
            }
            bounded(&wire, before);
        }
    }

    fn wire_of(f: &Frame) -> BytesMut {
        let mut w = BytesMut::new();
        encode(f, &mut w);
        w
    }

    #[test]
    fn oversize_length_is_refused_before_reserving() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(FrameError::Length(u32::MAX)));
        assert!(buf.capacity() < 1024);
        let mut buf = BytesMut::from(&((MAX_FRAME + 1) as u32).to_be_bytes()[..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Length(_))));
        let mut buf = BytesMut::from(&3u32.to_be_bytes()[..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::Length(3))));
    }

    #[test]
    fn bad_crc_and_unknown_kind_are_refused() {
        let f = Frame {
            kind: Kind::Request,
            service: Service::RAFT,
            id: 7,
            payload: Bytes::from_static(b"hello"),
        };
        let mut w = wire_of(&f);
        let last = w.len() - 1;
        w[last] ^= 1;
        assert!(matches!(decode(&mut w), Err(FrameError::Crc { .. })));
        // A kind the crc vouches for but the codec does not know.
        let mut h = header(Kind::Request, Service::RAFT, 7, b"");
        h[8] = 9;
        let crc = crc32fast::hash(&h[PREFIX..]);
        h[4..8].copy_from_slice(&crc.to_be_bytes());
        let mut w = BytesMut::from(&h[..]);
        assert_eq!(decode(&mut w), Err(FrameError::Kind(9)));
    }
}

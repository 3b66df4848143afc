//! A connection's output: frames accumulate here and go out in as few
//! syscalls as possible (one vectored write per loop turn).
//!
//! Small frames are encoded into one growing buffer. Message bodies of
//! [`SHARE_THRESHOLD`] bytes or more are not copied: their `Bytes` is
//! queued as its own chunk and handed to `writev` as is. Below that size a
//! copy into the batch buffer is cheaper than an extra iovec.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use warren_protocol::constants::{FRAME_END, FRAME_OVERHEAD};
use warren_protocol::frame::{self, body_frame_header};
use warren_protocol::Method;

/// Bodies at least this large are written from the shared buffer.
pub const SHARE_THRESHOLD: usize = 4096;
/// Above this many pending bytes the connection stops taking deliveries
/// until the socket drains.
pub const HIGH_WATER: usize = 1 << 20;
const MAX_IOVECS: usize = 64;

#[derive(Debug, Default)]
pub struct Outbound {
    /// Complete buffers waiting to be written, in order.
    chunks: VecDeque<Bytes>,
    /// Where small frames are encoded; written after `chunks`.
    current: BytesMut,
    pending: usize,
}

impl Outbound {
    pub fn new() -> Self {
        Outbound {
            chunks: VecDeque::new(),
            // Grows on demand: idle connections stay small.
            current: BytesMut::new(),
            pending: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn method(&mut self, channel: u16, method: &Method) {
        frame::write_method(&mut self.current, channel, method);
    }

    pub fn heartbeat(&mut self) {
        frame::write_heartbeat(&mut self.current);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.current.put_slice(bytes);
    }

    /// basic.deliver, encoded without building a `Method`.
    pub fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &[u8],
        delivery_tag: u64,
        redelivered: bool,
        exchange: &[u8],
        routing_key: &[u8],
    ) {
        frame::write_deliver(
            &mut self.current,
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            exchange,
            routing_key,
        );
    }

    /// A content header and the body frames for one message.
    pub fn content(&mut self, channel: u16, raw_properties: &[u8], body: &Bytes, frame_max: u32) {
        frame::write_header(
            &mut self.current,
            channel,
            body.len() as u64,
            raw_properties,
        );
        let max_payload = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
        let mut offset = 0;
        while offset < body.len() {
            let end = (offset + max_payload).min(body.len());
            let len = end - offset;
            self.current.put_slice(&body_frame_header(channel, len));
            if len >= SHARE_THRESHOLD {
                self.seal();
                let part = body.slice(offset..end);
                self.pending += part.len();
                self.chunks.push_back(part);
            } else {
                self.current.put_slice(&body[offset..end]);
            }
            self.current.put_u8(FRAME_END);
            offset = end;
        }
    }

    /// Moves the encoded bytes so far into the chunk queue.
    fn seal(&mut self) {
        if !self.current.is_empty() {
            let b = self.current.split().freeze();
            self.pending += b.len();
            self.chunks.push_back(b);
        }
    }

    /// Fills `slices` with the pending bytes in the order they must be
    /// written: the queued chunks, then `current`. `current` may only
    /// follow when every chunk is in the list; otherwise its bytes would
    /// overtake the chunks left out. Returns how many slices were filled.
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut count = 0;
        for c in self.chunks.iter().take(MAX_IOVECS) {
            slices[count] = IoSlice::new(c);
            count += 1;
        }
        if count == self.chunks.len() && count < MAX_IOVECS && !self.current.is_empty() {
            slices[count] = IoSlice::new(&self.current);
            count += 1;
        }
        count
    }

    /// Drops `n` written bytes from the front, in the order
    /// [`Self::io_slices`] listed them.
    fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len(), "wrote more than was pending");
        while n > 0 {
            if let Some(front) = self.chunks.front_mut() {
                let take = n.min(front.len());
                front.advance(take);
                self.pending -= take;
                n -= take;
                if front.is_empty() {
                    self.chunks.pop_front();
                }
            } else {
                let take = n.min(self.current.len());
                if take == 0 {
                    // Unreachable while the writer reports honestly; never
                    // spin on a writer that doesn't.
                    break;
                }
                self.current.advance(take);
                n -= take;
            }
        }
    }

    /// One write attempt (vectored); cancel-safe, so it can sit in a
    /// `select!` next to reads. Returns the bytes written.
    pub async fn write_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<usize> {
        if self.is_empty() {
            // Nothing new: push out what the writer still holds (TLS).
            w.flush().await?;
            return Ok(0);
        }
        let n = if self.chunks.is_empty() {
            w.write(&self.current).await?
        } else {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let count = self.io_slices(&mut slices);
            w.write_vectored(&slices[..count]).await?
        };
        if n == 0 && !self.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.consume(n);
        Ok(n)
    }

    /// Writes everything (handshake replies, closing).
    pub async fn flush_all<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        while !self.is_empty() {
            self.write_to(w).await?;
        }
        w.flush().await
    }
}

#[cfg(test)]
mod tests {
    //! `Outbound` against a model: whatever the mix of frames and body
    //! sizes, and however short the writer's writes (or cancelled), the
    //! bytes on the wire are exactly the frames encoded in order.

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use proptest::prelude::*;
    use warren_protocol::methods::BasicAck;

    use super::*;

    /// A writer that takes at most `limits[i]` bytes on its i-th call, and
    /// is not ready (so the caller's future is dropped) when the limit is 0.
    struct ShortWriter {
        out: Vec<u8>,
        limits: Vec<usize>,
        next: usize,
    }

    impl ShortWriter {
        fn limit(&mut self) -> usize {
            let l = self.limits[self.next % self.limits.len()];
            self.next += 1;
            l
        }
    }

    impl AsyncWrite for ShortWriter {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let l = self.limit();
            if l == 0 {
                return Poll::Pending;
            }
            let n = l.min(buf.len());
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut l = self.limit();
            if l == 0 {
                return Poll::Pending;
            }
            let mut n = 0;
            for b in bufs {
                let take = l.min(b.len());
                self.out.extend_from_slice(&b[..take]);
                n += take;
                l -= take;
                if l == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ack(u16, u64),
        Heartbeat,
        Deliver(u16, u64),
        /// channel, body length, pattern seed
        Content(u16, usize, u8),
        /// A write attempt (one poll of `write_to`).
        Write,
    }

    const FRAME_MAX: u32 = 4096 + 8;

    fn body_len() -> impl Strategy<Value = usize> {
        let fm = FRAME_MAX as usize;
        prop_oneof![
            Just(0usize),
            Just(1),
            Just(SHARE_THRESHOLD - 1),
            Just(SHARE_THRESHOLD),
            Just(fm - 8),
            Just(fm),
            Just(3 * fm),
            0..4 * fm,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (1u16..4, any::<u64>()).prop_map(|(c, t)| Op::Ack(c, t)),
            1 => Just(Op::Heartbeat),
            1 => (1u16..4, any::<u64>()).prop_map(|(c, t)| Op::Deliver(c, t)),
            3 => (1u16..4, body_len(), any::<u8>()).prop_map(|(c, l, s)| Op::Content(c, l, s)),
            3 => Just(Op::Write),
        ]
    }

    fn body(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    /// The model: every frame encoded straight into one buffer.
    fn model_content(m: &mut BytesMut, ch: u16, props: &[u8], body: &Bytes) {
        frame::write_header(m, ch, body.len() as u64, props);
        let max = FRAME_MAX as usize - FRAME_OVERHEAD;
        for part in body.chunks(max) {
            frame::write_body(m, ch, part);
        }
    }

    fn poll_once(out: &mut Outbound, w: &mut ShortWriter) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut fut = std::pin::pin!(out.write_to(w));
        // Pending: the future is dropped, as `select!` drops it when
        // another branch wins. Nothing may have been consumed.
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            r.expect("the test writer never fails");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn bytes_on_the_wire_are_the_frames_in_order(
            ops in proptest::collection::vec(op(), 1..200),
            limits in proptest::collection::vec(
                prop_oneof![Just(0usize), 1..64usize, 1..70_000usize, Just(usize::MAX)], 1..40),
        ) {
            let props = [0x10u8, 0x00, 2];
            let mut out = Outbound::new();
            let mut model = BytesMut::new();
            let mut w = ShortWriter { out: Vec::new(), limits, next: 0 };
            for op in &ops {
                match op {
                    Op::Ack(ch, tag) => {
                        let m = Method::BasicAck(BasicAck { delivery_tag: *tag, multiple: false });
                        out.method(*ch, &m);
                        frame::write_method(&mut model, *ch, &m);
                    }
                    Op::Heartbeat => {
                        out.heartbeat();
                        frame::write_heartbeat(&mut model);
                    }
                    Op::Deliver(ch, tag) => {
                        out.deliver(*ch, b"ctag", *tag, false, b"ex", b"rk");
                        frame::write_deliver(&mut model, *ch, b"ctag", *tag, false, b"ex", b"rk");
                    }
                    Op::Content(ch, len, seed) => {
                        let b = body(*len, *seed);
                        out.content(*ch, &props, &b, FRAME_MAX);
                        model_content(&mut model, *ch, &props, &b);
                    }
                    Op::Write => poll_once(&mut out, &mut w),
                }
                prop_assert_eq!(w.out.len() + out.len(), model.len());
            }
            // Drain; a writer that is never ready would loop forever, so
            // every limit of 0 is followed by a real one within the cycle.
            w.limits.push(usize::MAX);
            let mut turns = 0;
            while !out.is_empty() {
                poll_once(&mut out, &mut w);
                turns += 1;
                prop_assert!(turns < 1_000_000, "write_to makes no progress");
            }
            prop_assert!(w.out == model[..], "wire bytes differ from the frames");
        }
    }

    /// The reported case: more than 64 large chunks pending with small
    /// frames after them.
    #[test]
    fn many_large_bodies_then_small_frames_stay_in_order() {
        let mut out = Outbound::new();
        let mut model = BytesMut::new();
        for i in 0..200u64 {
            out.deliver(1, b"c", i, false, b"", b"q");
            frame::write_deliver(&mut model, 1, b"c", i, false, b"", b"q");
            let b = body(8192, i as u8);
            out.content(1, &[0, 0], &b, 131_072);
            frame::write_header(&mut model, 1, 8192, &[0, 0]);
            frame::write_body(&mut model, 1, &b);
        }
        let mut w = ShortWriter {
            out: Vec::new(),
            limits: vec![usize::MAX],
            next: 0,
        };
        while !out.is_empty() {
            poll_once(&mut out, &mut w);
        }
        assert!(w.out == model[..]);
    }
}

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
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
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

    /// One write attempt (vectored); cancel-safe, so it can sit in a
    /// `select!` next to reads.
    pub async fn write_to(&mut self, w: &mut OwnedWriteHalf) -> io::Result<()> {
        if self.chunks.is_empty() {
            let n = w.write(&self.current).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.current.advance(n);
            return Ok(());
        }
        let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for c in self.chunks.iter().take(MAX_IOVECS - 1) {
            slices[count] = IoSlice::new(c);
            count += 1;
        }
        if count < MAX_IOVECS && !self.current.is_empty() {
            slices[count] = IoSlice::new(&self.current);
            count += 1;
        }
        let mut n = w.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
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
                self.current.advance(take);
                n -= take;
            }
        }
        Ok(())
    }

    /// Writes everything (used when closing).
    pub async fn flush_all(&mut self, w: &mut OwnedWriteHalf) -> io::Result<()> {
        while !self.is_empty() {
            self.write_to(w).await?;
        }
        w.flush().await
    }
}

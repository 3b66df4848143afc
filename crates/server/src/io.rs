//! A connection's byte stream with its read buffer: reads that grow with
//! the traffic (an idle connection keeps a few KiB, a busy one reads
//! 64 KiB at a time).

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use crate::stream::{Reader, Writer};

pub struct Io {
    pub rd: Reader,
    pub wr: Writer,
    pub inbuf: BytesMut,
    /// How much to reserve for the next read (adapts to the traffic).
    pub read_hint: usize,
}

impl Io {
    /// Reads more bytes; `Ok(false)` on end of stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        Ok(fill(&mut self.rd, &mut self.inbuf, &mut self.read_hint).await? > 0)
    }
}

/// One read (cancel-safe); returns the bytes read, 0 at end of stream.
/// The buffer grows with the traffic: an idle connection keeps a few KiB,
/// a busy one reads 64 KiB at a time (10,000 idle connections must not
/// cost 10,000 large buffers).
pub(crate) async fn fill(
    rd: &mut Reader,
    buf: &mut BytesMut,
    hint: &mut usize,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(*hint);
    }
    let room = buf.capacity() - buf.len();
    let n = rd.read_buf(buf).await?;
    // A read that fills the space means more is waiting: read bigger from
    // now on. Never shrinking keeps bursty publishers (a confirm window at
    // a time) on large reads; connections that never get busy stay small.
    if n >= room {
        *hint = (*hint * 4).min(MAX_READ);
    }
    Ok(n)
}

pub(crate) const MIN_READ: usize = 4096;
const MAX_READ: usize = 64 * 1024;

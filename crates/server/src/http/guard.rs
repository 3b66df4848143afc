//! What an HTTP listener lets one peer hold: connection slots, per
//! source and in all, and a socket that gives up on a peer that does not
//! read.
//!
//! - [`Admission`]: at most [`MAX_CONNECTIONS`] open connections per
//!   listener, at most `per_source` of them (default
//!   [`MAX_PER_SOURCE`]) from one source (an IPv4 address or an IPv6 /64,
//!   [`source_of`]), and a reserve so an operator
//!   can still reach the API while they are taken: the last
//!   [`NEW_SOURCE_RESERVE`] + [`LOOPBACK_RESERVE`] slots go only to a
//!   source with no connection open (one each), and the very last
//!   [`LOOPBACK_RESERVE`] only to loopback. A connection keeps its slot
//!   for its whole life, upgraded (WebSocket) or not.
//! - [`Guarded`]: the socket every connection is served on. It holds the
//!   slot (given back when the socket is dropped, after an upgrade too);
//!   fails a write that has made no progress for [`WRITE_TIMEOUT`] (a
//!   peer that sends requests and never reads its answers is dropped
//!   rather than held with its answers queued); and reads no more than a
//!   [`ReadGate`] allows (MQTT over WebSockets before login).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Open connections at most, per listener.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Open connections at most from one address, per listener (default of
/// `http_max_connections_per_source`).
pub(crate) const MAX_PER_SOURCE: usize = 64;
/// Slots only a source with no other connection open may take.
pub(crate) const NEW_SOURCE_RESERVE: usize = 56;
/// Slots only loopback may take (an operator on the machine).
pub(crate) const LOOPBACK_RESERVE: usize = 8;
/// How long a write may make no progress before the connection is
/// dropped.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The source a peer's connections and failed logins count under: its
/// IPv4 address, or its IPv6 /64 (one host usually has a whole /64 to
/// pick addresses from). Loopback stays as it is.
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        other => other,
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its source has `per_source` open already.
    Source,
    /// The listener is full (for this source).
    Full,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// A listener's connection slots.
#[derive(Debug)]
pub(crate) struct Admission {
    per_source: usize,
    open: Mutex<Open>,
}

impl Admission {
    pub fn new(per_source: usize) -> Arc<Admission> {
        Arc::new(Admission {
            per_source: per_source.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = source_of(ip);
        let mut open = self.open.lock();
        let mine = open.by_source.get(&ip).copied().unwrap_or(0);
        if mine >= self.per_source {
            return Err(Refused::Source);
        }
        let general = MAX_CONNECTIONS - NEW_SOURCE_RESERVE - LOOPBACK_RESERVE;
        let ok = open.total < general
            || (open.total < MAX_CONNECTIONS - LOOPBACK_RESERVE && mine == 0)
            || (open.total < MAX_CONNECTIONS && ip.is_loopback());
        if !ok {
            return Err(Refused::Full);
        }
        open.total += 1;
        *open.by_source.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&ip);
            }
        }
    }
}

/// One admitted connection's slot; given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.ip);
    }
}

/// How many more bytes a connection may read: unlimited unless a handler
/// limits it (the web-MQTT endpoint, until its client has logged in).
#[derive(Debug)]
pub(crate) struct ReadGate {
    /// Bytes still allowed; `u64::MAX` for no limit.
    allowed: AtomicU64,
    waiting: Mutex<Option<Waker>>,
}

const UNLIMITED: u64 = u64::MAX;

impl ReadGate {
    fn new() -> Arc<ReadGate> {
        Arc::new(ReadGate {
            allowed: AtomicU64::new(UNLIMITED),
            waiting: Mutex::new(None),
        })
    }

    /// From now on, reads stop (wait) after `bytes` more.
    pub fn limit(&self, bytes: u64) {
        self.allowed.store(bytes, Ordering::SeqCst);
    }

    /// Lifts the limit and wakes a read waiting on it.
    pub fn unlimit(&self) {
        self.allowed.store(UNLIMITED, Ordering::SeqCst);
        if let Some(w) = self.waiting.lock().take() {
            w.wake();
        }
    }

    fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::SeqCst)
    }

    fn consumed(&self, n: usize) {
        let _ = self
            .allowed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a != UNLIMITED).then(|| a.saturating_sub(n as u64))
            });
    }
}

/// The socket a connection is served on (see the module doc).
pub(crate) struct Guarded<S> {
    inner: S,
    gate: Arc<ReadGate>,
    /// Set while a write makes no progress.
    stalled: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, slot: Slot) -> Guarded<S> {
        Guarded {
            inner,
            gate: ReadGate::new(),
            stalled: None,
            _slot: slot,
        }
    }

    /// The connection's read gate (handlers reach it through the
    /// request's extensions).
    pub fn gate(&self) -> Arc<ReadGate> {
        self.gate.clone()
    }

    /// `r` from a write or flush: progress clears the stall timer; no
    /// progress for [`WRITE_TIMEOUT`] is an error.
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer has not read for too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut allowed = this.gate.allowed();
        if allowed == 0 {
            *this.waiting() = Some(cx.waker().clone());
            // Lifted between the load and the registration?
            allowed = this.gate.allowed();
            if allowed == 0 {
                return Poll::Pending;
            }
        }
        if allowed == UNLIMITED {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // Limited (a few KiB before a login): read into a small buffer of
        // at most what is allowed, then copy.
        let mut tmp = [0u8; 4096];
        let n = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(buf.remaining())
            .min(tmp.len());
        let mut small = ReadBuf::new(&mut tmp[..n]);
        match Pin::new(&mut this.inner).poll_read(cx, &mut small) {
            Poll::Ready(Ok(())) => {
                let got = small.filled();
                this.gate.consumed(got.len());
                buf.put_slice(got);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S> Guarded<S> {
    fn waiting(&self) -> parking_lot::MutexGuard<'_, Option<Waker>> {
        self.gate.waiting.lock()
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_source_and_the_reserves() {
        let a = Admission::new(MAX_PER_SOURCE);
        let mut held = Vec::new();
        let general = MAX_CONNECTIONS - NEW_SOURCE_RESERVE - LOOPBACK_RESERVE;
        // Fill the general slots from many remote sources.
        let mut i = 0u32;
        while held.len() < general {
            let ip = IpAddr::from((0x0a00_0000 + i / 10).to_be_bytes());
            i += 1;
            held.push(a.admit(ip).unwrap());
        }
        let busy = IpAddr::from(0x0a00_0000u32.to_be_bytes());
        assert_eq!(a.admit(busy).unwrap_err(), Refused::Full);
        // A new source gets one reserve slot, no more.
        let fresh: IpAddr = "192.0.2.1".parse().unwrap();
        let s = a.admit(fresh).unwrap();
        assert_eq!(a.admit(fresh).unwrap_err(), Refused::Full);
        drop(s);
        for k in 0..NEW_SOURCE_RESERVE as u32 {
            held.push(
                a.admit(IpAddr::from((0xc633_6400 + k).to_be_bytes()))
                    .unwrap(),
            );
        }
        assert_eq!(a.admit(fresh).unwrap_err(), Refused::Full);
        // Loopback still gets in, up to the last slot.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..LOOPBACK_RESERVE {
            held.push(a.admit(lo).unwrap());
        }
        assert_eq!(a.admit(lo).unwrap_err(), Refused::Full);
        held.clear();
        assert_eq!(a.open.lock().total, 0);
        assert!(a.open.lock().by_source.is_empty());
        // Per source.
        let v: Vec<_> = (0..MAX_PER_SOURCE).map(|_| a.admit(lo).unwrap()).collect();
        assert_eq!(a.admit(lo).unwrap_err(), Refused::Source);
        drop(v);
        assert!(a.admit(lo).is_ok());
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of("2001:db8:1:3::1".parse().unwrap()));
        let lo: IpAddr = "::1".parse().unwrap();
        assert_eq!(source_of(lo), lo);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source_of(v4), v4);
    }

    #[tokio::test]
    async fn a_gated_read_waits_for_the_gate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let a = Admission::new(4);
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut g = Guarded::new(server, a.admit("127.0.0.1".parse().unwrap()).unwrap());
        let gate = g.gate();
        gate.limit(10);
        let mut client = client;
        client.write_all(&[7u8; 100]).await.unwrap();
        let mut buf = vec![0u8; 100];
        let n = g.read(&mut buf).await.unwrap();
        assert!(n <= 10);
        let mut total = n;
        while total < 10 {
            total += g.read(&mut buf).await.unwrap();
        }
        assert_eq!(total, 10);
        let more = tokio::time::timeout(Duration::from_millis(50), g.read(&mut buf)).await;
        assert!(more.is_err(), "no more than allowed");
        gate.unlimit();
        let n = g.read(&mut buf).await.unwrap();
        assert!(n > 0);
    }
}

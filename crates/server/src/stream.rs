//! A client connection's byte stream: plain TCP (split into owned halves,
//! no locking) or TLS (rustls; split through tokio's lock). Enums, not
//! boxes: one branch per read or write.
//!
//! TLS buffers records inside the session: bytes a write accepted may not
//! have reached the socket yet. The writer remembers that
//! ([`Writer::wants_flush`]) so the connection keeps flushing until they
//! have, even with nothing new to send.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS connection as accepted.
pub type Tls = TlsStream<TcpStream>;

pub enum Reader {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<Tls>),
}

pub enum Writer {
    Tcp(OwnedWriteHalf),
    /// The half, and whether the session may still hold bytes for the
    /// socket.
    Tls(WriteHalf<Tls>, bool),
}

impl Writer {
    /// TLS records wait in the session: keep flushing.
    pub fn wants_flush(&self) -> bool {
        matches!(self, Writer::Tls(_, true))
    }
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Reader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            Reader::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            Writer::Tls(w, pending) => {
                let n = match Pin::new(&mut *w).poll_write(cx, buf) {
                    Poll::Ready(Ok(n)) => n,
                    other => return other,
                };
                *pending = true;
                if let Poll::Ready(Ok(())) = Pin::new(w).poll_flush(cx) {
                    *pending = false;
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            Writer::Tls(w, pending) => {
                let n = match Pin::new(&mut *w).poll_write_vectored(cx, bufs) {
                    Poll::Ready(Ok(n)) => n,
                    other => return other,
                };
                *pending = true;
                if let Poll::Ready(Ok(())) = Pin::new(w).poll_flush(cx) {
                    *pending = false;
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Writer::Tcp(w) => w.is_write_vectored(),
            Writer::Tls(w, _) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_flush(cx),
            Writer::Tls(w, pending) => {
                let r = Pin::new(w).poll_flush(cx);
                if let Poll::Ready(Ok(())) = r {
                    *pending = false;
                }
                r
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            Writer::Tls(w, _) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

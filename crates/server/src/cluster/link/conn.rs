//! One established inter-node connection (either direction), as the rest
//! of the link sees it: its bounded send queue and its pending calls.
//! [`super::driver`] does its I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{Kind, HEADER_LEN, MAX_PAYLOAD};
use super::{LinkError, NodeName, Service};

/// At most this many bytes (headers and payloads) queued on one
/// connection; a `send`/`call` beyond it fails with `Overloaded`. (One
/// frame always fits an empty queue, whatever its size up to the maximum.)
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;
/// At most this many requests in flight on one connection (the dialer's
/// pending calls; the acceptor's handler tasks).
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

/// A frame waiting for the writer.
pub(crate) struct Out {
    pub kind: Kind,
    pub service: Service,
    pub id: u64,
    pub payload: Bytes,
}

type Reply = oneshot::Sender<Result<Bytes, LinkError>>;

struct Calls {
    /// Why the connection ended, once it has: no new calls.
    closed: Option<String>,
    waiting: HashMap<u64, Reply>,
}

/// What the drivers and the `Link` share about one connection.
pub(crate) struct Conn {
    /// The node at the other end.
    pub peer: NodeName,
    tx: mpsc::UnboundedSender<Out>,
    /// Bytes in `tx` and in the frame being written (the bound).
    pub(super) queued: AtomicUsize,
    calls: Mutex<Calls>,
    /// Set by [`Conn::close`]: nothing more is queued.
    closed: AtomicBool,
    next_id: AtomicU64,
    pub(super) close: watch::Sender<bool>,
}

impl Conn {
    pub fn new(peer: NodeName) -> (Arc<Conn>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Conn {
            peer,
            tx,
            queued: AtomicUsize::new(0),
            calls: Mutex::new(Calls {
                closed: None,
                waiting: HashMap::new(),
            }),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            close: watch::Sender::new(false),
        };
        (Arc::new(conn), rx)
    }

    /// Bytes queued now (tests).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub(super) fn push(&self, out: Out) -> Result<(), LinkError> {
        if out.payload.len() > MAX_PAYLOAD {
            return Err(LinkError::Overloaded(format!(
                "a payload of {} bytes is over the inter-node frame maximum ({MAX_PAYLOAD})",
                out.payload.len()
            )));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(self.disconnected());
        }
        let size = HEADER_LEN + out.payload.len();
        let before = self.queued.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(LinkError::Overloaded(format!(
                "{before} bytes already queued to {} (at most {MAX_QUEUED_BYTES})",
                self.peer
            )));
        }
        if self.tx.send(out).is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(self.disconnected());
        }
        Ok(())
    }

    fn disconnected(&self) -> LinkError {
        let why = self.calls.lock().closed.clone();
        LinkError::Disconnected(format!(
            "connection to {} lost: {}",
            self.peer,
            why.as_deref().unwrap_or("closed")
        ))
    }

    /// A one-way message.
    pub fn send(&self, service: Service, payload: Bytes) -> Result<(), LinkError> {
        self.push(Out {
            kind: Kind::OneWay,
            service,
            id: 0,
            payload,
        })
    }

    /// A request; its response, the peer's error, or why there is none.
    pub async fn call(
        &self,
        service: Service,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = self.calls.lock();
            if calls.closed.is_some() {
                drop(calls);
                return Err(self.disconnected());
            }
            if calls.waiting.len() >= MAX_IN_FLIGHT {
                return Err(LinkError::Overloaded(format!(
                    "{MAX_IN_FLIGHT} requests already in flight to {}",
                    self.peer
                )));
            }
            calls.waiting.insert(id, tx);
        }
        // However this ends (error, timeout, the caller dropping the
        // future), the entry goes.
        let _forget = Forget { conn: self, id };
        self.push(Out {
            kind: Kind::Request,
            service,
            id,
            payload,
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.disconnected()),
            Err(_) => Err(LinkError::Timeout(format!(
                "no response from {} within {timeout:?}",
                self.peer
            ))),
        }
    }

    pub(super) fn complete(&self, id: u64, result: Result<Bytes, LinkError>) {
        // A response to a call that timed out meanwhile is dropped.
        if let Some(tx) = self.calls.lock().waiting.remove(&id) {
            let _ = tx.send(result);
        }
    }

    /// Why the connection ended, if it has.
    pub(super) fn closed_because(&self) -> Option<String> {
        self.calls.lock().closed.clone()
    }

    /// Ends the connection: every pending call fails now with
    /// `Disconnected`, nothing more is queued, the driver stops.
    pub fn close(&self, why: &str) {
        let waiting = {
            let mut calls = self.calls.lock();
            if calls.closed.is_none() {
                calls.closed = Some(why.to_owned());
            }
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut calls.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(LinkError::Disconnected(format!(
                "connection to {} lost: {why}",
                self.peer
            ))));
        }
        self.close.send_replace(true);
    }
}

struct Forget<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.conn.calls.lock().waiting.remove(&self.id);
    }
}

//! One established inter-node connection (either direction): its bounded
//! send queue, its pending calls, and the task that drives it — one
//! reader, one writer, ended together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::frame::{self, Frame, Kind, HEADER_LEN, MAX_PAYLOAD};
use super::peer::Peer;
use super::{Handler, LinkError, NodeName, Service};

/// At most this many bytes (headers and payloads) queued on one
/// connection; a `send`/`call` beyond it fails with `Overloaded`. (One
/// frame always fits an empty queue, whatever its size up to the maximum.)
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;
/// At most this many requests in flight on one connection (the dialer's
/// pending calls; the acceptor's handler tasks).
pub(crate) const MAX_IN_FLIGHT: usize = 4096;
/// The writer's buffer: frames are batched into it, flushed when the
/// queue is empty (a bigger payload goes straight to the socket).
const WRITE_BUFFER: usize = 64 * 1024;
/// The reader's buffer, reused; grown for a frame bigger than it.
const READ_BUFFER: usize = 64 * 1024;
/// Frames written between two flushes at most, so a busy queue still
/// reaches the socket regularly.
const MAX_BATCH: usize = 1024;

/// A frame waiting for the writer.
pub(crate) struct Out {
    kind: Kind,
    service: Service,
    id: u64,
    payload: Bytes,
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
    queued: AtomicUsize,
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    close: watch::Sender<bool>,
}

/// Which end of the connection this node is.
pub(super) enum Role {
    /// We dialed: our requests and one-way messages go out, responses and
    /// heartbeats come back. The peer hears of what we hear.
    Outbound(Arc<Peer>),
    /// They dialed: their requests come in, served by the handler.
    Inbound(Arc<dyn Handler>),
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Outbound(_) => "outbound",
            Role::Inbound(_) => "inbound",
        }
    }
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

    fn push(&self, out: Out) -> Result<(), LinkError> {
        if out.payload.len() > MAX_PAYLOAD {
            return Err(LinkError::Overloaded(format!(
                "a payload of {} bytes is over the inter-node frame maximum ({MAX_PAYLOAD})",
                out.payload.len()
            )));
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

    fn complete(&self, id: u64, result: Result<Bytes, LinkError>) {
        // A response to a call that timed out meanwhile is dropped.
        if let Some(tx) = self.calls.lock().waiting.remove(&id) {
            let _ = tx.send(result);
        }
    }

    /// Ends the connection: every pending call fails now with
    /// `Disconnected`, nothing more is queued, the driver stops.
    pub fn close(&self, why: &str) {
        let waiting = {
            let mut calls = self.calls.lock();
            if calls.closed.is_none() {
                calls.closed = Some(why.to_owned());
            }
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

/// Runs an established connection until it ends (closed by either side,
/// a write or read error, a bad frame, nothing heard for `down_after`, or
/// [`Conn::close`]); closes `conn` and returns why.
pub(super) async fn run<S>(
    stream: S,
    conn: Arc<Conn>,
    rx: mpsc::UnboundedReceiver<Out>,
    role: Role,
    heartbeat: Duration,
    down_after: Duration,
) -> String
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut closed = conn.close.subscribe();
    let why = tokio::select! {
        why = read_loop(rd, &conn, &role, down_after) => why,
        why = write_loop(wr, rx, &conn, heartbeat) => why,
        _ = closed.wait_for(|c| *c) => {
            conn.calls.lock().closed.clone().unwrap_or_else(|| "closed".into())
        }
    };
    conn.close(&why);
    why
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    conn: &Arc<Conn>,
    role: &Role,
    down_after: Duration,
) -> String {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    // The acceptor's handler tasks: aborted when the connection ends.
    let mut serving = JoinSet::new();
    loop {
        loop {
            match frame::decode(&mut buf) {
                Ok(Some(f)) => {
                    if let Err(why) = dispatch(f, conn, role, &mut serving) {
                        tracing::warn!(
                            "inter-node connection with {} ({}) closed: {why}",
                            conn.peer,
                            role.name()
                        );
                        return why;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(
                        "inter-node connection with {} ({}) closed: {e}",
                        conn.peer,
                        role.name()
                    );
                    return e.to_string();
                }
            }
        }
        while serving.try_join_next().is_some() {}
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUFFER);
        }
        match tokio::time::timeout(down_after, rd.read_buf(&mut buf)).await {
            Err(_) => return format!("nothing heard for {down_after:?}"),
            Ok(Ok(0)) => return "closed by the peer".into(),
            Ok(Ok(_)) => {
                if let Role::Outbound(peer) = role {
                    peer.heard();
                }
            }
            Ok(Err(e)) => return format!("read failed: {e}"),
        }
    }
}

fn dispatch(
    f: Frame,
    conn: &Arc<Conn>,
    role: &Role,
    serving: &mut JoinSet<()>,
) -> Result<(), String> {
    match (role, f.kind) {
        (_, Kind::Heartbeat) => {}
        (Role::Outbound(_), Kind::ResponseOk) => conn.complete(f.id, Ok(f.payload)),
        (Role::Outbound(_), Kind::ResponseErr) => {
            let text = String::from_utf8_lossy(&f.payload).into_owned();
            conn.complete(f.id, Err(LinkError::Remote(text)));
        }
        (Role::Inbound(handler), Kind::OneWay) => handler.message(&conn.peer, f.service, f.payload),
        (Role::Inbound(handler), Kind::Request) => {
            if serving.len() >= MAX_IN_FLIGHT {
                // The dialer bounds its calls in flight too, but calls it
                // gave up on (timed out) may still run here: refuse this
                // one rather than run without bound or drop the rest.
                let busy = format!(
                    "node busy: {MAX_IN_FLIGHT} requests from {} in progress",
                    conn.peer
                );
                let out = Out {
                    kind: Kind::ResponseErr,
                    service: f.service,
                    id: f.id,
                    payload: Bytes::from(busy),
                };
                if let Err(LinkError::Overloaded(e)) = conn.push(out) {
                    return Err(format!("responses not read ({e})"));
                }
                return Ok(());
            }
            let (handler, conn) = (handler.clone(), conn.clone());
            serving.spawn(async move {
                let (kind, payload) = match handler.request(&conn.peer, f.service, f.payload).await
                {
                    Ok(b) if b.len() <= MAX_PAYLOAD => (Kind::ResponseOk, b),
                    Ok(b) => (
                        Kind::ResponseErr,
                        Bytes::from(format!(
                            "a response of {} bytes is over the inter-node frame maximum",
                            b.len()
                        )),
                    ),
                    Err(mut text) => {
                        if text.len() > 64 * 1024 {
                            let mut end = 64 * 1024;
                            while !text.is_char_boundary(end) {
                                end -= 1;
                            }
                            text.truncate(end);
                        }
                        (Kind::ResponseErr, Bytes::from(text))
                    }
                };
                let out = Out {
                    kind,
                    service: f.service,
                    id: f.id,
                    payload,
                };
                if let Err(LinkError::Overloaded(e)) = conn.push(out) {
                    // The dialer does not read its responses: drop it
                    // rather than queue without bound.
                    tracing::warn!(
                        "inter-node connection from {} closed: responses not read ({e})",
                        conn.peer
                    );
                    conn.close("responses not read");
                }
            });
        }
        (_, kind) => {
            return Err(format!(
                "unexpected {kind:?} frame on an {} connection",
                role.name()
            ))
        }
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    conn: &Conn,
    heartbeat: Duration,
) -> String {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, wr);
    loop {
        // Idle for a heartbeat interval: a heartbeat.
        let first = match tokio::time::timeout(heartbeat, rx.recv()).await {
            Ok(Some(out)) => Some(out),
            Ok(None) => return "closed".into(),
            Err(_) => None,
        };
        let result = match first {
            None => {
                let h = frame::header(Kind::Heartbeat, Service(0), 0, &[]);
                w.write_all(&h).await
            }
            Some(out) => write_batch(&mut w, out, &mut rx, conn).await,
        };
        if let Err(e) = result {
            return format!("write failed: {e}");
        }
        if let Err(e) = w.flush().await {
            return format!("write failed: {e}");
        }
    }
}

/// Writes `first` and whatever else is queued (up to [`MAX_BATCH`]) into
/// the buffer; the caller flushes.
async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    first: Out,
    rx: &mut mpsc::UnboundedReceiver<Out>,
    conn: &Conn,
) -> std::io::Result<()> {
    let mut next = Some(first);
    let mut n = 0;
    while let Some(out) = next {
        let h = frame::header(out.kind, out.service, out.id, &out.payload);
        w.write_all(&h).await?;
        w.write_all(&out.payload).await?;
        conn.queued
            .fetch_sub(HEADER_LEN + out.payload.len(), Ordering::AcqRel);
        n += 1;
        next = if n < MAX_BATCH {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    Ok(())
}

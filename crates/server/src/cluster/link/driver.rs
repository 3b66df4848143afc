//! The task that drives one established connection: one reader (the
//! failure detector's clock, dispatch of what arrives) and one writer
//! (batched frames, heartbeats when idle), ended together.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::conn::{Conn, Out, MAX_IN_FLIGHT};
use super::frame::{self, Frame, Kind, HEADER_LEN, MAX_PAYLOAD};
use super::peer::Peer;
use super::{Handler, LinkError, Service};

/// The writer's buffer: frames are batched into it, flushed when the
/// queue is empty (a bigger payload goes straight to the socket).
const WRITE_BUFFER: usize = 64 * 1024;
/// The reader's buffer, reused; grown for a frame bigger than it.
const READ_BUFFER: usize = 64 * 1024;
/// Frames written between two flushes at most, so a busy queue still
/// reaches the socket regularly.
const MAX_BATCH: usize = 1024;

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
            conn.closed_because().unwrap_or_else(|| "closed".into())
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

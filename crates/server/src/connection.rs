//! One client connection: the AMQP handshake, then a single task that
//! reads frames, runs channel methods, takes deliveries from queues and
//! writes, batching each side (one read drains every complete frame; one
//! vectored write sends everything pending).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::stream::{Reader, Tls, Writer};
use tracing::{debug, info, warn};
use warren_broker::access::Access;
use warren_broker::alarms::AlarmState;
use warren_broker::connections::{ChannelStats, ConnectionMeta};
use warren_broker::error::AmqpError;
use warren_broker::session::{ConnectionEvent, EventReceiver};
use warren_broker::Broker;
use warren_protocol::constants::reply;
use warren_protocol::methods::*;
use warren_protocol::{DecodeError, Frame, FramePayload, Method, ShortStr};

use crate::channel::{unexpected_content, Channel, ChannelState};
use crate::config::Config;
use crate::context::ConnContext;
use crate::error_log::{ErrorLog, Subject};
use crate::handshake::{self, Negotiated};
use crate::io::{fill, Io, MIN_READ};
use crate::outbound::{Outbound, HIGH_WATER};

/// How long we wait for connection.close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Stop reading from a client that doesn't read its own socket.
const READ_PAUSE_WATER: usize = 4 * HIGH_WATER;
/// Under a memory alarm, a connection stops taking requests once this much
/// output waits (a client pipelining `basic.get`s without reading can't
/// grow the broker: it answers as fast as the client reads, no faster).
const ALARM_PAUSE_WATER: usize = 64 * 1024;
/// Events handled per loop turn before the loop looks at the socket again.
const EVENT_BATCH: usize = 1024;
/// The longest a publisher pauses for a congested queue; after that the
/// queue spills to disk rather than hold the publisher.
pub(crate) const THROTTLE_MAX: std::time::Duration = std::time::Duration::from_millis(20);

/// Waits until the throttling queue has drained (or the pause is over).
/// Pending forever when not throttled, so it can sit in a `select!`.
pub(crate) async fn wait_drained(
    throttle: Option<(Arc<warren_broker::Queue>, tokio::time::Instant)>,
) {
    let Some((queue, deadline)) = throttle else {
        return std::future::pending().await;
    };
    let drained = queue.drained.notified();
    if !queue.is_congested() {
        return;
    }
    let _ = tokio::time::timeout_at(deadline, drained).await;
}

/// Why the main loop ended.
enum End {
    /// The client sent connection.close (answered already).
    ClientClosed,
    Eof,
    Io(std::io::Error),
    /// We close the connection with this error, caused by method ids.
    Close(AmqpError, u16, u16),
    HeartbeatTimeout,
}

/// A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; they are
/// listed (and checked) as the IPv4 addresses they are.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Serves a plain TCP connection.
pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, cfg: Arc<Config>) {
    let _ = stream.set_nodelay(true);
    let peer = canonical(peer);
    let local = canonical(stream.local_addr().unwrap_or(peer));
    let (rd, wr) = stream.into_split();
    serve_io(
        Reader::Tcp(rd),
        Writer::Tcp(wr),
        peer,
        local,
        None,
        broker,
        cfg,
    )
    .await
}

/// Serves an AMQPS connection (the TLS handshake done): a client
/// certificate's common name may log in with EXTERNAL.
pub async fn serve_tls(stream: Tls, peer: SocketAddr, broker: Arc<Broker>, cfg: Arc<Config>) {
    let _ = stream.get_ref().0.set_nodelay(true);
    let peer = canonical(peer);
    let local = canonical(stream.get_ref().0.local_addr().unwrap_or(peer));
    let cert_user = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(crate::tls::common_name);
    let (rd, wr) = tokio::io::split(stream);
    serve_io(
        Reader::Tls(rd),
        Writer::Tls(wr, false),
        peer,
        local,
        cert_user,
        broker,
        cfg,
    )
    .await
}

async fn serve_io(
    rd: Reader,
    wr: Writer,
    peer: SocketAddr,
    local: SocketAddr,
    cert_user: Option<String>,
    broker: Arc<Broker>,
    cfg: Arc<Config>,
) {
    let mut io = Io {
        rd,
        wr,
        inbuf: BytesMut::with_capacity(MIN_READ),
        read_hint: MIN_READ,
    };
    let mut out = Outbound::new();
    let negotiated = match tokio::time::timeout(
        cfg.handshake_timeout,
        handshake::run(&mut io, &mut out, &broker, &cfg, peer, cert_user.as_deref()),
    )
    .await
    {
        Ok(Ok(Some(n))) => n,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!("handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            warn!("closing connection from {peer}: handshake timeout");
            return;
        }
    };
    let Negotiated {
        user,
        vhost,
        channel_max,
        frame_max,
        heartbeat,
        caps,
        mechanism,
        client_properties,
    } = negotiated;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let alarm_rx = broker.alarms.subscribe();
    let id = broker.next_connection_id();
    let entry = broker.connections.register(
        id,
        ConnectionMeta {
            user: user.name.clone(),
            vhost: vhost.name.clone(),
            peer,
            local,
            client_properties,
            auth_mechanism: mechanism,
            protocol: "AMQP 0-9-1",
            frame_max,
            channel_max,
            heartbeat,
        },
        events_tx.clone(),
    );
    info!(
        "connection {id} from {peer} opened: user '{}' vhost '{}'",
        user.name, vhost.name
    );
    let access = Access::new(broker.auth.clone(), &user.name, &vhost.name);
    let mut conn = Connection {
        s: ConnContext {
            id,
            broker,
            vhost,
            user,
            out,
            events: events_tx,
            frame_max,
            caps,
            max_message_size: cfg.max_message_size,
            consumer_max_per_channel: cfg.consumer_max_per_channel,
            consumers: Default::default(),
            access,
            entry,
        },
        channels: AHashMap::new(),
        channel_max,
        heartbeat,
        last_recv: Instant::now(),
        last_send: Instant::now(),
        watching: 0,
        alarms: alarm_rx,
        published: false,
        blocked: false,
        memory_alarm: false,
        input_pending: false,
        throttle: None,
        consumer_timeout: cfg.consumer_timeout,
        errors: ErrorLog::new(Instant::now()),
    };
    let end = conn.run(&mut io, &mut events).await;
    let reason = match &end {
        End::ClientClosed => "client closed".to_string(),
        End::Eof => "client went away without closing".to_string(),
        End::Io(e) => format!("socket error: {e}"),
        End::Close(e, _, _) => e.reply_text(),
        End::HeartbeatTimeout => format!("missed heartbeats from client, timeout: {heartbeat}s"),
    };
    // Give back everything the connection held first: unacked deliveries
    // must not wait on a peer that doesn't read (RabbitMQ requeues at once
    // too). Only then try to say goodbye, for a bounded time.
    conn.cleanup(&mut events);
    if let End::Close(e, class_id, method_id) = &end {
        let who = Subject {
            connection: &conn.s.entry.name,
            vhost: &conn.s.vhost.name,
            user: &conn.s.user.name,
        };
        conn.errors
            .connection_error(Instant::now(), &who, (*class_id, *method_id), e);
    }
    conn.errors.flush(&conn.s.entry.name);
    match end {
        End::ClientClosed => {
            // close-ok, then wait (bounded) for the client to hang up, as
            // RabbitMQ does: clients (lapin) treat a server that closes
            // first as an aborted connection, and closing with unread
            // input would send a reset that can destroy the close-ok.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                if conn.s.out.flush_all(&mut io.wr).await.is_ok() {
                    let mut sink = [0u8; 4096];
                    while matches!(io.rd.read(&mut sink).await, Ok(n) if n > 0) {}
                }
            })
            .await;
        }
        End::Close(e, class_id, method_id) => {
            close_with(
                &mut io,
                &mut conn.s.out,
                &e,
                (class_id, method_id),
                frame_max,
            )
            .await;
        }
        _ => {}
    }
    info!("connection {id} from {peer} closed: {reason}");
}

/// Sends connection.close for `e` (caused by method `ids`) and waits,
/// briefly, for the client's close-ok. Bounded as a whole: a peer that
/// reads nothing costs [`CLOSE_TIMEOUT`], not a stuck task.
pub async fn close_with(
    io: &mut Io,
    out: &mut Outbound,
    e: &AmqpError,
    ids: (u16, u16),
    frame_max: u32,
) {
    out.method(
        0,
        &ConnectionClose {
            reply_code: e.code,
            reply_text: ShortStr::from(e.reply_text()),
            class_id: ids.0,
            method_id: ids.1,
        }
        .into(),
    );
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if out.flush_all(&mut io.wr).await.is_ok() {
            await_close_ok(io, frame_max).await;
        }
    })
    .await;
}

/// After sending connection.close, discard frames until close-ok.
pub async fn await_close_ok(io: &mut Io, frame_max: u32) {
    loop {
        while let Ok(Some(f)) = Frame::parse(&mut io.inbuf, frame_max) {
            if let (0, FramePayload::Method(p)) = (f.channel, &f.payload) {
                if matches!(
                    Method::decode(p.clone()),
                    Ok(Method::ConnectionCloseOk(_)) | Ok(Method::ConnectionClose(_))
                ) {
                    return;
                }
            }
        }
        if !matches!(io.fill().await, Ok(true)) {
            return;
        }
    }
}

struct Connection {
    s: ConnContext,
    channels: AHashMap<u16, Channel>,
    channel_max: u16,
    heartbeat: u16,
    last_recv: Instant,
    last_send: Instant,
    /// The commit ticket we asked to be told about (0: none pending).
    watching: u64,
    alarms: tokio::sync::watch::Receiver<AlarmState>,
    /// Has published: resource alarms block only publishers.
    published: bool,
    /// Blocked by an alarm: the socket is not read.
    blocked: bool,
    /// The memory alarm is on: output is held to [`ALARM_PAUSE_WATER`].
    memory_alarm: bool,
    /// RabbitMQ's `consumer_timeout`.
    consumer_timeout: Option<Duration>,
    /// Channel and connection errors logged, within a budget.
    errors: ErrorLog,
    /// Complete frames wait in the input buffer: processing stopped
    /// because the output buffer is full; it resumes as output drains.
    input_pending: bool,
    /// Credit flow: a queue we publish to is waiting for its consumers'
    /// connections to catch up; reading pauses until it drains (or a short
    /// while passes, after which the queue pages to disk instead).
    throttle: Option<(Arc<warren_broker::Queue>, tokio::time::Instant)>,
}

impl Connection {
    async fn run(&mut self, io: &mut Io, events: &mut EventReceiver) -> End {
        let hb = Duration::from_secs(u64::from(self.heartbeat));
        let tick = if self.heartbeat > 0 {
            (hb / 2).max(Duration::from_secs(1))
        } else {
            Duration::from_secs(3600)
        };
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The consumer timeout is checked a few times per timeout, at
        // most every 5 s.
        let timeout = self.consumer_timeout;
        let mut timeout_check =
            tokio::time::interval(timeout.map_or(Duration::from_secs(3600), |t| {
                (t / 2).clamp(Duration::from_millis(50), Duration::from_secs(5))
            }));
        timeout_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Frames that arrived with the handshake's last read.
        if let Some(end) = self.process_input(&mut io.inbuf) {
            return end;
        }
        loop {
            if self.input_pending && self.s.out.len() < self.pause_water() {
                if let Some(end) = self.process_input(&mut io.inbuf) {
                    return end;
                }
            }
            let want_write = !self.s.out.is_empty() || io.wr.wants_flush();
            let want_events = self.s.out.len() < HIGH_WATER;
            let want_read = self.s.out.len() < self.pause_water()
                && !self.input_pending
                && !self.blocked
                && self.throttle.is_none();
            let throttle = self.throttle.clone();
            tokio::select! {
                biased;
                r = self.s.out.write_to(&mut io.wr), if want_write => {
                    match r {
                        Ok(n) => self.count_sent(n),
                        Err(e) => return End::Io(e),
                    }
                    self.last_send = Instant::now();
                }
                ev = events.recv(), if want_events => {
                    // The session holds a sender, so the channel never closes.
                    if let Some(ev) = ev {
                        let mut end = self.handle_event(ev);
                        for _ in 0..EVENT_BATCH {
                            if end.is_some() || self.s.out.len() >= HIGH_WATER {
                                break;
                            }
                            match events.try_recv() {
                                Ok(ev) => end = self.handle_event(ev),
                                Err(_) => break,
                            }
                        }
                        self.s.consumers.flush(&self.s.vhost);
                        if let Some(end) = end {
                            return end;
                        }
                    }
                }
                r = fill(&mut io.rd, &mut io.inbuf, &mut io.read_hint), if want_read => {
                    match r {
                        Ok(0) => return End::Eof,
                        Ok(n) => self.count_received(n),
                        Err(e) => return End::Io(e),
                    }
                    self.last_recv = Instant::now();
                    if let Some(end) = self.process_input(&mut io.inbuf) {
                        return end;
                    }
                }
                _ = wait_drained(throttle) => {
                    self.throttle = None;
                }
                changed = self.alarms.changed() => {
                    if changed.is_ok() {
                        self.update_blocking();
                    }
                }
                _ = timeout_check.tick(), if timeout.is_some() => {
                    if let Some(t) = timeout {
                        if let Err(end) = self.check_consumer_timeout(t) {
                            return end;
                        }
                    }
                }
                _ = ticker.tick() => {
                    if self.heartbeat > 0 {
                        // A blocked client can't be heard; RabbitMQ pauses
                        // the heartbeat monitor too.
                        if self.blocked {
                            self.last_recv = Instant::now();
                        }
                        if self.last_recv.elapsed() > hb * 2 {
                            return End::HeartbeatTimeout;
                        }
                        if self.last_send.elapsed() >= tick && self.s.out.is_empty() {
                            self.s.out.heartbeat();
                        }
                    }
                }
            }
        }
    }

    /// Handles every complete frame in the buffer, then sends the confirms
    /// the batch produced.
    fn process_input(&mut self, inbuf: &mut BytesMut) -> Option<End> {
        self.input_pending = false;
        loop {
            // Output that can't leave stops intake: what a peer can make
            // the broker hold is bounded by this, not by what it sends.
            if self.s.out.len() >= self.pause_water() {
                self.input_pending = !inbuf.is_empty();
                break;
            }
            match Frame::parse(inbuf, self.s.frame_max) {
                Ok(Some(frame)) => {
                    if let Err(end) = self.handle_frame(frame) {
                        return Some(end);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Some(End::Close(
                        AmqpError::new(reply::FRAME_ERROR, e.to_string()),
                        0,
                        0,
                    ))
                }
            }
        }
        if let Some(end) = self.flush_confirms() {
            return Some(end);
        }
        self.update_blocking();
        for c in self.channels.values_mut() {
            c.flush_stats();
            if let (Some(q), None) = (c.congested.take(), &self.throttle) {
                self.throttle = Some((q, tokio::time::Instant::now() + THROTTLE_MAX));
            }
        }
        None
    }

    /// Blocks a publishing connection while an alarm is on, and unblocks
    /// it after, telling clients that asked (connection.blocked capability).
    /// Output above which the connection stops taking requests.
    fn pause_water(&self) -> usize {
        if self.memory_alarm {
            ALARM_PAUSE_WATER
        } else {
            READ_PAUSE_WATER
        }
    }

    fn update_blocking(&mut self) {
        let state = *self.alarms.borrow_and_update();
        self.memory_alarm = state.memory;
        let block = state.any() && self.published;
        if block == self.blocked {
            return;
        }
        self.blocked = block;
        if block {
            tracing::info!("connection {} blocked: {}", self.s.id, state.reason());
        }
        if self.s.caps.connection_blocked {
            let m = if block {
                Method::ConnectionBlocked(ConnectionBlocked {
                    reason: ShortStr::from_static(state.reason()),
                })
            } else {
                Method::ConnectionUnblocked(ConnectionUnblocked {})
            };
            self.s.out.method(0, &m);
        }
    }

    /// Sends the confirms (and tx.commit-oks) whose commit is done, and
    /// asks to be told when the rest are. A transaction whose commit
    /// failed ends the connection.
    fn flush_confirms(&mut self) -> Option<End> {
        let committed = self.s.vhost.committed();
        let mut awaited = 0;
        for ch in self.channels.values_mut() {
            if let Err(e) = ch.flush_confirms(&mut self.s, committed) {
                return Some(End::Close(e, TxCommit::CLASS_ID, TxCommit::METHOD_ID));
            }
            if let Some(t) = ch.awaited_ticket() {
                awaited = awaited.max(t);
            }
        }
        // One registration at a time: when it fires we flush and, if
        // more is pending by then, register again for the newest ticket.
        if awaited > committed && self.watching == 0 {
            self.watching = awaited;
            self.s.vhost.notify_commit(awaited, self.s.events.clone());
        }
        None
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), End> {
        let ch = frame.channel;
        match frame.payload {
            FramePayload::Heartbeat => {
                if ch != 0 {
                    return Err(End::Close(
                        AmqpError::new(reply::UNEXPECTED_FRAME, "type 8, all octets = <<>>"),
                        0,
                        0,
                    ));
                }
                Ok(())
            }
            FramePayload::Method(payload) => {
                let method = match Method::decode(payload) {
                    Ok(m) => m,
                    Err(e) => return Err(decode_error(e)),
                };
                if ch == 0 {
                    self.connection_method(method)
                } else {
                    self.channel_method(ch, method)
                }
            }
            FramePayload::Header(_) | FramePayload::Body(_) if ch == 0 => {
                Err(End::Close(unexpected_content(), 0, 0))
            }
            FramePayload::Header(payload) => self.channel_content(ch, true, payload),
            FramePayload::Body(payload) => self.channel_content(ch, false, payload),
        }
    }

    fn connection_method(&mut self, method: Method) -> Result<(), End> {
        match method {
            Method::ConnectionClose(_) => {
                self.s.out.method(0, &ConnectionCloseOk {}.into());
                Err(End::ClientClosed)
            }
            Method::ConnectionCloseOk(_) => Err(End::ClientClosed),
            Method::ConnectionUpdateSecret(_) => {
                self.s.out.method(0, &ConnectionUpdateSecretOk {}.into());
                Ok(())
            }
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => Ok(()),
            other => {
                let (c, m) = other.ids();
                Err(End::Close(
                    AmqpError::new(
                        reply::CHANNEL_ERROR,
                        "unexpected method in connection state running",
                    ),
                    c,
                    m,
                ))
            }
        }
    }

    fn remove_channel(&mut self, ch: u16) {
        if let Some(mut c) = self.channels.remove(&ch) {
            c.flush_stats();
        }
        self.s.broker.retire_channel(&self.s.entry, ch);
    }

    fn count_received(&self, n: usize) {
        self.s.entry.stats.received(n);
    }

    fn count_sent(&self, n: usize) {
        self.s.entry.stats.sent(n);
    }

    fn check_channel_id(&self, ch: u16) -> Result<(), End> {
        if ch > self.channel_max {
            return Err(End::Close(
                AmqpError::new(
                    reply::CHANNEL_ERROR,
                    format!(
                        "channel id {ch} exceeds negotiated channel_max {}",
                        self.channel_max
                    ),
                ),
                0,
                0,
            ));
        }
        Ok(())
    }

    fn channel_method(&mut self, ch: u16, method: Method) -> Result<(), End> {
        if matches!(method, Method::BasicPublish(_)) {
            self.published = true;
        }
        let (class_id, method_id) = method.ids();
        let Some(channel) = self.channels.get_mut(&ch) else {
            return match method {
                Method::ChannelOpen(_) => {
                    if self.channels.len() >= usize::from(self.channel_max) {
                        let n = self.channels.len();
                        return Err(End::Close(
                            AmqpError::not_allowed(format!(
                                "number of channels opened ({n}) has reached the negotiated channel_max ({})",
                                self.channel_max
                            )),
                            0,
                            0,
                        ));
                    }
                    // RabbitMQ limits only the count; the spec also bounds
                    // the number, and so do we.
                    self.check_channel_id(ch)?;
                    // The user limit `max-channels`, across connections.
                    if let Err(e) = self.s.broker.check_channel_limit(&self.s.user) {
                        return Err(End::Close(e, class_id, method_id));
                    }
                    let stats = ChannelStats::new(ch);
                    self.s.entry.add_channel(stats.clone());
                    self.channels.insert(ch, Channel::new(ch, stats));
                    self.s.out.method(
                        ch,
                        &ChannelOpenOk {
                            channel_id: Default::default(),
                        }
                        .into(),
                    );
                    Ok(())
                }
                _ => Err(End::Close(
                    AmqpError::new(reply::CHANNEL_ERROR, "expected 'channel.open'"),
                    class_id,
                    method_id,
                )),
            };
        };
        if channel.state == ChannelState::Closing {
            match method {
                Method::ChannelCloseOk(_) => {
                    self.remove_channel(ch);
                }
                Method::ChannelClose(_) => {
                    self.s.out.method(ch, &ChannelCloseOk {}.into());
                    self.remove_channel(ch);
                }
                _ => {}
            }
            return Ok(());
        }
        match method {
            Method::ChannelOpen(_) => Err(End::Close(
                AmqpError::new(reply::CHANNEL_ERROR, "second 'channel.open' seen"),
                class_id,
                method_id,
            )),
            Method::ChannelClose(_) => {
                channel.cleanup(&mut self.s);
                self.s.out.method(ch, &ChannelCloseOk {}.into());
                self.remove_channel(ch);
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            _ if class_id == warren_protocol::constants::class::CONNECTION => Err(End::Close(
                AmqpError::command_invalid("unimplemented method"),
                class_id,
                method_id,
            )),
            other => {
                let r = channel.on_method(&mut self.s, other);
                self.after_channel_call(ch, r, class_id, method_id)
            }
        }
    }

    fn channel_content(&mut self, ch: u16, header: bool, payload: bytes::Bytes) -> Result<(), End> {
        let Some(channel) = self.channels.get_mut(&ch) else {
            return Err(End::Close(
                AmqpError::new(reply::CHANNEL_ERROR, "expected 'channel.open'"),
                0,
                0,
            ));
        };
        if channel.state == ChannelState::Closing {
            return Ok(());
        }
        if !channel.is_receiving_content() {
            return Err(End::Close(unexpected_content(), 0, 0));
        }
        let r = if header {
            channel.on_header(&mut self.s, payload)
        } else {
            channel.on_body(&mut self.s, payload)
        };
        self.after_channel_call(ch, r, BasicPublish::CLASS_ID, BasicPublish::METHOD_ID)
    }

    /// Closes each channel whose oldest delivery has waited for its ack
    /// longer than `timeout`, with RabbitMQ's 406 (its deliveries go back
    /// to their queues).
    fn check_consumer_timeout(&mut self, timeout: Duration) -> Result<(), End> {
        let now = Instant::now();
        let overdue: Vec<u16> = self
            .channels
            .iter_mut()
            .filter(|(_, c)| c.state == ChannelState::Open)
            .filter_map(|(n, c)| c.unacked_overdue(now, timeout).then_some(*n))
            .collect();
        for ch in overdue {
            let e = AmqpError::precondition_failed(format!(
                "delivery acknowledgement on channel {ch} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                timeout.as_millis()
            ));
            self.after_channel_call(ch, Err(e), 0, 0)?;
        }
        Ok(())
    }

    /// Turns a handler error into channel.close or connection.close.
    fn after_channel_call(
        &mut self,
        ch: u16,
        r: Result<(), AmqpError>,
        class_id: u16,
        method_id: u16,
    ) -> Result<(), End> {
        let Err(e) = r else {
            return Ok(());
        };
        if e.is_connection_error() {
            return Err(End::Close(e, class_id, method_id));
        }
        let who = Subject {
            connection: &self.s.entry.name,
            vhost: &self.s.vhost.name,
            user: &self.s.user.name,
        };
        self.errors
            .channel_error(Instant::now(), &who, ch, (class_id, method_id), &e);
        if let Some(channel) = self.channels.get_mut(&ch) {
            // Confirms for publishes before the error still count, once
            // committed; after close they can't be sent any more.
            let committed = self.s.vhost.committed();
            if let Err(e) = channel.flush_confirms(&mut self.s, committed) {
                return Err(End::Close(e, TxCommit::CLASS_ID, TxCommit::METHOD_ID));
            }
            channel.cleanup(&mut self.s);
            channel.state = ChannelState::Closing;
        }
        self.s.out.method(
            ch,
            &ChannelClose {
                reply_code: e.code,
                reply_text: ShortStr::from(e.reply_text()),
                class_id,
                method_id,
            }
            .into(),
        );
        Ok(())
    }

    fn handle_event(&mut self, ev: ConnectionEvent) -> Option<End> {
        match ev {
            ConnectionEvent::Deliver(d) => {
                // The consumer's key finds its session (channel).
                let channel = self.s.consumers.get(d.consumer).map(|e| e.session);
                match channel.and_then(|n| self.channels.get_mut(&n)) {
                    Some(c) => c.deliver(&mut self.s, d),
                    None => self.s.consumers.return_delivery(d, &self.s.vhost),
                }
            }
            ConnectionEvent::ConsumerCancelled { consumer } => {
                let found = self
                    .s
                    .consumers
                    .get(consumer)
                    .map(|e| (e.session, e.tag.clone()));
                if let Some((channel, tag)) = found {
                    if let Some(c) = self.channels.get_mut(&channel) {
                        c.consumer_cancelled_by_server(&mut self.s, tag);
                    }
                }
            }
            ConnectionEvent::Committed(_) => {
                self.watching = 0;
                return self.flush_confirms();
            }
            ConnectionEvent::Close(e) => {
                info!("connection {}: closing: {}", self.s.id, e.reply_text());
                return Some(End::Close(e, 0, 0));
            }
        }
        None
    }

    /// Gives back everything the connection held.
    fn cleanup(&mut self, events: &mut EventReceiver) {
        for (_, mut ch) in self.channels.drain() {
            ch.cleanup(&mut self.s);
            ch.flush_stats();
        }
        // The closed channels' message counts stay in the totals.
        self.s.broker.retire_channels(&self.s.entry);
        for key in self.s.consumers.live_keys() {
            self.s.consumers.retire(key);
        }
        self.s.vhost.remove_connection_queues(self.s.id);
        self.s.broker.connections.unregister(self.s.id);
        events.close();
        while let Ok(ev) = events.try_recv() {
            if let ConnectionEvent::Deliver(d) = ev {
                self.s.consumers.return_delivery(d, &self.s.vhost);
            }
        }
        self.s.consumers.flush(&self.s.vhost);
    }
}

/// Malformed or unknown method frames close the connection.
fn decode_error(e: DecodeError) -> End {
    match e {
        DecodeError::UnknownMethod {
            class_id,
            method_id,
        } => End::Close(
            // RabbitMQ 3.10 just drops the socket here; a 540 tells the
            // client why.
            AmqpError::not_implemented(format!("unknown method {class_id}/{method_id}")),
            class_id,
            method_id,
        ),
        other => End::Close(
            AmqpError::new(
                reply::SYNTAX_ERROR,
                format!("malformed method frame: {other}"),
            ),
            0,
            0,
        ),
    }
}

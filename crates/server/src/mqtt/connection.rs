//! One MQTT connection: CONNECT and login, then a loop over the socket,
//! the broker's events and the keepalive deadline. What packets do is
//! in [`super::session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warren_broker::access::Access;
use warren_broker::connections::ConnectionMeta;
use warren_broker::session::{ConnectionEvent, EventReceiver};
use warren_protocol::mqtt::{
    self, ConnAck, Connect, Disconnect, MqttError, Packet, Properties, LEVEL_5,
};
use warren_protocol::FieldTable;

use super::session::{
    client_id_fits, session_owner, Session, SessionSetup, StartError, OUT_HIGH_WATER,
};
use super::Mqtt;
use crate::connection;
use warren_broker::alarms::AlarmState;

/// Largest packet before login (RabbitMQ's
/// `mqtt.max_packet_size_unauthenticated`).
const UNAUTHENTICATED_MAX: usize = 65_536;
/// Events handled per turn before the output is written.
const EVENT_BATCH: usize = 256;

/// Why a connection ended.
pub(super) enum End {
    /// DISCONNECT from the client (no will unless it asked for one).
    Disconnected { with_will: bool },
    /// The client vanished, broke the protocol or timed out: the will goes.
    Lost(String),
    /// The broker closed it (operator, shutdown, takeover).
    Closed(String),
}

/// A client's byte stream: TCP, or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(super) async fn serve<S: Stream>(
    mut stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    mqtt: Arc<Mqtt>,
) {
    let mut inbuf = BytesMut::with_capacity(4096);
    let connect = match tokio::time::timeout(
        mqtt.cfg.handshake_timeout,
        read_connect(&mut stream, &mut inbuf),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            debug!("MQTT connection from {peer}: {e}");
            if let Some(MqttError::UnsupportedLevel(_)) = e.downcast_ref::<MqttError>() {
                // 3.1.1's "unacceptable protocol version".
                refuse(&mut stream, mqtt::LEVEL_311, 1).await;
            }
            return;
        }
        Err(_) => {
            warn!("closing MQTT connection from {peer}: no CONNECT in time");
            return;
        }
    };
    let level = connect.level;
    if level == LEVEL_5
        && (connect.properties.receive_maximum == Some(0)
            || connect.properties.maximum_packet_size == Some(0))
    {
        // MQTT 5 (3.1.2.11.3, 3.1.2.11.4): a protocol error.
        debug!("MQTT connection from {peer}: receive maximum or maximum packet size 0");
        refuse(&mut stream, level, 0x82).await;
        return;
    }
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let login = match login(&mqtt, &connect, peer) {
        Ok(l) => l,
        Err(code) => {
            refuse(&mut stream, level, code).await;
            return;
        }
    };
    let (user, vhost) = login;
    let id = mqtt.broker.next_connection_id();
    let mut client_id = connect.client_id.clone();
    let mut assigned = None;
    if client_id.is_empty() {
        if level != LEVEL_5 && !connect.clean_start {
            // 3.1.1: a persistent session needs a client id (0x02).
            refuse(&mut stream, level, 2).await;
            return;
        }
        client_id = format!("warren-{id}-{:x}", rand_suffix());
        assigned = Some(client_id.clone());
    }
    if !client_id_fits(&client_id) {
        let code = if level == LEVEL_5 { 0x85 } else { 2 };
        refuse(&mut stream, level, code).await;
        return;
    }
    let not_authorized = if level == LEVEL_5 { 0x87 } else { 5 };
    // A session belongs to the user that made it: another user's CONNECT
    // with its client id is refused and leaves it (and the connection
    // holding it) untouched.
    if let Some(owner) = session_owner(&vhost, &client_id) {
        if owner != user.name {
            warn!(
                "MQTT {peer}: user '{}' refused the session of client id '{client_id}' (it belongs to another user)",
                user.name
            );
            refuse(&mut stream, level, not_authorized).await;
            return;
        }
    }
    if mqtt
        .take_over(&vhost.name, &client_id, id, events_tx.clone(), &user.name)
        .await
        .is_err()
    {
        warn!(
            "MQTT {peer}: user '{}' refused client id '{client_id}' (held by another user's connection)",
            user.name
        );
        refuse(&mut stream, level, not_authorized).await;
        return;
    }
    let entry = mqtt.broker.connections.register(
        id,
        ConnectionMeta {
            user: user.name.clone(),
            vhost: vhost.name.clone(),
            peer,
            local,
            // Listings show who the client is (RabbitMQ's MQTT plugin
            // shows the client id among the connection's properties).
            client_properties: {
                let mut t = FieldTable::new();
                t.insert(
                    "client_id",
                    warren_protocol::FieldValue::LongStr(bytes::Bytes::from(client_id.clone())),
                );
                t
            },
            auth_mechanism: "PLAIN".into(),
            protocol: if level == LEVEL_5 {
                "MQTT 5.0"
            } else {
                "MQTT 3.1.1"
            },
            frame_max: 0,
            channel_max: 0,
            heartbeat: connect.keep_alive,
        },
        events_tx.clone(),
    );
    info!(
        "MQTT connection {id} from {peer} opened: client '{client_id}' user '{}' vhost '{}'",
        user.name, vhost.name
    );
    let access = Access::new(mqtt.broker.auth.clone(), &user.name, &vhost.name);
    let retained = mqtt.retained(&vhost.name);
    let mut session = match retained {
        Ok(retained) => Session::start(SessionSetup {
            id,
            level,
            client_id: client_id.clone(),
            user: user.name.clone(),
            connect: &connect,
            vhost: vhost.clone(),
            access,
            events: events_tx,
            retained,
            max_message_size: mqtt.cfg.max_message_size,
            max_session_expiry: mqtt.cfg.mqtt_max_session_expiry,
            server_keep_alive: mqtt.cfg.mqtt_max_keepalive.filter(|&m| {
                level == LEVEL_5 && (connect.keep_alive == 0 || connect.keep_alive > m)
            }),
            entry: entry.clone(),
        }),
        Err(e) => Err(StartError::Failed(format!("retained store: {e}"))),
    };
    let end = match &mut session {
        Ok(s) => {
            let mut ack = ConnAck {
                session_present: s.session_present,
                code: 0,
                properties: Properties::default(),
            };
            if level == LEVEL_5 {
                ack.properties = s.connack_properties(assigned);
            }
            s.out(Packet::ConnAck(ack));
            s.resend_releases();
            let alarms = mqtt.broker.alarms.subscribe();
            let keep_alive = s.server_keep_alive.unwrap_or(connect.keep_alive);
            run(&mut stream, &mut inbuf, s, &mut events, alarms, keep_alive).await
        }
        Err(StartError::NotAuthorized(e)) => {
            warn!("MQTT connection {id}: session refused: {e}");
            refuse(&mut stream, level, not_authorized).await;
            End::Closed(e.clone())
        }
        Err(StartError::Failed(e)) => {
            warn!("MQTT connection {id}: cannot start the session: {e}");
            refuse(&mut stream, level, if level == LEVEL_5 { 0x80 } else { 3 }).await;
            End::Closed(e.clone())
        }
    };
    let reason = match &end {
        End::Disconnected { .. } => "client disconnected".to_string(),
        End::Lost(why) | End::Closed(why) => why.clone(),
    };
    if let Ok(mut s) = session {
        if let End::Closed(why) = &end {
            if level == LEVEL_5 {
                // 0x8B server shutting down, 0x8E session taken over, 0x98 administrative action.
                let reason = if why.contains("took over") {
                    0x8e
                } else if why.contains("shutdown") {
                    0x8b
                } else {
                    0x98
                };
                s.out(Packet::Disconnect(Disconnect {
                    reason,
                    properties: Properties::default(),
                }));
                let _ = s.write_to(&mut stream).await;
            }
        }
        let will = matches!(
            end,
            End::Lost(_) | End::Closed(_) | End::Disconnected { with_will: true }
        );
        if let Some(w) = s.finish(&mut events, will) {
            mqtt.schedule_will(&entry.meta.vhost, &client_id, w);
        }
    }
    mqtt.release(&entry.meta.vhost, &client_id, id);
    mqtt.broker.connections.unregister(id);
    info!("MQTT connection {id} closed: {reason}");
    if matches!(end, End::Lost(_)) {
        linger(&mut stream).await;
    }
}

/// Closes our side and reads (and drops) what the client still sends, for
/// a bounded time and amount, so that a DISCONNECT just sent is read
/// rather than lost to a reset (closing a socket with unread input resets
/// it).
async fn linger<S: Stream>(stream: &mut S) {
    const MAX_BYTES: usize = 1 << 20;
    const MAX_TIME: Duration = Duration::from_secs(2);
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = [0u8; 8192];
    let mut read = 0;
    let _ = tokio::time::timeout(MAX_TIME, async {
        while read < MAX_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

async fn read_connect<S: Stream>(stream: &mut S, inbuf: &mut BytesMut) -> anyhow::Result<Connect> {
    loop {
        match mqtt::decode(inbuf, None, UNAUTHENTICATED_MAX)? {
            Some(Packet::Connect(c)) => return Ok(*c),
            Some(_) => anyhow::bail!("the first packet must be CONNECT"),
            None => {}
        }
        if stream.read_buf(inbuf).await? == 0 {
            anyhow::bail!("closed before CONNECT");
        }
    }
}

/// Checks the credentials and the vhost; the CONNACK code on refusal.
fn login(
    mqtt: &Mqtt,
    c: &Connect,
    peer: SocketAddr,
) -> Result<
    (
        Arc<warren_broker::auth::User>,
        Arc<warren_broker::VirtualHost>,
    ),
    u8,
> {
    let v5 = c.level == LEVEL_5;
    let (bad_credentials, not_authorized) = if v5 { (0x86, 0x87) } else { (4, 5) };
    let default_vhost = mqtt
        .cfg
        .mqtt_vhost
        .clone()
        .unwrap_or_else(|| mqtt.cfg.default_vhost.clone());
    let (vhost_name, name, pass) = match (&c.username, &c.password) {
        (Some(u), p) => {
            let (v, n) = match u.split_once(':') {
                Some((v, n)) if !v.is_empty() => (v.to_string(), n.to_string()),
                _ => (default_vhost, u.clone()),
            };
            let p = p
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            (v, n, p)
        }
        // Anonymous: RabbitMQ's default mqtt.default_user/default_pass.
        (None, _) => (default_vhost, "guest".to_string(), "guest".to_string()),
    };
    let Some(user) = mqtt.broker.auth.authenticate(&name, &pass) else {
        warn!("MQTT {peer}: invalid credentials for user '{name}'");
        return Err(bad_credentials);
    };
    if !mqtt.broker.login_allowed_from(&user.name, peer.ip()) {
        warn!("MQTT {peer}: user '{name}' can only connect via localhost");
        return Err(not_authorized);
    }
    let Some(vhost) = mqtt.broker.vhost(&vhost_name) else {
        warn!("MQTT {peer}: vhost '{vhost_name}' not found");
        return Err(not_authorized);
    };
    if mqtt
        .broker
        .auth
        .permission(&vhost_name, &user.name)
        .is_none()
    {
        warn!("MQTT {peer}: access to vhost '{vhost_name}' refused for user '{name}'");
        return Err(not_authorized);
    }
    if let Err(e) = mqtt.broker.check_connection_limits(&user, &vhost_name) {
        warn!("MQTT {peer}: {}", e.reply_text());
        return Err(if v5 { 0x97 } else { 3 });
    }
    Ok((user, vhost))
}

async fn run<S: Stream>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    s: &mut Session,
    events: &mut EventReceiver,
    mut alarms: tokio::sync::watch::Receiver<AlarmState>,
    keep_alive: u16,
) -> End {
    // MQTT-3.1.2-24: one and a half keepalive periods without a packet.
    let grace = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let mut last_packet = Instant::now();
    let max = s.max_packet();
    // A queue that can't keep up pauses this publisher (bounded, as AMQP's).
    let mut throttle: Option<(Arc<warren_broker::Queue>, Instant)> = None;
    let mut blocked = false;
    loop {
        if let Err(e) = s.write_to(stream).await {
            return End::Lost(format!("socket error: {e}"));
        }
        // A resource alarm stops reading from publishers (as RabbitMQ's
        // MQTT plugin does); consumers go on. A blocked client can't be
        // heard, so its keepalive waits too.
        let block = s.published && alarms.borrow_and_update().any();
        if block != blocked {
            blocked = block;
            debug!(
                "MQTT client {}blocked by a resource alarm",
                if block { "" } else { "un" }
            );
        }
        if blocked {
            last_packet = Instant::now();
        }
        let deadline = grace.map(|g| last_packet + g);
        let want_read = !blocked && throttle.is_none();
        let retained = s.retained_ready();
        tokio::select! {
            // Retained messages waiting for the window or the output, in
            // turn with everything else.
            _ = std::future::ready(()), if retained => {
                s.pump_retained().await;
            }
            _ = connection::wait_drained(throttle.clone()) => {
                throttle = None;
            }
            changed = alarms.changed() => {
                if changed.is_err() {
                    return End::Closed("shutdown".into());
                }
            }
            read = stream.read_buf(inbuf), if want_read => {
                match read {
                    Ok(0) => return End::Lost("client went away without DISCONNECT".into()),
                    Err(e) => return End::Lost(format!("socket error: {e}")),
                    Ok(n) => s.received(n),
                }
                last_packet = Instant::now();
                loop {
                    let packet = match mqtt::decode(inbuf, Some(s.level), max) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            s.protocol_error(&e);
                            let _ = s.write_to(stream).await;
                            return End::Lost(e.to_string());
                        }
                    };
                    match s.handle(packet).await {
                        Ok(None) => {}
                        Ok(Some(end)) => return end,
                        Err(why) => {
                            let _ = s.write_to(stream).await;
                            return End::Lost(why);
                        }
                    }
                    if s.pending_out() > OUT_HIGH_WATER {
                        if let Err(e) = s.write_to(stream).await {
                            return End::Lost(format!("socket error: {e}"));
                        }
                    }
                }
                if let (Some(q), None) = (s.congested.take(), &throttle) {
                    throttle = Some((q, Instant::now() + connection::THROTTLE_MAX));
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else {
                    return End::Closed("event channel closed".into());
                };
                let mut next = Some(ev);
                let mut n = 0;
                while let Some(ev) = next.take() {
                    if let ConnectionEvent::Close(e) = ev {
                        return End::Closed(e.reply_text());
                    }
                    if let Err(why) = s.event(ev) {
                        return End::Closed(why);
                    }
                    n += 1;
                    if n >= EVENT_BATCH || s.pending_out() > OUT_HIGH_WATER {
                        break;
                    }
                    next = events.try_recv().ok();
                }
                s.flush_consumers();
            }
            _ = sleep_until(deadline) => {
                return End::Lost("keepalive timeout".into());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Refuses a CONNECT with `code` (3.1.1's return code or 5.0's reason).
async fn refuse<S: Stream>(stream: &mut S, level: mqtt::Level, code: u8) {
    let mut out = BytesMut::new();
    Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: Properties::default(),
    })
    .encode(level, &mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
}

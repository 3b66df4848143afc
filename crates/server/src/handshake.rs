//! The AMQP 0-9-1 connection handshake: protocol header, start/start-ok
//! (PLAIN or AMQPLAIN), tune/tune-ok, open/open-ok.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use warren_broker::auth::User;
use warren_broker::error::AmqpError;
use warren_broker::{Broker, VirtualHost};
use warren_protocol::constants::{FRAME_MIN_SIZE, PROTOCOL_HEADER};
use warren_protocol::methods::*;
use warren_protocol::{Decoder, FieldTable, FieldValue, Frame, FramePayload, Method, ShortStr};

use crate::config::Config;
use crate::connection::close_with;
use crate::context::ClientCapabilities;
use crate::io::Io;
use crate::outbound::Outbound;

pub struct Negotiated {
    pub user: Arc<User>,
    pub vhost: Arc<VirtualHost>,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub caps: ClientCapabilities,
    pub mechanism: String,
    pub client_properties: FieldTable,
}

/// Frames during the handshake are small; this bounds them before tuning.
const HANDSHAKE_FRAME_MAX: u32 = 131_072;

#[derive(Debug)]
pub enum HandshakeError {
    Io(std::io::Error),
    Eof,
    /// Sent to the client as connection.close (or just logged).
    Refused(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Eof => write!(f, "client closed the socket"),
            HandshakeError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

/// `cluster_name`: the `cluster_name` global parameter, else the node
/// name (RabbitMQ's default).
fn server_properties(cluster_name: &str) -> FieldTable {
    let s = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let mut t = FieldTable::new();
    t.insert("capabilities", FieldValue::Table(caps));
    t.insert("cluster_name", s(cluster_name));
    t.insert("copyright", s("Copyright (c) the Warren authors"));
    t.insert("information", s("Licensed under the Apache License 2.0"));
    t.insert("platform", s("Rust"));
    t.insert("product", s("Warren"));
    t.insert("version", s(env!("CARGO_PKG_VERSION")));
    t
}

async fn read_method(io: &mut Io) -> Result<Method, HandshakeError> {
    loop {
        match Frame::parse(&mut io.inbuf, HANDSHAKE_FRAME_MAX) {
            Ok(Some(Frame {
                payload: FramePayload::Heartbeat,
                ..
            })) => continue,
            Ok(Some(Frame {
                channel: 0,
                payload: FramePayload::Method(p),
            })) => {
                return Method::decode(p)
                    .map_err(|e| HandshakeError::Refused(format!("malformed method: {e}")))
            }
            Ok(Some(_)) => {
                return Err(HandshakeError::Refused(
                    "unexpected frame during handshake".into(),
                ))
            }
            Ok(None) => {}
            Err(e) => return Err(HandshakeError::Refused(e.to_string())),
        }
        if !io.fill().await? {
            return Err(HandshakeError::Eof);
        }
    }
}

/// Sends connection.close, waits briefly for close-ok.
async fn refuse(io: &mut Io, out: &mut Outbound, e: AmqpError, ids: (u16, u16)) -> HandshakeError {
    close_with(io, out, &e, ids, HANDSHAKE_FRAME_MAX).await;
    HandshakeError::Refused(e.reply_text())
}

fn credentials(mechanism: &[u8], response: &Bytes) -> Option<(String, String)> {
    match mechanism {
        b"PLAIN" => {
            // [authzid] NUL authcid NUL password
            let mut parts = response.split(|&b| b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((
                String::from_utf8(user.to_vec()).ok()?,
                String::from_utf8(pass.to_vec()).ok()?,
            ))
        }
        b"AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = BytesMut::with_capacity(response.len() + 4);
            framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
            framed.extend_from_slice(response);
            let table = Decoder::new(framed.freeze()).get_table().ok()?;
            let text = |k: &str| {
                table
                    .get(k)
                    .and_then(|v| v.as_bytes())
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
            };
            Some((text("LOGIN")?, text("PASSWORD")?))
        }
        _ => None,
    }
}

fn client_caps(props: &FieldTable) -> ClientCapabilities {
    let caps = match props.get("capabilities") {
        Some(FieldValue::Table(t)) => t.clone(),
        _ => FieldTable::new(),
    };
    let on = |k: &str| caps.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    ClientCapabilities {
        consumer_cancel_notify: on("consumer_cancel_notify"),
        connection_blocked: on("connection.blocked"),
        authentication_failure_close: on("authentication_failure_close"),
    }
}

pub async fn run(
    io: &mut Io,
    out: &mut Outbound,
    broker: &Arc<Broker>,
    cfg: &Config,
    peer: SocketAddr,
    cert_user: Option<&str>,
) -> Result<Option<Negotiated>, HandshakeError> {
    while io.inbuf.len() < PROTOCOL_HEADER.len() {
        if !io.fill().await? {
            return Err(HandshakeError::Eof);
        }
    }
    if &io.inbuf[..PROTOCOL_HEADER.len()] != PROTOCOL_HEADER {
        // Tell the client which protocol we speak, then hang up.
        out.raw(PROTOCOL_HEADER);
        out.flush_all(&mut io.wr).await?;
        return Ok(None);
    }
    io.inbuf.advance(PROTOCOL_HEADER.len());

    out.method(
        0,
        &ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(
                &warren_broker::admin::parameters::cluster_name(broker)
                    .unwrap_or_else(warren_broker::connections::node_name),
            ),
            // EXTERNAL (the client certificate's common name) on TLS
            // connections that presented one.
            mechanisms: Bytes::from_static(if cert_user.is_some() {
                b"EXTERNAL AMQPLAIN PLAIN"
            } else {
                b"AMQPLAIN PLAIN"
            }),
            locales: Bytes::from_static(b"en_US"),
        }
        .into(),
    );
    out.flush_all(&mut io.wr).await?;

    let start_ok = match read_method(io).await? {
        Method::ConnectionStartOk(m) => m,
        other => {
            let e = AmqpError::command_invalid(format!(
                "expected connection.start_ok, got {}",
                other.name()
            ));
            return Err(refuse(io, out, e, other.ids()).await);
        }
    };
    let caps = client_caps(&start_ok.client_properties);
    let mechanism = start_ok.mechanism.as_bytes().to_vec();
    let external = mechanism == b"EXTERNAL" && cert_user.is_some();
    if mechanism != b"PLAIN" && mechanism != b"AMQPLAIN" && !external {
        // As RabbitMQ: no close frame before the connection is open.
        return Err(HandshakeError::Refused(format!(
            "unknown authentication mechanism '{}'",
            start_ok.mechanism
        )));
    }
    let user = if external {
        // rabbitmq_auth_mechanism_ssl: the certificate vouches for the user
        // (it must exist; no password is checked).
        let name = cert_user.unwrap_or_default();
        let user = broker.auth.user(name);
        if user.is_none() {
            tracing::warn!("{peer}: EXTERNAL login for unknown user '{name}'");
        }
        user
    } else {
        credentials(&mechanism, &start_ok.response).and_then(|(name, pass)| {
            let user = broker.auth.authenticate(&name, &pass);
            if user.is_none() {
                tracing::warn!("{peer}: invalid credentials for user '{name}'");
            }
            user
        })
    };
    let user = match user {
        Some(u) if !broker.login_allowed_from(&u.name, peer.ip()) => {
            tracing::warn!("{peer}: user '{}' can only connect via localhost", u.name);
            None
        }
        other => other,
    };
    let Some(user) = user else {
        let e = AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {}. For details see the broker logfile.",
            start_ok.mechanism
        ));
        if caps.authentication_failure_close {
            return Err(refuse(io, out, e, (0, 0)).await);
        }
        return Err(HandshakeError::Refused(e.reply_text()));
    };

    out.method(
        0,
        &ConnectionTune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat,
        }
        .into(),
    );
    out.flush_all(&mut io.wr).await?;
    let tune_ok = match read_method(io).await? {
        Method::ConnectionTuneOk(m) => m,
        other => {
            let e = AmqpError::command_invalid(format!(
                "expected connection.tune_ok, got {}",
                other.name()
            ));
            return Err(refuse(io, out, e, other.ids()).await);
        }
    };
    // 0 means "no limit" from the client: ours applies.
    let frame_max = match tune_ok.frame_max {
        0 => cfg.frame_max,
        f => f,
    };
    if frame_max < FRAME_MIN_SIZE || frame_max > cfg.frame_max {
        return Err(HandshakeError::Refused(format!(
            "negotiated frame_max = {frame_max} is outside {FRAME_MIN_SIZE}..={}",
            cfg.frame_max
        )));
    }
    let channel_max = match tune_ok.channel_max {
        0 => cfg.channel_max,
        c => c.min(cfg.channel_max),
    };
    let heartbeat = tune_ok.heartbeat;

    let open = match read_method(io).await? {
        Method::ConnectionOpen(m) => m,
        other => {
            let e = AmqpError::command_invalid(format!(
                "expected connection.open, got {}",
                other.name()
            ));
            return Err(refuse(io, out, e, other.ids()).await);
        }
    };
    let vhost_name = open.virtual_host.as_str().into_owned();
    let vhost = match broker.vhost(&vhost_name) {
        Some(v) if broker.auth.permission(&vhost_name, &user.name).is_some() => v,
        Some(_) => {
            let e = AmqpError::not_allowed(format!(
                "access to vhost '{vhost_name}' refused for user '{}'",
                user.name
            ));
            return Err(refuse(io, out, e, (10, 40)).await);
        }
        None => {
            let e = AmqpError::not_allowed(format!("vhost {vhost_name} not found"));
            return Err(refuse(io, out, e, (10, 40)).await);
        }
    };
    // The node's `connection_max`, then the vhost's and the user's
    // `max-connections` limits.
    if let Some(limit) = cfg.connection_max {
        if broker.connections.len() as u64 >= limit {
            let e = AmqpError::not_allowed(format!(
                "connection refused: node connection limit ({limit}) is reached"
            ));
            broker
                .limits_reported
                .log_once("node connection_max".into(), &e.reply_text());
            return Err(refuse(io, out, e, (10, 40)).await);
        }
    }
    if let Err(e) = broker.check_connection_limits(&user, &vhost_name) {
        return Err(refuse(io, out, e, (10, 40)).await);
    }
    out.method(
        0,
        &ConnectionOpenOk {
            known_hosts: ShortStr::default(),
        }
        .into(),
    );
    Ok(Some(Negotiated {
        user,
        vhost,
        channel_max,
        frame_max,
        heartbeat,
        caps,
        mechanism: String::from_utf8_lossy(&mechanism).into_owned(),
        client_properties: start_ok.client_properties,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_authzid() {
        let r = Bytes::from_static(b"\0guest\0secret");
        assert_eq!(
            credentials(b"PLAIN", &r),
            Some(("guest".into(), "secret".into()))
        );
        let r = Bytes::from_static(b"admin\0guest\0secret");
        assert_eq!(
            credentials(b"PLAIN", &r),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(credentials(b"PLAIN", &Bytes::from_static(b"guest")), None);
        assert_eq!(credentials(b"CRAM-MD5", &r), None);
    }

    #[test]
    fn amqplain_is_a_table_without_length() {
        let mut t = FieldTable::new();
        t.insert("LOGIN", FieldValue::LongStr(Bytes::from_static(b"admin")));
        t.insert("PASSWORD", FieldValue::LongStr(Bytes::from_static(b"pw")));
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        let body = buf.freeze().slice(4..);
        assert_eq!(
            credentials(b"AMQPLAIN", &body),
            Some(("admin".into(), "pw".into()))
        );
        assert_eq!(
            credentials(b"AMQPLAIN", &Bytes::from_static(b"\x05LOGIN")),
            None
        );
    }

    #[test]
    fn guest_only_from_loopback() {
        use warren_broker::broker::login_allowed_from;
        let lb = vec!["guest".to_string()];
        let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert!(login_allowed_from("guest", local, &lb));
        assert!(login_allowed_from("guest", mapped, &lb));
        assert!(login_allowed_from("guest", "::1".parse().unwrap(), &lb));
        assert!(!login_allowed_from("guest", remote, &lb));
        assert!(login_allowed_from("admin", remote, &lb));
    }
}

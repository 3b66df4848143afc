//! MQTT over WebSockets, as RabbitMQ's `rabbitmq_web_mqtt` plugin serves
//! it: `ws://host:15675/ws` with the `mqtt` subprotocol, each binary
//! message carrying MQTT bytes. Off unless `--web-mqtt-port` is given (the
//! plugin is off by default in RabbitMQ too).
//!
//! A WebSocket is bridged to a byte stream (a bounded in-memory pipe) and
//! served by the same connection code as TCP and TLS clients, so there is
//! one MQTT implementation. The pipe's buffer bounds what either side can
//! hold, and a message is bounded by the MQTT packet limit.
//!
//! Before login a client may make the broker hold no more than it could
//! over TCP: the socket reads at most [`PRE_LOGIN_READ`] bytes (the
//! unauthenticated packet limit, 64 KiB, plus WebSocket framing) until
//! the MQTT side answers with a successful CONNACK; past that the read
//! waits, so a WebSocket message can't grow towards the (post-login)
//! message limit. A refused or silent client is closed by the MQTT
//! side's handshake deadline. The WebSocket keeps its HTTP connection's
//! slot ([`crate::http::serve`]'s limits) for its whole life.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connection, Mqtt};
use crate::http::ReadGate;

/// Bytes in flight each way between the WebSocket and the MQTT connection.
const PIPE: usize = 256 * 1024;
/// Bytes read from a WebSocket before its client has logged in: the MQTT
/// unauthenticated maximum (64 KiB, as on TCP) plus framing.
pub(crate) const PRE_LOGIN_READ: u64 = 65_536 + 1024;

#[derive(Clone)]
struct Web {
    mqtt: Arc<Mqtt>,
    local: SocketAddr,
}

/// The web-MQTT endpoint (`/ws`) for a listener bound to `local`.
pub(crate) fn router(mqtt: Arc<Mqtt>, local: SocketAddr) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(Web { mqtt, local })
}

async fn upgrade(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    gate: Option<Extension<Arc<ReadGate>>>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = usize::try_from(web.mqtt.cfg.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(65_536);
    let gate = gate.map(|Extension(g)| g);
    if let Some(g) = &gate {
        // Before the upgrade is answered: nothing past the limit is read.
        g.limit(PRE_LOGIN_READ);
    }
    ws.protocols(["mqtt"])
        .max_message_size(max)
        .on_upgrade(move |socket| bridge(socket, peer, web, gate))
}

/// Watches the MQTT side's first bytes for its CONNACK: whether the login
/// was accepted (return / reason code 0).
#[derive(Default)]
struct ConnAckWatch {
    head: Vec<u8>,
}

impl ConnAckWatch {
    /// `Some(accepted)` once the CONNACK's code has been seen.
    fn feed(&mut self, bytes: &[u8]) -> Option<bool> {
        // Type byte, at most 4 bytes of length, flags, code.
        let want = 7usize.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..want]);
        let h = &self.head;
        if *h.first()? != 0x20 {
            return Some(false);
        }
        let mut i = 1;
        loop {
            let b = *h.get(i)?;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                return Some(false);
            }
        }
        // h[i] is the flags byte, h[i + 1] the code.
        Some(*h.get(i + 1)? == 0)
    }
}

/// Carries bytes both ways until either side ends.
async fn bridge(mut socket: WebSocket, peer: SocketAddr, web: Web, gate: Option<Arc<ReadGate>>) {
    let (ours, mut theirs) = tokio::io::duplex(PIPE);
    let served = tokio::spawn(connection::serve(ours, peer, web.local, web.mqtt));
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Until the login is decided: the gate to lift.
    let mut login = gate.map(|g| (g, ConnAckWatch::default()));
    loop {
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) => {
                    if theirs.write_all(&b).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by the library; text is not MQTT.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) | Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    break
                }
            },
            n = theirs.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some((gate, watch)) = &mut login {
                        match watch.feed(&buf) {
                            Some(true) => {
                                gate.unlimit();
                                login = None;
                            }
                            // Refused: the MQTT side closes.
                            Some(false) => login = None,
                            None => {}
                        }
                    }
                    if socket.send(Message::Binary(buf.split().freeze())).await.is_err() {
                        break;
                    }
                    buf.reserve(16 * 1024);
                }
            },
        }
    }
    // Closing our end of the pipe ends the MQTT connection (as a lost
    // socket would: the will goes unless the client said DISCONNECT).
    drop(theirs);
    let _ = served.await;
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::ConnAckWatch;

    #[test]
    fn connack_codes() {
        let mut w = ConnAckWatch::default();
        assert_eq!(w.feed(&[0x20]), None);
        assert_eq!(w.feed(&[0x02, 0x00]), None);
        assert_eq!(w.feed(&[0x00, 0x30]), Some(true));
        let mut w = ConnAckWatch::default();
        assert_eq!(w.feed(&[0x20, 0x02, 0x00, 0x05]), Some(false));
        // MQTT 5: properties after the code.
        let mut w = ConnAckWatch::default();
        assert_eq!(w.feed(&[0x20, 0x03, 0x00, 0x00, 0x00]), Some(true));
        let mut w = ConnAckWatch::default();
        assert_eq!(w.feed(&[0x20, 0x83, 0x01, 0x00, 0x87]), Some(false));
        let mut w = ConnAckWatch::default();
        assert_eq!(w.feed(&[0x30, 0x00]), Some(false));
    }
}

//! MQTT over WebSockets, as RabbitMQ's `rabbitmq_web_mqtt` plugin serves
//! it: `ws://host:15675/ws` with the `mqtt` subprotocol, each binary
//! message carrying MQTT bytes. Off unless `--web-mqtt-port` is given (the
//! plugin is off by default in RabbitMQ too).
//!
//! A WebSocket is bridged to a byte stream (a bounded in-memory pipe) and
//! served by the same connection code as TCP and TLS clients, so there is
//! one MQTT implementation. The pipe's buffer bounds what either side can
//! hold, and a message is bounded by the MQTT packet limit.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connection, Mqtt};

/// Bytes in flight each way between the WebSocket and the MQTT connection.
const PIPE: usize = 256 * 1024;

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
    ws: WebSocketUpgrade,
) -> Response {
    let max = usize::try_from(web.mqtt.cfg.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(65_536);
    ws.protocols(["mqtt"])
        .max_message_size(max)
        .on_upgrade(move |socket| bridge(socket, peer, web))
}

/// Carries bytes both ways until either side ends.
async fn bridge(mut socket: WebSocket, peer: SocketAddr, web: Web) {
    let (ours, mut theirs) = tokio::io::duplex(PIPE);
    let served = tokio::spawn(connection::serve(ours, peer, web.local, web.mqtt));
    let mut buf = BytesMut::with_capacity(16 * 1024);
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

//! Inbound connections: accepted, authenticated (the acceptor's side of
//! the handshake), then serving the dialer's requests until they end.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::conn::Conn;
use super::driver::{self, Role};
use super::handshake::{self, HandshakeError};
use super::tls::BoxStream;
use super::Shared;

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                tokio::spawn(serve(stream, from, shared.clone()));
            }
            Err(e) => {
                warn!("inter-node accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// An inbound connection: the acceptor's handshake, then its requests
/// served until it ends.
async fn serve(tcp: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let local = &shared.local;
    // TLS first if configured, then the link's own handshake: both within
    // the one time limit.
    let handshake = async {
        let mut stream: BoxStream = match &local.tls {
            Some(tls) => tls.accept(tcp).await.map_err(HandshakeError::Protocol)?,
            None => Box::new(tcp),
        };
        let from = handshake::accept(&mut stream, &local.secret, &local.node).await?;
        Ok::<_, HandshakeError>((stream, from))
    };
    let (stream, from) = match tokio::time::timeout(handshake::TIMEOUT, handshake).await {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(e)) => {
            warn!("inter-node connection from {addr} refused: {e}");
            return;
        }
        Err(_) => {
            warn!(
                "inter-node connection from {addr} refused: no handshake within {:?}",
                handshake::TIMEOUT
            );
            return;
        }
    };
    let (conn, rx) = Conn::new(from.clone());
    let key = shared.next_inbound.fetch_add(1, Ordering::Relaxed);
    shared.inbound.lock().insert(key, conn.clone());
    if shared.shut.load(Ordering::Acquire) {
        conn.close("this node is shutting down");
    }
    debug!("inter-node connection from {from} ({addr}) accepted");
    let why = driver::run(
        stream,
        conn,
        rx,
        Role::Inbound(shared.handler.clone()),
        local.heartbeat,
        local.down_after,
    )
    .await;
    shared.inbound.lock().remove(&key);
    info!("inter-node connection from {from} ({addr}) closed: {why}");
}

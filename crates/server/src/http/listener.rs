//! The HTTP listeners' accept loop: HTTP/1.1 with bounded connections
//! (in all, per source, with a reserve: [`super::guard`]), a deadline for
//! each request's headers, and a write timeout, so idle, slow or
//! non-reading clients can't pile up or lock operators out (a connection
//! that can't be admitted is closed at once; one that sends its headers
//! too slowly, or doesn't read its answers, is dropped).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::guard::{Admission, Guarded, Refused, MAX_CONNECTIONS};

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most header bytes buffered per connection.
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// How often a full listener says so in the log.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` for the life of the process; over TLS
/// (HTTPS) when `tls` is given; at most `per_source` connections from one
/// address (`http_max_connections_per_source`).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<crate::tls::Reloadable>>,
    per_source: usize,
) {
    // 0: no per-source limit but the listener's own.
    let per_source = if per_source == 0 {
        MAX_CONNECTIONS
    } else {
        per_source
    };
    let slots = Admission::new(per_source);
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok((s, p)) => (
                s,
                std::net::SocketAddr::new(p.ip().to_canonical(), p.port()),
            ),
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::error!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match slots.admit(peer.ip()) {
            Ok(s) => s,
            Err(Refused::Source) => {
                tracing::debug!(
                    "HTTP connection from {peer} refused: {per_source} already open from there"
                );
                continue;
            }
            Err(Refused::Full) => {
                // Once per [`FULL_WARNING_EVERY`]: a flood must not flood
                // the log too.
                if last_warning.is_none_or(|t| t.elapsed() >= FULL_WARNING_EVERY) {
                    last_warning = Some(std::time::Instant::now());
                    tracing::warn!(
                        "HTTP connection from {peer} refused: {MAX_CONNECTIONS} connections open"
                    );
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The socket holds the slot: an upgraded connection keeps it.
        let stream = Guarded::new(stream, slot);
        let gate = stream.gate();
        // Handlers see the peer as axum's `ConnectInfo`, and the socket's
        // read gate as an extension.
        let service = router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(gate.clone());
                req.map(axum::body::Body::new)
            },
        );
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BUFFER);
            let service = TowerToHyperService::new(service);
            let r = match acceptor {
                // Upgrades: the web-MQTT listener's WebSockets.
                None => {
                    http.serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
                Some(a) => match tokio::time::timeout(HEADER_TIMEOUT, a.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        http.serve_connection(TokioIo::new(tls), service)
                            .with_upgrades()
                            .await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("HTTPS handshake with {peer} failed: {e}");
                        Ok(())
                    }
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = r {
                tracing::debug!("HTTP connection from {peer}: {e}");
            }
        });
    }
}

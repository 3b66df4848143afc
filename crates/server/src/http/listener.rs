//! The HTTP listeners' accept loop: HTTP/1.1 with a bounded number of
//! connections and a deadline for each request's headers, so idle or
//! slow clients can't pile up (a connection past the limit is closed at
//! once; one that sends its headers too slowly is dropped).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Open HTTP connections at most, per listener.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most header bytes buffered per connection.
const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// Serves `router` on `listener` for the life of the process; over TLS
/// (HTTPS) when `tls` is given.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<crate::tls::Reloadable>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("HTTP connection from {peer} refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handlers see the peer as axum's `ConnectInfo`.
        let service = router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
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
            drop(slot);
        });
    }
}

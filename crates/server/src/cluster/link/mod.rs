//! The inter-node link: authenticated, multiplexed TCP connections between
//! the nodes of a cluster, carrying requests (with responses) and one-way
//! messages for a few services (Raft, control, forwarding) as opaque bytes.
//!
//! # Connections
//!
//! Every node dials every peer it knows, at the address **its own**
//! configuration gives for that peer (never an address a peer announces),
//! resolved again at each dial. There is one outbound TCP connection per
//! directed link: A's connection to B carries A's requests and one-way
//! messages to B, and B's responses back; the connection B dialed to A
//! carries B's requests. An inbound connection only serves the dialer's
//! requests. So a TCP proxy placed on the directed link A→B cuts exactly
//! A's requests to B. All services share the connection.
//!
//! A node accepts a connection from any node that proves it holds the
//! cluster secret (a joining node must be able to reach us before we know
//! it); who is a member is decided above this module.
//!
//! # Handshake
//!
//! Mutual challenge–response; the secret never on the wire (see
//! [`handshake`]): HELLO {magic `WRNC`, version, from, to, nonce_c},
//! CHALLENGE {nonce_s, HMAC-SHA256(secret, "acceptor" | nonce_c | nonce_s |
//! from | to)}, PROOF {HMAC-SHA256(secret, "dialer" | nonce_s | nonce_c |
//! from | to)}, OK. The acceptor refuses a HELLO addressed to another node
//! name. Any failure is logged as a warning naming the other end and the
//! reason (`inter-node connection from 127.0.0.1:x refused: wrong cluster
//! secret`), and the connection is closed with nothing else read or
//! written. A handshake must finish within 5 s; names are 1–255 bytes;
//! a handshake message is at most 4 KiB.
//!
//! # Frames
//!
//! After the handshake (see [`frame`]): `u32 length | u32 crc32 | u8 kind |
//! u8 service | u64 correlation id | payload`; kinds REQUEST, RESPONSE_OK,
//! RESPONSE_ERR, ONE_WAY, HEARTBEAT; at most [`frame::MAX_FRAME`] (64 MiB).
//! A bad crc, an out-of-bounds length or an unknown kind closes the
//! connection with a warning; the length is checked before anything is
//! reserved for the frame. One writer per connection batches frames into a
//! buffer flushed when its queue is empty; the reader reuses one buffer and
//! hands payloads out as slices of it.
//!
//! # Failure detection
//!
//! A connection idle for `heartbeat` (1 s in production) sends a HEARTBEAT.
//! A connection on which nothing arrived for `down_after` (5 s) is closed:
//! for the outbound one, the peer is then [`PeerState::Down`] and is
//! redialed with backoff (100 ms doubling to 2 s, jittered). This is per
//! node pair, not per service.
//!
//! # Calls, bounds and failures
//!
//! - `call`/`send` to a peer whose connection is not up fail at once with
//!   [`LinkError::Disconnected`]; nothing is queued for a later connection.
//!   Retries are the caller's decision.
//! - At most [`conn::MAX_QUEUED_BYTES`] (64 MiB) queued per outbound
//!   connection and [`conn::MAX_IN_FLIGHT`] (4096) requests in flight; beyond
//!   them `send`/`call` fail fast with [`LinkError::Overloaded`].
//! - When a connection breaks, every call pending on it fails at once with
//!   `Disconnected`; `call` also fails with `Timeout` after its timeout. A
//!   call that timed out (or whose future was dropped) is forgotten here,
//!   but its request may still run at the peer; a late response is dropped.
//! - The handler's error text comes back as [`LinkError::Remote`]. An
//!   acceptor already running `MAX_IN_FLIGHT` requests from one connection
//!   (abandoned calls included) answers a new one with a "node busy"
//!   `Remote` error rather than run it.
//! - Requests are served concurrently (a task each, aborted if their
//!   connection ends); one-way messages are handed to the handler in the
//!   order they were sent, on the connection's reader, so
//!   [`Handler::message`] must not block.
//! - An acceptor whose responses are not read (over the same byte bound)
//!   closes that connection.
//! - `remove_peer` closes both directions with that node; the node may dial
//!   us again (a node is accepted on the secret alone).
//! - Dropping the last `Link` handle stops it as `shutdown` does, without
//!   waiting.
//!
//! # TLS (optional)
//!
//! [`Link::start_with_tls`] with a [`LinkTls`] (from PEM files: this
//! node's certificate and key, the cluster CA) puts every connection in
//! mutual TLS before the handshake above, which still runs inside it (see
//! [`tls`]). The dialer checks that the acceptor's certificate names the
//! host it dialed (a DNS name or IP address in the SAN); the acceptor
//! requires a client certificate from the same CA. TLS and the handshake
//! share the 5 s limit. A cluster is all TLS or all plain: the two refuse
//! each other. Not yet wired to configuration (no `--cluster-*` TLS flags
//! decided), and the files are read once, at start (no reload on SIGHUP
//! as AMQPS has).

pub(crate) mod conn;
pub(crate) mod driver;
pub(crate) mod frame;
pub(crate) mod handshake;
mod inbound;
pub(crate) mod peer;
#[cfg(test)]
mod tests;
pub(crate) mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use self::conn::Conn;
use self::peer::Peer;
pub(crate) use self::peer::{PeerState, PeerStatus};
pub(crate) use self::tls::LinkTls;

/// A node's name as the cluster knows it.
pub(crate) type NodeName = String;

/// Which service a frame is for; the link carries its payload opaquely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Service(pub u8);

impl Service {
    pub const RAFT: Service = Service(1);
    pub const CONTROL: Service = Service(2);
    pub const FORWARD: Service = Service(3);
}

/// What [`Link::start`] needs.
#[derive(Clone)]
pub(crate) struct LinkConfig {
    /// This node's name.
    pub node: NodeName,
    /// The cluster listener's bind address and port.
    pub listen: SocketAddr,
    /// The shared secret's bytes.
    pub secret: Vec<u8>,
    /// Each peer's name and "host:port" from our own configuration
    /// (resolved at each dial).
    pub peers: Vec<(NodeName, String)>,
    /// A connection idle this long sends a heartbeat (1 s).
    pub heartbeat: Duration,
    /// A connection on which nothing arrived this long is dropped, and its
    /// peer is down (5 s).
    pub down_after: Duration,
}

/// Everything but the secret's bytes.
impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("node", &self.node)
            .field("listen", &self.listen)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("peers", &self.peers)
            .field("heartbeat", &self.heartbeat)
            .field("down_after", &self.down_after)
            .finish()
    }
}

/// Serves what peers send this node.
#[async_trait::async_trait]
pub(crate) trait Handler: Send + Sync + 'static {
    /// A request from `from`; the returned bytes (or error text) go back as the response.
    async fn request(&self, from: &str, service: Service, payload: Bytes) -> Result<Bytes, String>;
    /// A one-way message. Called on the connection's reader: it must
    /// not block (hand the work to a task or a channel).
    fn message(&self, from: &str, service: Service, payload: Bytes);
}

/// Why a `call` or `send` did not get through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("unknown cluster node '{0}'")]
    UnknownPeer(String),
    #[error("{0}")]
    Disconnected(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Overloaded(String),
    /// The peer's handler answered with an error.
    #[error("{0}")]
    Remote(String),
}

/// What the connections of one node share.
pub(crate) struct Local {
    pub node: NodeName,
    pub secret: Vec<u8>,
    pub tls: Option<LinkTls>,
    pub heartbeat: Duration,
    pub down_after: Duration,
}

/// What the accept loop and inbound connections share.
struct Shared {
    local: Arc<Local>,
    handler: Arc<dyn Handler>,
    inbound: Mutex<HashMap<u64, Arc<Conn>>>,
    next_inbound: AtomicU64,
    shut: AtomicBool,
}

struct Inner {
    shared: Arc<Shared>,
    peers: Mutex<HashMap<NodeName, Arc<Peer>>>,
    accept: Mutex<Option<JoinHandle<()>>>,
    local_addr: SocketAddr,
}

/// The node's end of the inter-node link; clones share it.
#[derive(Clone)]
pub(crate) struct Link {
    inner: Arc<Inner>,
}

impl Link {
    /// Binds the listener (error if the port is taken, naming the address) and starts dialing every peer.
    pub async fn start(cfg: LinkConfig, handler: Arc<dyn Handler>) -> anyhow::Result<Link> {
        Self::start_with_tls(cfg, handler, None).await
    }

    /// As [`Link::start`], every connection in TLS when `tls` is given
    /// (then every node of the cluster must use TLS).
    pub async fn start_with_tls(
        cfg: LinkConfig,
        handler: Arc<dyn Handler>,
        tls: Option<LinkTls>,
    ) -> anyhow::Result<Link> {
        if !handshake::valid_name(&cfg.node) {
            anyhow::bail!("cluster node name '{}' must be 1 to 255 bytes", cfg.node);
        }
        if cfg.secret.is_empty() {
            anyhow::bail!("the cluster secret is empty");
        }
        let listener = crate::listeners::bind(cfg.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (inter-node): {e}", cfg.listen))?;
        let local_addr = listener.local_addr()?;
        info!("listening for inter-node connections on {local_addr}");
        let shared = Arc::new(Shared {
            local: Arc::new(Local {
                node: cfg.node,
                secret: cfg.secret,
                tls,
                heartbeat: cfg.heartbeat,
                down_after: cfg.down_after,
            }),
            handler,
            inbound: Mutex::new(HashMap::new()),
            next_inbound: AtomicU64::new(0),
            shut: AtomicBool::new(false),
        });
        let accept = tokio::spawn(inbound::accept_loop(listener, shared.clone()));
        let link = Link {
            inner: Arc::new(Inner {
                shared,
                peers: Mutex::new(HashMap::new()),
                accept: Mutex::new(Some(accept)),
                local_addr,
            }),
        };
        for (name, addr) in cfg.peers {
            link.add_peer(name, addr);
        }
        Ok(link)
    }

    /// Starts dialing `name` at `addr` (join_cluster, membership changes).
    /// A known peer at a new address is redialed there.
    pub fn add_peer(&self, name: NodeName, addr: String) {
        let shared = &self.inner.shared;
        if name == shared.local.node {
            debug!("not dialing this node itself ({name})");
            return;
        }
        let mut peers = self.inner.peers.lock();
        if shared.shut.load(Ordering::Acquire) {
            return;
        }
        if let Some(old) = peers.get(&name) {
            if old.addr == addr {
                return;
            }
            old.stop(&format!("{name} moved to {addr}"));
        }
        let peer = Peer::start(name.clone(), addr, shared.local.clone());
        peers.insert(name, peer);
    }

    /// Forgets `name` (forget_cluster_node): stops dialing it and closes
    /// its connections, both directions; its pending calls fail now.
    pub fn remove_peer(&self, name: &str) {
        if let Some(peer) = self.inner.peers.lock().remove(name) {
            peer.stop("peer removed");
        }
        for c in self.inner.shared.inbound.lock().values() {
            if c.peer == name {
                c.close("peer removed");
            }
        }
    }

    fn conn(&self, to: &str) -> Result<Arc<Conn>, LinkError> {
        if self.inner.shared.shut.load(Ordering::Acquire) {
            return Err(LinkError::Disconnected(
                "this node's inter-node link is shut down".into(),
            ));
        }
        let peer = self
            .inner
            .peers
            .lock()
            .get(to)
            .cloned()
            .ok_or_else(|| LinkError::UnknownPeer(to.to_owned()))?;
        peer.conn().ok_or_else(|| {
            let s = peer.status();
            LinkError::Disconnected(match (s.state, s.reason) {
                (PeerState::Down, Some(r)) => format!("no connection to {to}: {r}"),
                _ => format!("no connection to {to} yet"),
            })
        })
    }

    /// A request to `to`; its response, the peer handler's error
    /// (`Remote`), or why there is none.
    pub async fn call(
        &self,
        to: &str,
        service: Service,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, LinkError> {
        self.conn(to)?.call(service, payload, timeout).await
    }

    /// A one-way message to `to`: queued on its connection (or refused).
    pub fn send(&self, to: &str, service: Service, payload: Bytes) -> Result<(), LinkError> {
        self.conn(to)?.send(service, payload)
    }

    /// Every peer we dial, by name.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut all: Vec<PeerStatus> = self
            .inner
            .peers
            .lock()
            .values()
            .map(|p| p.status())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The cluster listener's address (its port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Our outbound connection to `to`, if up (tests).
    #[cfg(test)]
    pub(crate) fn connection(&self, to: &str) -> Option<Arc<Conn>> {
        self.inner.peers.lock().get(to).and_then(|p| p.conn())
    }

    /// Stops listening and dialing and closes every connection (pending
    /// calls fail with `Disconnected`). The listener's port is free when
    /// this returns.
    pub async fn shutdown(&self) {
        let tasks = self.inner.stop();
        for t in tasks {
            // Each ends promptly once stopped; bounded regardless.
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        info!(
            "inter-node link of {} shut down",
            self.inner.shared.local.node
        );
    }
}

impl Inner {
    /// Everything that stops without waiting; returns the tasks to await.
    fn stop(&self) -> Vec<JoinHandle<()>> {
        self.shared.shut.store(true, Ordering::Release);
        let mut tasks = Vec::new();
        if let Some(a) = self.accept.lock().take() {
            a.abort();
            tasks.push(a);
        }
        let peers: Vec<Arc<Peer>> = self.peers.lock().drain().map(|(_, p)| p).collect();
        for p in peers {
            tasks.extend(p.stop("this node is shutting down"));
        }
        for c in self.shared.inbound.lock().values() {
            c.close("this node is shutting down");
        }
        tasks
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle gone: nothing keeps running for it.
        self.stop();
    }
}

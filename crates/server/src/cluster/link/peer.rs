//! One peer as this node sees it: the outbound connection to it, dialed
//! at the address our own configuration gives, redialed with backoff, and
//! its state for the failure detector.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::conn::Conn;
use super::driver::{self, Role};
use super::handshake;
use super::tls::BoxStream;
use super::{Local, NodeName};

/// The first redial's delay; doubled after each failure up to
/// [`BACKOFF_MAX`]; each actual delay is drawn from [d/2, d].
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A peer's state as the failure detector has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerState {
    /// Added; the first connection attempt is under way.
    Connecting,
    /// Connected and authenticated; heard from within `down_after`.
    Up,
    /// The last attempt failed or the connection was lost (closed, nothing
    /// heard within `down_after`, refused); redialing with backoff.
    Down,
}

/// What [`Link::peers`](super::Link::peers) reports of a peer.
#[derive(Clone, Debug)]
pub(crate) struct PeerStatus {
    pub name: NodeName,
    /// The address our configuration gives for it.
    pub addr: String,
    pub state: PeerState,
    /// When bytes last came in on our connection to it.
    pub last_heard: Option<Instant>,
    /// When `state` last changed.
    pub since: Instant,
    /// Why it is not up, if it is not (the last failure).
    pub reason: Option<String>,
}

struct Info {
    state: PeerState,
    since: Instant,
    last_heard: Option<Instant>,
    reason: Option<String>,
}

pub(super) struct Peer {
    pub name: NodeName,
    pub addr: String,
    info: Mutex<Info>,
    /// The connection while it is up.
    conn: Mutex<Option<Arc<Conn>>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Peer {
    /// Starts dialing `name` at `addr`.
    pub fn start(name: NodeName, addr: String, local: Arc<Local>) -> Arc<Peer> {
        let peer = Arc::new(Peer {
            name,
            addr,
            info: Mutex::new(Info {
                state: PeerState::Connecting,
                since: Instant::now(),
                last_heard: None,
                reason: None,
            }),
            conn: Mutex::new(None),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(dial_loop(peer.clone(), local));
        *peer.task.lock() = Some(task);
        peer
    }

    pub fn status(&self) -> PeerStatus {
        let info = self.info.lock();
        PeerStatus {
            name: self.name.clone(),
            addr: self.addr.clone(),
            state: info.state,
            last_heard: info.last_heard,
            since: info.since,
            reason: info.reason.clone(),
        }
    }

    /// The connection, if up.
    pub fn conn(&self) -> Option<Arc<Conn>> {
        self.conn.lock().clone()
    }

    pub fn heard(&self) {
        self.info.lock().last_heard = Some(Instant::now());
    }

    fn set(&self, state: PeerState, reason: Option<String>) -> PeerState {
        let mut info = self.info.lock();
        let was = info.state;
        if was != state {
            info.state = state;
            info.since = Instant::now();
        }
        if state == PeerState::Up {
            info.last_heard = Some(Instant::now());
        }
        info.reason = reason;
        was
    }

    /// Stops dialing and closes the connection (its pending calls fail
    /// now). Returns the dial task to await, once.
    pub fn stop(&self, why: &str) -> Option<JoinHandle<()>> {
        self.stop.send_replace(true);
        if let Some(c) = self.conn.lock().take() {
            c.close(why);
        }
        self.task.lock().take()
    }
}

async fn dial_loop(peer: Arc<Peer>, local: Arc<Local>) {
    let mut stop = peer.stop.subscribe();
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let attempt = tokio::select! {
            r = connect(&peer, &local) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match attempt {
            Ok(stream) => {
                last_error = None;
                let connected = Instant::now();
                let (conn, rx) = Conn::new(peer.name.clone());
                *peer.conn.lock() = Some(conn.clone());
                if *stop.borrow() {
                    // Stopped between the handshake and now.
                    conn.close("peer removed");
                    break;
                }
                peer.set(PeerState::Up, None);
                info!("inter-node link to {} ({}) up", peer.name, peer.addr);
                let why = driver::run(
                    stream,
                    conn.clone(),
                    rx,
                    Role::Outbound(peer.clone()),
                    local.heartbeat,
                    local.down_after,
                )
                .await;
                {
                    let mut current = peer.conn.lock();
                    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        *current = None;
                    }
                }
                peer.set(PeerState::Down, Some(why.clone()));
                // A connection that lasted starts the backoff over; one
                // dropped right after its handshake does not, so a peer
                // that accepts and closes is not redialed in a tight loop.
                if connected.elapsed() >= BACKOFF_MAX {
                    backoff = BACKOFF_MIN;
                }
                if *stop.borrow() {
                    break;
                }
                warn!(
                    "inter-node link to {} ({}) down: {why}; redialing",
                    peer.name, peer.addr
                );
            }
            Err(e) => {
                let was = peer.set(PeerState::Down, Some(e.clone()));
                // Once per distinct failure, not every redial.
                if last_error.as_deref() != Some(e.as_str()) || was == PeerState::Connecting {
                    warn!(
                        "inter-node connection to {} ({}) failed: {e}",
                        peer.name, peer.addr
                    );
                } else {
                    debug!(
                        "inter-node connection to {} ({}) failed: {e}",
                        peer.name, peer.addr
                    );
                }
                last_error = Some(e);
            }
        }
        let delay = jitter(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

/// TCP connect (the address resolved now), TLS if configured, and the
/// dialer's handshake, within the handshake's time limit.
async fn connect(peer: &Peer, local: &Local) -> Result<BoxStream, String> {
    let attempt = async {
        let tcp = TcpStream::connect(peer.addr.as_str())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut s: BoxStream = match &local.tls {
            Some(tls) => tls.connect(&peer.addr, tcp).await?,
            None => Box::new(tcp),
        };
        handshake::dial(&mut s, &local.secret, &local.node, &peer.name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(s)
    };
    match tokio::time::timeout(handshake::TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no handshake within {:?}", handshake::TIMEOUT)),
    }
}

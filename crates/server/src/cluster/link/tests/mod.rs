//! Links on 127.0.0.1 calling each other, through a test proxy where a
//! directed link must be cut or stalled. Every wait is bounded. Helpers
//! here; `calls`: what works; `failures`: what is refused or breaks.

mod calls;
mod failures;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{self, Frame, Kind};
use super::*;

const SECRET: &[u8] = b"the cluster secret";
/// Generous: the machine is shared with other builds.
const WAIT: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_millis(200);

/// Echoes requests with who served them; records one-way messages.
struct Echo {
    name: String,
    requests: AtomicUsize,
    messages: Mutex<Vec<(String, Service, Bytes)>>,
}

#[async_trait::async_trait]
impl Handler for Echo {
    async fn request(&self, from: &str, service: Service, payload: Bytes) -> Result<Bytes, String> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if &payload[..] == b"hang" {
            std::future::pending::<()>().await;
        }
        if &payload[..] == b"fail" {
            return Err(format!("{} refuses", self.name));
        }
        if let Some(rest) = payload.strip_prefix(b"sleep") {
            let ms = rest.first().copied().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        }
        Ok(Bytes::from(format!(
            "{}<-{}:{}:{}",
            self.name,
            from,
            service.0,
            String::from_utf8_lossy(&payload)
        )))
    }

    fn message(&self, from: &str, service: Service, payload: Bytes) {
        self.messages
            .lock()
            .push((from.to_owned(), service, payload));
    }
}

struct Node {
    link: Link,
    echo: Arc<Echo>,
}

impl Node {
    fn name(&self) -> &str {
        &self.echo.name
    }
    fn addr(&self) -> String {
        self.link.local_addr().to_string()
    }
    fn state(&self, peer: &str) -> Option<PeerState> {
        self.link
            .peers()
            .into_iter()
            .find(|p| p.name == peer)
            .map(|p| p.state)
    }
    fn reason(&self, peer: &str) -> String {
        let p = self.link.peers().into_iter().find(|p| p.name == peer);
        p.and_then(|p| p.reason).unwrap_or_default()
    }
}

async fn node_at(name: &str, listen: SocketAddr, secret: &[u8], down_after: Duration) -> Node {
    node_with(name, listen, secret, down_after, None).await
}

async fn node_with(
    name: &str,
    listen: SocketAddr,
    secret: &[u8],
    down_after: Duration,
    tls: Option<LinkTls>,
) -> Node {
    let echo = Arc::new(Echo {
        name: name.to_owned(),
        requests: AtomicUsize::new(0),
        messages: Mutex::new(Vec::new()),
    });
    let cfg = LinkConfig {
        node: name.to_owned(),
        listen,
        secret: secret.to_vec(),
        peers: Vec::new(),
        heartbeat: HEARTBEAT,
        down_after,
    };
    let link = Link::start_with_tls(cfg, echo.clone(), tls).await.unwrap();
    Node { link, echo }
}

async fn node(name: &str) -> Node {
    node_at(
        name,
        "127.0.0.1:0".parse().unwrap(),
        SECRET,
        Duration::from_secs(10),
    )
    .await
}

/// Each dials the other directly.
fn mesh(nodes: &[&Node]) {
    for a in nodes {
        for b in nodes {
            if a.name() != b.name() {
                a.link.add_peer(b.name().to_owned(), b.addr());
            }
        }
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn up(a: &Node, b: &str) {
    until(&format!("{} sees {b} up", a.name()), || {
        a.state(b) == Some(PeerState::Up)
    })
    .await;
}

/// A raw connection to `to` that has done the dialer's handshake as `from`.
async fn raw(to: &Node, from: &str) -> TcpStream {
    let mut s = TcpStream::connect(to.link.local_addr()).await.unwrap();
    handshake::dial(&mut s, SECRET, from, to.name())
        .await
        .unwrap();
    s
}

fn wire(kind: Kind, id: u64, payload: &'static [u8]) -> BytesMut {
    let mut w = BytesMut::new();
    let f = Frame {
        kind,
        service: Service::CONTROL,
        id,
        payload: Bytes::from_static(payload),
    };
    frame::encode(&f, &mut w);
    w
}

/// Reads frames until a non-heartbeat one, or `None` at EOF.
async fn next_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Frame> {
    for _ in 0..1000 {
        while let Some(f) = frame::decode(buf).unwrap() {
            if f.kind != Kind::Heartbeat {
                return Some(f);
            }
        }
        match tokio::time::timeout(CALL, s.read_buf(buf)).await.unwrap() {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    panic!("no frame in 1000 reads");
}

const FORWARD: u8 = 0;
const BLACKHOLE: u8 = 1;
/// Stops reading what the dialer sends (the other direction flows).
const STALL: u8 = 2;

/// A TCP proxy to `upstream` that can blackhole or stall.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let m = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, m.clone(), true));
                tokio::spawn(pipe(sr, cw, m.clone(), false));
            }
        });
        Proxy { addr, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
    from_dialer: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if from_dialer && mode.load(Ordering::SeqCst) == STALL {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if mode.load(Ordering::SeqCst) == BLACKHOLE {
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

//! Links on 127.0.0.1 calling each other, through a test proxy where a
//! directed link must be cut or stalled. Every wait is bounded.

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
    let link = Link::start(cfg, echo.clone()).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_links_call_and_send_both_ways() {
    let (a, b) = (node("a").await, node("b").await);
    mesh(&[&a, &b]);
    up(&a, "b").await;
    up(&b, "a").await;

    let r = a
        .link
        .call("b", Service::CONTROL, Bytes::from("hi"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:2:hi");
    let r = b
        .link
        .call("a", Service::RAFT, Bytes::from("yo"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"a<-b:1:yo");
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("fail"), CALL)
        .await;
    assert!(
        matches!(&r, Err(LinkError::Remote(t)) if t == "b refuses"),
        "{r:?}"
    );
    // An empty payload is a payload.
    let r = a.link.call("b", Service::FORWARD, Bytes::new(), CALL).await;
    assert_eq!(&r.unwrap()[..], b"b<-a:3:");

    for i in 0..10u8 {
        a.link
            .send("b", Service::FORWARD, Bytes::from(vec![i]))
            .unwrap();
    }
    until("b gets 10 messages", || b.echo.messages.lock().len() == 10).await;
    let got = b.echo.messages.lock().clone();
    for (i, (from, service, payload)) in got.into_iter().enumerate() {
        assert_eq!((from.as_str(), service), ("a", Service::FORWARD));
        assert_eq!(
            &payload[..],
            &[i as u8],
            "one-way messages keep their order"
        );
    }

    let r = a
        .link
        .call("nobody", Service::RAFT, Bytes::new(), CALL)
        .await;
    assert!(matches!(r, Err(LinkError::UnknownPeer(n)) if n == "nobody"));
    assert!(matches!(
        a.link.send("nobody", Service::RAFT, Bytes::new()),
        Err(LinkError::UnknownPeer(_))
    ));
    let s = &a.link.peers()[0];
    assert_eq!((s.name.as_str(), s.addr.clone()), ("b", b.addr()));
    assert!(s.last_heard.is_some());

    // A timeout, then the connection still works.
    let r = a
        .link
        .call(
            "b",
            Service::RAFT,
            Bytes::from("hang"),
            Duration::from_millis(200),
        )
        .await;
    assert!(matches!(r, Err(LinkError::Timeout(_))), "{r:?}");
    let r = a
        .link
        .call("b", Service::CONTROL, Bytes::from("again"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:2:again");

    // Forgetting a peer fails its pending calls now and stops dialing it.
    let pending = {
        let link = a.link.clone();
        tokio::spawn(async move {
            link.call("b", Service::RAFT, Bytes::from("hang"), WAIT)
                .await
        })
    };
    until("b serves the hanging call", || {
        b.echo.requests.load(Ordering::SeqCst) >= 6
    })
    .await;
    a.link.remove_peer("b");
    let r = tokio::time::timeout(CALL, pending).await.unwrap().unwrap();
    assert!(matches!(r, Err(LinkError::Disconnected(_))), "{r:?}");
    assert!(a.link.peers().is_empty());
    let r = a.link.call("b", Service::RAFT, Bytes::new(), CALL).await;
    assert!(matches!(r, Err(LinkError::UnknownPeer(_))), "{r:?}");
    // b's connection to a was closed too; b redials (a accepts any node
    // with the secret: membership is decided above the link).
    let deadline = Instant::now() + WAIT;
    loop {
        match b
            .link
            .call("a", Service::RAFT, Bytes::from("still"), CALL)
            .await
        {
            Ok(r) => break assert_eq!(&r[..], b"a<-b:1:still"),
            Err(LinkError::Disconnected(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    a.link.shutdown().await;
    b.link.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_links_concurrent_calls_are_correlated() {
    let (a, b, c) = (node("a").await, node("b").await, node("c").await);
    mesh(&[&a, &b, &c]);
    let nodes = [&a, &b, &c];
    for x in nodes {
        for y in nodes {
            if x.name() != y.name() {
                up(x, y.name()).await;
            }
        }
    }
    let mut calls = Vec::new();
    for x in nodes {
        for y in nodes {
            if x.name() == y.name() {
                continue;
            }
            for i in 0..100u32 {
                let link = x.link.clone();
                let to = y.name().to_owned();
                // Varied delays, so responses come back out of order.
                let mut p = vec![b's', b'l', b'e', b'e', b'p', (i * 7 % 23) as u8];
                p.extend_from_slice(format!("#{i}").as_bytes());
                let expect = format!("{to}<-{}:3:{}", x.name(), String::from_utf8_lossy(&p));
                calls.push(tokio::spawn(async move {
                    let r = link.call(&to, Service::FORWARD, Bytes::from(p), CALL).await;
                    assert_eq!(String::from_utf8_lossy(&r.unwrap()), expect);
                }));
            }
        }
    }
    assert_eq!(calls.len(), 600);
    for c in calls {
        c.await.unwrap();
    }
    for x in nodes {
        assert_eq!(x.echo.requests.load(Ordering::SeqCst), 200);
        x.link.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_both_ways_and_nothing_is_served() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let long = Duration::from_secs(10);
    let a = node_at("a", any, b"one secret", long).await;
    let b = node_at("b", any, b"another secret", long).await;
    mesh(&[&a, &b]);
    for (x, y) in [(&a, "b"), (&b, "a")] {
        until(&format!("{} refused by {y}", x.name()), || {
            x.state(y) == Some(PeerState::Down) && x.reason(y).contains("wrong cluster secret")
        })
        .await;
    }
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert!(matches!(r, Err(LinkError::Disconnected(_))), "{r:?}");
    assert!(matches!(
        b.link.send("a", Service::RAFT, Bytes::from("x")),
        Err(LinkError::Disconnected(_))
    ));
    // A dialer without the secret gets nothing served either.
    let mut s = TcpStream::connect(b.link.local_addr()).await.unwrap();
    let e = handshake::dial(&mut s, b"guess", "a", "b")
        .await
        .unwrap_err();
    assert!(matches!(e, handshake::HandshakeError::WrongSecret), "{e}");
    for x in [&a, &b] {
        assert_eq!(x.echo.requests.load(Ordering::SeqCst), 0);
        assert!(x.echo.messages.lock().is_empty());
        assert_ne!(
            x.state(if x.name() == "a" { "b" } else { "a" }),
            Some(PeerState::Up)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_for_another_node_is_refused() {
    let (a, b) = (node("a").await, node("b").await);
    // a's configuration says "c" lives where b listens.
    a.link.add_peer("c".into(), b.addr());
    until("a refused by b for c", || {
        a.state("c") == Some(PeerState::Down) && a.reason("c").contains("addressed to node 'c'")
    })
    .await;
    assert_eq!(b.echo.requests.load(Ordering::SeqCst), 0);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_crc_closes_the_connection() {
    let b = node("b").await;
    let mut s = raw(&b, "x").await;
    let mut buf = BytesMut::new();
    s.write_all(&wire(Kind::Request, 41, b"ping"))
        .await
        .unwrap();
    let f = next_frame(&mut s, &mut buf).await.unwrap();
    assert_eq!(
        (f.kind, f.id, &f.payload[..]),
        (Kind::ResponseOk, 41, &b"b<-x:2:ping"[..])
    );
    let mut bad = wire(Kind::Request, 42, b"pong");
    let last = bad.len() - 1;
    bad[last] ^= 0x20;
    bad.extend_from_slice(&wire(Kind::Request, 43, b"after"));
    s.write_all(&bad).await.unwrap();
    assert_eq!(
        next_frame(&mut s, &mut buf).await,
        None,
        "closed, nothing served"
    );
    assert_eq!(b.echo.requests.load(Ordering::SeqCst), 1);

    // An oversize length and a response sent to the acceptor close it too.
    let mut s = raw(&b, "x").await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(next_frame(&mut s, &mut buf).await, None);
    let mut s = raw(&b, "x").await;
    s.write_all(&wire(Kind::ResponseOk, 1, b"")).await.unwrap();
    assert_eq!(next_frame(&mut s, &mut buf).await, None);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_makes_send_fail_with_overloaded() {
    // b must not give up on the silent a while the proxy stalls.
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let slow = Duration::from_secs(60);
    let (a, b) = (
        node_at("a", any, SECRET, slow).await,
        node_at("b", any, SECRET, slow).await,
    );
    let proxy = Proxy::start(b.link.local_addr()).await;
    a.link.add_peer("b".into(), proxy.addr.to_string());
    up(&a, "b").await;
    proxy.set(STALL);
    let mb = Bytes::from(vec![7u8; 1 << 20]);
    let mut refused = None;
    // 64 MiB queued plus what the kernel buffers: well under 400.
    for i in 0..400 {
        match a.link.send("b", Service::FORWARD, mb.clone()) {
            Ok(()) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = refused.expect("send never refused");
    assert!(matches!(e, LinkError::Overloaded(_)), "{e:?}");
    // Refused at the bound (64 frames of 1 MiB and a header are over it),
    // not before.
    assert!(i >= 63, "refused after {i} MiB only");
    let queued = a.link.connection("b").unwrap().queued();
    assert!(queued <= conn::MAX_QUEUED_BYTES, "{queued} bytes queued");
    // Once the writer is stuck too (kernel buffers full), a call that
    // does not fit is refused as well, at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..100 {
        if a.link.send("b", Service::FORWARD, mb.clone()).is_err() {
            break;
        }
    }
    let two = Bytes::from(vec![1u8; 2 << 20]);
    let r = a.link.call("b", Service::RAFT, two, CALL).await;
    assert!(matches!(r, Err(LinkError::Overloaded(_))), "{r:?}");
    // Reading again drains it.
    proxy.set(FORWARD);
    until("the queue drains", || {
        a.link.connection("b").is_some_and(|c| c.queued() == 0)
    })
    .await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:1:x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_fails_pending_calls_and_is_redialed_when_back() {
    let (a, b) = (node("a").await, node("b").await);
    mesh(&[&a, &b]);
    up(&a, "b").await;
    let pending = {
        let link = a.link.clone();
        tokio::spawn(async move {
            link.call("b", Service::RAFT, Bytes::from("hang"), WAIT)
                .await
        })
    };
    until("b serves the call", || {
        b.echo.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    let b_addr = b.link.local_addr();
    b.link.shutdown().await;
    let r = tokio::time::timeout(CALL, pending).await.unwrap().unwrap();
    assert!(matches!(r, Err(LinkError::Disconnected(_))), "{r:?}");
    until("a sees b down", || a.state("b") == Some(PeerState::Down)).await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert!(matches!(r, Err(LinkError::Disconnected(_))), "{r:?}");

    // b comes back on the same port.
    let b2 = node_at("b", b_addr, SECRET, Duration::from_secs(10)).await;
    b2.link.add_peer("a".into(), a.addr());
    up(&a, "b").await;
    up(&b2, "a").await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("back"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:1:back");
    let r = b2
        .link
        .call("a", Service::RAFT, Bytes::from("hello"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"a<-b:1:hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_link_is_down_then_up_again() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // a's detector is the one under test: b (slower to give up on its
    // inbound connection) does not close it first.
    let a = node_at("a", any, SECRET, Duration::from_millis(1500)).await;
    let b = node_at("b", any, SECRET, Duration::from_secs(30)).await;
    // a reaches b through the proxy; b reaches a directly.
    let proxy = Proxy::start(b.link.local_addr()).await;
    a.link.add_peer("b".into(), proxy.addr.to_string());
    b.link.add_peer("a".into(), a.addr());
    up(&a, "b").await;
    up(&b, "a").await;
    proxy.set(BLACKHOLE);
    until("a sees b down", || a.state("b") == Some(PeerState::Down)).await;
    assert!(a.reason("b").contains("nothing heard"), "{}", a.reason("b"));
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert!(matches!(r, Err(LinkError::Disconnected(_))), "{r:?}");
    // Only a's requests are cut: b still calls a.
    let r = b
        .link
        .call("a", Service::RAFT, Bytes::from("y"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"a<-b:1:y");
    proxy.set(FORWARD);
    up(&a, "b").await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("z"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:1:z");
}

#[tokio::test]
async fn start_refuses_a_taken_port_naming_it() {
    let a = node("a").await;
    let addr = a.link.local_addr();
    let echo: Arc<dyn Handler> = a.echo.clone();
    let cfg = LinkConfig {
        node: "b".into(),
        listen: addr,
        secret: SECRET.to_vec(),
        peers: Vec::new(),
        heartbeat: Duration::from_secs(1),
        down_after: Duration::from_secs(5),
    };
    let e = Link::start(cfg, echo).await.err().expect("port taken");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded() {
    let (a, b) = (node("a").await, node("b").await);
    a.link.add_peer("b".into(), b.addr());
    up(&a, "b").await;
    let mut hanging = Vec::new();
    for _ in 0..conn::MAX_IN_FLIGHT {
        let link = a.link.clone();
        hanging.push(tokio::spawn(async move {
            link.call("b", Service::RAFT, Bytes::from("hang"), WAIT)
                .await
        }));
    }
    until("every hanging call is pending", || {
        b.echo.requests.load(Ordering::SeqCst) == conn::MAX_IN_FLIGHT
    })
    .await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert!(matches!(r, Err(LinkError::Overloaded(_))), "{r:?}");
    // One-way messages are bounded by bytes only.
    a.link
        .send("b", Service::FORWARD, Bytes::from("m"))
        .unwrap();
    until("b gets the message", || b.echo.messages.lock().len() == 1).await;
    // Cancelled calls leave no trace at the dialer: room again there...
    for h in &hanging {
        h.abort();
    }
    for h in hanging {
        let _ = h.await;
    }
    // ...but b still runs the abandoned requests: it answers "busy"
    // rather than spawn more, and the connection stays.
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert!(
        matches!(&r, Err(LinkError::Remote(t)) if t.contains("busy")),
        "{r:?}"
    );
    a.link
        .send("b", Service::FORWARD, Bytes::from("n"))
        .unwrap();
    until("b gets the message", || b.echo.messages.lock().len() == 2).await;
    assert_eq!(a.state("b"), Some(PeerState::Up));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_dialer_is_closed_after_the_handshake_limit() {
    let b = node("b").await;
    let mut s = TcpStream::connect(b.link.local_addr()).await.unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(WAIT, s.read(&mut byte)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(started.elapsed() >= handshake::TIMEOUT - Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_link_stays_up_on_heartbeats() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let short = Duration::from_millis(1000);
    let a = node_at("a", any, SECRET, short).await;
    let b = node_at("b", any, SECRET, short).await;
    mesh(&[&a, &b]);
    up(&a, "b").await;
    up(&b, "a").await;
    let since = a.link.peers()[0].since;
    // Three times down_after with nothing but heartbeats.
    tokio::time::sleep(3 * short).await;
    let s = &a.link.peers()[0];
    assert_eq!((s.state, s.since), (PeerState::Up, since), "{:?}", s.reason);
    assert!(s.last_heard.unwrap() > since);
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:1:x");
}

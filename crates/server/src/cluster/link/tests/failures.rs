//! Refusals, broken frames, stalled, killed and cut peers.

use super::*;

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

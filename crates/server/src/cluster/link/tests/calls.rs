//! Calls and messages between working links, and their bounds.

use super::*;

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
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("the cluster secret"), "{shown}");
    let e = Link::start(cfg, echo).await.err().expect("port taken");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

/// A rough figure, not an assertion: `cargo test --release -p warren-server
/// --lib cluster::link::tests::calls::throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let (a, b) = (node("a").await, node("b").await);
    a.link.add_peer("b".into(), b.addr());
    up(&a, "b").await;
    for size in [16usize, 1024, 64 * 1024] {
        let payload = Bytes::from(vec![0u8; size]);
        let (tasks, per_task) = (64, 500);
        let started = Instant::now();
        let mut all = Vec::new();
        for _ in 0..tasks {
            let (link, p) = (a.link.clone(), payload.clone());
            all.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    link.call("b", Service::RAFT, p.clone(), CALL)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in all {
            t.await.unwrap();
        }
        let n = tasks * per_task;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{size:>6} B: {n} calls in {secs:.2}s = {:.0} calls/s",
            n as f64 / secs
        );
        let started = Instant::now();
        let sends = 200_000usize.min((256 << 20) / size);
        for _ in 0..sends {
            while a.link.send("b", Service::FORWARD, payload.clone()).is_err() {
                tokio::task::yield_now().await;
            }
        }
        until("every message arrives", || {
            b.echo.messages.lock().len() == sends
        })
        .await;
        b.echo.messages.lock().clear();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{size:>6} B: {sends} one-way in {secs:.2}s = {:.0} msgs/s",
            sends as f64 / secs
        );
    }
}

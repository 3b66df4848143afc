//! The link inside mutual TLS on a cluster CA.

use super::*;
use crate::cluster::link::tls::fixtures;

async fn tls_node(name: &str, tls: Option<LinkTls>) -> Node {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    node_with(name, any, SECRET, Duration::from_secs(10), tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_links_call_each_other() {
    let a = tls_node("a", Some(fixtures::cluster())).await;
    let b = tls_node("b", Some(fixtures::cluster())).await;
    // By IP address (a SAN of the certificate) one way, by DNS name the
    // other.
    a.link.add_peer("b".into(), b.addr());
    let port = a.link.local_addr().port();
    b.link.add_peer("a".into(), format!("localhost:{port}"));
    up(&a, "b").await;
    up(&b, "a").await;
    let r = a
        .link
        .call("b", Service::RAFT, Bytes::from("x"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"b<-a:1:x");
    let r = b
        .link
        .call("a", Service::CONTROL, Bytes::from("y"), CALL)
        .await;
    assert_eq!(&r.unwrap()[..], b"a<-b:2:y");
    a.link
        .send("b", Service::FORWARD, Bytes::from("m"))
        .unwrap();
    until("b gets the message", || b.echo.messages.lock().len() == 1).await;
}

/// `x` dials `y` and is refused, with `why` in its reason; nothing served.
async fn refused(x: &Node, y: &Node, why: &str) {
    x.link.add_peer(y.name().to_owned(), y.addr());
    let what = format!("{} refused by {} ({why})", x.name(), y.name());
    until(&what, || {
        x.state(y.name()) == Some(PeerState::Down) && x.reason(y.name()).contains(why)
    })
    .await;
    assert_eq!(y.echo.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plain_nodes_do_not_talk() {
    let t = tls_node("t", Some(fixtures::cluster())).await;
    let p = tls_node("p", None).await;
    // The plain HELLO is not a TLS ClientHello: t closes.
    refused(&p, &t, "closed during the handshake").await;
    // A ClientHello is not a HELLO: p refuses.
    refused(&t, &p, "handshake").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_both_ways() {
    let good = tls_node("good", Some(fixtures::cluster())).await;
    let rogue = tls_node("rogue", Some(fixtures::rogue())).await;
    refused(&good, &rogue, "TLS handshake failed").await;
    refused(&rogue, &good, "TLS handshake failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_tls_the_secret_is_still_checked() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let long = Duration::from_secs(10);
    let a = node_with("a", any, SECRET, long, Some(fixtures::cluster())).await;
    let b = node_with("b", any, b"other", long, Some(fixtures::cluster())).await;
    refused(&a, &b, "wrong cluster secret").await;
}

//! The in-process management harness the `management` fuzz target drives
//! (`warren_server::fuzzing`) really reaches the API: real statuses for
//! good and bad bodies, and state that later requests see.

use warren_server::fuzzing::Management;

#[test]
fn the_fuzz_harness_reaches_the_real_api() {
    let api = Management::new().expect("scratch broker");
    let declare = br#"{"durable":true,"arguments":{"x-max-length":3}}"#;
    assert_eq!(api.request("PUT", "/api/queues/%2F/a", declare), 201);
    assert_eq!(api.request("PUT", "/api/queues/%2F/a", declare), 204);
    // Not JSON, a wrong type, an out-of-range argument: 400s.
    assert_eq!(api.request("PUT", "/api/queues/%2F/b", b"{"), 400);
    assert_eq!(
        api.request("PUT", "/api/queues/%2F/b", br#"{"durable":"yes"}"#),
        400
    );
    let publish =
        br#"{"properties":{},"routing_key":"a","payload":"hi","payload_encoding":"string"}"#;
    assert_eq!(
        api.request("POST", "/api/exchanges/%2F/amq.default/publish", publish),
        200
    );
    let get = br#"{"count":5,"ackmode":"ack_requeue_false","encoding":"auto"}"#;
    assert_eq!(api.request("POST", "/api/queues/%2F/a/get", get), 200);
    assert_eq!(api.request("DELETE", "/api/queues/%2F/a", b""), 204);
    assert_eq!(api.request("DELETE", "/api/queues/%2F/a", b""), 404);
    // A body that deletes the harness's own user: it is restored, so the
    // next request still gets in.
    let bulk = br#"{"users":["fuzz-admin"]}"#;
    assert_eq!(api.request("POST", "/api/users/bulk-delete", bulk), 204);
    assert_eq!(api.request("GET", "/api/overview", b""), 401);
    assert_eq!(api.request("GET", "/api/overview", b""), 200);
}

/// The `connection` target's harness: a real broker on loopback that
/// answers what follows the handshake, and survives garbage.
#[test]
fn the_connection_harness_reaches_a_real_broker() {
    use warren_server::fuzzing::Amqp;
    let broker = Amqp::new().expect("scratch broker");
    // After the handshake, nothing sent: nothing more answered.
    assert_eq!(broker.feed(b""), 0);
    // channel.open on channel 1: channel.open-ok (16 bytes: a 7-byte
    // header, class and method, an empty long string, the frame end).
    let open = [1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xce];
    assert_eq!(broker.feed(&open), 7 + 8 + 1);
    // Garbage: a connection.close with 501 (and then nothing), and the
    // broker still takes new connections (feed checks).
    assert!(broker.feed(b"\x09garbage\xce") > 0);
}

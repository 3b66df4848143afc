//! Malformed input on a raw socket (no client library): the broker must
//! answer with the right connection.close, or hang up, and never hang; a
//! well-behaved lapin connection opened before keeps working.

mod common;

use std::time::Duration;

use common::bystander::Bystander;
use common::raw::*;
use common::{bounded, run_test, unique, TestBroker, STEP};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio::time::Instant;

// ---- tests ----------------------------------------------------------------

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_then_eof() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        for header in [
            &b"AMQP\x00\x00\x09\x00"[..],
            b"AMQP\x00\x00\x08\x00",
            b"AMQP\x00\x01\x00\x00",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            let mut c = Raw::connect(&broker).await;
            c.send(header).await;
            let deadline = Instant::now() + STEP;
            while c.fill(deadline).await {}
            assert_eq!(c.buf, PROTOCOL_HEADER, "reply to header {header:?}");
        }
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn method_frame_larger_than_frame_max_is_501() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        // A frame header announcing 131104 octets; the broker must not wait
        // for them.
        let mut bytes = vec![FRAME_METHOD, 0, 1];
        bytes.extend_from_slice(&131_104u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 50, 0, 10]);
        c.send(&bytes).await;
        assert_eq!(
            c.expect_connection_close().await,
            Close {
                code: 501,
                text: "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131104,131064}"
                    .into(),
                class_id: 0,
                method_id: 0,
            }
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn body_frame_larger_than_negotiated_frame_max_is_501() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let (mut c, _) = Raw::handshake(&broker, 2047, 4096, 0).await;
        c.open_channel(1).await;
        c.send(&method(1, 60, 40, &basic_publish_args("", "nowhere")))
            .await;
        c.send(&frame(FRAME_HEADER, 1, &content_header(10_000)))
            .await;
        c.send(&frame(FRAME_BODY, 1, &[b'x'; 10_000])).await;
        assert_eq!(
            c.expect_connection_close().await,
            Close {
                code: 501,
                text: "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,10000,4088}"
                    .into(),
                class_id: 0,
                method_id: 0,
            }
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn bad_frame_end_octet_is_501() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        let mut bytes = channel_open(1);
        *bytes.last_mut().unwrap() = 0x00;
        c.send(&bytes).await;
        let close = c.expect_connection_close().await;
        assert_eq!((close.code, close.class_id, close.method_id), (501, 0, 0));
        assert!(
            close
                .text
                .starts_with("FRAME_ERROR - type 1, all octets = <<")
                && close.text.contains("invalid_frame_end_marker,")
                && close.text.ends_with("0}"),
            "{close:?}"
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_frame_type_is_501() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        c.send(&frame(7, 1, b"abc")).await;
        let close = c.expect_connection_close().await;
        assert_eq!((close.code, close.class_id, close.method_id), (501, 0, 0));
        // RabbitMQ prints the octets (`<<"abc">>`); the frame type and the
        // reason are what matter.
        assert!(
            close
                .text
                .starts_with("FRAME_ERROR - type 7, all octets = <<")
                && close.text.ends_with(">>: unknown_frame"),
            "{close:?}"
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_class_or_method_is_540() {
    // RabbitMQ 3.10 drops the socket; Warren sends 540 NOT_IMPLEMENTED.
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        for (class_id, method_id) in [(9999u16, 1u16), (50, 99)] {
            let mut c = Raw::open(&broker).await;
            c.open_channel(1).await;
            c.send(&method(1, class_id, method_id, &[])).await;
            let close = c.expect_connection_close().await;
            assert_eq!(close.code, 540, "{close:?}");
            assert!(close.text.starts_with("NOT_IMPLEMENTED - "), "{close:?}");
            assert_eq!((close.class_id, close.method_id), (class_id, method_id));
        }
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn truncated_method_payload_is_502() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        let args = queue_declare_args("some-queue", 0, &table(&[]));
        // Cut inside the queue name.
        c.send(&method(1, 50, 10, &args[..6])).await;
        let close = c.expect_connection_close().await;
        assert_eq!(close.code, 502, "{close:?}");
        assert!(close.text.starts_with("SYNTAX_ERROR - "), "{close:?}");
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_field_table_is_502() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let q = unique("bad-table");
        // An unknown field type tag.
        let mut bad_type = shortstr("x-foo");
        bad_type.push(b'Z');
        bad_type.extend_from_slice(&[0, 0, 0, 1]);
        // A table whose length runs past the end of the frame.
        let mut overlong = 1000u32.to_be_bytes().to_vec();
        overlong.extend(shortstr("x-foo"));
        overlong.push(b't');
        overlong.push(1);
        // A value cut short inside the table (long string of 100 octets,
        // 3 present).
        let mut short_value = shortstr("x-foo");
        short_value.push(b'S');
        short_value.extend_from_slice(&100u32.to_be_bytes());
        short_value.extend_from_slice(b"abc");
        for arguments in [table(&bad_type), overlong, table(&short_value)] {
            let mut c = Raw::open(&broker).await;
            c.open_channel(1).await;
            c.send(&method(1, 50, 10, &queue_declare_args(&q, 0, &arguments)))
                .await;
            let close = c.expect_connection_close().await;
            assert_eq!(close.code, 502, "{close:?}");
            assert!(close.text.starts_with("SYNTAX_ERROR - "), "{close:?}");
        }
        // Nothing was declared.
        let ch = by.conn.create_channel().await.unwrap();
        let r = ch
            .queue_declare(
                &q,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        common::assert_amqp_error(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn body_frame_without_header_is_505() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        c.send(&frame(FRAME_BODY, 1, b"hello")).await;
        assert_eq!(
            c.expect_connection_close().await,
            Close {
                code: 505,
                text: "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
                    .into(),
                class_id: 0,
                method_id: 0,
            }
        );
        // And a body right after basic.publish (header missing).
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        c.send(&method(1, 60, 40, &basic_publish_args("", "nowhere")))
            .await;
        c.send(&frame(FRAME_BODY, 1, b"hello")).await;
        let close = c.expect_connection_close().await;
        assert_eq!(
            (close.code, close.class_id, close.method_id),
            (505, 60, 40),
            "{close:?}"
        );
        assert_eq!(
            close.text,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_504() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        let args = queue_declare_args(&unique("q"), 0b100, &table(&[]));
        c.send(&method(5, 50, 10, &args)).await;
        assert_eq!(
            c.expect_connection_close().await,
            Close {
                code: 504,
                text: "CHANNEL_ERROR - expected 'channel.open'".into(),
                class_id: 50,
                method_id: 10,
            }
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn heartbeat_on_nonzero_channel_is_505() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        c.send(&frame(FRAME_HEARTBEAT, 1, &[])).await;
        assert_eq!(
            c.expect_connection_close().await,
            Close {
                code: 505,
                text: "UNEXPECTED_FRAME - type 8, all octets = <<>>".into(),
                class_id: 0,
                method_id: 0,
            }
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn channel_number_above_channel_max_is_504() {
    // RabbitMQ 3.10 only limits the count; Warren also bounds the number.
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let (mut c, _) = Raw::handshake(&broker, 2, 131_072, 0).await;
        c.send(&channel_open(5)).await;
        let close = c.expect_connection_close().await;
        assert_eq!(close.code, 504, "{close:?}");
        assert!(close.text.starts_with("CHANNEL_ERROR - "), "{close:?}");
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn more_channels_than_channel_max_is_530() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let (mut c, _) = Raw::handshake(&broker, 2, 131_072, 0).await;
        c.open_channel(1).await;
        c.open_channel(2).await;
        c.send(&channel_open(3)).await;
        let close = c.expect_connection_close().await;
        assert_eq!(
            (close.code, close.text.as_str()),
            (
                530,
                "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
            ),
            "{close:?}"
        );
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn broker_channel_max_flag_is_proposed_and_enforced() {
    let broker = TestBroker::start_with(&["--channel-max", "3", "--frame-max", "8192"], &[]);
    run_test(async {
        let (mut c, proposed) = Raw::handshake(&broker, 0, 0, 0).await;
        assert_eq!((proposed.0, proposed.1), (3, 8192));
        for ch in 1..=3 {
            c.open_channel(ch).await;
        }
        c.send(&channel_open(4)).await;
        let close = c.expect_connection_close().await;
        assert_eq!(close.code, 530, "{close:?}");
    })
    .await;
}

#[tokio::test]
async fn silent_client_after_header_is_closed_by_handshake_timeout() {
    let broker = TestBroker::start();
    // Longer than the usual bound: the broker's handshake timeout is 10 s.
    bounded(Duration::from_secs(20), "the silent-client test", async {
        let by = Bystander::open(&broker).await;
        let mut c = Raw::connect(&broker).await;
        c.send(PROTOCOL_HEADER).await;
        c.expect_method(0, (10, 10)).await;
        // Nothing more: the handshake timeout must end it.
        c.expect_eof(Duration::from_secs(15)).await;
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn peer_without_heartbeats_is_disconnected() {
    let broker = TestBroker::start();
    run_test(async {
        let by = Bystander::open(&broker).await;
        let (mut c, _) = Raw::handshake(&broker, 2047, 131_072, 1).await;
        c.open_channel(1).await;
        // We never send a heartbeat (the broker's own are skipped): two
        // missed intervals end the connection. Generous upper bound.
        c.expect_eof(Duration::from_millis(4500)).await;
        by.assert_works().await;
    })
    .await;
}

#[tokio::test]
async fn well_behaved_raw_client_publishes_and_gets() {
    // The encoder itself is right: a valid publish and basic.get round trip.
    let broker = TestBroker::start();
    run_test(async {
        let mut c = Raw::open(&broker).await;
        c.open_channel(1).await;
        let q = unique("raw-ok");
        c.send(&method(1, 50, 10, &queue_declare_args(&q, 0, &table(&[]))))
            .await;
        c.expect_method(1, (50, 11)).await;
        c.send(&method(1, 60, 40, &basic_publish_args("", &q)))
            .await;
        c.send(&frame(FRAME_HEADER, 1, &content_header(5))).await;
        c.send(&frame(FRAME_BODY, 1, b"hello")).await;
        let mut get = 0u16.to_be_bytes().to_vec();
        get.extend(shortstr(&q));
        get.push(1); // no-ack
                     // The publish is asynchronous: poll until the message is there.
        let body = loop {
            c.send(&method(1, 60, 70, &get)).await;
            let f = c.read_method().await;
            match f.ids() {
                (60, 72) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                (60, 71) => {}
                other => panic!("unexpected {other:?}"),
            }
            let Read::Frame(h) = c.read(STEP).await else {
                panic!("eof")
            };
            assert_eq!(h.kind, FRAME_HEADER);
            let Read::Frame(b) = c.read(STEP).await else {
                panic!("eof")
            };
            assert_eq!(b.kind, FRAME_BODY);
            break b.payload;
        };
        assert_eq!(body, b"hello");
        // A clean close.
        let mut close = 200u16.to_be_bytes().to_vec();
        close.extend(shortstr("bye"));
        close.extend_from_slice(&[0, 0, 0, 0]);
        c.send(&method(0, 10, 50, &close)).await;
        c.expect_method(0, (10, 51)).await;
        c.expect_eof(STEP).await;
    })
    .await;
}

//! Malformed input on a raw socket (no client library): the broker must
//! answer with the right connection.close, or hang up, and never hang; a
//! well-behaved lapin connection opened before keeps working.

mod common;

use std::time::Duration;

use common::{bounded, run_test, unique, TestBroker, STEP};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

// ---- a tiny encoder -------------------------------------------------------

fn shortstr(s: &str) -> Vec<u8> {
    assert!(s.len() < 256);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn longstr(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// A field table from already-encoded entries.
fn table(entries: &[u8]) -> Vec<u8> {
    longstr(entries)
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

fn method(channel: u16, class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class_id.to_be_bytes().to_vec();
    p.extend_from_slice(&method_id.to_be_bytes());
    p.extend_from_slice(args);
    frame(FRAME_METHOD, channel, &p)
}

fn channel_open(channel: u16) -> Vec<u8> {
    method(channel, 20, 10, &shortstr(""))
}

/// queue.declare arguments: ticket, name, bits, arguments table.
fn queue_declare_args(name: &str, bits: u8, arguments: &[u8]) -> Vec<u8> {
    let mut v = 0u16.to_be_bytes().to_vec();
    v.extend(shortstr(name));
    v.push(bits);
    v.extend_from_slice(arguments);
    v
}

fn basic_publish_args(exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut v = 0u16.to_be_bytes().to_vec();
    v.extend(shortstr(exchange));
    v.extend(shortstr(routing_key));
    v.push(0);
    v
}

/// A basic content header with no properties.
fn content_header(body_size: u64) -> Vec<u8> {
    let mut v = 60u16.to_be_bytes().to_vec();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&body_size.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v
}

// ---- a raw connection -----------------------------------------------------

struct Frame {
    kind: u8,
    channel: u16,
    payload: Vec<u8>,
}

impl Frame {
    fn ids(&self) -> (u16, u16) {
        assert_eq!(self.kind, FRAME_METHOD, "not a method frame");
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        )
    }
}

/// connection.close arguments.
#[derive(Debug, PartialEq)]
struct Close {
    code: u16,
    text: String,
    class_id: u16,
    method_id: u16,
}

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Read {
    Frame(Frame),
    Eof,
}

impl Raw {
    async fn connect(broker: &TestBroker) -> Raw {
        let stream = bounded(
            STEP,
            "tcp connect",
            TcpStream::connect(("127.0.0.1", broker.port)),
        )
        .await
        .expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes, ignoring errors: the broker may already have hung up.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = bounded(STEP, "a socket write", self.stream.write_all(bytes)).await;
    }

    /// Reads more bytes; false on EOF (or reset).
    async fn fill(&mut self, deadline: Instant) -> bool {
        self.buf.reserve(64 * 1024);
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(_)) => true,
            Err(_) => panic!("the broker neither answered nor closed the socket in time"),
        }
    }

    /// The next frame, or EOF; panics if nothing happens within `limit`.
    async fn read(&mut self, limit: Duration) -> Read {
        let deadline = Instant::now() + limit;
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]])
                    as usize;
                if self.buf.len() >= 8 + size {
                    let f: Vec<u8> = self.buf.drain(..8 + size).collect();
                    assert_eq!(f[7 + size], FRAME_END, "broker sent a bad frame end");
                    return Read::Frame(Frame {
                        kind: f[0],
                        channel: u16::from_be_bytes([f[1], f[2]]),
                        payload: f[7..7 + size].to_vec(),
                    });
                }
            }
            if !self.fill(deadline).await {
                return Read::Eof;
            }
        }
    }

    /// The next method frame, skipping heartbeats.
    async fn read_method(&mut self) -> Frame {
        loop {
            match self.read(STEP).await {
                Read::Frame(f) if f.kind == FRAME_HEARTBEAT => continue,
                Read::Frame(f) => return f,
                Read::Eof => panic!("connection closed while a method frame was expected"),
            }
        }
    }

    async fn expect_method(&mut self, channel: u16, ids: (u16, u16)) -> Frame {
        let f = self.read_method().await;
        assert_eq!((f.channel, f.ids()), (channel, ids), "unexpected method");
        f
    }

    /// Expects connection.close, answers close-ok and expects the broker to
    /// hang up.
    async fn expect_connection_close(&mut self) -> Close {
        let f = self.read_method().await;
        assert_eq!(
            (f.channel, f.ids()),
            (0, (10, 50)),
            "expected connection.close"
        );
        let p = &f.payload[4..];
        let code = u16::from_be_bytes([p[0], p[1]]);
        let n = p[2] as usize;
        let text = String::from_utf8(p[3..3 + n].to_vec()).expect("utf-8 reply text");
        let rest = &p[3 + n..];
        let close = Close {
            code,
            text,
            class_id: u16::from_be_bytes([rest[0], rest[1]]),
            method_id: u16::from_be_bytes([rest[2], rest[3]]),
        };
        self.send(&method(0, 10, 51, &[])).await;
        self.expect_eof(STEP).await;
        close
    }

    /// Expects the broker to close the socket within `limit` (frames it
    /// sends meanwhile, such as heartbeats, are skipped).
    async fn expect_eof(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Read::Eof = self.read(left).await {
                return;
            }
        }
    }

    /// The handshake up to connection.open-ok, as guest on vhost `/`.
    /// Returns the tune values the broker proposed.
    async fn handshake(
        broker: &TestBroker,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> (Raw, (u16, u32, u16)) {
        let mut c = Raw::connect(broker).await;
        c.send(PROTOCOL_HEADER).await;
        c.expect_method(0, (10, 10)).await;
        let mut start_ok = table(&[]);
        start_ok.extend(shortstr("PLAIN"));
        start_ok.extend(longstr(b"\0guest\0guest"));
        start_ok.extend(shortstr("en_US"));
        c.send(&method(0, 10, 11, &start_ok)).await;
        let tune = c.expect_method(0, (10, 30)).await;
        let p = &tune.payload[4..];
        let proposed = (
            u16::from_be_bytes([p[0], p[1]]),
            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            u16::from_be_bytes([p[6], p[7]]),
        );
        let mut tune_ok = channel_max.to_be_bytes().to_vec();
        tune_ok.extend_from_slice(&frame_max.to_be_bytes());
        tune_ok.extend_from_slice(&heartbeat.to_be_bytes());
        c.send(&method(0, 10, 31, &tune_ok)).await;
        let mut open = shortstr("/");
        open.extend(shortstr(""));
        open.push(0);
        c.send(&method(0, 10, 40, &open)).await;
        c.expect_method(0, (10, 41)).await;
        (c, proposed)
    }

    /// Handshake with the broker's defaults and heartbeats off.
    async fn open(broker: &TestBroker) -> Raw {
        Raw::handshake(broker, 2047, 131_072, 0).await.0
    }

    async fn open_channel(&mut self, channel: u16) {
        self.send(&channel_open(channel)).await;
        self.expect_method(channel, (20, 11)).await;
    }
}

// ---- the well-behaved bystander -------------------------------------------

/// A lapin connection opened before the misbehaving one.
struct Bystander {
    conn: Connection,
    ch: Channel,
    queue: String,
}

impl Bystander {
    async fn open(broker: &TestBroker) -> Bystander {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("create_channel");
        let queue = unique("bystander");
        ch.queue_declare(
            &queue,
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
        Bystander { conn, ch, queue }
    }

    async fn assert_works(&self) {
        bounded(STEP, "the bystander's round trip", async {
            self.ch
                .basic_publish(
                    "",
                    &self.queue,
                    BasicPublishOptions::default(),
                    b"ping",
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
            // basic.get right after the publish may race it: retry.
            loop {
                let got = self
                    .ch
                    .basic_get(&self.queue, BasicGetOptions { no_ack: true })
                    .await
                    .expect("basic.get on the bystander connection");
                if let Some(m) = got {
                    assert_eq!(m.delivery.data, b"ping");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

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

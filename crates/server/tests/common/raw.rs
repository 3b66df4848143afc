//! A raw AMQP client for tests that must misbehave: hand-encoded frames
//! on a plain socket, no client library.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::{bounded, TestBroker, STEP};

pub const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

// ---- a tiny encoder -------------------------------------------------------

pub fn shortstr(s: &str) -> Vec<u8> {
    assert!(s.len() < 256);
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn longstr(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// A field table from already-encoded entries.
pub fn table(entries: &[u8]) -> Vec<u8> {
    longstr(entries)
}

pub fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

pub fn method(channel: u16, class_id: u16, method_id: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class_id.to_be_bytes().to_vec();
    p.extend_from_slice(&method_id.to_be_bytes());
    p.extend_from_slice(args);
    frame(FRAME_METHOD, channel, &p)
}

pub fn channel_open(channel: u16) -> Vec<u8> {
    method(channel, 20, 10, &shortstr(""))
}

/// queue.declare arguments: ticket, name, bits, arguments table.
pub fn queue_declare_args(name: &str, bits: u8, arguments: &[u8]) -> Vec<u8> {
    let mut v = 0u16.to_be_bytes().to_vec();
    v.extend(shortstr(name));
    v.push(bits);
    v.extend_from_slice(arguments);
    v
}

pub fn basic_publish_args(exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut v = 0u16.to_be_bytes().to_vec();
    v.extend(shortstr(exchange));
    v.extend(shortstr(routing_key));
    v.push(0);
    v
}

/// A basic content header with no properties.
pub fn content_header(body_size: u64) -> Vec<u8> {
    let mut v = 60u16.to_be_bytes().to_vec();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&body_size.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v
}

// ---- a raw connection -----------------------------------------------------

pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn ids(&self) -> (u16, u16) {
        assert_eq!(self.kind, FRAME_METHOD, "not a method frame");
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        )
    }
}

/// connection.close arguments.
#[derive(Debug, PartialEq)]
pub struct Close {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// One delivery read by the raw client.
pub struct RawDelivery {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub message_id: Option<String>,
    pub body: Vec<u8>,
}

pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

pub enum Read {
    Frame(Frame),
    Eof,
}

impl Raw {
    pub async fn connect(broker: &TestBroker) -> Raw {
        Self::connect_port(broker.port).await
    }

    pub async fn connect_port(port: u16) -> Raw {
        let stream = bounded(STEP, "tcp connect", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes, ignoring errors: the broker may already have hung up.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = bounded(STEP, "a socket write", self.stream.write_all(bytes)).await;
    }

    /// Reads more bytes; false on EOF (or reset).
    pub async fn fill(&mut self, deadline: Instant) -> bool {
        self.buf.reserve(64 * 1024);
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(_)) => true,
            Err(_) => panic!("the broker neither answered nor closed the socket in time"),
        }
    }

    /// Reads whatever the broker sends for `limit` (silence is fine); true
    /// if it hung up. What it sent must be well-formed frames.
    #[allow(dead_code)]
    pub async fn drain_for(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.buf.reserve(64 * 1024);
            match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(_)) => {}
                Err(_) => break false,
            }
        }
    }

    /// The next frame, or EOF; panics if nothing happens within `limit`.
    pub async fn read(&mut self, limit: Duration) -> Read {
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
    pub async fn read_method(&mut self) -> Frame {
        loop {
            match self.read(STEP).await {
                Read::Frame(f) if f.kind == FRAME_HEARTBEAT => continue,
                Read::Frame(f) => return f,
                Read::Eof => panic!("connection closed while a method frame was expected"),
            }
        }
    }

    pub async fn expect_method(&mut self, channel: u16, ids: (u16, u16)) -> Frame {
        let f = self.read_method().await;
        assert_eq!((f.channel, f.ids()), (channel, ids), "unexpected method");
        f
    }

    /// Expects connection.close, answers close-ok and expects the broker to
    /// hang up.
    pub async fn expect_connection_close(&mut self) -> Close {
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
    pub async fn expect_eof(&mut self, limit: Duration) {
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
    pub async fn handshake(
        broker: &TestBroker,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> (Raw, (u16, u32, u16)) {
        Self::handshake_port(broker.port, channel_max, frame_max, heartbeat).await
    }

    pub async fn handshake_port(
        port: u16,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> (Raw, (u16, u32, u16)) {
        let mut c = Raw::connect_port(port).await;
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
    pub async fn open(broker: &TestBroker) -> Raw {
        Raw::handshake(broker, 2047, 131_072, 0).await.0
    }

    pub async fn open_port(port: u16) -> Raw {
        Raw::handshake_port(port, 2047, 131_072, 0).await.0
    }

    /// The next basic.deliver with its content, or `None` if none comes
    /// within `idle`. Understands the properties Warren's tests set
    /// (delivery_mode, message_id) and panics on others.
    pub async fn read_delivery(&mut self, idle: Duration) -> Option<RawDelivery> {
        let f = loop {
            match self.read_or_idle(idle).await? {
                f if f.kind == FRAME_HEARTBEAT => continue,
                f => break f,
            }
        };
        assert_eq!(f.ids(), (60, 60), "expected basic.deliver");
        let p = &f.payload[4..];
        let tag_len = p[0] as usize;
        let at = 1 + tag_len;
        let delivery_tag = u64::from_be_bytes(p[at..at + 8].try_into().expect("8 bytes"));
        let redelivered = p[at + 8] & 1 == 1;
        let header = match self.read(STEP).await {
            Read::Frame(h) => h,
            Read::Eof => panic!("eof inside a delivery"),
        };
        assert_eq!(header.kind, FRAME_HEADER);
        let h = &header.payload;
        let size = u64::from_be_bytes(h[4..12].try_into().expect("8 bytes")) as usize;
        let flags = u16::from_be_bytes([h[12], h[13]]);
        let mut at = 14;
        let mut message_id = None;
        for bit in (2..16).rev() {
            if flags & (1 << bit) == 0 {
                continue;
            }
            match bit {
                12 => at += 1,
                7 => {
                    let n = h[at] as usize;
                    message_id = Some(String::from_utf8_lossy(&h[at + 1..at + 1 + n]).into_owned());
                    at += 1 + n;
                }
                other => panic!("property bit {other} is not understood by the raw client"),
            }
        }
        let mut body = Vec::with_capacity(size);
        while body.len() < size {
            match self.read(STEP).await {
                Read::Frame(b) if b.kind == FRAME_BODY => body.extend_from_slice(&b.payload),
                Read::Frame(other) => panic!("frame type {} inside a body", other.kind),
                Read::Eof => panic!("eof inside a body"),
            }
        }
        Some(RawDelivery {
            delivery_tag,
            redelivered,
            message_id,
            body,
        })
    }

    /// The next frame, or `None` if nothing arrives within `idle`.
    async fn read_or_idle(&mut self, idle: Duration) -> Option<Frame> {
        if self.buf.len() < 7 {
            self.buf.reserve(64 * 1024);
            match timeout(idle, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("the broker closed the connection"),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
        match self.read(STEP).await {
            Read::Frame(f) => Some(f),
            Read::Eof => panic!("the broker closed the connection"),
        }
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send(&channel_open(channel)).await;
        self.expect_method(channel, (20, 11)).await;
    }
}

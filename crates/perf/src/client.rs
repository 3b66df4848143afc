//! A minimal AMQP 0-9-1 client for load generation, built on the
//! protocol crate: no per-message allocation on the publish path (frames
//! are templates patched in place) and batched socket writes.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use warren_protocol::constants::{FRAME_END, PROTOCOL_HEADER};
use warren_protocol::frame::{body_frame_header, write_header, write_method};
use warren_protocol::methods::*;
use warren_protocol::{BasicProperties, FieldTable, Frame, FramePayload, Method, ShortStr};

/// A parsed `amqp://user:pass@host:port/vhost` URI.
#[derive(Debug, Clone, PartialEq)]
pub struct Uri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub vhost: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri> {
        let rest = s
            .strip_prefix("amqp://")
            .ok_or_else(|| anyhow!("URI must start with amqp://"))?;
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (user, pass) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (percent_decode(u), percent_decode(p)),
                None => (percent_decode(a), String::new()),
            },
            None => ("guest".into(), "guest".into()),
        };
        let (hostport, vhost) = match hostpart.split_once('/') {
            Some((h, v)) => (
                h,
                if v.is_empty() {
                    "/".into()
                } else {
                    percent_decode(v)
                },
            ),
            None => (hostpart, "/".to_string()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().context("bad port in URI")?),
            None => (hostport.to_string(), 5672),
        };
        if host.is_empty() {
            bail!("URI has no host");
        }
        Ok(Uri {
            host,
            port,
            user,
            pass,
            vhost,
        })
    }
}

pub struct Reader {
    rd: OwnedReadHalf,
    buf: BytesMut,
    frame_max: u32,
}

impl Reader {
    /// The next frame, reading as needed.
    pub async fn frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = Frame::parse(&mut self.buf, self.frame_max)
                .map_err(|e| anyhow!("bad frame from broker: {e}"))?
            {
                return Ok(f);
            }
            if self.buf.capacity() - self.buf.len() < 32 * 1024 {
                self.buf.reserve(128 * 1024);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("broker closed the connection");
            }
        }
    }

    /// A frame if one is already buffered (no read).
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>> {
        Frame::parse(&mut self.buf, self.frame_max).map_err(|e| anyhow!("bad frame: {e}"))
    }

    /// The next method on `channel`, failing on a close.
    pub async fn method(&mut self) -> Result<Method> {
        loop {
            let f = self.frame().await?;
            if let FramePayload::Method(p) = f.payload {
                let m = Method::decode(p)?;
                match &m {
                    Method::ConnectionClose(c) => bail!("connection closed: {}", c.reply_text),
                    Method::ChannelClose(c) => bail!("channel closed: {}", c.reply_text),
                    _ => return Ok(m),
                }
            }
        }
    }
}

pub struct Writer {
    wr: OwnedWriteHalf,
    pub buf: BytesMut,
}

impl Writer {
    pub fn method(&mut self, m: Method) {
        write_method(&mut self.buf, 1, &m);
    }

    pub async fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.wr.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

pub struct Conn {
    pub reader: Reader,
    pub writer: Writer,
    pub frame_max: u32,
}

impl Conn {
    /// Connects, logs in (PLAIN), tunes (no heartbeats), opens the vhost
    /// and channel 1.
    pub async fn open(uri: &Uri) -> Result<Conn> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((uri.host.as_str(), uri.port)),
        )
        .await
        .context("connect timed out")?
        .with_context(|| format!("cannot connect to {}:{}", uri.host, uri.port))?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Conn {
            reader: Reader {
                rd,
                buf: BytesMut::with_capacity(256 * 1024),
                frame_max: 131_072,
            },
            writer: Writer {
                wr,
                buf: BytesMut::with_capacity(256 * 1024),
            },
            frame_max: 131_072,
        };
        c.writer.buf.put_slice(PROTOCOL_HEADER);
        c.writer.flush().await?;
        let Method::ConnectionStart(_) = c.reader.method().await? else {
            bail!("expected connection.start");
        };
        let mut response = vec![0u8];
        response.extend_from_slice(uri.user.as_bytes());
        response.push(0);
        response.extend_from_slice(uri.pass.as_bytes());
        let mut props = FieldTable::new();
        props.insert(
            "product",
            warren_protocol::FieldValue::LongStr(Bytes::from_static(b"warren-perf")),
        );
        write_method(
            &mut c.writer.buf,
            0,
            &ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: Bytes::from(response),
                locale: "en_US".into(),
            }
            .into(),
        );
        c.writer.flush().await?;
        let tune = match c.reader.method().await? {
            Method::ConnectionTune(t) => t,
            other => bail!(
                "expected connection.tune, got {} (wrong credentials?)",
                other.name()
            ),
        };
        let frame_max = if tune.frame_max == 0 {
            131_072
        } else {
            tune.frame_max
        };
        c.frame_max = frame_max;
        c.reader.frame_max = frame_max;
        write_method(
            &mut c.writer.buf,
            0,
            &ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max,
                heartbeat: 0,
            }
            .into(),
        );
        write_method(
            &mut c.writer.buf,
            0,
            &ConnectionOpen {
                virtual_host: ShortStr::from(uri.vhost.as_str()),
                ..Default::default()
            }
            .into(),
        );
        c.writer.flush().await?;
        let Method::ConnectionOpenOk(_) = c.reader.method().await? else {
            bail!("expected connection.open-ok");
        };
        c.call(ChannelOpen::default().into()).await?;
        Ok(c)
    }

    /// Sends a method and waits for its reply (the next method).
    pub async fn call(&mut self, m: Method) -> Result<Method> {
        self.writer.method(m);
        self.writer.flush().await?;
        self.reader.method().await
    }

    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }
}

/// Publish frames for one routing target, encoded once: basic.publish,
/// the content header, and the body frame header. Each message copies the
/// template and its body into the write buffer.
pub struct PublishTemplate {
    head: Vec<u8>,
    frame_max: u32,
    size: usize,
}

impl PublishTemplate {
    pub fn new(
        exchange: &str,
        routing_key: &str,
        props: &BasicProperties,
        size: usize,
        frame_max: u32,
        mandatory: bool,
    ) -> PublishTemplate {
        let mut head = BytesMut::new();
        write_method(
            &mut head,
            1,
            &BasicPublish {
                exchange: ShortStr::from(exchange),
                routing_key: ShortStr::from(routing_key),
                mandatory,
                ..Default::default()
            }
            .into(),
        );
        let mut raw = BytesMut::new();
        props.encode(&mut raw);
        write_header(&mut head, 1, size as u64, &raw);
        PublishTemplate {
            head: head.to_vec(),
            frame_max,
            size,
        }
    }

    /// Appends one message whose body starts with `stamp` (8 bytes,
    /// big-endian) and is padded to the configured size.
    pub fn write(&self, buf: &mut BytesMut, stamp: u64) {
        buf.put_slice(&self.head);
        let max_payload = self.frame_max as usize - 8;
        let mut left = self.size;
        let mut first = true;
        while left > 0 {
            let n = left.min(max_payload);
            buf.put_slice(&body_frame_header(1, n));
            if first && n >= 8 {
                buf.put_u64(stamp);
                buf.put_bytes(b'x', n - 8);
            } else {
                buf.put_bytes(b'x', n);
            }
            first = false;
            buf.put_u8(FRAME_END);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = Uri::parse("amqp://admin:s%40cret@broker:5682/%2f").unwrap();
        assert_eq!(
            u,
            Uri {
                host: "broker".into(),
                port: 5682,
                user: "admin".into(),
                pass: "s@cret".into(),
                vhost: "/".into()
            }
        );
        let u = Uri::parse("amqp://localhost").unwrap();
        assert_eq!(
            (u.port, u.user.as_str(), u.vhost.as_str()),
            (5672, "guest", "/")
        );
        assert_eq!(Uri::parse("amqp://h/prod").unwrap().vhost, "prod");
        assert!(Uri::parse("http://x").is_err());
        assert!(Uri::parse("amqp://h:notaport").is_err());
    }

    #[test]
    fn template_frames_parse_back() {
        let t = PublishTemplate::new("", "q", &BasicProperties::default(), 10_000, 4096, false);
        let mut buf = BytesMut::new();
        t.write(&mut buf, 42);
        let mut frames = Vec::new();
        while let Some(f) = Frame::parse(&mut buf, 4096).unwrap() {
            frames.push(f);
        }
        // method, header, and 10,000 bytes in 4,088-byte body frames
        assert_eq!(frames.len(), 2 + 3);
        let FramePayload::Body(b) = &frames[2].payload else {
            panic!("expected a body frame")
        };
        assert_eq!(&b[..8], &42u64.to_be_bytes());
    }
}

//! `warren-mqtt-perf`: MQTT 3.1.1 throughput between publishers and
//! subscribers on one topic, for any MQTT broker (Warren, mosquitto…),
//! built on Warren's own MQTT codec. Not a test: prints figures.
//!
//! Each publisher sends `size`-byte messages at QoS `qos` (QoS 1 with at
//! most `--inflight` unacknowledged, like a client's in-flight window;
//! QoS 0 paced so no more than `--window` messages are between publishers
//! and subscribers). Each subscriber acknowledges QoS 1 deliveries at once.
//! Every received payload is checked against what was sent (publisher,
//! sequence number, bytes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_protocol::mqtt::{
    self, Ack, ConnAck, Connect, Packet, Properties, Publish, SubOptions, Subscribe, LEVEL_311,
};

#[derive(Debug, Clone, Parser)]
#[command(name = "warren-mqtt-perf", version, about = "MQTT throughput tester")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(short = 'p', long, default_value_t = 1883)]
    port: u16,
    #[arg(long, default_value = "guest")]
    user: String,
    #[arg(long, default_value = "guest")]
    password: String,
    /// QoS of publishes and of the subscription (0 or 1)
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Payload size in bytes (at least 16)
    #[arg(short = 's', long, default_value_t = 16)]
    size: usize,
    #[arg(short = 'x', long, default_value_t = 1)]
    producers: usize,
    #[arg(short = 'y', long, default_value_t = 1)]
    consumers: usize,
    /// Seconds to publish for
    #[arg(short = 'z', long, default_value_t = 10)]
    seconds: u64,
    /// QoS 1: unacknowledged publishes per publisher
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// QoS 0: messages allowed between publishers and subscribers
    #[arg(long, default_value_t = 10_000)]
    window: u64,
    /// Print one JSON line
    #[arg(long)]
    json: bool,
}

struct Conn {
    stream: TcpStream,
    inbuf: BytesMut,
    out: BytesMut,
}

impl Conn {
    async fn open(a: &Args, client_id: String) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect((a.host.as_str(), a.port))
            .await
            .context("connect")?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            inbuf: BytesMut::with_capacity(1 << 16),
            out: BytesMut::new(),
        };
        c.send(Packet::Connect(Box::new(Connect {
            level: LEVEL_311,
            client_id,
            clean_start: true,
            keep_alive: 60,
            username: Some(a.user.clone()),
            password: Some(Bytes::from(a.password.clone())),
            will: None,
            properties: Properties::default(),
        })));
        c.flush().await?;
        match c.next().await? {
            Packet::ConnAck(ConnAck { code: 0, .. }) => Ok(c),
            other => bail!("not connected: {other:?}"),
        }
    }

    fn send(&mut self, p: Packet) {
        p.encode(LEVEL_311, &mut self.out);
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(p) = mqtt::decode(&mut self.inbuf, Some(LEVEL_311), 1 << 28)? {
                return Ok(p);
            }
            // Acks owed go out before waiting for more.
            if !self.out.is_empty() {
                self.flush().await?;
            }
            if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                bail!("broker closed the connection");
            }
        }
    }
}

fn payload(producer: u64, seq: u64, size: usize) -> Bytes {
    let mut b = Vec::with_capacity(size.max(16));
    b.extend_from_slice(&producer.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend((16..size).map(|i| (seq as usize + i) as u8));
    Bytes::from(b)
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    corrupt: AtomicU64,
}

async fn producer(
    a: Args,
    n: u64,
    topic: String,
    counts: Arc<Counts>,
    stop: Instant,
) -> anyhow::Result<()> {
    let mut c = Conn::open(&a, format!("perf-pub-{n}-{}", std::process::id())).await?;
    let mut seq = 0u64;
    let mut unacked = 0usize;
    let mut next_id: u16 = 0;
    while Instant::now() < stop {
        if a.qos == 0 {
            let consumers = a.consumers.max(1) as u64;
            while counts.sent.load(Ordering::Relaxed) * consumers
                > counts.received.load(Ordering::Relaxed) + a.window * consumers
            {
                tokio::time::sleep(Duration::from_micros(200)).await;
                if Instant::now() >= stop {
                    return Ok(());
                }
            }
        }
        // A batch, then the acks it is owed.
        for _ in 0..64 {
            if a.qos == 1 && unacked >= a.inflight {
                break;
            }
            let packet_id = (a.qos == 1).then(|| {
                next_id = next_id.wrapping_add(1).max(1);
                next_id
            });
            c.send(Packet::Publish(Publish {
                dup: false,
                qos: a.qos,
                retain: false,
                topic: topic.clone(),
                packet_id,
                properties: Properties::default(),
                payload: payload(n, seq, a.size),
            }));
            seq += 1;
            unacked += usize::from(a.qos);
            counts.sent.fetch_add(1, Ordering::Relaxed);
        }
        c.flush().await?;
        while a.qos == 1 && unacked >= a.inflight {
            if let Packet::PubAck(_) = c.next().await? {
                unacked -= 1;
            }
        }
        if a.qos == 1 {
            // Take the acks already here without waiting.
            while let Some(p) = mqtt::decode(&mut c.inbuf, Some(LEVEL_311), 1 << 28)? {
                if let Packet::PubAck(_) = p {
                    unacked -= 1;
                }
            }
        }
    }
    // Every publish acknowledged, then a clean DISCONNECT: closing with
    // acks unread would reset the connection, and a broker may lose what
    // it had not read yet.
    while unacked > 0 {
        if let Packet::PubAck(_) = c.next().await? {
            unacked -= 1;
        }
    }
    c.send(Packet::Disconnect(Default::default()));
    c.flush().await?;
    Ok(())
}

async fn consumer(a: Args, n: usize, topic: String, counts: Arc<Counts>) -> anyhow::Result<()> {
    let mut c = Conn::open(&a, format!("perf-sub-{n}-{}", std::process::id())).await?;
    c.send(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![(
            topic,
            SubOptions {
                qos: a.qos,
                ..SubOptions::default()
            },
        )],
    }));
    c.flush().await?;
    loop {
        match c.next().await? {
            Packet::Publish(p) => {
                if let Some(id) = p.packet_id {
                    c.send(Packet::PubAck(Ack::new(id, 0)));
                }
                let ok = p.payload.len() == a.size.max(16) && {
                    let prod = u64::from_be_bytes(p.payload[..8].try_into().unwrap_or_default());
                    let seq = u64::from_be_bytes(p.payload[8..16].try_into().unwrap_or_default());
                    p.payload == payload(prod, seq, a.size)
                };
                if !ok {
                    counts.corrupt.fetch_add(1, Ordering::Relaxed);
                }
                counts.received.fetch_add(1, Ordering::Relaxed);
                if c.out.len() > 4096 {
                    c.flush().await?;
                }
            }
            Packet::SubAck(_) => {}
            other => bail!("unexpected {other:?}"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.qos > 1 {
        bail!("--qos must be 0 or 1");
    }
    let topic = format!("perf/{}", std::process::id());
    let counts = Arc::new(Counts::default());
    let mut subs = Vec::new();
    for n in 0..a.consumers {
        subs.push(tokio::spawn(consumer(
            a.clone(),
            n,
            topic.clone(),
            counts.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let stop = start + Duration::from_secs(a.seconds);
    let mut pubs = Vec::new();
    for n in 0..a.producers {
        pubs.push(tokio::spawn(producer(
            a.clone(),
            n as u64,
            topic.clone(),
            counts.clone(),
            stop,
        )));
    }
    for p in pubs {
        p.await??;
    }
    let sent = counts.sent.load(Ordering::Relaxed);
    let want = sent * a.consumers as u64;
    // Let the subscribers drain (bounded).
    let drain_until = Instant::now() + Duration::from_secs(30);
    while counts.received.load(Ordering::Relaxed) < want && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    for s in subs {
        s.abort();
    }
    let received = counts.received.load(Ordering::Relaxed);
    let corrupt = counts.corrupt.load(Ordering::Relaxed);
    let v = serde_json::json!({
        "qos": a.qos, "size": a.size, "seconds": elapsed, "sent": sent, "received": received,
        "expected": want, "corrupt": corrupt,
        "send_rate": sent as f64 / a.seconds as f64, "receive_rate": received as f64 / elapsed,
    });
    if a.json {
        println!("{v}");
    } else {
        println!(
            "QoS {}: sent {sent} ({:.0}/s), received {received} of {want} ({:.0}/s), corrupt {corrupt}",
            a.qos,
            sent as f64 / a.seconds as f64,
            received as f64 / elapsed
        );
    }
    if corrupt > 0 {
        bail!("{corrupt} corrupt payloads");
    }
    Ok(())
}

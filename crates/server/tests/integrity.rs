//! End-to-end integrity under a mixed, hostile load: every byte of every
//! body is checked, nothing is lost, nothing is delivered fresh twice.
//!
//! Publishers (confirming and not, transient and persistent, to queues
//! and through a fanout) send bodies derived from (publisher, sequence,
//! size) with sizes from 0 B to 16 MiB, the frame_max edges included.
//! Consumers come and go with different habits: large and small prefetch,
//! acks one by one or multiple, nack/requeue, slow readers, cancels,
//! basic.get, and raw clients that vanish mid-stream. At the end
//! everything is drained and accounted for.
//!
//! Runs for `WARREN_INTEGRITY_SECS` seconds of load (default 60; the CI
//! form). `scripts/integrity.sh SECONDS` runs the long form on a release
//! build.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use common::{connect_uri, TestBroker};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use parking_lot::Mutex;
use tokio::time::Instant;

const QUEUES: usize = 4;
const FANOUT: &str = "integrity-fanout";
/// The fanout reaches these queues.
const FANOUT_QUEUES: [usize; 2] = [2, 3];
const PUBLISHERS: u32 = 4;
const CONSUMERS: usize = 5;
const FRAME_MAX: usize = 131_072;
/// Publishers pause while this many messages are unaccounted for.
const MAX_OUTSTANDING: usize = 3000;
const MAX_OUTSTANDING_BYTES: u64 = 96 << 20;

fn queue_name(q: usize) -> String {
    format!("integrity-{q}")
}

/// A small deterministic generator (xorshift), seeded per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Every byte of a body follows from who sent it, its number and its size.
fn body(publisher: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut r = Rng::new((u64::from(publisher) << 40) ^ seq ^ ((size as u64) << 20));
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        let w = r.next().to_le_bytes();
        let n = (size - v.len()).min(8);
        v.extend_from_slice(&w[..n]);
    }
    v
}

fn message_id(publisher: u32, seq: u64, size: usize) -> String {
    format!("{publisher}.{seq}.{size}")
}

fn parse_id(id: &str) -> Option<(u32, u64, usize)> {
    let mut it = id.split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

type Key = (u32, u64, usize);

#[derive(Default)]
struct Ledger {
    /// Published and owed to the consumers of a queue.
    expected: HashSet<Key>,
    expected_bytes: u64,
    /// Delivered with redelivered = false (at most once each).
    fresh: HashSet<Key>,
    acked: HashSet<Key>,
    acked_bytes: u64,
    errors: Vec<String>,
    deliveries: u64,
    redeliveries: u64,
    bytes_verified: u64,
    largest: usize,
}

impl Ledger {
    fn outstanding(&self) -> (usize, u64) {
        (
            self.expected.len().saturating_sub(self.acked.len()),
            self.expected_bytes.saturating_sub(self.acked_bytes),
        )
    }

    /// Checks one delivery; returns its key if it is sound.
    fn delivered(
        &mut self,
        queue: usize,
        id: Option<&str>,
        data: &[u8],
        redelivered: bool,
    ) -> Option<Key> {
        self.deliveries += 1;
        let Some((p, s, size)) = id.and_then(parse_id) else {
            self.errors
                .push(format!("a delivery without a valid message id: {id:?}"));
            return None;
        };
        let key = (p, s, queue);
        if data.len() != size || data != body(p, s, size).as_slice() {
            self.errors.push(format!(
                "message {p}.{s} in queue {queue}: wrong body ({} bytes, {size} published)",
                data.len()
            ));
            return None;
        }
        self.bytes_verified += data.len() as u64;
        self.largest = self.largest.max(size);
        if !self.expected.contains(&key) {
            self.errors.push(format!(
                "message {p}.{s} delivered from queue {queue}, where it was never sent"
            ));
        }
        if redelivered {
            self.redeliveries += 1;
        } else if !self.fresh.insert(key) {
            self.errors.push(format!(
                "message {p}.{s} in queue {queue} delivered fresh twice"
            ));
        }
        Some(key)
    }

    fn acked(&mut self, key: Key, size: usize) {
        if self.acked.insert(key) {
            self.acked_bytes += size as u64;
        }
    }
}

struct World {
    uri: String,
    port: u16,
    ledger: Mutex<Ledger>,
    stop_publishing: AtomicBool,
    stop_consuming: AtomicBool,
    published: AtomicU64,
    confirmed: AtomicU64,
}

fn pick_size(r: &mut Rng) -> usize {
    match r.below(100) {
        0..=9 => 0,
        10..=19 => 1,
        20..=49 => 100 + r.below(400) as usize,
        50..=64 => 4096,
        65..=72 => FRAME_MAX - 8,
        73..=80 => FRAME_MAX,
        81..=87 => 3 * FRAME_MAX,
        88..=91 => 1 << 20,
        _ => r.below(64 * 1024) as usize,
    }
}

async fn publisher(w: Arc<World>, id: u32, deadline: Instant) {
    let conn = connect_uri(&w.uri).await.expect("publisher connects");
    let confirming = conn.create_channel().await.expect("channel");
    confirming
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let plain = conn.create_channel().await.expect("channel");
    let mut r = Rng::new(u64::from(id) + 1);
    let mut pending = std::collections::VecDeque::new();
    let mut seq = 0u64;
    // Two 16 MiB messages per run, from the first two publishers.
    let mut huge = if id < 2 { 1 } else { 0 };
    while Instant::now() < deadline && !w.stop_publishing.load(Ordering::Relaxed) {
        let (n, bytes) = w.ledger.lock().outstanding();
        if n > MAX_OUTSTANDING || bytes > MAX_OUTSTANDING_BYTES {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let size = if huge > 0 {
            huge -= 1;
            16 << 20
        } else {
            pick_size(&mut r)
        };
        let fanout = r.chance(20);
        let queues: Vec<usize> = if fanout {
            FANOUT_QUEUES.to_vec()
        } else {
            vec![r.below(QUEUES as u64) as usize]
        };
        let persistent = r.chance(50);
        {
            let mut l = w.ledger.lock();
            for q in &queues {
                l.expected.insert((id, seq, *q));
                l.expected_bytes += size as u64;
            }
        }
        let props = BasicProperties::default()
            .with_message_id(message_id(id, seq, size).into())
            .with_delivery_mode(if persistent { 2 } else { 1 });
        let (exchange, key) = if fanout {
            (FANOUT.to_string(), String::new())
        } else {
            (String::new(), queue_name(queues[0]))
        };
        let data = body(id, seq, size);
        let ch = if r.chance(50) { &confirming } else { &plain };
        let confirm = ch
            .basic_publish(
                &exchange,
                &key,
                BasicPublishOptions::default(),
                &data,
                props,
            )
            .await
            .expect("publish");
        w.published.fetch_add(1, Ordering::Relaxed);
        if std::ptr::eq(ch, &confirming) {
            pending.push_back((seq, confirm));
        }
        while pending.len() > 64 {
            let (s, c) = pending.pop_front().expect("non-empty");
            check_confirm(&w, id, s, c.await);
        }
        seq += 1;
    }
    for (s, c) in pending {
        check_confirm(&w, id, s, c.await);
    }
    let _ = conn.close(200, "done").await;
}

fn check_confirm(w: &World, id: u32, seq: u64, c: lapin::Result<Confirmation>) {
    match c {
        Ok(Confirmation::Ack(_)) => {
            w.confirmed.fetch_add(1, Ordering::Relaxed);
        }
        other => w
            .ledger
            .lock()
            .errors
            .push(format!("message {id}.{seq}: confirm {other:?}")),
    }
}

/// How one consumer session behaves.
#[derive(Debug, Clone, Copy)]
enum Habit {
    AckEach,
    AckMultiple,
    NackSome,
    Slow,
    Cancel,
    Get,
    /// A raw client that vanishes without closing.
    Vanish,
}

const HABITS: [Habit; 7] = [
    Habit::AckEach,
    Habit::AckMultiple,
    Habit::NackSome,
    Habit::Slow,
    Habit::Cancel,
    Habit::Get,
    Habit::Vanish,
];

async fn consumer(w: Arc<World>, id: u64) {
    let mut r = Rng::new(1000 + id);
    let mut session = 0u64;
    while !w.stop_consuming.load(Ordering::Relaxed) {
        let habit = HABITS[r.below(HABITS.len() as u64) as usize];
        let q = r.below(QUEUES as u64) as usize;
        let limit = 20 + r.below(400);
        let prefetch = [1u16, 10, 100, 1000][r.below(4) as usize];
        session += 1;
        let result = match habit {
            Habit::Vanish => vanish(&w, q, prefetch, limit).await,
            Habit::Get => getter(&w, q, limit).await,
            _ => lapin_session(&w, habit, q, prefetch, limit, &mut r).await,
        };
        if let Err(e) = result {
            w.ledger
                .lock()
                .errors
                .push(format!("consumer {id} session {session} ({habit:?}): {e}"));
            return;
        }
    }
}

/// Checks a lapin delivery against the ledger.
fn record(w: &World, q: usize, d: &lapin::message::Delivery) -> Option<Key> {
    let id = d
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.as_str().to_string());
    w.ledger
        .lock()
        .delivered(q, id.as_deref(), &d.data, d.redelivered)
}

/// Consumes up to `limit` messages (or until idle) with `habit`.
async fn lapin_session(
    w: &World,
    habit: Habit,
    q: usize,
    prefetch: u16,
    limit: u64,
    r: &mut Rng,
) -> Result<(), String> {
    let conn = connect_uri(&w.uri)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = ch
        .basic_consume(
            &queue_name(q),
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let tag = consumer.tag().to_string();
    let mut unacked: Vec<(u64, Key, usize)> = Vec::new();
    let mut n = 0;
    while n < limit {
        let next = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
        let d = match next {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("consumer stream ended".into()),
            // Idle: end the session (the drain phase relies on this).
            Err(_) => break,
        };
        n += 1;
        let key = record(w, q, &d);
        let tag_n = d.delivery_tag;
        match (habit, key) {
            (_, None) => {
                // Already recorded as an error; settle it so it isn't stuck.
                d.ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            (Habit::NackSome, Some(k)) if r.chance(20) => {
                let _ = k;
                d.nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
                .map_err(|e| e.to_string())?;
            }
            (Habit::AckMultiple, Some(k)) => {
                unacked.push((tag_n, k, d.data.len()));
                if unacked.len() >= 10 {
                    ch.basic_ack(tag_n, BasicAckOptions { multiple: true })
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut l = w.ledger.lock();
                    for (_, k, size) in unacked.drain(..) {
                        l.acked(k, size);
                    }
                }
            }
            (Habit::Cancel, Some(k)) if n == limit / 2 => {
                // Cancel with deliveries in flight; what we hold stays
                // ours to ack, the rest goes back.
                unacked.push((tag_n, k, d.data.len()));
                ch.basic_cancel(&tag, BasicCancelOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                // Deliveries already on their way still arrive.
                while let Ok(Some(Ok(d))) =
                    tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
                {
                    if let Some(k) = record(w, q, &d) {
                        unacked.push((d.delivery_tag, k, d.data.len()));
                    }
                }
                break;
            }
            (_, Some(k)) => {
                if matches!(habit, Habit::Slow) {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                d.ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                w.ledger.lock().acked(k, d.data.len());
            }
        }
    }
    for (t, k, size) in unacked.drain(..) {
        ch.basic_ack(t, BasicAckOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        w.ledger.lock().acked(k, size);
    }
    conn.close(200, "session over")
        .await
        .map_err(|e| format!("close: {e}"))
}

async fn getter(w: &World, q: usize, limit: u64) -> Result<(), String> {
    let conn = connect_uri(&w.uri)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
    for _ in 0..limit {
        let Some(m) = ch
            .basic_get(&queue_name(q), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| e.to_string())?
        else {
            break;
        };
        let d = m.delivery;
        let key = record(w, q, &d);
        d.ack(BasicAckOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(k) = key {
            w.ledger.lock().acked(k, d.data.len());
        }
    }
    conn.close(200, "session over")
        .await
        .map_err(|e| format!("close: {e}"))
}

/// A raw client: consumes, acks some of what it got, then drops the
/// socket without a word. Its unacked messages must come back.
async fn vanish(w: &World, q: usize, prefetch: u16, limit: u64) -> Result<(), String> {
    let mut c = Raw::open_port(w.port).await;
    c.open_channel(1).await;
    let mut qos = 0u32.to_be_bytes().to_vec();
    qos.extend_from_slice(&prefetch.to_be_bytes());
    qos.push(0);
    c.send(&method(1, 60, 10, &qos)).await;
    c.expect_method(1, (60, 11)).await;
    let mut consume = 0u16.to_be_bytes().to_vec();
    consume.extend(shortstr(&queue_name(q)));
    consume.extend(shortstr("vanishing"));
    consume.push(0);
    consume.extend(table(&[]));
    c.send(&method(1, 60, 20, &consume)).await;
    c.expect_method(1, (60, 21)).await;
    let mut got = 0;
    while got < limit.min(200) {
        let Some(d) = c.read_delivery(Duration::from_millis(300)).await else {
            break;
        };
        got += 1;
        let key = w
            .ledger
            .lock()
            .delivered(q, d.message_id.as_deref(), &d.body, d.redelivered);
        if got % 2 == 0 {
            // Acked: owed no more. The other half is abandoned.
            let mut ack = d.delivery_tag.to_be_bytes().to_vec();
            ack.push(0);
            c.send(&method(1, 60, 80, &ack)).await;
            if let Some(k) = key {
                w.ledger.lock().acked(k, d.body.len());
            }
        }
    }
    drop(c);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_of_every_message_under_mixed_load() {
    let secs: u64 = std::env::var("WARREN_INTEGRITY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let broker = TestBroker::start();
    let w = Arc::new(World {
        uri: broker.uri(),
        port: broker.port,
        ledger: Mutex::new(Ledger::default()),
        stop_publishing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
        published: AtomicU64::new(0),
        confirmed: AtomicU64::new(0),
    });
    {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        for q in 0..QUEUES {
            ch.queue_declare(
                &queue_name(q),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
        }
        ch.exchange_declare(
            FANOUT,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
        for q in FANOUT_QUEUES {
            ch.queue_bind(
                &queue_name(q),
                FANOUT,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        }
        conn.close(200, "setup done").await.expect("close");
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        tasks.push(tokio::spawn(publisher(w.clone(), p, deadline)));
    }
    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        consumers.push(tokio::spawn(consumer(w.clone(), c as u64)));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(secs + 120), t)
            .await
            .expect("publishers finish")
            .expect("publisher task");
    }
    let published_at = started.elapsed();
    // Drain: consumers keep going until everything is acked.
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (left, errors) = {
            let l = w.ledger.lock();
            (l.outstanding().0, l.errors.len())
        };
        if left == 0 || errors > 0 || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.stop_consuming.store(true, Ordering::Relaxed);
    for c in consumers {
        let _ = tokio::time::timeout(Duration::from_secs(30), c).await;
    }
    let l = w.ledger.lock();
    let missing: Vec<&Key> = l.expected.difference(&l.acked).take(10).collect();
    eprintln!(
        "integrity: {secs} s of load ({:.1} s publishing): {} publishes ({} confirmed), {} owed deliveries, \
         {} deliveries ({} redelivered), {:.1} MiB verified byte for byte, largest {} bytes",
        published_at.as_secs_f64(),
        w.published.load(Ordering::Relaxed),
        w.confirmed.load(Ordering::Relaxed),
        l.expected.len(),
        l.deliveries,
        l.redeliveries,
        l.bytes_verified as f64 / 1048576.0,
        l.largest
    );
    assert!(
        l.errors.is_empty(),
        "errors: {:#?}",
        &l.errors[..l.errors.len().min(20)]
    );
    assert!(
        missing.is_empty(),
        "never delivered and acked: {missing:?} …"
    );
    assert!(l.largest >= 16 << 20, "no 16 MiB message went through");
}

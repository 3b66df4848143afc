//! Scenario execution: declare, run producers and consumers, report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use bytes::{Buf, Bytes, BytesMut};
use serde_json::json;
use tokio::sync::Notify;
use warren_protocol::methods::*;
use warren_protocol::{
    BasicProperties, ContentHeader, FieldTable, FieldValue, FramePayload, Method, ShortStr,
};

use crate::client::{Conn, PublishTemplate, Reader, Uri, Writer};
use crate::histogram::Histogram;
use crate::Args;

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    confirmed: AtomicU64,
    nacked: AtomicU64,
    received: AtomicU64,
    /// Latencies since the last report, and over the whole run (ns).
    interval: std::sync::Mutex<Histogram>,
    total: std::sync::Mutex<Histogram>,
}

impl Stats {
    fn record_latencies(&self, h: &Histogram) {
        if h.count() == 0 {
            return;
        }
        if let Ok(mut i) = self.interval.lock() {
            i.merge(h);
        }
        if let Ok(mut t) = self.total.lock() {
            t.merge(h);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

async fn declare(args: &Args, uri: &Uri) -> Result<()> {
    if args.predeclared {
        return Ok(());
    }
    let mut c = Conn::open(uri).await?;
    let durable = args.persistent;
    if !args.exchange.is_empty() {
        c.call(
            ExchangeDeclare {
                exchange: ShortStr::from(args.exchange.as_str()),
                kind: ShortStr::from(args.exchange_type.as_str()),
                durable,
                arguments: {
                    let mut a = FieldTable::new();
                    if args.exchange_type == "x-delayed-message" {
                        a.insert(
                            "x-delayed-type",
                            FieldValue::LongStr(Bytes::from(args.delayed_type.clone())),
                        );
                    }
                    a
                },
                ..Default::default()
            }
            .into(),
        )
        .await?;
    }
    let queue_count = if args.rpc { 1 } else { args.queues };
    for i in 0..queue_count {
        let name = if args.rpc {
            "perf-rpc".to_string()
        } else {
            args.queue_name(i)
        };
        c.call(
            QueueDeclare {
                queue: ShortStr::from(name.as_str()),
                durable,
                arguments: {
                    let mut a = FieldTable::new();
                    if let Some(p) = args.max_priority {
                        a.insert("x-max-priority", FieldValue::I32(i32::from(p)));
                    }
                    a
                },
                ..Default::default()
            }
            .into(),
        )
        .await?;
        if !args.exchange.is_empty() && !args.rpc {
            let mut arguments = FieldTable::new();
            if args.exchange_type == "headers" {
                arguments.insert("queue", FieldValue::LongStr(Bytes::from(name.clone())));
            }
            c.call(
                QueueBind {
                    queue: ShortStr::from(name.as_str()),
                    exchange: ShortStr::from(args.exchange.as_str()),
                    routing_key: ShortStr::from(args.binding_key_for(i)),
                    arguments,
                    ..Default::default()
                }
                .into(),
            )
            .await?;
        }
    }
    for j in 0..args.extra_bindings {
        let q = args.queue_name(j % args.queues);
        c.call(
            QueueBind {
                queue: ShortStr::from(q.as_str()),
                exchange: ShortStr::from(args.exchange.as_str()),
                routing_key: ShortStr::from(format!("unmatched.{j}.*.#")),
                ..Default::default()
            }
            .into(),
        )
        .await?;
    }
    Ok(())
}

/// Which unconfirmed publishes are outstanding (tags start at 1).
#[derive(Default)]
struct ConfirmWindow {
    base: u64,
    acked: std::collections::VecDeque<bool>,
    outstanding: usize,
}

impl ConfirmWindow {
    fn sent(&mut self) {
        if self.base == 0 {
            self.base = 1;
        }
        self.acked.push_back(false);
        self.outstanding += 1;
    }

    /// Marks tags settled; returns how many were newly settled.
    fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        let mut n = 0;
        let lo = if multiple { self.base } else { tag };
        for t in lo..=tag {
            if let Some(slot) = t
                .checked_sub(self.base)
                .and_then(|i| self.acked.get_mut(i as usize))
            {
                if !*slot {
                    *slot = true;
                    n += 1;
                }
            }
        }
        while self.acked.front() == Some(&true) {
            self.acked.pop_front();
            self.base += 1;
        }
        self.outstanding -= n as usize;
        n
    }
}

async fn producer(
    id: usize,
    args: Arc<Args>,
    uri: Uri,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut c = Conn::open(&uri).await?;
    if args.confirm > 0 {
        c.call(ConfirmSelect { nowait: false }.into()).await?;
    }
    let props = BasicProperties {
        delivery_mode: Some(if args.persistent { 2 } else { 1 }),
        priority: args.priority,
        headers: args.delay.map(|d| {
            let mut h = FieldTable::new();
            h.insert("x-delay", FieldValue::I64(d));
            h
        }),
        ..Default::default()
    };
    let templates: Vec<PublishTemplate> = (0..args.queues)
        .map(|i| {
            let key = if args.exchange.is_empty() || args.exchange_type != "fanout" {
                args.routing_key_for(i)
            } else {
                String::new()
            };
            PublishTemplate::new(&args.exchange, &key, &props, args.size, c.frame_max, false)
        })
        .collect();
    let (mut reader, mut writer) = c.split();
    let window = Arc::new(std::sync::Mutex::new(ConfirmWindow::default()));
    let room = Arc::new(Notify::new());
    let confirm_reader = if args.confirm > 0 {
        let window = window.clone();
        let room = room.clone();
        let stats = stats.clone();
        Some(tokio::spawn(async move {
            loop {
                let f = match reader.frame().await {
                    Ok(f) => f,
                    Err(_) => return,
                };
                if let FramePayload::Method(p) = f.payload {
                    let (tag, multiple, nack) = match Method::decode(p) {
                        Ok(Method::BasicAck(a)) => (a.delivery_tag, a.multiple, false),
                        Ok(Method::BasicNack(a)) => (a.delivery_tag, a.multiple, true),
                        _ => continue,
                    };
                    let n = window
                        .lock()
                        .map(|mut w| w.settle(tag, multiple))
                        .unwrap_or(0);
                    if nack {
                        stats.nacked.fetch_add(n, Ordering::Relaxed);
                    } else {
                        stats.confirmed.fetch_add(n, Ordering::Relaxed);
                    }
                    room.notify_one();
                }
            }
        }))
    } else {
        None
    };
    let started = Instant::now();
    let mut sent = 0u64;
    let mut target = id % templates.len();
    const BATCH: u64 = 64;
    while !stop.load(Ordering::Relaxed) && (args.pmessages == 0 || sent < args.pmessages) {
        let mut batch = BATCH;
        if args.pmessages > 0 {
            batch = batch.min(args.pmessages - sent);
        }
        if args.rate > 0 {
            // Sleep until this batch is due; small batches keep the rate smooth.
            batch = batch.min((args.rate / 100).max(1));
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        if args.confirm > 0 {
            loop {
                let free = window
                    .lock()
                    .map(|w| args.confirm.saturating_sub(w.outstanding))
                    .unwrap_or(0);
                if free > 0 {
                    batch = batch.min(free as u64);
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), room.notified()).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        for _ in 0..batch {
            templates[target].write(&mut writer.buf, now_ns());
            target = (target + 1) % templates.len();
            if args.confirm > 0 {
                if let Ok(mut w) = window.lock() {
                    w.sent();
                }
            }
        }
        writer.flush().await?;
        sent += batch;
        stats.sent.fetch_add(batch, Ordering::Relaxed);
    }
    if args.confirm > 0 {
        // Wait (bounded) for the last confirms.
        let deadline = Instant::now() + Duration::from_secs(30);
        while window.lock().map(|w| w.outstanding).unwrap_or(0) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), room.notified()).await;
        }
    }
    if let Some(h) = confirm_reader {
        h.abort();
    }
    Ok(())
}

/// Reads deliveries: counts them, measures latency, acks every N.
async fn consumer(
    id: usize,
    args: Arc<Args>,
    uri: Uri,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut c = Conn::open(&uri).await?;
    if args.prefetch > 0 {
        c.call(
            BasicQos {
                prefetch_count: args.prefetch,
                ..Default::default()
            }
            .into(),
        )
        .await?;
    }
    let queue = args.queue_name(id % args.queues);
    c.call(
        BasicConsume {
            queue: ShortStr::from(queue.as_str()),
            no_ack: args.auto_ack,
            ..Default::default()
        }
        .into(),
    )
    .await?;
    let (mut reader, mut writer) = c.split();
    let mut received = 0u64;
    // The tag of the delivery being received, and of the last one complete
    // (acks must name a message we have whole, and each only once).
    let mut current_tag = 0u64;
    let mut last_tag = 0u64;
    let mut unacked = 0u64;
    let mut pending_body: Option<(u64, bool)> = None; // (bytes left, timestamp taken)
    let mut local = Histogram::default();
    let mut last_flush = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || (args.cmessages > 0 && received >= args.cmessages) {
            break;
        }
        let frame = match reader.buffered_frame()? {
            Some(f) => f,
            None => {
                // Nothing buffered: send acks before blocking on the socket.
                if unacked > 0 && !args.auto_ack {
                    writer.method(ack(last_tag));
                    unacked = 0;
                }
                writer.flush().await?;
                stats.record_latencies(&local);
                local.clear();
                match tokio::time::timeout(Duration::from_millis(200), reader.frame()).await {
                    Ok(f) => f?,
                    Err(_) => continue,
                }
            }
        };
        match frame.payload {
            FramePayload::Method(p) => match Method::decode(p)? {
                Method::BasicDeliver(d) => current_tag = d.delivery_tag,
                Method::BasicCancel(_) => bail!("consumer cancelled by the broker"),
                Method::ChannelClose(cc) => bail!("channel closed: {}", cc.reply_text),
                _ => {}
            },
            FramePayload::Header(p) => {
                let size = ContentHeader::decode(p).map(|h| h.body_size).unwrap_or(0);
                pending_body = Some((size, false));
                if size == 0 {
                    pending_body = None;
                    last_tag = current_tag;
                    complete(&stats, &mut received, &mut unacked);
                }
            }
            FramePayload::Body(mut b) => {
                if let Some((left, stamped)) = pending_body.as_mut() {
                    if !*stamped && b.len() >= 8 {
                        let sent = b.get_u64();
                        local.record(now_ns().saturating_sub(sent));
                        *stamped = true;
                        *left = left.saturating_sub(8);
                    }
                    *left = left.saturating_sub(b.len() as u64);
                    if *left == 0 {
                        pending_body = None;
                        last_tag = current_tag;
                        complete(&stats, &mut received, &mut unacked);
                        if !args.auto_ack && unacked >= args.ack_every {
                            writer.method(ack(last_tag));
                            unacked = 0;
                        }
                    }
                }
            }
            FramePayload::Heartbeat => {}
        }
        if last_flush.elapsed() > Duration::from_millis(100) {
            writer.flush().await?;
            stats.record_latencies(&local);
            local.clear();
            last_flush = Instant::now();
        }
    }
    if unacked > 0 && !args.auto_ack {
        writer.method(ack(last_tag));
    }
    writer.flush().await?;
    stats.record_latencies(&local);
    Ok(())
}

fn complete(stats: &Stats, received: &mut u64, unacked: &mut u64) {
    *received += 1;
    *unacked += 1;
    stats.received.fetch_add(1, Ordering::Relaxed);
}

fn ack(tag: u64) -> Method {
    Method::BasicAck(BasicAck {
        delivery_tag: tag,
        multiple: true,
    })
}

/// Reads one whole message: (deliver, header, body).
async fn next_message(reader: &mut Reader) -> Result<(BasicDeliver, ContentHeader, Bytes)> {
    let deliver = loop {
        if let FramePayload::Method(p) = reader.frame().await?.payload {
            match Method::decode(p)? {
                Method::BasicDeliver(d) => break d,
                Method::ChannelClose(c) => bail!("channel closed: {}", c.reply_text),
                _ => {}
            }
        }
    };
    let FramePayload::Header(h) = reader.frame().await?.payload else {
        bail!("expected a content header");
    };
    let header = ContentHeader::decode(h)?;
    let mut body = BytesMut::new();
    while (body.len() as u64) < header.body_size {
        if let FramePayload::Body(b) = reader.frame().await?.payload {
            body.extend_from_slice(&b);
        }
    }
    Ok((deliver, header, body.freeze()))
}

fn publish(
    w: &mut Writer,
    routing_key: &ShortStr,
    props: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    w.method(
        BasicPublish {
            routing_key: routing_key.clone(),
            ..Default::default()
        }
        .into(),
    );
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    warren_protocol::frame::write_header(&mut w.buf, 1, body.len() as u64, &raw);
    for chunk in body.chunks(frame_max as usize - 8) {
        warren_protocol::frame::write_body(&mut w.buf, 1, chunk);
    }
}

/// Runs a latency-bound task on a thread of its own (a single-threaded
/// runtime): its socket wakeups then never hop between worker threads, so
/// the generator adds as little as it can to the latency it measures.
fn on_own_thread<F>(fut: F) -> tokio::task::JoinHandle<Result<()>>
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(fut));
        let _ = tx.send(result);
    });
    tokio::spawn(async move {
        rx.await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("RPC thread ended without a result")))
    })
}

/// Resolves once `stop` is set (checked every 50 ms).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// RPC server: answers each request on its reply_to with the same body.
async fn rpc_server(uri: Uri, stop: Arc<AtomicBool>) -> Result<()> {
    let mut c = Conn::open(&uri).await?;
    c.call(
        BasicQos {
            prefetch_count: 100,
            ..Default::default()
        }
        .into(),
    )
    .await?;
    c.call(
        BasicConsume {
            queue: "perf-rpc".into(),
            ..Default::default()
        }
        .into(),
    )
    .await?;
    let frame_max = c.frame_max;
    let (mut reader, mut writer) = c.split();
    loop {
        // No timer per message: the stop signal ends the wait instead.
        let msg = tokio::select! {
            m = next_message(&mut reader) => m,
            _ = stopped(&stop) => break,
        };
        let (d, h, body) = msg?;
        let reply = BasicProperties {
            correlation_id: h.properties.correlation_id.clone(),
            ..Default::default()
        };
        if let Some(to) = &h.properties.reply_to {
            publish(&mut writer, to, &reply, &body, frame_max);
        }
        writer.method(
            BasicAck {
                delivery_tag: d.delivery_tag,
                multiple: false,
            }
            .into(),
        );
        writer.flush().await?;
    }
    Ok(())
}

/// RPC client: sequential calls, each waiting for its reply.
async fn rpc_client(
    args: Arc<Args>,
    uri: Uri,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let mut c = Conn::open(&uri).await?;
    let reply_to = if args.direct_reply_to {
        ShortStr::from("amq.rabbitmq.reply-to")
    } else {
        match c
            .call(
                QueueDeclare {
                    exclusive: true,
                    ..Default::default()
                }
                .into(),
            )
            .await?
        {
            Method::QueueDeclareOk(ok) => ok.queue,
            other => bail!("expected queue.declare-ok, got {}", other.name()),
        }
    };
    c.call(
        BasicConsume {
            queue: reply_to.clone(),
            no_ack: true,
            ..Default::default()
        }
        .into(),
    )
    .await?;
    let frame_max = c.frame_max;
    let (mut reader, mut writer) = c.split();
    let body = vec![b'x'; args.size.max(8)];
    let started = Instant::now();
    let mut calls = 0u64;
    let mut local = Histogram::default();
    while !stop.load(Ordering::Relaxed) && (args.pmessages == 0 || calls < args.pmessages) {
        if args.rate > 0 {
            let due = Duration::from_secs_f64(calls as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let id = ShortStr::from(calls.to_string());
        let props = BasicProperties {
            correlation_id: Some(id.clone()),
            reply_to: Some(reply_to.clone()),
            ..Default::default()
        };
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        publish(&mut writer, &"perf-rpc".into(), &props, &body, frame_max);
        writer.flush().await?;
        stats.sent.fetch_add(1, Ordering::Relaxed);
        loop {
            let msg = tokio::select! {
                m = next_message(&mut reader) => m,
                _ = tokio::time::sleep_until(deadline) => bail!("no RPC reply within 5 s"),
            };
            let (_, h, _) = msg?;
            if h.properties.correlation_id.as_ref() == Some(&id) {
                break;
            }
        }
        local.record(t0.elapsed().as_nanos() as u64);
        calls += 1;
        stats.received.fetch_add(1, Ordering::Relaxed);
        if local.count() >= 100 {
            stats.record_latencies(&local);
            local.clear();
        }
    }
    stats.record_latencies(&local);
    Ok(())
}

async fn reporter(args: Arc<Args>, stats: Arc<Stats>, stop: Arc<AtomicBool>, started: Instant) {
    let mut last = (0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let now = (
            stats.sent.load(Ordering::Relaxed),
            stats.confirmed.load(Ordering::Relaxed),
            stats.received.load(Ordering::Relaxed),
        );
        let h = stats
            .interval
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        if !args.quiet {
            println!(
                "time {:.1}s, sent: {} msg/s, confirmed: {} msg/s, received: {} msg/s, latency p50/p99: {:.0}/{:.0} µs",
                started.elapsed().as_secs_f64(),
                now.0 - last.0,
                now.1 - last.1,
                now.2 - last.2,
                us(h.quantile(0.5)),
                us(h.quantile(0.99)),
            );
        }
        last = now;
    }
}

/// Opens many idle connections and holds them.
async fn idle_connections(args: &Args, uri: &Uri) -> Result<()> {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(args.idle_connections);
    let mut pending = Vec::new();
    for i in 0..args.idle_connections {
        let uri = uri.clone();
        pending.push(tokio::spawn(async move { Conn::open(&uri).await }));
        // At most 200 handshakes in flight.
        if pending.len() == 200 || i + 1 == args.idle_connections {
            for p in pending.drain(..) {
                conns.push(p.await??);
            }
        }
    }
    let opened = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({"connections": conns.len(), "open_seconds": opened})
        );
    } else {
        println!(
            "opened {} connections in {opened:.2}s; holding for {}s",
            conns.len(),
            args.time
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.time)).await;
    Ok(())
}

pub async fn run(args: Args) -> Result<()> {
    let uri = Uri::parse(&args.uri)?;
    if args.idle_connections > 0 {
        return idle_connections(&args, &uri).await;
    }
    let args = Arc::new(args);
    declare(&args, &uri).await?;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let report = tokio::spawn(reporter(args.clone(), stats.clone(), stop.clone(), started));
    let mut phases = serde_json::Map::new();

    let mut consumers = Vec::new();
    let start_consumers = |consumers: &mut Vec<tokio::task::JoinHandle<Result<()>>>| {
        for i in 0..args.consumers {
            if args.rpc {
                consumers.push(on_own_thread(rpc_server(uri.clone(), stop.clone())));
            } else {
                consumers.push(tokio::spawn(consumer(
                    i,
                    args.clone(),
                    uri.clone(),
                    stats.clone(),
                    stop.clone(),
                )));
            }
        }
    };
    if !args.publish_then_consume {
        start_consumers(&mut consumers);
        // Consumers are registered before the first publish.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let producers: Vec<_> = (0..args.producers)
        .map(|i| {
            if args.rpc {
                on_own_thread(rpc_client(
                    args.clone(),
                    uri.clone(),
                    stats.clone(),
                    stop.clone(),
                ))
            } else {
                tokio::spawn(producer(
                    i,
                    args.clone(),
                    uri.clone(),
                    stats.clone(),
                    stop.clone(),
                ))
            }
        })
        .collect();
    let timer = {
        let stop = stop.clone();
        let limit = args.time;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(limit)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let publish_start = Instant::now();
    for p in producers {
        p.await??;
    }
    let publish_time = publish_start.elapsed().as_secs_f64();
    if args.publish_then_consume {
        phases.insert("publish_seconds".into(), json!(publish_time));
        if !args.quiet {
            println!(
                "published {} messages in {publish_time:.2}s",
                stats.sent.load(Ordering::Relaxed)
            );
        }
        let drain_start = Instant::now();
        start_consumers(&mut consumers);
        for c in consumers.drain(..) {
            c.await??;
        }
        let drain = drain_start.elapsed().as_secs_f64();
        phases.insert("consume_seconds".into(), json!(drain));
        if !args.quiet {
            println!(
                "consumed {} messages in {drain:.2}s",
                stats.received.load(Ordering::Relaxed)
            );
        }
    } else if args.cmessages > 0 || args.pmessages > 0 {
        // Bounded runs end when consumers have their messages (or time is up).
        for c in consumers.drain(..) {
            c.await??;
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Rates are over the time messages flowed, not setup and teardown.
    let window = publish_start.elapsed().as_secs_f64();
    timer.abort();
    for c in consumers {
        c.await??;
    }
    let _ = report.await;
    phases.insert(
        "elapsed_seconds".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    let elapsed = window;
    let cpu = cpu_seconds() - cpu0;
    if args.cleanup && !args.predeclared {
        let mut c = Conn::open(&uri).await?;
        for i in 0..args.queues {
            c.call(
                QueueDelete {
                    queue: ShortStr::from(args.queue_name(i)),
                    ..Default::default()
                }
                .into(),
            )
            .await?;
        }
    }
    summary(&args, &stats, elapsed, cpu, phases);
    Ok(())
}

fn summary(
    args: &Args,
    stats: &Stats,
    elapsed: f64,
    cpu: f64,
    phases: serde_json::Map<String, serde_json::Value>,
) {
    let sent = stats.sent.load(Ordering::Relaxed);
    let received = stats.received.load(Ordering::Relaxed);
    let confirmed = stats.confirmed.load(Ordering::Relaxed);
    let h = stats.total.lock().map(|h| h.clone()).unwrap_or_default();
    let rate = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    let mut v = json!({
        "seconds": elapsed,
        "sent": sent,
        "confirmed": confirmed,
        "nacked": stats.nacked.load(Ordering::Relaxed),
        "received": received,
        "send_rate": rate(sent),
        "receive_rate": rate(received),
        "latency_us": {
            "p50": us(h.quantile(0.5)),
            "p95": us(h.quantile(0.95)),
            "p99": us(h.quantile(0.99)),
            "p999": us(h.quantile(0.999)),
            "max": us(h.max()),
        },
        "cpu_seconds": cpu,
        "cpu_us_per_message": if sent + received > 0 { cpu * 1e6 / (sent + received) as f64 } else { 0.0 },
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(phases);
    }
    if args.json {
        println!("{v}");
    } else {
        println!(
            "summary: {:.1}s, sent {} ({:.0} msg/s), received {} ({:.0} msg/s), confirmed {}, latency p50 {:.0} µs, p95 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs, perf cpu {:.2}s ({:.2} µs/msg)",
            elapsed,
            sent,
            rate(sent),
            received,
            rate(received),
            confirmed,
            us(h.quantile(0.5)),
            us(h.quantile(0.95)),
            us(h.quantile(0.99)),
            us(h.quantile(0.999)),
            us(h.max()),
            cpu,
            v["cpu_us_per_message"].as_f64().unwrap_or(0.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_window_handles_single_and_multiple() {
        let mut w = ConfirmWindow::default();
        for _ in 0..5 {
            w.sent();
        }
        assert_eq!(w.settle(2, false), 1);
        assert_eq!(w.outstanding, 4);
        assert_eq!(w.settle(3, true), 2);
        assert_eq!(w.outstanding, 2);
        assert_eq!(w.settle(3, true), 0);
        assert_eq!(w.settle(5, true), 2);
        assert_eq!(w.outstanding, 0);
        w.sent();
        assert_eq!(w.settle(6, false), 1);
    }
}

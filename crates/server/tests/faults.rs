//! Storage faults end to end: writes and fsyncs that fail (injected, or a
//! really full disk) are never confirmed, and nothing that was confirmed
//! is lost across a SIGKILL.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{amqp_error, bounded, run_test, unique, Launch, TestBroker, STEP};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

fn injecting() -> TestBroker {
    TestBroker::start_with(&[], &[("WARREN_FAULT_INJECTION", "1")])
}

fn inject(b: &TestBroker, op: &str, path: &str, skip: u32, count: u32, error: &str) {
    let r = b.control(
        "inject_fault",
        &[op, path, &skip.to_string(), &count.to_string(), error],
    );
    assert_eq!(r["ok"], true, "inject_fault: {r}");
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Body of message `i`: its number, then a pattern derived from it.
fn body(i: u32, len: usize) -> Vec<u8> {
    let mut b = i.to_be_bytes().to_vec();
    b.extend((0..len.saturating_sub(4)).map(|k| (k as u32 ^ i.wrapping_mul(2_654_435_761)) as u8));
    b
}

fn id_of(b: &[u8], len: usize) -> u32 {
    let i = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(b, &body(i, len)[..], "message {i} came back corrupted");
    i
}

async fn publish(ch: &Channel, q: &str, i: u32, len: usize) -> PublisherConfirm {
    ch.basic_publish(
        "",
        q,
        BasicPublishOptions::default(),
        &body(i, len),
        BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .expect("publish")
}

async fn drain(ch: &Channel, q: &str, len: usize) -> BTreeSet<u32> {
    let mut got = BTreeSet::new();
    while let Some(m) = ch
        .basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        assert!(got.insert(id_of(&m.delivery.data, len)), "duplicate");
    }
    got
}

/// A channel in confirm mode with durable queue `q` declared.
async fn confirming_channel(b: &TestBroker, q: &str) -> (lapin::Connection, Channel) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch.queue_declare(q, durable(), FieldTable::default())
        .await
        .expect("declare");
    (conn, ch)
}

/// Publishes with confirms while writes and fsyncs of the message store
/// and the queue index fail now and then; after a SIGKILL every acked
/// message is there, and some were nacked (the faults did fire).
#[tokio::test]
async fn failed_writes_and_fsyncs_are_nacked_and_every_ack_survives_a_crash() {
    let broker = injecting();
    let q = unique("faulty");
    let len = 2048;
    let (acked, nacked) = run_test(async {
        let (_conn, ch) = confirming_channel(&broker, &q).await;
        let mut acked = BTreeSet::new();
        let mut nacked = BTreeSet::new();
        let faults = [
            ("fsync", "/msgs/", "eio"),
            ("write", "/msgs/", "enospc"),
            ("fsync", "/queues/", "eio"),
            ("write", "/queues/", "enospc"),
        ];
        for round in 0..8u32 {
            let (op, path, err) = faults[round as usize % faults.len()];
            inject(&broker, op, path, 0, 1, err);
            let mut pending = Vec::new();
            for k in 0..100 {
                let i = round * 100 + k;
                pending.push((i, publish(&ch, &q, i, len).await));
            }
            for (i, c) in pending {
                match bounded(Duration::from_secs(10), "a confirm", c)
                    .await
                    .expect("confirm")
                {
                    Confirmation::Ack(_) => acked.insert(i),
                    Confirmation::Nack(_) => nacked.insert(i),
                    Confirmation::NotRequested => panic!("confirms were requested"),
                };
            }
        }
        (acked, nacked)
    })
    .await;
    assert_eq!(acked.len() + nacked.len(), 800);
    assert!(!nacked.is_empty(), "no fault fired:\n{}", broker.log());
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let got = drain(&ch, &q, len).await;
        let lost: Vec<_> = acked.difference(&got).collect();
        assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
        assert!(got.iter().all(|i| *i < 800));
    })
    .await;
}

/// Waits until the log says the disk alarm cleared `times` times.
async fn wait_alarm_cleared(b: &TestBroker, times: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.log().matches("disk resource limit alarm cleared").count() < times {
        assert!(
            std::time::Instant::now() < deadline,
            "the disk alarm did not clear:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Collects confirms: acked and nacked message numbers.
async fn settle(
    pending: Vec<(u32, PublisherConfirm)>,
    acked: &mut BTreeSet<u32>,
    nacked: &mut BTreeSet<u32>,
) {
    for (i, c) in pending {
        match bounded(Duration::from_secs(10), "a confirm", c)
            .await
            .expect("confirm")
        {
            Confirmation::Ack(_) => acked.insert(i),
            Confirmation::Nack(_) => nacked.insert(i),
            Confirmation::NotRequested => panic!("confirms were requested"),
        };
    }
}

/// Priority lanes (lane p > 0 keeps its own index under `p<p>/`): writes
/// and fsyncs failing in lanes 3 and 5 and in the message store are
/// nacked; after a SIGKILL every acked message is there, in priority
/// order, byte for byte.
#[tokio::test]
async fn failed_writes_in_priority_lanes_are_nacked_and_every_ack_survives() {
    let broker = injecting();
    let q = unique("prio");
    let len = 1024;
    let (acked, nacked) = run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let mut args = FieldTable::default();
        args.insert(
            "x-max-priority".into(),
            lapin::types::AMQPValue::ShortShortUInt(5),
        );
        ch.queue_declare(&q, durable(), args)
            .await
            .expect("declare");
        let mut acked = BTreeSet::new();
        let mut nacked = BTreeSet::new();
        let faults = [
            ("write", "/p3/", "enospc"),
            ("fsync", "/p5/", "eio"),
            ("fsync", "/msgs/", "eio"),
            ("write", "/p5/", "eio"),
            ("fsync", "/p3/", "enospc"),
        ];
        for (round, (op, path, err)) in faults.into_iter().enumerate() {
            inject(&broker, op, path, 0, 1, err);
            let mut pending = Vec::new();
            for k in 0..60u32 {
                let i = round as u32 * 60 + k;
                let c = ch
                    .basic_publish(
                        "",
                        &q,
                        BasicPublishOptions::default(),
                        &body(i, len),
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_priority((i % 6) as u8),
                    )
                    .await
                    .expect("publish");
                pending.push((i, c));
            }
            let before = nacked.len();
            settle(pending, &mut acked, &mut nacked).await;
            assert!(
                nacked.len() > before,
                "the {op} fault on {path} was not nacked"
            );
            // Let the retries of what failed and the disk alarm settle, so
            // the next fault meets the next round's writes.
            wait_alarm_cleared(&broker, round + 1).await;
        }
        (acked, nacked)
    })
    .await;
    assert_eq!(acked.len() + nacked.len(), 300);
    assert!(!nacked.is_empty(), "no fault fired:\n{}", broker.log());
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let mut got = Vec::new();
        while let Some(m) = ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            got.push(id_of(&m.delivery.data, len));
        }
        let set: BTreeSet<u32> = got.iter().copied().collect();
        assert_eq!(set.len(), got.len(), "duplicates");
        let lost: Vec<_> = acked.difference(&set).collect();
        assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
        assert!(set.iter().all(|i| *i < 300));
        let prios: Vec<u32> = got.iter().map(|i| i % 6).collect();
        assert!(
            prios.windows(2).all(|w| w[0] >= w[1]),
            "not in priority order: {prios:?}"
        );
    })
    .await;
}

/// The delayed-message exchange holds messages in its own store
/// (`delayed/`): holds whose write or fsync fails are nacked; after a
/// SIGKILL before they are due, every acked one is delivered when due.
#[tokio::test]
async fn failed_writes_in_the_delay_store_are_nacked_and_every_ack_is_delivered() {
    let broker = injecting();
    let (x, q) = (unique("delayx"), unique("delayq"));
    let len = 512;
    let (acked, nacked) = run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let mut args = FieldTable::default();
        args.insert(
            "x-delayed-type".into(),
            lapin::types::AMQPValue::LongString("direct".into()),
        );
        ch.exchange_declare(
            &x,
            lapin::ExchangeKind::Custom("x-delayed-message".into()),
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("exchange.declare");
        ch.queue_declare(&q, durable(), FieldTable::default())
            .await
            .expect("declare");
        ch.queue_bind(&q, &x, "k", Default::default(), FieldTable::default())
            .await
            .expect("bind");
        let mut acked = BTreeSet::new();
        let mut nacked = BTreeSet::new();
        let faults = [
            ("write", "/delayed/", "enospc"),
            ("fsync", "/delayed/", "eio"),
            ("fsync", "/msgs/", "eio"),
        ];
        for (round, (op, path, err)) in faults.into_iter().enumerate() {
            inject(&broker, op, path, 0, 1, err);
            let mut pending = Vec::new();
            for k in 0..40u32 {
                let i = round as u32 * 40 + k;
                let mut headers = FieldTable::default();
                headers.insert("x-delay".into(), lapin::types::AMQPValue::LongInt(2000));
                let c = ch
                    .basic_publish(
                        &x,
                        "k",
                        BasicPublishOptions::default(),
                        &body(i, len),
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_headers(headers),
                    )
                    .await
                    .expect("publish");
                pending.push((i, c));
            }
            let before = nacked.len();
            settle(pending, &mut acked, &mut nacked).await;
            assert!(
                nacked.len() > before,
                "the {op} fault on {path} was not nacked"
            );
            // Let the retries of what failed and the disk alarm settle, so
            // the next fault meets the next round's writes.
            wait_alarm_cleared(&broker, round + 1).await;
        }
        // None is due yet.
        let early = ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        assert!(early.is_none(), "delivered before its delay");
        (acked, nacked)
    })
    .await;
    assert_eq!(acked.len() + nacked.len(), 120);
    assert!(!nacked.is_empty(), "no fault fired:\n{}", broker.log());
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let mut got = BTreeSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !acked.is_subset(&got) && std::time::Instant::now() < deadline {
            match ch
                .basic_get(&q, BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                Some(m) => assert!(got.insert(id_of(&m.delivery.data, len)), "duplicate"),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let lost: Vec<_> = acked.difference(&got).collect();
        assert!(lost.is_empty(), "confirmed delayed messages lost: {lost:?}");
        assert!(got.iter().all(|i| *i < 120));
    })
    .await;
}

/// A transaction whose messages can't be made durable never gets
/// commit-ok: the connection ends with 541.
#[tokio::test]
async fn a_commit_that_cannot_be_made_durable_ends_the_connection_with_541() {
    let broker = injecting();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let q = unique("tx");
        ch.queue_declare(&q, durable(), FieldTable::default())
            .await
            .expect("declare");
        ch.tx_select().await.expect("tx.select");
        publish(&ch, &q, 1, 100).await;
        ch.tx_commit().await.expect("a healthy commit");
        inject(&broker, "fsync", "/msgs/", 0, 1, "eio");
        publish(&ch, &q, 2, 100).await;
        let err = bounded(STEP, "tx.commit", ch.tx_commit())
            .await
            .expect_err("commit-ok for a failed fsync");
        let (code, text) = amqp_error(&err);
        assert_eq!(code, 541, "{text}");
        bounded(STEP, "the connection to close", async {
            while conn.status().connected() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    })
    .await;
}

/// A durable declare whose journal entry can't be written is refused with
/// 541 and leaves no trace; the journal keeps working afterwards, and
/// what was acknowledged survives a crash.
#[tokio::test]
async fn a_declare_that_cannot_be_journaled_is_refused_and_leaves_no_trace() {
    let broker = injecting();
    let (lost, kept) = (unique("lost"), unique("kept"));
    run_test(async {
        for (op, err) in [("write", "enospc"), ("fsync", "eio")] {
            let conn = broker.connect().await;
            let ch = conn.create_channel().await.expect("channel");
            inject(&broker, op, "definitions.log", 0, 1, err);
            let r = ch
                .queue_declare(&lost, durable(), FieldTable::default())
                .await;
            assert_eq!(amqp_error(&r.expect_err("declare-ok")).0, 541);
        }
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = ch
            .queue_declare(&lost, passive, FieldTable::default())
            .await;
        assert_eq!(amqp_error(&r.expect_err("the refused queue exists")).0, 404);
        let ch = conn.create_channel().await.expect("channel");
        ch.queue_declare(&kept, durable(), FieldTable::default())
            .await
            .expect("declare after the failures");
    })
    .await;
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let ch = conn.create_channel().await.expect("channel");
        ch.queue_declare(&kept, passive, FieldTable::default())
            .await
            .expect("the acknowledged queue survived");
        let r = ch
            .queue_declare(&lost, passive, FieldTable::default())
            .await;
        assert_eq!(
            amqp_error(&r.expect_err("refused queue resurrected")).0,
            404
        );
    })
    .await;
}

/// A mount namespace holding a small tmpfs, kept alive by a sleeping
/// process; brokers enter it with nsenter.
struct SmallDisk {
    holder: std::process::Child,
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// `None` where private mount namespaces are not permitted.
    fn new(megabytes: u32) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(unique("tmpfs"));
        std::fs::create_dir_all(&dir).ok()?;
        let script = format!(
            "mount -t tmpfs -o size={megabytes}m,mode=0700 tmpfs {} && echo ready && exec sleep 600",
            dir.display()
        );
        let mut holder = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut out = holder.stdout.take()?;
        let mut buf = [0u8; 6];
        use std::io::Read;
        if out.read_exact(&mut buf).is_err() || &buf != b"ready\n" {
            let _ = holder.kill();
            let _ = holder.wait();
            return None;
        }
        Some(SmallDisk { holder, dir })
    }

    fn launch(&self, args: &[&str]) -> Launch {
        Launch {
            wrapper: vec![
                "nsenter".into(),
                "--mount".into(),
                "--target".into(),
                self.holder.id().to_string(),
                "--".into(),
            ],
            data_dir: Some(self.dir.join("data")),
            ..Launch::new(args, &[])
        }
    }
}

impl SmallDisk {
    /// [`SmallDisk::new`], or a failure where private mount namespaces are
    /// not permitted: a test that cannot run must not report ok. Only
    /// `WARREN_SKIP_NAMESPACE_TESTS=1` skips it (`None`), on purpose.
    fn new_or_skip(megabytes: u32) -> Option<SmallDisk> {
        if let Some(disk) = SmallDisk::new(megabytes) {
            return Some(disk);
        }
        let why = "private mount namespaces (unshare --mount, as root) are not permitted here";
        if std::env::var("WARREN_SKIP_NAMESPACE_TESTS").as_deref() == Ok("1") {
            eprintln!("skipped (WARREN_SKIP_NAMESPACE_TESTS=1): {why}");
            return None;
        }
        panic!("{why}; set WARREN_SKIP_NAMESPACE_TESTS=1 to skip the full-disk tests explicitly");
    }

    /// Grows (or shrinks) the file system in place.
    fn resize(&self, megabytes: u32) {
        let status = std::process::Command::new("nsenter")
            .args([
                "--mount",
                "--target",
                &self.holder.id().to_string(),
                "--",
                "mount",
                "-o",
            ])
            .arg(format!("remount,size={megabytes}m"))
            .arg(&self.dir)
            .status()
            .expect("nsenter");
        assert!(status.success(), "remount failed: {status}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A really full disk (a 24 MiB tmpfs; no disk-free limit, so the first
/// sign is ENOSPC itself): confirmed messages all survive a SIGKILL.
#[tokio::test]
async fn a_full_disk_loses_no_confirmed_message() {
    let Some(disk) = SmallDisk::new_or_skip(24) else {
        return;
    };
    // The broker's log and its data live in the namespace's tmpfs; the
    // log goes to a file outside it so a full disk can't silence it.
    let broker = TestBroker::launch(disk.launch(&["--disk-free-limit", "0"]));
    let q = unique("full");
    let len = 64 * 1024;
    let acked = run_test(async {
        let (_conn, ch) = confirming_channel(&broker, &q).await;
        let mut acked = BTreeSet::new();
        let mut nacked = 0;
        // 500 × 64 KiB = 32 MiB into 24 MiB. Once the disk alarm blocks
        // the connection, publishes stop being read: stop at the first
        // confirm that doesn't come.
        'outer: for batch in 0..25u32 {
            let mut pending = Vec::new();
            for k in 0..20 {
                let i = batch * 20 + k;
                match tokio::time::timeout(Duration::from_secs(2), publish(&ch, &q, i, len)).await {
                    Ok(c) => pending.push((i, c)),
                    Err(_) => break,
                }
            }
            for (i, c) in pending {
                match tokio::time::timeout(Duration::from_secs(3), c).await {
                    Ok(Ok(Confirmation::Ack(_))) => {
                        acked.insert(i);
                    }
                    Ok(Ok(_)) => nacked += 1,
                    Ok(Err(e)) => panic!("confirm failed: {e}"),
                    Err(_) => break 'outer,
                }
            }
        }
        assert!(
            acked.len() < 500,
            "the disk never filled ({} acked, {nacked} nacked)",
            acked.len()
        );
        acked
    })
    .await;
    let log = broker.log();
    assert!(
        log.contains("disk resource limit alarm set"),
        "no disk alarm:\n{log}"
    );
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let got = drain(&ch, &q, len).await;
        let lost: Vec<_> = acked.difference(&got).collect();
        assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
    })
    .await;
    drop(broker);
    drop(disk);
}

/// A full disk that gets space back: publishers are blocked by the disk
/// alarm, what could not be written is nacked (never acked), and once the
/// file system grows the alarm clears by itself, the publishes held in the
/// socket go on, and every message confirmed before, during and after is
/// there byte for byte, also after a SIGKILL.
#[tokio::test]
async fn a_full_disk_blocks_publishers_and_resumes_when_space_returns() {
    let Some(disk) = SmallDisk::new_or_skip(24) else {
        return;
    };
    let broker = TestBroker::launch(disk.launch(&["--disk-free-limit", "0"]));
    let q = unique("resume");
    let len = 64 * 1024;
    // 600 × 64 KiB = 37.5 MiB: past 24 MiB, well within 96 MiB.
    let total = 600u32;
    let acked = bounded(Duration::from_secs(120), "the test body", async {
        let (_conn, ch) = confirming_channel(&broker, &q).await;
        // A publisher that just goes on: once the alarm stops the broker
        // reading, its publishes wait in the socket (and then in lapin).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let publisher = {
            let (ch, q) = (ch.clone(), q.clone());
            tokio::spawn(async move {
                for i in 0..total {
                    let c = publish(&ch, &q, i, len).await;
                    if tx.send((i, c)).is_err() {
                        return;
                    }
                }
            })
        };
        let mut acked = BTreeSet::new();
        let mut nacked = BTreeSet::new();
        let mut blocked_at = None;
        // Blocked: nothing more is confirmed (or even taken) while full.
        // Checks the alarm, then gives the file system space back.
        let unblock = |at: u32, blocked_at: &mut Option<u32>| {
            *blocked_at = Some(at);
            assert!(
                broker.log().contains("disk resource limit alarm set"),
                "stalled without a disk alarm:\n{}",
                broker.log()
            );
            // Space returns: the tmpfs grows to 96 MiB.
            disk.resize(96);
        };
        let mut expected = 0;
        loop {
            let wait = Duration::from_secs(if blocked_at.is_none() { 3 } else { 30 });
            let (i, mut c) = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(_) if blocked_at.is_none() => {
                    unblock(expected, &mut blocked_at);
                    continue;
                }
                Err(_) => panic!("publish {expected} not taken 30 s after space returned"),
            };
            expected = i + 1;
            let r = match tokio::time::timeout(wait, &mut c).await {
                Ok(r) => r,
                Err(_) if blocked_at.is_none() => {
                    unblock(i, &mut blocked_at);
                    bounded(Duration::from_secs(30), "confirm after the resume", c).await
                }
                Err(_) => panic!("message {i} unconfirmed 30 s after space returned"),
            };
            match r {
                Ok(Confirmation::Ack(_)) => {
                    acked.insert(i);
                }
                Ok(_) => {
                    assert!(
                        blocked_at.is_none() || i < total - 50,
                        "message {i} nacked after the resume"
                    );
                    nacked.insert(i);
                }
                Err(e) => panic!("confirm failed: {e}"),
            }
        }
        bounded(STEP, "publisher", publisher)
            .await
            .expect("publisher");
        let at = blocked_at.unwrap_or_else(|| {
            panic!(
                "the disk never filled ({} acked, {} nacked)",
                acked.len(),
                nacked.len()
            )
        });
        assert!(at < total - 50, "filled only at message {at}");
        assert!(
            broker.log().contains("disk resource limit alarm cleared"),
            "the alarm never cleared:\n{}",
            broker.log()
        );
        assert!(
            acked.len() as u32 > total - at,
            "too little acked after the resume"
        );
        eprintln!(
            "blocked at {at}: {} acked, {} nacked of {total}",
            acked.len(),
            nacked.len()
        );
        acked
    })
    .await;
    let broker = broker.restart(true);
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let got = drain(&ch, &q, len).await;
        let lost: Vec<_> = acked.difference(&got).collect();
        assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
        assert!(got.iter().all(|i| *i < total), "a message nobody published");
    })
    .await;
    drop(broker);
    drop(disk);
}

/// With a permissive umask, everything in the data directory is still
/// private to the broker's user.
#[tokio::test]
async fn data_files_and_the_control_socket_are_private() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask has no memory-safety preconditions; the broker child
    // inherits 022 and must override it.
    let old = unsafe { libc::umask(0o022) };
    let broker = TestBroker::start();
    unsafe {
        libc::umask(old);
    }
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let q = unique("private");
        ch.queue_declare(&q, durable(), FieldTable::default())
            .await
            .expect("declare");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        bounded(STEP, "confirm", publish(&ch, &q, 1, 10).await)
            .await
            .expect("confirm");
    })
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&broker.data_dir), 0o700);
    let mut checked = 0;
    let mut stack = vec![broker.data_dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Test scaffolding, not the broker's.
            if name == "broker.log" || name == "amqp-broker" {
                continue;
            }
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                let m = mode(&p);
                assert_eq!(m & 0o077, 0, "{} is {m:o}", p.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "only {checked} files looked at");
}

/// The harness itself: a broker whose log shows a panic fails the test
/// that ran it when it is dropped (here the panic line is written into
/// the log by hand; a real one comes from the broker's panic hook).
#[test]
#[should_panic(expected = "the broker panicked")]
fn a_broker_that_panicked_fails_its_test() {
    let broker = TestBroker::start();
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(broker.data_dir.join("broker.log"))
        .expect("broker.log");
    writeln!(
        log,
        "thread 'tokio-runtime-worker' panicked at src/x.rs:1:1:\nboom"
    )
    .expect("write");
    drop(broker);
}

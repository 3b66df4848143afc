//! Damaged files at recovery, end to end: a flipped byte or a torn tail in
//! each kind of file the broker writes is detected and logged, costs only
//! what it damaged, and everything else comes back byte for byte.
//!
//! | file                       | damage        | what is lost                     |
//! |----------------------------|---------------|----------------------------------|
//! | message segment `.seg`     | flipped byte  | the one record it falls in       |
//! | message segment `.seg`     | torn tail     | the last record                  |
//! | queue index `.idx`         | flipped byte  | that one entry                   |
//! | queue index `.idx`         | torn tail     | nothing (partial entry cut off)  |
//! | ack marks `.acks`          | flipped byte  | nothing: the ack, so a redelivery|
//! | definitions log            | flipped byte  | that one change                  |
//! | definitions log            | torn tail     | the partial line                 |
//! | definitions snapshot       | flipped byte  | nothing: the broker refuses to   |
//! |                            |               | start, names the file, and keeps |
//! |                            |               | every data file                  |

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{bounded, run_test, unique, TestBroker, STEP};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

const LEN: usize = 2000;

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Body of message `i`: its number, then a pattern derived from it.
fn body(i: u32) -> Vec<u8> {
    let mut b = i.to_be_bytes().to_vec();
    b.extend((0..LEN - 4).map(|k| (k as u32 ^ i.wrapping_mul(2_654_435_761)) as u8));
    b
}

fn id_of(b: &[u8]) -> u32 {
    assert!(b.len() >= 4, "a {}-byte body", b.len());
    let i = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(b, &body(i)[..], "message {i} came back corrupted");
    i
}

async fn confirming(b: &TestBroker, q: &str) -> (lapin::Connection, Channel) {
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

async fn publish_all(ch: &Channel, q: &str, ids: std::ops::Range<u32>) {
    for i in ids {
        let c = ch
            .basic_publish(
                "",
                q,
                BasicPublishOptions::default(),
                &body(i),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        let c = bounded(STEP, "confirm", c).await.expect("confirm");
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    }
}

/// Every message left in `q` (taken without ack): id → redelivered.
async fn drain(b: &TestBroker, q: &str) -> Vec<(u32, bool)> {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get(q, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        got.push((id_of(&m.delivery.data), m.delivery.redelivered));
    }
    got
}

fn ids(got: &[(u32, bool)]) -> BTreeSet<u32> {
    let set: BTreeSet<u32> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(set.len(), got.len(), "a message came back twice: {got:?}");
    set
}

/// Files under `dir` whose name ends with `suffix`, largest first.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, suffix, out);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, suffix, &mut out);
    out.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map_or(0, |m| m.len())));
    out
}

fn flip(path: &Path, at: usize) {
    let mut raw = std::fs::read(path).expect("read");
    assert!(
        at < raw.len(),
        "{} has only {} bytes",
        path.display(),
        raw.len()
    );
    raw[at] ^= 0x5a;
    std::fs::write(path, raw).expect("write");
}

fn truncate_by(path: &Path, bytes: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let len = f.metadata().expect("metadata").len();
    f.set_len(len - bytes).expect("set_len");
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("append");
}

/// A byte flipped in the middle of the message segment costs the record it
/// falls in; a torn tail costs the last record; the rest is intact, new
/// messages are stored fine afterwards, and the lost ones never resurrect.
#[tokio::test]
async fn damaged_message_segments_cost_only_the_damaged_records() {
    let broker = TestBroker::start();
    let q = unique("segs");
    run_test(async {
        let (_c, ch) = confirming(&broker, &q).await;
        publish_all(&ch, &q, 0..100).await;
    })
    .await;
    let broker = broker.restart_after(true, |dir| {
        let segs = files(dir, ".seg");
        let seg = segs.first().expect("a message segment");
        let len = std::fs::metadata(seg).expect("metadata").len() as usize;
        assert!(len >= 100 * LEN, "{} is {len} bytes", seg.display());
        flip(seg, len / 2);
        truncate_by(seg, 700);
    });
    let got = run_test(async { drain(&broker, &q).await }).await;
    let got = ids(&got);
    let missing: Vec<u32> = (0..100).filter(|i| !got.contains(i)).collect();
    assert_eq!(missing.len(), 2, "missing {missing:?}");
    assert_eq!(missing[1], 99, "the torn last record: missing {missing:?}");
    assert!(
        (40..60).contains(&missing[0]),
        "the flipped middle: {missing:?}"
    );
    let log = broker.log();
    assert!(log.contains("corrupt message record"), "not logged:\n{log}");
    // Writing goes on in a fresh segment; nothing damaged comes back.
    run_test(async {
        let (_c, ch) = confirming(&broker, &q).await;
        publish_all(&ch, &q, 100..110).await;
    })
    .await;
    // (A clean stop: after a SIGKILL, acks younger than the marks' lazy
    // sync may come back as redeliveries, which is allowed.)
    let broker = broker.restart(false);
    let got = run_test(async { drain(&broker, &q).await }).await;
    assert_eq!(ids(&got), (100..110).collect(), "after a second restart");
}

/// A flipped index entry costs that entry; a torn index tail costs
/// nothing; a flipped ack mark turns that ack into a redelivery.
#[tokio::test]
async fn damaged_queue_index_and_marks_cost_only_what_they_hold() {
    let broker = TestBroker::start();
    let q = unique("idx");
    run_test(async {
        let (_c, ch) = confirming(&broker, &q).await;
        publish_all(&ch, &q, 0..100).await;
        // Ack the first 30.
        for i in 0..30 {
            let m = ch
                .basic_get(&q, BasicGetOptions::default())
                .await
                .expect("basic.get")
                .expect("a message");
            assert_eq!(id_of(&m.delivery.data), i);
            m.ack(BasicAckOptions::default()).await.expect("ack");
        }
    })
    .await;
    // Stopped cleanly: every mark is written before the damage.
    let mut acked_entry = None;
    let broker = broker.restart_after(false, |dir| {
        let idx = files(dir, ".idx");
        let idx = idx.first().expect("a queue index");
        // Entry 50 (40 bytes each): one byte of its sequence number.
        flip(idx, 50 * 40 + 3);
        // A torn append: half an entry.
        append(idx, &[0x11; 17]);
        let acks = files(dir, ".acks");
        let acks = acks.first().expect("an ack marks file");
        let raw = std::fs::read(acks).expect("read");
        // The first ack mark (kind 2): its entry number, flipped.
        let k = raw
            .chunks(12)
            .position(|m| m.len() == 12 && m[4] == 2)
            .expect("an ack mark");
        acked_entry = Some(u32::from_be_bytes([
            raw[k * 12],
            raw[k * 12 + 1],
            raw[k * 12 + 2],
            raw[k * 12 + 3],
        ]));
        flip(acks, k * 12 + 2);
    });
    let acked_entry = acked_entry.expect("damaged");
    assert!(acked_entry < 30, "mark for entry {acked_entry}");
    let got = run_test(async { drain(&broker, &q).await }).await;
    let set = ids(&got);
    let mut want: BTreeSet<u32> = (30..100).filter(|i| *i != 50).collect();
    want.insert(acked_entry);
    assert_eq!(set, want);
    // The resurrected one was delivered before: it says so.
    let redelivered = got.iter().find(|(i, _)| *i == acked_entry).map(|(_, r)| *r);
    assert_eq!(redelivered, Some(true), "message {acked_entry}");
    let log = broker.log();
    assert!(
        log.contains("is corrupt (checksum)"),
        "entry not logged:\n{log}"
    );
    assert!(
        log.contains("torn or corrupt tail"),
        "tail not logged:\n{log}"
    );
    assert!(
        log.contains("corrupt mark(s) skipped"),
        "mark not logged:\n{log}"
    );
}

/// A flipped byte in the definitions log costs that one change; a torn
/// last line is cut off; every other change is replayed.
#[tokio::test]
async fn a_damaged_definitions_log_costs_only_the_damaged_change() {
    let broker = TestBroker::start();
    let names: Vec<String> = (0..5).map(|i| format!("{}-{i}", unique("defs"))).collect();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        for n in &names {
            ch.queue_declare(n, durable(), FieldTable::default())
                .await
                .expect("declare");
        }
    })
    .await;
    let victim = names[2].clone();
    let broker = broker.restart_after(true, |dir| {
        let log = dir.join("definitions.log");
        let raw = std::fs::read(&log).expect("definitions.log");
        let at = raw
            .windows(victim.len())
            .position(|w| w == victim.as_bytes())
            .expect("the victim's declare in the log");
        flip(&log, at + 1);
        append(&log, b"{\"torn\":");
    });
    let log = broker.log();
    assert!(log.contains("is corrupt (checksum)"), "not logged:\n{log}");
    run_test(async {
        let conn = broker.connect().await;
        for n in &names {
            let ch = conn.create_channel().await.expect("channel");
            let r = ch
                .queue_declare(
                    n,
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            assert_eq!(r.is_ok(), *n != victim, "{n}: {r:?}");
        }
    })
    .await;
}

/// A damaged definitions snapshot is not guessed around: the broker
/// refuses to start, says which file, and leaves every data file as it
/// was; with the file repaired it starts with everything.
#[tokio::test]
async fn a_damaged_definitions_snapshot_stops_the_start_and_keeps_the_data() {
    let broker = TestBroker::start();
    let q = unique("snap");
    run_test(async {
        let (_c, ch) = confirming(&broker, &q).await;
        publish_all(&ch, &q, 0..20).await;
    })
    .await;
    // Stopped cleanly, then the snapshot's first byte damaged.
    let stopped = broker.stop(false);
    let snap = stopped.data_dir.join("definitions.json");
    let segs_before = files(&stopped.data_dir, ".seg");
    assert!(
        snap.exists(),
        "no snapshot in {}",
        stopped.data_dir.display()
    );
    flip(&snap, 0);
    let out = stopped.start_fails();
    assert!(
        out.contains("definitions.json") && out.contains("unreadable"),
        "the refusal does not name the file:\n{out}"
    );
    assert_eq!(
        files(&stopped.data_dir, ".seg"),
        segs_before,
        "data files touched"
    );
    // Repaired, it starts with the queue and its messages.
    flip(&snap, 0);
    let broker = stopped.start();
    let got = run_test(async { drain(&broker, &q).await }).await;
    assert_eq!(ids(&got), (0..20).collect());
}

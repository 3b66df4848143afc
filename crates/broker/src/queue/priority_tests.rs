//! Priority queues: highest priority first, FIFO within a priority, the
//! `priority` property capped at `x-max-priority`, requeued messages back
//! in their place, and a backlog paged to disk in several lanes delivered
//! in order, also after a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use warren_protocol::BasicProperties;

use super::*;
use crate::store::{Committer, MessageStore};

fn msg(priority: Option<u8>, body: String, persistent: bool) -> Arc<Message> {
    let props = BasicProperties {
        priority,
        delivery_mode: persistent.then_some(2),
        ..Default::default()
    };
    let mut raw = bytes::BytesMut::new();
    props.encode(&mut raw);
    Arc::new(Message::new(
        "".into(),
        "q".into(),
        props,
        raw.freeze(),
        Bytes::from(body),
    ))
}

fn limits(max: u8) -> QueueLimits {
    QueueLimits {
        max_priority: Some(max),
        ..Default::default()
    }
}

fn bodies(q: &Arc<Queue>) -> Vec<String> {
    std::iter::from_fn(|| q.get(true).0)
        .map(|(m, _)| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}

#[test]
fn highest_first_fifo_within_and_capped() {
    let q = Arc::new(Queue::new(QueueSetup::in_memory("q", limits(5))));
    for (p, b) in [
        (None, "a0"),
        (Some(1), "b1"),
        (Some(7), "c5"),
        (Some(3), "d3"),
        (Some(5), "e5"),
        (Some(1), "f1"),
        (Some(0), "g0"),
        (Some(255), "h5"),
    ] {
        let _ = q.publish(msg(p, b.into(), false), Durability::BestEffort);
    }
    assert_eq!(q.stats().ready, 8);
    assert_eq!(bodies(&q), ["c5", "e5", "h5", "d3", "b1", "f1", "a0", "g0"]);
}

#[test]
fn requeued_messages_go_back_to_their_place_in_their_priority() {
    let q = Arc::new(Queue::new(QueueSetup::in_memory("q", limits(9))));
    for (p, b) in [
        (3, "x1"),
        (3, "x2"),
        (9, "y1"),
        (0, "z1"),
        (3, "x3"),
        (9, "y2"),
    ] {
        let _ = q.publish(msg(Some(p), b.into(), false), Durability::BestEffort);
    }
    let (y1, _) = q.get(false).0.unwrap();
    let (y2, _) = q.get(false).0.unwrap();
    let (x1, _) = q.get(false).0.unwrap();
    assert_eq!(&x1.message.body[..], b"x1");
    let _ = q.requeue(vec![(x1.seq, x1.message, None), (y2.seq, y2.message, None)]);
    assert_eq!(bodies(&q), ["y2", "x1", "x2", "x3", "z1"]);
    let _ = q.requeue(vec![(y1.seq, y1.message, None)]);
    assert_eq!(bodies(&q), ["y1"]);
}

#[test]
fn no_priority_argument_is_fifo() {
    let q = Arc::new(Queue::new(QueueSetup::in_memory(
        "q",
        QueueLimits::default(),
    )));
    for (p, b) in [(Some(9), "1"), (None, "2"), (Some(200), "3")] {
        let _ = q.publish(msg(p, b.into(), false), Durability::BestEffort);
    }
    assert_eq!(bodies(&q), ["1", "2", "3"]);
}

#[test]
fn drop_head_takes_the_highest_priority_first_as_rabbitmq() {
    let q = Arc::new(Queue::new(QueueSetup::in_memory(
        "q",
        QueueLimits {
            max_length: Some(3),
            ..limits(5)
        },
    )));
    for (p, b) in [(1, "a"), (5, "b"), (2, "c"), (0, "d")] {
        let _ = q.publish(msg(Some(p), b.into(), false), Durability::BestEffort);
    }
    assert_eq!(bodies(&q), ["c", "a", "d"]);
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

fn durable_queue(dir: &std::path::Path, max: u8, committer: &Arc<Committer>) -> Arc<Queue> {
    let store = Arc::new(MessageStore::open(&dir.join("msgs"), committer.clone()).unwrap());
    let handle = StorageHandle {
        store,
        dir: dir.join("queue"),
    };
    let (recovered, errors) = RecoveredQueue::open(&handle, usize::from(max) + 1);
    assert!(errors.is_empty(), "{errors:?}");
    let mut setup = QueueSetup::in_memory("q", limits(max));
    setup.options.durable = true;
    setup.storage = Some(handle);
    setup.recovered = Some(recovered);
    Arc::new(Queue::new(setup))
}

/// 12,000 messages over four priorities overflow the 8,192-message window,
/// so the later ones of every lane wait on disk; delivery is still
/// strictly by priority, FIFO within, with every body intact, before and
/// after a restart, with acks and requeues mixed in.
#[test]
fn a_paged_backlog_keeps_priority_order_across_a_restart() {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("warren-prio-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let committer = Arc::new(Committer::default());
    let prios = [0u8, 3, 9, 200];
    let mut expected: Vec<(u8, usize, String)> = Vec::new();
    {
        let q = durable_queue(&dir, 255, &committer);
        for i in 0..12_000usize {
            let p = prios[(i * 7 + i / 13) % 4];
            let body = format!("{p}-{i}-{}", "x".repeat(i % 50));
            let _ = q.publish(msg(Some(p), body.clone(), true), Durability::Required);
            expected.push((p, i, body));
        }
        assert_eq!(q.stats().ready, 12_000);
        assert!(q.memory() < 9000 * (128 + 80), "the backlog stays on disk");
        // Take 10 (acked) and 5 (requeued): the acked are gone, the
        // requeued come back in place.
        expected.sort_by_key(|(p, i, _)| (std::cmp::Reverse(*p), *i));
        let mut acked = Vec::new();
        for _ in 0..10 {
            let (m, _) = q.get(false).0.unwrap();
            acked.push(m.disk);
        }
        let _ = q.settle(&acked, 0);
        let held: Vec<Returned> = (0..5)
            .map(|_| {
                let (m, _) = q.get(false).0.unwrap();
                (m.seq, m.message, m.disk)
            })
            .collect();
        let _ = q.requeue(held);
        expected.drain(..10);
        committer.sync_once().unwrap();
    }
    let q = durable_queue(&dir, 255, &committer);
    assert_eq!(q.stats().ready, expected.len() as u64);
    let got = bodies(&q);
    let want: Vec<String> = expected.into_iter().map(|(_, _, b)| b).collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "first difference at {:?}",
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deleting_a_priority_queue_removes_every_lane() {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("warren-prio-del-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let committer = Arc::new(Committer::default());
    let q = durable_queue(&dir, 10, &committer);
    for p in [0u8, 4, 10] {
        let _ = q.publish(msg(Some(p), format!("{p}"), true), Durability::Required);
    }
    assert!(dir.join("queue").join("p10").is_dir());
    q.mark_deleted();
    assert!(!dir.join("queue").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

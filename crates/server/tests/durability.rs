//! Durability through lapin: persistent messages in durable queues survive
//! a clean restart and a SIGKILL; unacked ones come back redelivered;
//! transient state is gone.

mod common;

use common::{bounded, run_test, TestBroker, STEP};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

/// docs/storage.md: `<n>.acks` holds 12-byte marks,
/// `u32 entry | u8 kind (1 delivered, 2 acked) | 3 reserved | u32 CRC`.
const MARK_ACKED: u8 = 2;

/// Polls (bounded) the durable queues' marks files until one holds the
/// mark (entry, kind).
async fn wait_for_mark(broker: &TestBroker, entry: u32, kind: u8) {
    let marks = |dir: &std::path::Path| -> Vec<(u32, u8)> {
        let mut out = Vec::new();
        let Ok(vhosts) = std::fs::read_dir(dir.join("vhosts")) else {
            return out;
        };
        for vhost in vhosts.flatten() {
            let Ok(queues) = std::fs::read_dir(vhost.path().join("queues")) else {
                continue;
            };
            for queue in queues.flatten() {
                let Ok(files) = std::fs::read_dir(queue.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    if f.path().extension().is_some_and(|e| e == "acks") {
                        let data = std::fs::read(f.path()).unwrap_or_default();
                        out.extend(
                            data.chunks_exact(12)
                                .map(|m| (u32::from_be_bytes([m[0], m[1], m[2], m[3]]), m[4])),
                        );
                    }
                }
            }
        }
        out
    };
    let deadline = std::time::Instant::now() + STEP;
    while !marks(&broker.data_dir).contains(&(entry, kind)) {
        assert!(
            std::time::Instant::now() < deadline,
            "mark {kind} of entry {entry} not written within {STEP:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn publish(ch: &Channel, queue: &str, body: &[u8], persistent: bool) {
    let props = BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 });
    let confirm = ch
        .basic_publish("", queue, BasicPublishOptions::default(), body, props)
        .await
        .expect("publish");
    let c = bounded(STEP, "confirm", confirm).await.expect("confirm");
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
}

async fn drain(ch: &Channel, queue: &str) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push((m.delivery.data.clone(), m.delivery.redelivered));
    }
    out
}

async fn confirming(b: &TestBroker) -> (lapin::Connection, Channel) {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

#[tokio::test]
async fn persistent_messages_survive_clean_restart_and_crash() {
    for crash in [false, true] {
        let broker = TestBroker::start();
        let b = run_test(async {
            let (conn, ch) = confirming(&broker).await;
            ch.queue_declare("jobs", durable(), FieldTable::default())
                .await
                .expect("declare durable");
            ch.queue_declare(
                "scratch",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare transient");
            for i in 0..50u32 {
                publish(&ch, "jobs", format!("job {i}").as_bytes(), true).await;
            }
            publish(&ch, "jobs", b"not persistent", false).await;
            publish(&ch, "scratch", b"gone", true).await;
            let _ = conn.close(200, "bye").await;
        });
        b.await;
        let broker = broker.restart(crash);
        run_test(async {
            let (_conn, ch) = confirming(&broker).await;
            let got = drain(&ch, "jobs").await;
            // After a crash every recovered message is marked redelivered
            // (a delivery mark may not have reached the disk); after a
            // clean stop the flags are exact.
            let want: Vec<(Vec<u8>, bool)> = (0..50u32)
                .map(|i| (format!("job {i}").into_bytes(), crash))
                .collect();
            assert_eq!(got, want, "crash={crash}");
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let err = ch
                .queue_declare("scratch", passive, FieldTable::default())
                .await
                .expect_err("the non-durable queue is gone");
            assert_eq!(common::amqp_error(&err).0, 404);
        })
        .await;
    }
}

#[tokio::test]
async fn unacked_deliveries_return_redelivered_after_crash() {
    let broker = TestBroker::start();
    run_test(async {
        let (conn, ch) = confirming(&broker).await;
        ch.queue_declare("work", durable(), FieldTable::default())
            .await
            .expect("declare");
        for b in [b"a", b"b", b"c"] {
            publish(&ch, "work", b, true).await;
        }
        let first = ch
            .basic_get("work", BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("a message");
        first
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        let _held = ch
            .basic_get("work", BasicGetOptions { no_ack: false })
            .await
            .expect("get")
            .expect("a message");
        // Acks are written lazily (every 200 ms): wait until "a"'s ack
        // mark is in the queue's marks file, which is what a SIGKILL
        // leaves behind, instead of sleeping for it.
        wait_for_mark(&broker, 0, MARK_ACKED).await;
        std::mem::forget(conn);
    })
    .await;
    let broker = broker.restart(true);
    run_test(async {
        let (_conn, ch) = confirming(&broker).await;
        let got = drain(&ch, "work").await;
        // "c" was never delivered, but after a crash nothing tells it from
        // one whose delivery mark was lost: redelivered too.
        assert_eq!(got, vec![(b"b".to_vec(), true), (b"c".to_vec(), true)]);
    })
    .await;
}

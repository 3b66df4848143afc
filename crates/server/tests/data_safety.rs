//! Regressions for the data-safety issue: what a hostile or stalled peer
//! must not be able to do to other clients' messages or to the broker.

mod common;

use std::time::Duration;

use common::raw::*;
use common::{bounded, run_test, unique, TestBroker, STEP};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

const MESSAGES: usize = 2000;
const BODY: usize = 16 * 1024;

fn body(i: usize) -> Vec<u8> {
    (0..BODY)
        .map(|k| {
            (k as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(i as u32) as u8
        })
        .collect()
}

async fn declare(ch: &Channel, q: &str, passive: bool) -> u32 {
    ch.queue_declare(
        q,
        QueueDeclareOptions {
            passive,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare")
    .message_count()
}

/// basic.qos(prefetch) then basic.consume on channel 1 of a raw client.
async fn raw_consumer(broker: &TestBroker, q: &str, prefetch: u16) -> Raw {
    let mut c = Raw::open(broker).await;
    c.open_channel(1).await;
    let mut qos = 0u32.to_be_bytes().to_vec();
    qos.extend_from_slice(&prefetch.to_be_bytes());
    qos.push(0);
    c.send(&method(1, 60, 10, &qos)).await;
    c.expect_method(1, (60, 11)).await;
    let mut consume = 0u16.to_be_bytes().to_vec();
    consume.extend(shortstr(q));
    consume.extend(shortstr("stuck"));
    consume.push(0); // no-local, no-ack, exclusive, nowait all off
    consume.extend(table(&[]));
    c.send(&method(1, 60, 20, &consume)).await;
    c.expect_method(1, (60, 21)).await;
    c
}

/// Fills `q` with `MESSAGES` distinct bodies, confirmed.
async fn fill(ch: &Channel, q: &str) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut confirms = Vec::new();
    for i in 0..MESSAGES {
        confirms.push(
            ch.basic_publish(
                "",
                q,
                BasicPublishOptions::default(),
                &body(i),
                BasicProperties::default(),
            )
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        bounded(STEP, "confirm", c).await.expect("confirm");
    }
}

/// Every message is back in the queue within `limit`, and a new consumer
/// gets every body intact.
async fn all_back(ch: &Channel, q: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let n = declare(ch, q, true).await as usize;
        if n == MESSAGES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {n} of {MESSAGES} messages back in the queue after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ch.basic_qos(500, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            q,
            "check",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut seen = vec![false; MESSAGES];
    for _ in 0..MESSAGES {
        let d = bounded(STEP, "a redelivery", consumer.next())
            .await
            .expect("stream open")
            .expect("delivery");
        let i = (0..MESSAGES)
            .find(|&i| !seen[i] && d.data == body(i))
            .unwrap_or_else(|| panic!("a body that was never published ({} bytes)", d.data.len()));
        seen[i] = true;
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert!(seen.iter().all(|s| *s));
}

/// A consumer that stops reading and then closes (or breaks) its
/// connection must not keep its unacked deliveries locked until the
/// peer's TCP goes away: they go back to the queue at once.
#[tokio::test]
async fn unacked_deliveries_of_a_stalled_consumer_come_back_at_once_on_close() {
    for bad_frame in [false, true] {
        let broker = TestBroker::start();
        run_test(async {
            let conn = broker.connect().await;
            let ch = conn.create_channel().await.expect("channel");
            let q = unique("stalled");
            declare(&ch, &q, false).await;
            let mut stuck = raw_consumer(&broker, &q, MESSAGES as u16).await;
            fill(&ch, &q).await;
            // Everything is dispatched to the stalled consumer.
            bounded(Duration::from_secs(10), "dispatch", async {
                while declare(&ch, &q, true).await != 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            if bad_frame {
                // A frame of an unknown type: the broker closes with 501.
                stuck.send(&frame(9, 0, b"")).await;
            } else {
                let mut close = 200u16.to_be_bytes().to_vec();
                close.extend(shortstr("bye"));
                close.extend_from_slice(&[0, 0, 0, 0]);
                stuck.send(&method(0, 10, 50, &close)).await;
            }
            // The stalled peer keeps its socket open and reads nothing.
            all_back(&ch, &q, Duration::from_secs(3)).await;
            drop(stuck);
        })
        .await;
    }
}

/// Content headers that claim 128 MiB followed by two 1-byte frames, on
/// 64 channels: the broker holds what it received, not what was claimed
/// (8 GiB claimed here, under a 2 GiB address-space limit).
#[tokio::test]
async fn claimed_body_sizes_reserve_no_memory() {
    let mut broker = TestBroker::start_limited(&[], 2 << 30);
    run_test(async {
        let mut c = Raw::open(&broker).await;
        let q = unique("claims");
        c.open_channel(1).await;
        c.send(&method(1, 50, 10, &queue_declare_args(&q, 0, &table(&[]))))
            .await;
        c.expect_method(1, (50, 11)).await;
        for ch in 1..=64u16 {
            if ch > 1 {
                c.open_channel(ch).await;
            }
            c.send(&method(ch, 60, 40, &basic_publish_args("", &q)))
                .await;
            c.send(&frame(FRAME_HEADER, ch, &content_header(128 << 20)))
                .await;
            c.send(&frame(FRAME_BODY, ch, b"a")).await;
            c.send(&frame(FRAME_BODY, ch, b"b")).await;
        }
        // A round trip after all of it: the broker is alive and serving.
        c.open_channel(100).await;
        let other = broker.connect().await;
        let ch = other.create_channel().await.expect("channel");
        assert_eq!(declare(&ch, &q, true).await, 0);
    })
    .await;
    assert!(broker.is_running(), "the broker died:\n{}", broker.log());
}

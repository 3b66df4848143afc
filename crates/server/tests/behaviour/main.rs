//! Core messaging behaviour through lapin against the real broker: dispatch,
//! acknowledgements, confirms, returns, transactions and routing.

#[path = "../common/mod.rs"]
mod common;
mod dispatch;
mod lifecycle;
mod publishing;
mod routing;

use std::time::Duration;

use common::{bounded, run_test, unique, TestBroker, STEP};
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeBindOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(name, QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare {name}: {e}"));
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    ch.exchange_declare(name, kind, ExchangeDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(queue, exchange, key, QueueBindOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("bind {queue} to {exchange}: {e}"));
}

/// A channel in confirm mode.
async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

/// Publishes and waits for the broker's confirm.
async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange,
            key,
            BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .expect("publish");
    bounded(STEP, "a publisher confirm", confirm)
        .await
        .expect("confirm")
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let c = publish_confirmed(ch, exchange, key, body, BasicProperties::default(), false).await;
    assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
}

/// Every message in `queue`, taken with basic.get (no-ack).
async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        out.push(m.delivery.data);
    }
    out
}

/// Retries basic.get until a message arrives (for things the broker does
/// asynchronously, such as requeueing after a close).
async fn get_eventually(ch: &Channel, queue: &str, no_ack: bool) -> Delivery {
    bounded(STEP, "a message to become available", async {
        loop {
            if let Some(m) = ch
                .basic_get(queue, BasicGetOptions { no_ack })
                .await
                .expect("basic.get")
            {
                return m.delivery;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    bounded(STEP, "a delivery", consumer.next())
        .await
        .expect("consumer ended")
        .expect("delivery error")
}

async fn ready_count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue,
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

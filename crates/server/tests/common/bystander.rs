//! The well-behaved bystander: a lapin connection opened beside a
//! misbehaving one, which must keep working whatever the other does.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

use super::{bounded, unique, TestBroker, STEP};

/// A lapin connection opened before the misbehaving one.
pub struct Bystander {
    pub conn: Connection,
    pub ch: Channel,
    pub queue: String,
}

impl Bystander {
    pub async fn open(broker: &TestBroker) -> Bystander {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.expect("create_channel");
        let queue = unique("bystander");
        ch.queue_declare(
            &queue,
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
        Bystander { conn, ch, queue }
    }

    /// Publishes and gets back one message, within [`STEP`].
    pub async fn assert_works(&self) {
        bounded(STEP, "the bystander's round trip", async {
            self.ch
                .basic_publish(
                    "",
                    &self.queue,
                    BasicPublishOptions::default(),
                    b"ping",
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
            // basic.get right after the publish may race it: retry.
            loop {
                let got = self
                    .ch
                    .basic_get(&self.queue, BasicGetOptions { no_ack: true })
                    .await
                    .expect("basic.get on the bystander connection");
                if let Some(m) = got {
                    assert_eq!(m.delivery.data, b"ping");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

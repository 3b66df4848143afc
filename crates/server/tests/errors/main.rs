//! Error paths through a real client (lapin) against the real broker: exact
//! reply codes and texts (docs/rabbitmq-behaviour.md), channel errors that
//! leave the connection usable, connection errors that end it.

#[path = "../common/mod.rs"]
mod common;
mod exchanges;
mod login;
mod methods;
mod queues;

use common::{
    amqp_error, assert_amqp_error, bounded, connect_uri, run_test, unique, TestBroker, STEP,
};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn declare_opts() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

/// Errors the broker reports on `ch` asynchronously (channel.close).
fn channel_errors(ch: &Channel) -> UnboundedReceiver<lapin::Error> {
    let (tx, rx) = unbounded_channel();
    ch.on_error(move |e| {
        let _ = tx.send(e);
    });
    rx
}

/// Errors that end `conn` (connection.close from the broker, socket loss).
fn connection_errors(conn: &Connection) -> UnboundedReceiver<lapin::Error> {
    let (tx, rx) = unbounded_channel();
    conn.on_error(move |e| {
        let _ = tx.send(e);
    });
    rx
}

async fn next_error(rx: &mut UnboundedReceiver<lapin::Error>, what: &str) -> (u16, String) {
    let e = bounded(STEP, what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("error handler dropped while waiting for {what}"));
    amqp_error(&e)
}

/// After a channel error: the channel is gone, the connection is not, and a
/// new channel on it works.
async fn assert_only_channel_closed(conn: &Connection, ch: &Channel) {
    bounded(STEP, "channel to leave the connected state", async {
        while ch.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        conn.status().connected(),
        "a channel error must not close the connection"
    );
    assert_works(conn).await;
}

/// A round trip on a new channel of `conn`: declare, publish, get.
async fn assert_works(conn: &Connection) {
    let ch = conn.create_channel().await.expect("create_channel");
    let q = ch
        .queue_declare("", exclusive(), FieldTable::default())
        .await
        .expect("declare server-named queue");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch.basic_publish(
        "",
        q.name().as_str(),
        BasicPublishOptions::default(),
        b"still alive",
        BasicProperties::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    let got = ch
        .basic_get(q.name().as_str(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(got.delivery.data, b"still alive");
    ch.close(200, "bye").await.expect("channel.close");
}

/// Publishes in confirm mode and returns what the confirm resolves to.
async fn publish_in_confirm_mode(
    ch: &Channel,
    exchange: &str,
    key: &str,
    props: BasicProperties,
) -> lapin::Result<lapin::publisher_confirm::Confirmation> {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(exchange, key, BasicPublishOptions::default(), b"m", props)
        .await
        .expect("the publish itself is asynchronous");
    bounded(STEP, "the publish confirm", confirm).await
}

fn locked_text(q: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. \
         It could be originally declared on another connection or the exclusive property \
         value does not match that of the original declaration."
    )
}

//! Error paths through a real client (lapin) against the real broker: exact
//! reply codes and texts (docs/rabbitmq-behaviour.md), channel errors that
//! leave the connection usable, connection errors that end it.

mod common;

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

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404_channel_error() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let other = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("missing");
        let r = ch.queue_declare(&q, passive(), FieldTable::default()).await;
        assert_amqp_error(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
        assert_only_channel_closed(&conn, &ch).await;
        assert_works(&other).await;
    })
    .await;
}

#[tokio::test]
async fn publish_to_missing_exchange_is_404_via_confirm() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let x = unique("no-such-x");
        let confirm = ch
            .basic_publish(
                &x,
                "k",
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .expect("the publish itself is asynchronous");
        let r = bounded(STEP, "the publish confirm", confirm).await;
        assert_amqp_error(
            r,
            404,
            &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn publish_to_missing_exchange_is_404_on_next_sync_call() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut errors = channel_errors(&ch);
        let x = unique("no-such-x");
        ch.basic_publish(
            &x,
            "k",
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .expect("the publish itself is asynchronous");
        // The next synchronous method can't succeed: the broker closes the
        // channel in answer to the publish.
        let r = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await;
        let e = r.expect_err("a sync call after a failed publish must fail");
        if let lapin::Error::ProtocolError(_) = e {
            assert_eq!(
                amqp_error(&e),
                (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"))
            );
        }
        assert_eq!(
            next_error(&mut errors, "the channel error").await,
            (404, format!("NOT_FOUND - no exchange '{x}' in vhost '/'"))
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn exclusive_queue_of_another_connection_is_405() {
    let broker = TestBroker::start();
    run_test(async {
        let owner = broker.connect().await;
        let intruder = broker.connect().await;
        let q = unique("excl");
        let och = owner.create_channel().await.unwrap();
        och.queue_declare(&q, exclusive(), FieldTable::default())
            .await
            .unwrap();
        let text = format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. \
             It could be originally declared on another connection or the exclusive property \
             value does not match that of the original declaration."
        );
        for opts in [declare_opts(), exclusive(), passive()] {
            let ch = intruder.create_channel().await.unwrap();
            let r = ch.queue_declare(&q, opts, FieldTable::default()).await;
            assert_amqp_error(r, 405, &text);
            assert_only_channel_closed(&intruder, &ch).await;
        }
        // The owner is unaffected.
        let again = och
            .queue_declare(&q, passive(), FieldTable::default())
            .await
            .expect("owner's passive declare");
        assert_eq!(again.name().as_str(), q);
    })
    .await;
}

#[tokio::test]
async fn owner_may_redeclare_its_exclusive_queue() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("excl-own");
        ch.queue_declare(&q, exclusive(), FieldTable::default())
            .await
            .unwrap();
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        // A second channel of the same connection is the owner too.
        let ch2 = conn.create_channel().await.unwrap();
        let again = ch2
            .queue_declare(&q, exclusive(), FieldTable::default())
            .await
            .expect("owner redeclares its exclusive queue");
        assert_eq!(again.name().as_str(), q);
        assert_eq!(again.message_count(), 1);
        assert!(ch.status().connected() && ch2.status().connected());
    })
    .await;
}

#[tokio::test]
async fn inequivalent_durable_redeclare_is_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("ineq");
        ch.queue_declare(&q, declare_opts(), FieldTable::default())
            .await
            .unwrap();
        let r = ch
            .queue_declare(
                &q,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': \
                 received 'true' but current is 'false'"
            ),
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn ack_of_unknown_delivery_tag_is_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let bystander = conn.create_channel().await.unwrap();
        let mut errors = channel_errors(&ch);
        ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();
        assert_eq!(
            next_error(&mut errors, "the 406 channel error").await,
            (
                406,
                "PRECONDITION_FAILED - unknown delivery tag 99".to_string()
            )
        );
        assert_only_channel_closed(&conn, &ch).await;
        assert!(bystander.status().connected(), "other channels stay open");
        bystander
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .expect("other channel still usable");
    })
    .await;
}

#[tokio::test]
async fn double_ack_is_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut errors = channel_errors(&ch);
        let q = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        ch.basic_publish(
            "",
            q.name().as_str(),
            BasicPublishOptions::default(),
            b"once",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let got = ch
            .basic_get(q.name().as_str(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        let tag = got.delivery.delivery_tag;
        ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        assert_eq!(
            next_error(&mut errors, "the 406 channel error").await,
            (
                406,
                format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
            )
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn reserved_amq_prefix_is_403() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let q = unique("amq.foo");
        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .queue_declare(&q, declare_opts(), FieldTable::default())
            .await;
        assert_amqp_error(
            r,
            403,
            &format!("ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'"),
        );
        assert_only_channel_closed(&conn, &ch).await;

        let ch = conn.create_channel().await.unwrap();
        let x = unique("amq.foo");
        let r = ch
            .exchange_declare(
                &x,
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            403,
            &format!("ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'"),
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn binding_to_default_exchange_is_403() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        let r = ch
            .queue_bind(
                q.name().as_str(),
                "",
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        );
        assert_only_channel_closed(&conn, &ch).await;
    })
    .await;
}

#[tokio::test]
async fn unknown_exchange_type_is_406_channel_error() {
    // Warren deviates from RabbitMQ 3.10 (503 connection error) and follows
    // RabbitMQ >= 3.12: a channel error.
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let x = unique("x-foo");
        let r = ch
            .exchange_declare(
                &x,
                ExchangeKind::Custom("foo".into()),
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 406, "PRECONDITION_FAILED - unknown exchange type 'foo'");
        assert_only_channel_closed(&conn, &ch).await;
        // And the exchange was not created.
        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .exchange_declare(
                &x,
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            404,
            &format!("NOT_FOUND - no exchange '{x}' in vhost '/'"),
        );
    })
    .await;
}

#[tokio::test]
async fn missing_vhost_is_530_connection_error() {
    let broker = TestBroker::start();
    run_test(async {
        let r = bounded(
            STEP,
            "connect to a missing vhost",
            connect_uri(&broker.uri_for("guest", "guest", "nosuchvhost")),
        )
        .await;
        assert_amqp_error(r, 530, "NOT_ALLOWED - vhost nosuchvhost not found");
        // The broker is fine.
        let conn = broker.connect().await;
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn wrong_password_is_403() {
    let broker = TestBroker::start();
    run_test(async {
        let other = broker.connect().await;
        let r = bounded(
            STEP,
            "connect with a wrong password",
            connect_uri(&broker.uri_for("guest", "wrong", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
        let r = bounded(
            STEP,
            "connect as an unknown user",
            connect_uri(&broker.uri_for("nobody", "guest", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
        assert_works(&other).await;
    })
    .await;
}

#[tokio::test]
async fn default_user_from_environment() {
    let broker = TestBroker::start_with(
        &[],
        &[
            ("WARREN_DEFAULT_USER", "alice"),
            ("WARREN_DEFAULT_PASS", "s3cret"),
        ],
    );
    run_test(async {
        let conn = bounded(
            STEP,
            "connect as the configured user",
            connect_uri(&broker.uri_for("alice", "s3cret", "%2f")),
        )
        .await
        .expect("configured default user logs in");
        assert_works(&conn).await;
        let r = bounded(
            STEP,
            "connect as guest",
            connect_uri(&broker.uri_for("guest", "guest", "%2f")),
        )
        .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile.",
        );
    })
    .await;
}

#[tokio::test]
async fn publish_immediate_is_540_connection_error() {
    let broker = TestBroker::start();
    run_test(async {
        let other = broker.connect().await;
        let conn = broker.connect().await;
        let mut errors = connection_errors(&conn);
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        let _ = ch
            .basic_publish(
                "",
                q.name().as_str(),
                BasicPublishOptions {
                    immediate: true,
                    ..Default::default()
                },
                b"now",
                BasicProperties::default(),
            )
            .await;
        assert_eq!(
            next_error(&mut errors, "the connection error").await,
            (540, "NOT_IMPLEMENTED - immediate=true".to_string())
        );
        bounded(STEP, "the connection to close", async {
            while conn.status().connected() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(!ch.status().connected());
        assert!(conn.create_channel().await.is_err());
        assert_works(&other).await;
    })
    .await;
}

// ---- more channel and connection errors from the reference ----------------

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

#[tokio::test]
async fn exclusive_queue_is_locked_for_every_operation_of_others() {
    let broker = TestBroker::start();
    run_test(async {
        let owner = broker.connect().await;
        let intruder = broker.connect().await;
        let q = unique("excl-ops");
        let och = owner.create_channel().await.unwrap();
        och.queue_declare(&q, exclusive(), FieldTable::default())
            .await
            .unwrap();
        let text = locked_text(&q);

        let ch = intruder.create_channel().await.unwrap();
        let r = ch
            .basic_consume(
                &q,
                "",
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 405, &text);

        let ch = intruder.create_channel().await.unwrap();
        let r = ch.basic_get(&q, BasicGetOptions::default()).await;
        assert_amqp_error(r, 405, &text);

        let ch = intruder.create_channel().await.unwrap();
        let r = ch
            .queue_delete(&q, lapin::options::QueueDeleteOptions::default())
            .await;
        assert_amqp_error(r, 405, &text);

        let ch = intruder.create_channel().await.unwrap();
        let r = ch
            .queue_purge(&q, lapin::options::QueuePurgeOptions::default())
            .await;
        assert_amqp_error(r, 405, &text);

        let ch = intruder.create_channel().await.unwrap();
        let r = ch
            .queue_bind(
                &q,
                "amq.direct",
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 405, &text);

        // Publishing to it is allowed.
        let ch = intruder.create_channel().await.unwrap();
        let c = publish_in_confirm_mode(&ch, "", &q, BasicProperties::default())
            .await
            .expect("publish to another connection's exclusive queue");
        assert!(c.is_ack(), "{c:?}");
        let got = och
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        assert!(got.is_some(), "the intruder's message reached the queue");

        // Gone with its owner.
        let closed = bounded(STEP, "owner close", owner.close(200, "bye")).await;
        assert!(
            matches!(closed, Ok(()) | Err(lapin::Error::IOError(_))),
            "{closed:?}"
        );
        bounded(STEP, "the exclusive queue to disappear", async {
            loop {
                let ch = intruder.create_channel().await.unwrap();
                let r = ch.queue_declare(&q, passive(), FieldTable::default()).await;
                match r {
                    Err(ref e) if amqp_error(e).0 == 405 => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await
                    }
                    r => {
                        assert_amqp_error(
                            r,
                            404,
                            &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
                        );
                        break;
                    }
                }
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn queue_delete_if_unused_and_if_empty_are_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("del");
        ch.queue_declare(&q, declare_opts(), FieldTable::default())
            .await
            .unwrap();
        let cch = conn.create_channel().await.unwrap();
        // Kept alive: lapin cancels a consumer when it is dropped.
        let _consumer = cch
            .basic_consume(
                &q,
                "c",
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let r = ch
            .queue_delete(
                &q,
                lapin::options::QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            )
            .await;
        assert_amqp_error(
            r,
            406,
            &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
        );
        cch.close(200, "bye").await.unwrap();

        let ch = conn.create_channel().await.unwrap();
        let c = publish_in_confirm_mode(&ch, "", &q, BasicProperties::default())
            .await
            .unwrap();
        assert!(c.is_ack());
        let r = ch
            .queue_delete(
                &q,
                lapin::options::QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await;
        assert_amqp_error(
            r,
            406,
            &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
        );

        // Plain delete reports the ready count; deleting again is fine.
        let ch = conn.create_channel().await.unwrap();
        let n = ch
            .queue_delete(&q, lapin::options::QueueDeleteOptions::default())
            .await
            .unwrap();
        assert_eq!(n, 1);
        let n = ch
            .queue_delete(&q, lapin::options::QueueDeleteOptions::default())
            .await
            .expect("deleting a missing queue is ok");
        assert_eq!(n, 0);
    })
    .await;
}

#[tokio::test]
async fn missing_queue_or_exchange_in_purge_bind_consume_get_is_404() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let q = unique("nq");
        let x = unique("nx");
        let no_queue = format!("NOT_FOUND - no queue '{q}' in vhost '/'");
        let no_exchange = format!("NOT_FOUND - no exchange '{x}' in vhost '/'");

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .queue_purge(&q, lapin::options::QueuePurgeOptions::default())
            .await;
        assert_amqp_error(r, 404, &no_queue);

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .basic_consume(
                &q,
                "",
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 404, &no_queue);

        let ch = conn.create_channel().await.unwrap();
        let r = ch.basic_get(&q, BasicGetOptions::default()).await;
        assert_amqp_error(r, 404, &no_queue);

        // Both missing: the exchange is reported first.
        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .queue_bind(
                &q,
                &x,
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 404, &no_exchange);

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .queue_bind(
                &q,
                "amq.direct",
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 404, &no_queue);

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .exchange_declare(
                &x,
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 404, &no_exchange);

        // amq.default is only a name for "", not a real exchange.
        let ch = conn.create_channel().await.unwrap();
        let r = publish_in_confirm_mode(&ch, "amq.default", "k", BasicProperties::default()).await;
        assert_amqp_error(r, 404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'");

        // Unbinding and deleting what doesn't exist are fine.
        let ch = conn.create_channel().await.unwrap();
        ch.queue_unbind(&q, &x, "k", FieldTable::default())
            .await
            .expect("unbind of missing things is ok");
        ch.exchange_delete(&x, lapin::options::ExchangeDeleteOptions::default())
            .await
            .expect("delete of a missing exchange is ok");
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn exclusive_consumer_conflicts_are_403() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("xc");
        ch.queue_declare(&q, declare_opts(), FieldTable::default())
            .await
            .unwrap();
        let text = format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use");
        // Kept alive: lapin cancels a consumer when it is dropped.
        let _first = ch
            .basic_consume(
                &q,
                "first",
                lapin::options::BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let ch2 = conn.create_channel().await.unwrap();
        let r = ch2
            .basic_consume(
                &q,
                "second",
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(r, 403, &text);

        // The other way round.
        let q2 = unique("xc2");
        let ch3 = conn.create_channel().await.unwrap();
        ch3.queue_declare(&q2, declare_opts(), FieldTable::default())
            .await
            .unwrap();
        // Kept alive: lapin cancels a consumer when it is dropped.
        let _plain = ch3
            .basic_consume(
                &q2,
                "plain",
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let ch4 = conn.create_channel().await.unwrap();
        let r = ch4
            .basic_consume(
                &q2,
                "greedy",
                lapin::options::BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            403,
            &format!("ACCESS_REFUSED - queue '{q2}' in vhost '/' in exclusive use"),
        );
        assert!(ch.status().connected() && ch3.status().connected());
    })
    .await;
}

#[tokio::test]
async fn exchange_errors() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let x = unique("xd");
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            &x,
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Passive ignores the type.
        ch.exchange_declare(
            &x,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare with another type");
        let r = ch
            .exchange_declare(
                &x,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': \
                 received 'fanout' but current is 'direct'"
            ),
        );

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .exchange_delete(
                "amq.fanout",
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.fanout' in vhost '/' not allowed",
        );

        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .exchange_declare(
                "",
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_amqp_error(
            r,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        );

        // Internal exchanges refuse publishes.
        let internal = unique("internal");
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            &internal,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let r = publish_in_confirm_mode(&ch, &internal, "k", BasicProperties::default()).await;
        assert_amqp_error(
            r,
            403,
            &format!(
                "ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"
            ),
        );

        // x-match must be one of the known values.
        let hx = unique("hx");
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            &hx,
            ExchangeKind::Headers,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let q = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-match".into(),
            lapin::types::AMQPValue::LongString("foo".into()),
        );
        let r = ch
            .queue_bind(
                q.name().as_str(),
                &hx,
                "",
                QueueBindOptions::default(),
                args,
            )
            .await;
        assert_amqp_error(
            r,
            406,
            "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any, \
             all-with-x, or any-with-x",
        );
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn queue_argument_errors_are_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ttl = |v: i32| {
            let mut t = FieldTable::default();
            t.insert("x-message-ttl".into(), lapin::types::AMQPValue::LongInt(v));
            t
        };
        let q = unique("ttl");
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(&q, declare_opts(), ttl(1000))
            .await
            .unwrap();
        let r = ch.queue_declare(&q, declare_opts(), ttl(2000)).await;
        assert_amqp_error(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost \
                 '/': received '2000' but current is '1000'"
            ),
        );

        let q2 = unique("ttl-neg");
        let ch = conn.create_channel().await.unwrap();
        let r = ch.queue_declare(&q2, declare_opts(), ttl(-1)).await;
        assert_amqp_error(
            r,
            406,
            &format!(
                "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{q2}' in vhost '/': \
                 {{value_negative,-1}}"
            ),
        );
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn publish_property_errors_are_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let r = publish_in_confirm_mode(
            &ch,
            "",
            "k",
            BasicProperties::default().with_expiration("abc".into()),
        )
        .await;
        assert_amqp_error(
            r,
            406,
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
        );

        let ch = conn.create_channel().await.unwrap();
        let r = publish_in_confirm_mode(
            &ch,
            "",
            "k",
            BasicProperties::default().with_user_id("admin".into()),
        )
        .await;
        assert_amqp_error(
            r,
            406,
            "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was \
             'guest'",
        );

        let ch = conn.create_channel().await.unwrap();
        let r = publish_in_confirm_mode(
            &ch,
            "",
            "k",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await;
        assert_amqp_error(
            r,
            406,
            "PRECONDITION_FAILED - fast reply consumer does not exist",
        );
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn tx_and_confirm_mode_errors_are_406() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        assert_amqp_error(
            ch.tx_commit().await,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
        );
        let ch = conn.create_channel().await.unwrap();
        assert_amqp_error(
            ch.tx_rollback().await,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
        );
        let ch = conn.create_channel().await.unwrap();
        ch.tx_select().await.unwrap();
        ch.tx_select().await.expect("tx.select twice is fine");
        assert_amqp_error(
            ch.confirm_select(ConfirmSelectOptions::default()).await,
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        );
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        assert_amqp_error(
            ch.tx_select().await,
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        );
        assert_works(&conn).await;
    })
    .await;
}

#[tokio::test]
async fn recover_without_requeue_is_540_connection_error() {
    let broker = TestBroker::start();
    run_test(async {
        let other = broker.connect().await;
        let conn = broker.connect().await;
        let mut errors = connection_errors(&conn);
        let ch = conn.create_channel().await.unwrap();
        let r = ch
            .basic_recover(lapin::options::BasicRecoverOptions { requeue: false })
            .await;
        assert!(r.is_err(), "{r:?}");
        assert_eq!(
            next_error(&mut errors, "the connection error").await,
            (540, "NOT_IMPLEMENTED - requeue=false".to_string())
        );
        assert_works(&other).await;
    })
    .await;
}

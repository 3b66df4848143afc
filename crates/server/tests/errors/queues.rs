//! Queue errors: missing, exclusive, inequivalent, locked, in-use, argument errors.

use super::*;

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

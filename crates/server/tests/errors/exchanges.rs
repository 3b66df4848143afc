//! Exchange errors: missing exchanges on publish, reserved names, the default exchange, unknown types.

use super::*;

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

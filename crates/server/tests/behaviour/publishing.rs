//! Publishing: confirms, mandatory returns, transactions, properties, direct reply-to.

use super::*;

#[tokio::test]
async fn publisher_confirms_ack_every_message() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("confirms");
        declare_queue(&ch, &q, FieldTable::default()).await;
        // Many in flight at once, then every confirm.
        let mut pending = Vec::new();
        for i in 0..200 {
            pending.push(
                ch.basic_publish(
                    "",
                    &q,
                    BasicPublishOptions::default(),
                    format!("c{i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap(),
            );
        }
        // Unroutable, non-mandatory: still acked.
        pending.push(
            ch.basic_publish(
                "",
                &unique("nowhere"),
                BasicPublishOptions::default(),
                b"lost",
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
        for (i, p) in pending.into_iter().enumerate() {
            let c = bounded(STEP, "a confirm", p).await.unwrap();
            assert!(matches!(c, Confirmation::Ack(None)), "message {i}: {c:?}");
        }
        assert_eq!(ready_count(&ch, &q).await, 200);
    })
    .await;
}

#[tokio::test]
async fn publisher_confirms_nack_when_reject_publish_queue_is_full() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("full");
        declare_queue(
            &ch,
            &q,
            table(&[
                ("x-max-length", AMQPValue::LongInt(1)),
                ("x-overflow", s("reject-publish")),
            ]),
        )
        .await;
        let first =
            publish_confirmed(&ch, "", &q, b"fits", BasicProperties::default(), false).await;
        assert!(matches!(first, Confirmation::Ack(None)), "{first:?}");
        let second =
            publish_confirmed(&ch, "", &q, b"overflow", BasicProperties::default(), false).await;
        assert!(matches!(second, Confirmation::Nack(_)), "{second:?}");
        assert!(ch.status().connected(), "a nack is not a channel error");
        assert_eq!(drain(&ch, &q).await, vec![b"fits".to_vec()]);
        // Room again: acked.
        let third =
            publish_confirmed(&ch, "", &q, b"again", BasicProperties::default(), false).await;
        assert!(matches!(third, Confirmation::Ack(None)), "{third:?}");
    })
    .await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let key = unique("nosuch-q");
        for exchange in ["", "amq.direct"] {
            let c = publish_confirmed(
                &ch,
                exchange,
                &key,
                b"returned",
                BasicProperties::default(),
                true,
            )
            .await;
            let Confirmation::Ack(Some(ret)) = c else {
                panic!("expected basic.return then basic.ack, got {c:?}");
            };
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.exchange.as_str(), exchange);
            assert_eq!(ret.delivery.routing_key.as_str(), key);
            assert_eq!(ret.delivery.data, b"returned");
        }
        // Routable and mandatory: no return.
        let q = unique("routable");
        declare_queue(&ch, &q, FieldTable::default()).await;
        let c = publish_confirmed(&ch, "", &q, b"ok", BasicProperties::default(), true).await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    })
    .await;
}

#[tokio::test]
async fn tx_rollback_discards_publishes() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("tx");
        declare_queue(&ch, &q, FieldTable::default()).await;
        ch.tx_select().await.unwrap();
        for body in ["r1", "r2", "r3"] {
            ch.basic_publish(
                "",
                &q,
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
        assert_eq!(ready_count(&ch, &q).await, 0, "uncommitted publishes");
        ch.tx_rollback().await.unwrap();
        assert_eq!(ready_count(&ch, &q).await, 0, "rolled-back publishes");
        ch.basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            b"kept",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        ch.tx_commit().await.unwrap();
        assert_eq!(ready_count(&ch, &q).await, 1);
        let other = conn.create_channel().await.unwrap();
        assert_eq!(drain(&other, &q).await, vec![b"kept".to_vec()]);
    })
    .await;
}

#[tokio::test]
async fn message_properties_round_trip() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("props");
        declare_queue(&ch, &q, FieldTable::default()).await;
        let mut nested = FieldTable::default();
        nested.insert("inner".into(), AMQPValue::LongLongInt(-5));
        let headers = table(&[
            ("str", s("héllo")),
            ("int", AMQPValue::LongInt(42)),
            ("long", AMQPValue::LongLongInt(1 << 40)),
            ("bool", AMQPValue::Boolean(true)),
            ("double", AMQPValue::Double(1.5)),
            ("bytes", AMQPValue::ByteArray(vec![0u8, 1, 255].into())),
            ("void", AMQPValue::Void),
            ("table", AMQPValue::FieldTable(nested)),
            (
                "array",
                AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), s("two")].into()),
            ),
        ]);
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(3)
            .with_correlation_id("corr-1".into())
            .with_reply_to("replies".into())
            .with_expiration("60000".into())
            .with_message_id("msg-1".into())
            .with_timestamp(1_700_000_000)
            .with_type("kind-x".into())
            .with_user_id("guest".into())
            .with_app_id("tests".into());
        let c = publish_confirmed(&ch, "", &q, b"{}", props.clone(), false).await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        let got = get_eventually(&ch, &q, true).await;
        assert_eq!(got.properties, props);
        assert_eq!(got.data, b"{}");
    })
    .await;
}

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let server_ch = confirm_channel(&conn).await;
        let rpc_q = unique("rpc");
        declare_queue(&server_ch, &rpc_q, FieldTable::default()).await;
        let mut requests = server_ch
            .basic_consume(&rpc_q, "", no_ack(), FieldTable::default())
            .await
            .unwrap();

        let client_conn = broker.connect().await;
        let client = client_conn.create_channel().await.unwrap();
        let mut replies = client
            .basic_consume("amq.rabbitmq.reply-to", "", no_ack(), FieldTable::default())
            .await
            .unwrap();
        client
            .basic_publish(
                "",
                &rpc_q,
                BasicPublishOptions::default(),
                b"question",
                BasicProperties::default()
                    .with_reply_to("amq.rabbitmq.reply-to".into())
                    .with_correlation_id("c1".into()),
            )
            .await
            .unwrap();
        let req = next_delivery(&mut requests).await;
        let reply_to = req
            .properties
            .reply_to()
            .clone()
            .expect("reply_to")
            .to_string();
        assert!(
            reply_to.starts_with("amq.rabbitmq.reply-to."),
            "{reply_to:?}"
        );
        let c = publish_confirmed(
            &server_ch,
            "",
            &reply_to,
            b"answer",
            BasicProperties::default().with_correlation_id("c1".into()),
            false,
        )
        .await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        let rep = next_delivery(&mut replies).await;
        assert_eq!(rep.data, b"answer");
        assert_eq!(rep.routing_key.as_str(), reply_to);
        assert_eq!(rep.exchange.as_str(), "");
        assert!(!rep.redelivered);
        assert_eq!(
            rep.properties.correlation_id().as_ref().map(|s| s.as_str()),
            Some("c1")
        );
    })
    .await;
}

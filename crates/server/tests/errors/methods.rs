//! Method errors: acknowledgements, `immediate`, properties, tx/confirm modes, recover.

use super::*;

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

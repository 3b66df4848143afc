//! A message's end: dead-lettering with x-death, and expiry.

use super::*;

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_x_death() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let dlx = unique("dlx");
        declare_exchange(&ch, &dlx, ExchangeKind::Fanout, FieldTable::default()).await;
        let dead = unique("dead");
        declare_queue(&ch, &dead, FieldTable::default()).await;
        bind(&ch, &dead, &dlx, "", FieldTable::default()).await;
        let q = unique("work");
        declare_queue(&ch, &q, table(&[("x-dead-letter-exchange", s(&dlx))])).await;
        publish(&ch, "", &q, b"bad").await;
        let m = get_eventually(&ch, &q, false).await;
        m.acker
            .reject(lapin::options::BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        let d = get_eventually(&ch, &dead, true).await;
        assert_eq!(d.data, b"bad");
        let headers = d.properties.headers().clone().expect("headers");
        let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
            panic!("no x-death array in {headers:?}");
        };
        let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
            panic!("x-death is not an array of tables: {deaths:?}");
        };
        let get = |k: &str| death.inner().get(k).cloned();
        assert_eq!(get("reason"), Some(s("rejected")), "{death:?}");
        assert_eq!(get("queue"), Some(s(&q)), "{death:?}");
        assert!(
            matches!(get("count"), Some(AMQPValue::LongLongInt(1))),
            "{death:?}"
        );
        assert_eq!(ready_count(&ch, &q).await, 0);
    })
    .await;
}

#[tokio::test]
async fn expired_messages_are_not_delivered() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("ttl");
        declare_queue(&ch, &q, table(&[("x-message-ttl", AMQPValue::LongInt(50))])).await;
        publish(&ch, "", &q, b"short-lived").await;
        let q2 = unique("ttl-msg");
        declare_queue(&ch, &q2, FieldTable::default()).await;
        let props = BasicProperties::default().with_expiration("50".into());
        let c = publish_confirmed(&ch, "", &q2, b"short-lived", props, false).await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        // Only an upper bound: both are gone within a few seconds.
        bounded(STEP, "messages to expire", async {
            loop {
                let a = ready_count(&ch, &q).await;
                let b = ready_count(&ch, &q2).await;
                if a == 0 && b == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none());
    })
    .await;
}

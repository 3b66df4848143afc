//! Dispatch and acknowledgement: round robin, prefetch, nack/requeue, redelivery after a close, get, purge, recover.

use super::*;

#[tokio::test]
async fn round_robin_between_two_consumers() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("rr");
        declare_queue(&ch, &q, FieldTable::default()).await;
        let ch_a = conn.create_channel().await.unwrap();
        let ch_b = conn.create_channel().await.unwrap();
        let mut a = ch_a
            .basic_consume(&q, "a", no_ack(), FieldTable::default())
            .await
            .unwrap();
        let mut b = ch_b
            .basic_consume(&q, "b", no_ack(), FieldTable::default())
            .await
            .unwrap();
        let n = 10;
        for i in 0..n {
            publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let mut got_a = Vec::new();
        let mut got_b = Vec::new();
        for _ in 0..n / 2 {
            got_a.push(String::from_utf8(next_delivery(&mut a).await.data).unwrap());
            got_b.push(String::from_utf8(next_delivery(&mut b).await.data).unwrap());
        }
        let evens: Vec<String> = (0..n).step_by(2).map(|i| format!("m{i}")).collect();
        let odds: Vec<String> = (1..n).step_by(2).map(|i| format!("m{i}")).collect();
        assert!(
            (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
            "not a strict alternation: a={got_a:?} b={got_b:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn prefetch_one_holds_back_the_second_message_until_ack() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let pub_ch = confirm_channel(&conn).await;
        let q = unique("prefetch");
        declare_queue(&pub_ch, &q, FieldTable::default()).await;
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        publish(&pub_ch, "", &q, b"first").await;
        publish(&pub_ch, "", &q, b"second").await;
        let first = next_delivery(&mut consumer).await;
        assert_eq!(first.data, b"first");
        // The second stays ready in the queue while the first is unacked.
        assert_eq!(ready_count(&pub_ch, &q).await, 1);
        let early = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
        assert!(
            early.is_err(),
            "second message delivered before the first was acked"
        );
        first.acker.ack(BasicAckOptions::default()).await.unwrap();
        let second = next_delivery(&mut consumer).await;
        assert_eq!(second.data, b"second");
        assert_eq!(ready_count(&pub_ch, &q).await, 0);
        second.acker.ack(BasicAckOptions::default()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn nack_requeue_keeps_order_and_sets_redelivered() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("nack");
        declare_queue(&ch, &q, FieldTable::default()).await;
        for body in ["m1", "m2", "m3"] {
            publish(&ch, "", &q, body.as_bytes()).await;
        }
        let m1 = get_eventually(&ch, &q, false).await;
        let m2 = get_eventually(&ch, &q, false).await;
        assert_eq!((m1.data.as_slice(), m1.redelivered), (&b"m1"[..], false));
        assert_eq!((m2.data.as_slice(), m2.redelivered), (&b"m2"[..], false));
        ch.basic_nack(
            m2.delivery_tag,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let d = get_eventually(&ch, &q, true).await;
            seen.push((String::from_utf8(d.data).unwrap(), d.redelivered));
        }
        assert_eq!(
            seen,
            vec![
                ("m1".to_string(), true),
                ("m2".to_string(), true),
                ("m3".to_string(), false)
            ]
        );
        // A single nack with requeue of a consumed message, too.
        publish(&ch, "", &q, b"solo").await;
        let mut consumer = ch
            .basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let d = next_delivery(&mut consumer).await;
        assert!(!d.redelivered);
        d.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .unwrap();
        let again = next_delivery(&mut consumer).await;
        assert_eq!(
            (again.data.as_slice(), again.redelivered),
            (&b"solo"[..], true)
        );
        again.acker.ack(BasicAckOptions::default()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn unacked_messages_return_redelivered_when_consumer_connection_closes() {
    let broker = TestBroker::start();
    run_test(async {
        let keeper = broker.connect().await;
        let ch = confirm_channel(&keeper).await;
        let q = unique("unacked");
        declare_queue(&ch, &q, FieldTable::default()).await;
        for body in ["u1", "u2", "u3"] {
            publish(&ch, "", &q, body.as_bytes()).await;
        }
        let consumer_conn = broker.connect().await;
        let cch = consumer_conn.create_channel().await.unwrap();
        let mut consumer = cch
            .basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for body in ["u1", "u2", "u3"] {
            assert_eq!(next_delivery(&mut consumer).await.data, body.as_bytes());
        }
        assert_eq!(ready_count(&ch, &q).await, 0);
        // The broker hangs up right after close-ok (as RabbitMQ does);
        // lapin sometimes sees the EOF before the close-ok and reports an
        // I/O error. Either way the connection is gone.
        let closed = bounded(STEP, "connection.close", consumer_conn.close(200, "bye")).await;
        assert!(
            matches!(closed, Ok(()) | Err(lapin::Error::IOError(_))),
            "{closed:?}"
        );
        let mut seen = Vec::new();
        for _ in 0..3 {
            let d = get_eventually(&ch, &q, true).await;
            seen.push((String::from_utf8(d.data).unwrap(), d.redelivered));
        }
        assert_eq!(
            seen,
            vec![
                ("u1".to_string(), true),
                ("u2".to_string(), true),
                ("u3".to_string(), true)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn unacked_messages_return_when_consumer_channel_closes() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("unacked-ch");
        declare_queue(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"c1").await;
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = cch
            .basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(next_delivery(&mut consumer).await.data, b"c1");
        cch.close(200, "bye").await.unwrap();
        let d = get_eventually(&ch, &q, true).await;
        assert_eq!((d.data.as_slice(), d.redelivered), (&b"c1"[..], true));
    })
    .await;
}

#[tokio::test]
async fn deleting_a_consumed_queue_cancels_the_consumer() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("doomed");
        declare_queue(&ch, &q, FieldTable::default()).await;
        let mut consumer = ch
            .basic_consume(&q, "", no_ack(), FieldTable::default())
            .await
            .unwrap();
        let other = broker.connect().await;
        let och = other.create_channel().await.unwrap();
        och.queue_delete(&q, QueueDeleteOptions::default())
            .await
            .unwrap();
        let end = bounded(STEP, "the consumer to be cancelled", consumer.next()).await;
        assert!(end.is_none(), "expected the stream to end, got {end:?}");
        // basic.cancel from the server is not a channel error.
        assert!(ch.status().connected());
        ch.queue_declare("", exclusive(), FieldTable::default())
            .await
            .expect("channel still usable");
    })
    .await;
}

#[tokio::test]
async fn basic_get_counts_and_purge() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("counts");
        declare_queue(&ch, &q, FieldTable::default()).await;
        let empty = ch
            .basic_get(&q, BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        assert!(empty.is_none(), "basic.get-empty on an empty queue");
        for i in 0..5 {
            publish(&ch, "", &q, format!("g{i}").as_bytes()).await;
        }
        let m = ch
            .basic_get(&q, BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(
            (m.delivery.data.as_slice(), m.message_count),
            (&b"g0"[..], 4)
        );
        // Ready only: the unacked one is not counted.
        assert_eq!(ready_count(&ch, &q).await, 4);
        let purged = ch
            .queue_purge(&q, lapin::options::QueuePurgeOptions::default())
            .await
            .unwrap();
        assert_eq!(purged, 4);
        assert_eq!(ready_count(&ch, &q).await, 0);
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        assert!(ch.status().connected());
    })
    .await;
}

#[tokio::test]
async fn basic_recover_requeues_unacked_as_redelivered() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let q = unique("recover");
        declare_queue(&ch, &q, FieldTable::default()).await;
        publish(&ch, "", &q, b"again").await;
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = cch
            .basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let first = next_delivery(&mut consumer).await;
        assert!(!first.redelivered);
        cch.basic_recover(lapin::options::BasicRecoverOptions { requeue: true })
            .await
            .unwrap();
        let second = next_delivery(&mut consumer).await;
        assert_eq!(second.data, b"again");
        assert!(second.redelivered);
        assert_ne!(second.delivery_tag, first.delivery_tag);
        second.acker.ack(BasicAckOptions::default()).await.unwrap();
        assert!(cch.status().connected());
    })
    .await;
}

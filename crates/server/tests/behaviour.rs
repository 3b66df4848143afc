//! Core messaging behaviour through lapin against the real broker: dispatch,
//! acknowledgements, confirms, returns, transactions and routing.

mod common;

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
async fn fanout_delivers_to_every_bound_queue() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let x = unique("fan");
        declare_exchange(&ch, &x, ExchangeKind::Fanout, FieldTable::default()).await;
        let queues: Vec<String> = (0..3).map(|i| unique(&format!("fan-q{i}"))).collect();
        for (i, q) in queues.iter().enumerate() {
            declare_queue(&ch, q, FieldTable::default()).await;
            // Fanout ignores the binding key.
            bind(&ch, q, &x, &format!("key{i}"), FieldTable::default()).await;
        }
        publish(&ch, &x, "whatever", b"to all").await;
        for q in &queues {
            assert_eq!(drain(&ch, q).await, vec![b"to all".to_vec()], "queue {q}");
        }
    })
    .await;
}

#[tokio::test]
async fn topic_routing_with_star_and_hash() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let x = unique("topic");
        declare_exchange(&ch, &x, ExchangeKind::Topic, FieldTable::default()).await;
        let patterns = ["a.*", "a.#", "*.b.#", "#", "a.b.c"];
        let queues: Vec<String> = patterns
            .iter()
            .map(|p| unique(&format!("topic-{p}")))
            .collect();
        for (q, p) in queues.iter().zip(patterns) {
            declare_queue(&ch, q, FieldTable::default()).await;
            bind(&ch, q, &x, p, FieldTable::default()).await;
        }
        for key in ["a", "a.b", "a.b.c", "x.b.y", "b", "a.x.b"] {
            publish(&ch, &x, key, key.as_bytes()).await;
        }
        let expect: [&[&str]; 5] = [
            &["a.b"],
            &["a", "a.b", "a.b.c", "a.x.b"],
            &["a.b", "a.b.c", "x.b.y"],
            &["a", "a.b", "a.b.c", "x.b.y", "b", "a.x.b"],
            &["a.b.c"],
        ];
        for ((q, p), want) in queues.iter().zip(patterns).zip(expect) {
            let got: Vec<String> = drain(&ch, q)
                .await
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect();
            assert_eq!(got, want, "binding {p:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn headers_exchange_x_match_any_and_all() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let x = unique("hdr");
        declare_exchange(&ch, &x, ExchangeKind::Headers, FieldTable::default()).await;
        let q_all = unique("hdr-all");
        let q_any = unique("hdr-any");
        for (q, mode) in [(&q_all, "all"), (&q_any, "any")] {
            declare_queue(&ch, q, FieldTable::default()).await;
            bind(
                &ch,
                q,
                &x,
                "",
                table(&[
                    ("x-match", s(mode)),
                    ("format", s("pdf")),
                    ("type", s("report")),
                ]),
            )
            .await;
        }
        let cases: [(&str, &[(&str, &str)]); 4] = [
            ("both", &[("format", "pdf"), ("type", "report")]),
            ("one", &[("format", "pdf")]),
            ("none", &[("format", "zip")]),
            (
                "extra",
                &[("format", "pdf"), ("type", "report"), ("other", "1")],
            ),
        ];
        for (body, headers) in cases {
            let h: Vec<(&str, AMQPValue)> = headers.iter().map(|(k, v)| (*k, s(v))).collect();
            let props = BasicProperties::default().with_headers(table(&h));
            let c = publish_confirmed(&ch, &x, "", body.as_bytes(), props, false).await;
            assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        }
        assert_eq!(
            drain(&ch, &q_all).await,
            vec![b"both".to_vec(), b"extra".to_vec()]
        );
        assert_eq!(
            drain(&ch, &q_any).await,
            vec![b"both".to_vec(), b"one".to_vec(), b"extra".to_vec()]
        );
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
async fn server_named_queue_starts_with_amq_gen() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let a = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        let b = ch
            .queue_declare("", exclusive(), FieldTable::default())
            .await
            .unwrap();
        for name in [a.name().as_str(), b.name().as_str()] {
            let rest = name
                .strip_prefix("amq.gen-")
                .unwrap_or_else(|| panic!("{name:?} lacks the amq.gen- prefix"));
            assert_eq!(rest.len(), 22, "{name:?}");
            assert!(
                rest.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'),
                "{name:?} is not base64url"
            );
        }
        assert_ne!(a.name(), b.name());
    })
    .await;
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let src = unique("e2e-src");
        let dst = unique("e2e-dst");
        declare_exchange(&ch, &src, ExchangeKind::Direct, FieldTable::default()).await;
        declare_exchange(&ch, &dst, ExchangeKind::Fanout, FieldTable::default()).await;
        ch.exchange_bind(
            &dst,
            &src,
            "k",
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let q = unique("e2e-q");
        declare_queue(&ch, &q, FieldTable::default()).await;
        bind(&ch, &q, &dst, "", FieldTable::default()).await;
        publish(&ch, &src, "k", b"via dst").await;
        publish(&ch, &src, "other", b"dropped").await;
        publish(&ch, &dst, "any", b"direct to dst").await;
        assert_eq!(
            drain(&ch, &q).await,
            vec![b"via dst".to_vec(), b"direct to dst".to_vec()]
        );
    })
    .await;
}

#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let broker = TestBroker::start();
    run_test(async {
        let conn = broker.connect().await;
        let ch = confirm_channel(&conn).await;
        let ae = unique("ae");
        let x = unique("with-ae");
        declare_exchange(&ch, &ae, ExchangeKind::Fanout, FieldTable::default()).await;
        declare_exchange(
            &ch,
            &x,
            ExchangeKind::Direct,
            table(&[("alternate-exchange", s(&ae))]),
        )
        .await;
        let q_ae = unique("ae-q");
        let q_main = unique("main-q");
        declare_queue(&ch, &q_ae, FieldTable::default()).await;
        declare_queue(&ch, &q_main, FieldTable::default()).await;
        bind(&ch, &q_ae, &ae, "", FieldTable::default()).await;
        bind(&ch, &q_main, &x, "k", FieldTable::default()).await;
        publish(&ch, &x, "k", b"routed").await;
        // Mandatory, but the alternate exchange routes it: no basic.return.
        let c = publish_confirmed(
            &ch,
            &x,
            "nope",
            b"unroutable",
            BasicProperties::default(),
            true,
        )
        .await;
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
        assert_eq!(drain(&ch, &q_main).await, vec![b"routed".to_vec()]);
        assert_eq!(drain(&ch, &q_ae).await, vec![b"unroutable".to_vec()]);
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

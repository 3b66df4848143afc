//! Routing: fanout, topic, headers, server-named queues, exchange-to-exchange bindings, alternate exchanges.

use super::*;

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
